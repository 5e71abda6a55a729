"""The toolchain on Fedora, RHEL and their rebuilds (dnf)."""

from __future__ import annotations

from rigctl.pyinfra_api import dnf


def install(packages: list[str]) -> None:
    dnf.packages(name="toolchain: dnf packages", packages=packages)
