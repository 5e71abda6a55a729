"""Pre-flight checks: can this host run the plan at all (driver, disk, memory, CPU)?

Each check returns (warnings, errors): an error means the host cannot run the plan.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rigctl.hardware import Hardware
from rigctl.plan.memory import GiB, gib
from rigctl.plan.types import DevicePlacement

# Driver CUDA version (nvidia-smi's "CUDA Version") per runtime: below the first an error,
# below the second a warning.
#  - vLLM: the pinned release (0.32.0) and the torch it pins (2.13.0) are built with CUDA 13
#    on PyPI (their nvidia-*-cu13 requirements); any 13.x driver (R580 or newer) runs them
#    through minor-version compatibility, a 12.x driver does not.
#  - llama.cpp: rigctl builds it with a CUDA 12 toolkit; any 12.x driver runs that build.
#  - Ollama: its docs require driver 531 or newer, which reports CUDA 12.1.
MIN_DRIVER_CUDA: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "vllm": ((13, 0), (13, 0)),
    "llamacpp": ((12, 0), (12, 0)),
    "ollama": ((12, 1), (12, 1)),
}

# Free disk beyond the download itself: partial downloads, logs, the runtime's own files.
DISK_MARGIN_FRACTION = 0.05
DISK_MARGIN_MIN = 1 * GiB


def _version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def _show(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def check_driver(hardware: Hardware, accelerator: str, runtime: str) -> tuple[list[str], list[str]]:
    """Return (warnings, errors) about the NVIDIA driver's CUDA version for ``runtime``."""
    if accelerator != "cuda":
        return [], []
    error_below, warn_below = MIN_DRIVER_CUDA[runtime]
    driver = _version(hardware.cuda_driver_version)
    if driver is None:
        return [f"driver CUDA version unknown; {runtime} needs {_show(warn_below)} or newer"], []
    if driver < error_below:
        return [], [
            f"NVIDIA driver supports CUDA {_show(driver)}; {runtime} needs {_show(error_below)} "
            "or newer: upgrade the driver"
        ]
    warnings = []
    if driver < warn_below:
        warnings.append(
            f"NVIDIA driver supports CUDA {_show(driver)}; {runtime}'s build targets "
            f"{_show(warn_below)} and relies on minor-version compatibility: a newer driver "
            "is safer"
        )
    toolkit = _version(hardware.cuda_toolkit_version)
    if toolkit is not None and toolkit > driver and runtime == "llamacpp":
        warnings.append(
            f"CUDA toolkit {_show(toolkit)} is newer than the driver's CUDA {_show(driver)}: a "
            "llama.cpp built with it may not start; upgrade the driver"
        )
    return warnings, []


def check_disk(hardware: Hardware, download_bytes: int, what: str) -> tuple[list[str], list[str]]:
    """Return (warnings, errors) about free disk for a ``download_bytes`` model."""
    margin = max(DISK_MARGIN_MIN, int(download_bytes * DISK_MARGIN_FRACTION))
    free = hardware.disk_free_bytes
    if free < download_bytes:
        return [], [
            f"disk: {what} needs {gib(download_bytes)} but only {gib(free)} is free "
            "(unless it is already downloaded)"
        ]
    if free < download_bytes + margin:
        return [
            f"disk: {what} takes {gib(download_bytes)} of the {gib(free)} free, leaving less "
            f"than {gib(margin)}"
        ], []
    return [], []


def check_memory(placement: list[DevicePlacement], *, unified: bool) -> list[str]:
    """Return errors for every device the plan overfills."""
    errors = []
    for row in placement:
        if row.fits:
            continue
        if row.device == "cpu":
            pool = "unified memory" if unified else "RAM"
            errors.append(
                f"{pool}: the plan needs {gib(row.bytes)} on the host but {gib(row.usable)} is "
                "usable after the OS reserve; use a smaller quant or context"
            )
        else:
            errors.append(
                f"{row.device}: the plan needs {gib(row.bytes)} but {gib(row.usable)} is usable"
            )
    return errors


def check_cpu(hardware: Hardware, uses_cpu: bool) -> list[str]:
    """Return warnings about the CPU for a plan that computes on it."""
    flags = set(hardware.cpu.flags)
    if uses_cpu and hardware.os.arch == "x86_64" and flags and "avx2" not in flags:
        return ["CPU lacks AVX2: llama.cpp's CPU kernels will be several times slower"]
    return []


def port_conflict(
    listen: str, port: int, sockets: Sequence[Mapping[str, Any]], own_units: Collection[str]
) -> str | None:
    """Why ``listen:port`` cannot be served because another program listens there, or None.

    ``sockets`` are the host's listening sockets (``rigctl.facts.system.ListeningSockets``);
    a socket held by one of ``own_units`` (rigctl's servers) is the one the deploy replaces.
    A wildcard address (``0.0.0.0``, ``::``) on either side overlaps every address.
    """
    wanted = ipaddress.ip_address(listen)
    for socket in sockets:
        if socket.get("port") != port or socket.get("unit") in own_units:
            continue
        try:
            held = ipaddress.ip_address(str(socket.get("address")))
        except ValueError:
            continue
        if not (held.is_unspecified or wanted.is_unspecified or held == wanted):
            continue
        if socket.get("process"):
            owner = f"{socket['process']} (pid {socket['pid']}"
            owner += f", {socket['unit']})" if socket.get("unit") else ")"
        else:
            owner = "a process this host does not show (another container, or no root)"
        return f"{socket['address']}:{port} is already in use by {owner}"
    return None
