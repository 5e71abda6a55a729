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

#: Extra packages per llama.cpp backend beside the compilers. The backends' SDKs are not here:
#: the ``cuda_toolkit``, ``rocm`` and ``vulkan`` roles install them, as the plan chooses.
TOOLCHAIN_APT_BACKEND_PACKAGES: dict[str, list[str]] = {
    "cpu": [],
    "cuda": [],
    "rocm": [],
    "vulkan": [],
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

#: The same on Fedora/RHEL: the SDKs are the GPU roles' (``cuda_toolkit``, ``rocm``, ``vulkan``).
TOOLCHAIN_DNF_BACKEND_PACKAGES: dict[str, list[str]] = {
    "cpu": [],
    "cuda": [],
    "rocm": [],
    "vulkan": [],
}

#: Seconds an ``apt-get update`` stays fresh: a re-run within it changes nothing.
TOOLCHAIN_APT_CACHE_TIME: int = 3600

#: Seconds ``apt-get install`` waits for another apt or dpkg to release its lock instead of
#: failing at once: an interrupted run's apt goes on without its controller, and
#: unattended-upgrades may be running.
TOOLCHAIN_APT_LOCK_TIMEOUT: int = 600
