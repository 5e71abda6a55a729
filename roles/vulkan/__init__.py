"""Role ``vulkan``: what a llama.cpp Vulkan build compiles and runs with.

One job: the Vulkan loader and headers, glslc, the SPIR-V headers, and the vendor's ICD (Mesa's
``mesa-vulkan-drivers`` on Linux: AMD's RADV, Intel's ANV, and lavapipe, Mesa's CPU device).
NVIDIA's ICD comes with its driver, not from here.
"""

from __future__ import annotations

from rigctl.roles.toolchain import defaults as toolchain_defaults
from rigctl.roles.toolchain import setup_debian
from rigctl.roles.vulkan import defaults

from rigctl.plan.gpu_software import Toolkit
from rigctl.pyinfra_api import OperationError, deploy, dnf, host, server_facts

__all__ = ["defaults", "install"]


@deploy("rigctl vulkan")
def install(toolkit: Toolkit | None = None, runtime_only: bool = False) -> None:
    """Install the Vulkan SDK packages and Mesa's drivers (the same for a prebuilt build: its
    shaders are compiled in, but the loader and the ICD are needed to run).

    + toolkit: the plan's choice (kind ``vulkan``), for the same call shape as the other SDKs
    """
    if toolkit is not None and toolkit.kind != "vulkan":
        raise OperationError(f"vulkan: not a Vulkan toolkit: {toolkit.kind}")
    if host.get_fact(server_facts.Which, command="apt-get"):
        setup_debian.install(
            defaults.VULKAN_APT_PACKAGES,
            toolchain_defaults.TOOLCHAIN_APT_CACHE_TIME,
            toolchain_defaults.TOOLCHAIN_APT_LOCK_TIMEOUT,
            name="vulkan: SDK and Mesa drivers",
        )
    elif host.get_fact(server_facts.Which, command="dnf"):
        dnf.packages(name="vulkan: SDK and Mesa drivers", packages=defaults.VULKAN_DNF_PACKAGES)
    else:
        raise OperationError("vulkan: no supported package manager (apt-get or dnf) found")
