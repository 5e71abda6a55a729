"""The toolchain on Debian and Ubuntu (apt)."""

from __future__ import annotations

from rigctl.pyinfra_api import apt


def install(packages: list[str], cache_time: int) -> None:
    apt.packages(
        name="toolchain: apt packages",
        packages=packages,
        update=True,
        cache_time=cache_time,
        no_recommends=True,
    )
