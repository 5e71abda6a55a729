"""The GPU software a plan needs, installed by its roles: one table from the plan's toolkit
kind to the role that installs it, so no deploy branches on the backend.

- the driver (``nvidia_driver``), only where host data says ``nvidia_driver: install`` and the
  GPU has none: every runtime needs it;
- the toolkit a llama.cpp build compiles with (``cuda_toolkit``, ``rocm``, ``vulkan``), or with
  ``runtime_only`` what a prebuilt build links.
"""

from __future__ import annotations

from collections.abc import Callable

from rigctl.roles import cuda_toolkit, nvidia_driver, rocm, vulkan

from rigctl.plan.gpu_software import GpuSoftware, Toolkit

INSTALLERS: dict[str, Callable[..., None]] = {
    "cuda": cuda_toolkit.install,
    "rocm": rocm.install,
    "vulkan": vulkan.install,
}


def install_driver(software: GpuSoftware | None) -> None:
    """The NVIDIA driver, when the plan says rigctl installs it."""
    if software is not None and software.nvidia_driver == "install" and software.driver_version is None:
        assert software.nvidia_repository, "the planner names the repository"
        nvidia_driver.install(distro=software.nvidia_repository)


def install_toolkit(toolkit: Toolkit | None, *, runtime_only: bool) -> None:
    """The plan's toolkit (``None``: nothing to install)."""
    if toolkit is not None:
        INSTALLERS[toolkit.kind](toolkit, runtime_only=runtime_only)
