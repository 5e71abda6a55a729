"""The host around the accelerator: memory, free disk for models, OS release, init system."""

from __future__ import annotations

import re
from typing import TypedDict

from rigctl.facts._parse import split_pairs, to_int
from rigctl.pyinfra_api import FactBase, QuoteString, StringCommand

#: Where models are stored unless a host says otherwise; disk space is measured there.
DEFAULT_MODELS_DIR = "/var/lib/rigctl"


class MemoryBytes(FactBase[int | None]):
    """
    Returns the installed memory in bytes: ``MemTotal`` of ``/proc/meminfo`` (kB) on Linux,
    ``hw.memsize`` on macOS; ``None`` when neither reads.

    .. code:: python

        67334615040
    """

    def command(self) -> str:
        return (
            "if [ -r /proc/meminfo ]; then grep '^MemTotal:' /proc/meminfo; "
            "else sysctl -n hw.memsize 2>/dev/null; fi || true"
        )

    def process(self, output: list[str]) -> int | None:
        for line in output:
            meminfo = re.fullmatch(r"MemTotal:\s*(\d+)\s*kB", line.strip())
            if meminfo:
                return int(meminfo.group(1)) * 1024
            memsize = to_int(line)
            if memsize is not None and memsize > 0:
                return memsize
        return None


class DiskFreeBytes(FactBase[int | None]):
    """
    Returns the bytes available to unprivileged users on the filesystem that holds ``path``
    (the models directory), measured at its nearest existing parent since the directory
    itself is usually created later. ``None`` when ``df`` says nothing readable.

    .. code:: python

        27202002944
    """

    def command(self, path: str = DEFAULT_MODELS_DIR) -> StringCommand:
        return StringCommand(
            "p=",
            QuoteString(path),
            '; while [ ! -e "$p" ] && [ "$p" != / ] && [ "$p" != . ]; do p=$(dirname "$p"); done; '
            'df -Pk "$p" 2>/dev/null || true',
            _separator="",
        )

    def process(self, output: list[str]) -> int | None:
        # POSIX format: "Filesystem 1024-blocks Used Available Capacity Mounted on", one line
        # per filesystem even for long device names; names may hold spaces, so match from the
        # numbers: total, used, available, capacity%.
        for line in output[1:]:
            match = re.search(r"\s(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s", line + " ")
            if match:
                return int(match.group(3)) * 1024
        return None


class OsReleaseValues(TypedDict):
    system: str  # "Linux" | "Darwin" (uname -s)
    arch: str  # "x86_64" | "aarch64" | "arm64" (uname -m)
    distro: str  # os-release ID ("debian", "ubuntu"), "macos", or "unknown"
    version: str  # os-release VERSION_ID ("12", "22.04"), macOS ProductVersion; "" if rolling


class OsRelease(FactBase[OsReleaseValues | None]):
    """
    Returns the kernel, architecture, distribution and its version: ``uname -s``/``-m``, then
    ``ID``/``VERSION_ID`` of ``/etc/os-release``, or ``sw_vers`` on macOS.

    .. code:: python

        {"system": "Linux", "arch": "x86_64", "distro": "debian", "version": "12"}
    """

    def command(self) -> str:
        return (
            'echo "uname_s=$(uname -s 2>/dev/null)"; echo "uname_m=$(uname -m 2>/dev/null)"; '
            "cat /etc/os-release 2>/dev/null; sw_vers 2>/dev/null; true"
        )

    def process(self, output: list[str]) -> OsReleaseValues | None:
        release = {key: value.strip("\"'") for key, value in split_pairs(output, "=")}
        macos = dict(split_pairs(output, ":"))  # sw_vers: "ProductVersion:\t14.4.1"
        system = release.get("uname_s")
        if not system:
            return None
        if system == "Darwin":
            distro, version = "macos", macos.get("ProductVersion", "")
        else:
            distro, version = (
                release.get("ID", "").lower() or "unknown",
                release.get("VERSION_ID", ""),
            )
        return OsReleaseValues(
            system=system, arch=release.get("uname_m") or "unknown", distro=distro, version=version
        )


class InitSystem(FactBase[str]):
    """
    Returns the service manager: "systemd" when ``/run/systemd/system`` exists (systemd's own
    test for "booted with systemd"), "launchd" on macOS, otherwise "unknown" (containers
    without an init, OpenRC, ...).

    .. code:: python

        "systemd"
    """

    @staticmethod
    def default() -> str:
        return "unknown"

    def command(self) -> str:
        return (
            "if [ -d /run/systemd/system ]; then echo systemd; "
            'elif [ "$(uname -s)" = Darwin ]; then echo launchd; else echo unknown; fi'
        )

    def process(self, output: list[str]) -> str:
        value = output[0].strip() if output else ""
        return value if value in ("systemd", "launchd") else "unknown"
