"""The host around the accelerator: memory, free disk for models, OS release, init system."""

from __future__ import annotations

import ipaddress
import re
import struct
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


class ListeningSocket(TypedDict):
    address: str  # "127.0.0.1", "0.0.0.0", "::"
    port: int
    pid: int | None  # None when the owner is not visible (another PID namespace, no root)
    process: str | None  # the owner's comm
    unit: str | None  # the systemd service whose cgroup holds it


_LISTENERS = (
    # listening TCP sockets (state 0A) by inode, then which process holds each inode
    '{ awk \'FNR > 1 && $4 == "0A" { print "L", $2, $10 }\' /proc/net/tcp /proc/net/tcp6'
    " 2>/dev/null; find /proc/[0-9]*/fd -lname 'socket:\\[*\\]' -printf '%h %l\\n' 2>/dev/null"
    " | sed -n 's#^/proc/\\([0-9]*\\)/fd socket:\\[\\([0-9]*\\)\\]$#S \\2 \\1#p'; }"
    ' | awk \'$1 == "L" { l[$3] = $2; next }'
    ' $1 == "S" && ($2 in l) { c = "-"; getline c < ("/proc/" $3 "/comm"); gsub(/ /, "_", c);'
    ' g = "-"; f = "/proc/" $3 "/cgroup"; while ((getline x < f) > 0) g = x; close(f);'
    " print l[$2], $3, c, g; delete l[$2] }"
    ' END { for (i in l) print l[i], "-", "-", "-" }\''
)


def _proc_net_address(text: str) -> tuple[str, int] | None:
    """``0100007F:1F90`` (``/proc/net/tcp``: 32-bit words in host order) -> ("127.0.0.1", 8080)."""
    address, _, port = text.partition(":")
    try:
        raw = bytes.fromhex(address)
        if len(raw) not in (4, 16):
            return None
        # each 32-bit word is in the kernel's (little-endian) order
        packed = b"".join(
            struct.pack(">I", struct.unpack("<I", raw[i : i + 4])[0]) for i in range(0, len(raw), 4)
        )
        ip = ipaddress.ip_address(packed)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return str(ip), int(port, 16)
    except ValueError:
        return None


class ListeningSockets(FactBase[list[ListeningSocket]]):
    """
    Returns the TCP sockets listening on a Linux host, with the process and systemd unit that
    hold each, from ``/proc/net/tcp{,6}`` and ``/proc/*/fd`` (no ``ss`` or ``lsof`` needed).
    Empty where ``/proc`` has no such files (macOS).

    .. code:: python

        [{"address": "0.0.0.0", "port": 22, "pid": 512, "process": "sshd", "unit": "ssh.service"}]
    """

    def command(self) -> str:
        return _LISTENERS + " || true"

    def process(self, output: list[str]) -> list[ListeningSocket]:
        sockets: list[ListeningSocket] = []
        for line in output:
            fields = line.split()
            if len(fields) != 4:
                continue
            where = _proc_net_address(fields[0])
            if where is None:
                continue
            pid, process, cgroup = fields[1:]
            units = re.findall(r"/([^/]+\.service)(?=/|$)", cgroup)
            sockets.append(
                ListeningSocket(
                    address=where[0],
                    port=where[1],
                    pid=int(pid) if pid.isdigit() else None,
                    process=None if process == "-" else process,
                    unit=units[-1] if units else None,
                )
            )
        return sorted(sockets, key=lambda s: (s["port"], s["address"]))
