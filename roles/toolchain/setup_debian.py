"""The toolchain on Debian and Ubuntu (apt)."""

from __future__ import annotations

from rigctl.pyinfra_api import apt


def install(
    packages: list[str],
    cache_time: int,
    lock_timeout: int,
    name: str = "toolchain: apt packages",
) -> None:
    """``apt-get install`` as every rigctl role does it: no recommends, the package lists
    refreshed at most every ``cache_time`` seconds, waiting up to ``lock_timeout`` for dpkg's
    lock (the GPU roles install through this too)."""
    apt.packages(
        name=name,
        packages=packages,
        update=True,
        cache_time=cache_time,
        no_recommends=True,
        # apt >= 1.9.11 waits for the dpkg lock; older ones ignore the option
        extra_install_args=f"-o DPkg::Lock::Timeout={int(lock_timeout)}",
    )
