"""Role variables of ``toolchain``, with their defaults.

The package lists are overridden by host data of the same name in lower case
(``toolchain_apt_packages = [...]`` in the inventory or ``group_data/``); more packages are
added with :func:`rigctl.roles.toolchain.install`'s ``extra_packages``. The rest are constants.
"""

from __future__ import annotations

#: Debian/Ubuntu packages a CMake build of llama.cpp needs (compiler, CMake, git for the
#: version stamp, ccache so a rebuild with the same flags is minutes shorter, curl for fetches).
TOOLCHAIN_APT_PACKAGES: list[str] = [
    "build-essential",
    "cmake",
    "git",
    "ccache",
    "pkg-config",
    "curl",
    "ca-certificates",
]

#: Extra packages per llama.cpp backend (CUDA and ROCm toolkits come from their vendors'
#: repositories, not from here: rigctl checks for them instead of installing multi-GB SDKs).
TOOLCHAIN_APT_BACKEND_PACKAGES: dict[str, list[str]] = {
    "cpu": [],
    "cuda": [],
    "rocm": [],
    "vulkan": ["libvulkan-dev", "glslc"],
}

#: Fedora/RHEL equivalents.
TOOLCHAIN_DNF_PACKAGES: list[str] = [
    "gcc",
    "gcc-c++",
    "make",
    "cmake",
    "git",
    "ccache",
    "pkgconf-pkg-config",
    "curl",
]

#: Extra packages per llama.cpp backend on Fedora (Vulkan's loader with its headers, and the
#: shader compiler). As for apt, CUDA and ROCm toolkits are checked for, not installed.
TOOLCHAIN_DNF_BACKEND_PACKAGES: dict[str, list[str]] = {
    "cpu": [],
    "cuda": [],
    "rocm": [],
    "vulkan": ["vulkan-loader-devel", "glslc"],
}

#: Seconds an ``apt-get update`` stays fresh: a re-run within it changes nothing.
TOOLCHAIN_APT_CACHE_TIME: int = 3600

#: Seconds ``apt-get install`` waits for another apt or dpkg to release its lock instead of
#: failing at once: an interrupted run's apt goes on without its controller, and
#: unattended-upgrades may be running.
TOOLCHAIN_APT_LOCK_TIMEOUT: int = 600
