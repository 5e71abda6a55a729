"""Parsing what hosts print: ``systemctl show``, ``ss -Htlnp``, ``/proc/PID/status``, Prometheus
text, build names. Pure functions, unit-tested on captured output."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass


def systemctl_show(text: str) -> dict[str, str]:
    """``systemctl show -p A -p B UNIT`` -> ``{"A": ..., "B": ...}`` (values may be empty or
    contain ``=``; systemd prints the properties in its own order, not the one asked for)."""
    properties: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name and " " not in name:
            properties[name] = value.strip()
    return properties


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket: where, and which processes hold it."""

    address: str  # "127.0.0.1", "::", "0.0.0.0" (no brackets, no %interface)
    port: int
    pids: tuple[int, ...] = ()
    processes: tuple[str, ...] = ()

    @property
    def wildcard(self) -> bool:
        return self.address in ("0.0.0.0", "::", "*")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address)

    def __str__(self) -> str:
        shown = f"[{self.address}]" if ":" in self.address else self.address
        return f"{shown}:{self.port}"


_PROCESS = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


def ss_listeners(text: str) -> list[Listener]:
    """``ss -Htlnp`` -> the listening sockets (lines that do not parse are skipped).

    A line is ``LISTEN 0 512 127.0.7.1:8080 0.0.0.0:* users:(("llama-server",pid=1765,fd=3))``;
    addresses come as ``0.0.0.0``, ``*``, ``[::]``, ``[::ffff:127.0.0.1]`` or ``127.0.0.53%lo``;
    the process column is empty for sockets of processes ss cannot see (another PID namespace).
    """
    listeners = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] != "LISTEN":
            continue
        local = parts[3]
        address, sep, port = local.rpartition(":")
        if not sep or not port.isdigit():
            continue
        address = address.strip("[]").split("%", 1)[0]
        process = " ".join(parts[5:])
        found = _PROCESS.findall(process)
        listeners.append(
            Listener(
                address=address,
                port=int(port),
                pids=tuple(int(pid) for _name, pid in found),
                processes=tuple(name for name, _pid in found),
            )
        )
    return listeners


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback; names and wildcards are not loopback."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return address == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def same_address(a: str, b: str) -> bool:
    """Two spellings of one address (``::ffff:127.0.0.1`` is ``127.0.0.1``; ``*`` is ``0.0.0.0``)."""

    def norm(address: str) -> str:
        address = address.strip("[]").split("%", 1)[0]
        if address == "*":
            return "0.0.0.0"
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip)

    return norm(a) == norm(b)


def proc_uids(status_text: str) -> tuple[int, int, int, int]:
    """``/proc/PID/status`` -> (real, effective, saved, filesystem) uid."""
    for line in status_text.splitlines():
        if line.startswith("Uid:"):
            values = [int(v) for v in line.split()[1:5]]
            if len(values) == 4:
                return values[0], values[1], values[2], values[3]
    raise ValueError("no Uid: line in /proc/PID/status")


def prometheus_samples(text: str) -> dict[str, float]:
    """Prometheus text exposition -> ``{name{labels}: value}`` (comments and bad lines skipped)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name.strip()] = float(value)
        except ValueError:
            continue
    return {name: value for name, value in samples.items() if name}


@dataclass(frozen=True)
class BuildName:
    """A llama.cpp build name, ``<version>-<backend>-<key>`` (``rigctl.roles.llamacpp.BuildSpec``)."""

    version: str
    backend: str
    key: str

    @classmethod
    def parse(cls, name: str) -> BuildName:
        version, backend, key = (name.rsplit("-", 2) + ["", ""])[:3]
        if not (version and backend and re.fullmatch(r"[0-9a-f]{12}", key)):
            raise ValueError(f"not a llama.cpp build name: {name!r}")
        return cls(version, backend, key)

    def __str__(self) -> str:
        return f"{self.version}-{self.backend}-{self.key}"
