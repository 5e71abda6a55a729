"""The toolchain on Debian and Ubuntu (apt)."""

from __future__ import annotations

from rigctl.pyinfra_api import apt


def install(packages: list[str], cache_time: int, lock_timeout: int) -> None:
    apt.packages(
        name="toolchain: apt packages",
        packages=packages,
        update=True,
        cache_time=cache_time,
        no_recommends=True,
        # apt >= 1.9.11 waits for the dpkg lock; older ones ignore the option
        extra_install_args=f"-o DPkg::Lock::Timeout={int(lock_timeout)}",
    )
