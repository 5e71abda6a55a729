"""Role ``cuda_toolkit``: the CUDA toolkit a llama.cpp CUDA build compiles with, or only the
runtime libraries a prebuilt build links.

One job. The plan chooses the toolkit (:class:`~rigctl.plan.gpu_software.Toolkit`: source and
version, suited to the driver and the GPUs); this installs it:

- ``debian``: Debian's ``nvidia-cuda-toolkit`` from ``non-free`` (the ``contrib``/``non-free``
  components added on the host's own mirror), so it works from a Debian mirror alone;
- ``nvidia``: ``cuda-toolkit-X-Y`` from NVIDIA's repository (the ``nvidia_driver`` role's
  :func:`~rigctl.roles.nvidia_driver.nvidia_repository`), under ``/usr/local/cuda-X.Y``;
- ``present``: nothing (the toolkit is already there).

With ``runtime_only`` (a host that installs another host's build) only cudart and cuBLAS.
"""

from __future__ import annotations

from rigctl.roles.cuda_toolkit import defaults, operations
from rigctl.roles.nvidia_driver import nvidia_repository
from rigctl.roles.toolchain import defaults as toolchain_defaults
from rigctl.roles.toolchain import setup_debian

from rigctl.plan.gpu_software import Toolkit
from rigctl.pyinfra_api import OperationError, deploy, dnf, host, server_facts

__all__ = ["defaults", "install", "packages"]


def packages(toolkit: Toolkit, runtime_only: bool = False) -> list[str]:
    """The packages of a toolkit choice (none for ``present``)."""
    if toolkit.source == "present" or toolkit.version is None:
        return []
    major, _, minor = toolkit.version.partition(".")
    if toolkit.source == "debian":
        if runtime_only:
            return list(defaults.CUDA_TOOLKIT_DEBIAN_RUNTIME.get(toolkit.version, []))
        return list(defaults.CUDA_TOOLKIT_DEBIAN_PACKAGES)
    names = (
        defaults.CUDA_TOOLKIT_NVIDIA_RUNTIME
        if runtime_only
        else [defaults.CUDA_TOOLKIT_NVIDIA_PACKAGE]
    )
    return [name.format(major=major, minor=minor) for name in names]


@deploy("rigctl cuda_toolkit")
def install(toolkit: Toolkit, runtime_only: bool = False) -> None:
    """Install the plan's CUDA toolkit (or, with ``runtime_only``, its runtime libraries).

    + toolkit: the plan's choice (``plan.gpu_software.toolkit``)
    + runtime_only: only what a prebuilt build links (cudart, cuBLAS)
    """
    if toolkit.kind != "cuda":
        raise OperationError(f"cuda_toolkit: not a CUDA toolkit: {toolkit.kind}")
    wanted = packages(toolkit, runtime_only)
    if not wanted:
        return
    if toolkit.source == "debian":
        suite = (host.get_fact(server_facts.LinuxDistribution) or {}).get("release_meta", {}).get(
            "VERSION_CODENAME"
        )
        if not suite:
            raise OperationError("cuda_toolkit: the host's Debian release has no codename")
        operations.debian_components(
            name="cuda: Debian contrib and non-free",
            suite=str(suite),
            components=defaults.CUDA_TOOLKIT_DEBIAN_COMPONENTS,
            dest=defaults.CUDA_TOOLKIT_DEBIAN_SOURCE_FILE,
        )
    else:
        if toolkit.repository is None:
            raise OperationError("cuda_toolkit: the plan names no NVIDIA repository")
        nvidia_repository(toolkit.repository)
    if host.get_fact(server_facts.Which, command="apt-get"):
        setup_debian.install(
            wanted,
            toolchain_defaults.TOOLCHAIN_APT_CACHE_TIME,
            toolchain_defaults.TOOLCHAIN_APT_LOCK_TIMEOUT,
            name=f"cuda: {' '.join(wanted)}",
        )
    else:
        dnf.packages(name=f"cuda: {' '.join(wanted)}", packages=wanted)
