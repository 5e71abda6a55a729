"""Apple Silicon: memory, chip, GPU wired-memory limit (sysctl), GPU cores (system_profiler)."""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

from rigctl.facts._parse import split_pairs, to_int
from rigctl.pyinfra_api import FactBase

_SYSCTL_KEYS = (
    "hw.memsize",
    "machdep.cpu.brand_string",
    "iogpu.wired_limit_mb",  # macOS 14+: GPU wired-memory limit in MiB, 0 = the default
    "debug.iogpu.wired_limit",  # macOS 13: the same limit in bytes
)


class AppleSysctlValues(TypedDict):
    memsize: int | None
    brand: str | None
    wired_limit_mb: int | None  # None where macOS has no such knob; 0 = macOS default


class AppleSysctl(FactBase[AppleSysctlValues | None]):
    """
    Returns macOS's total memory, CPU brand and GPU wired-memory limit, or ``None`` elsewhere.

    ``sysctl`` is asked *with* the key names (not ``-n``): a key this macOS lacks prints an error
    on stderr and nothing on stdout, which would shift a bare list of values; named lines can't.
    Its non-zero exit status for the missing key is dropped.

    .. code:: python

        {"memsize": 68719476736, "brand": "Apple M2 Max", "wired_limit_mb": 0}
    """

    def command(self) -> str:
        return f"sysctl {' '.join(_SYSCTL_KEYS)} 2>/dev/null || true"

    def process(self, output: list[str]) -> AppleSysctlValues | None:
        values = dict(split_pairs(output, ":"))
        memsize = to_int(values.get("hw.memsize"))
        if memsize is None:
            return None  # not macOS (Linux sysctl has none of these keys)
        wired_mb = to_int(values.get("iogpu.wired_limit_mb"))
        if wired_mb is None:
            wired_bytes = to_int(values.get("debug.iogpu.wired_limit"))
            wired_mb = wired_bytes // (1024 * 1024) if wired_bytes is not None else None
        return AppleSysctlValues(
            memsize=memsize,
            brand=values.get("machdep.cpu.brand_string") or None,
            wired_limit_mb=wired_mb,
        )


class AppleGpu(TypedDict):
    name: str
    vendor: str  # "apple", "intel", "amd", "nvidia" or what system_profiler says
    cores: int | None


class AppleHardware(TypedDict):
    chip: str | None  # "Apple M2 Max"; None on Intel Macs
    model: str | None  # "Mac14,6"
    memory_bytes: int | None
    cpu_cores: int | None  # total; the P/E split's format changed across macOS releases
    gpus: list[AppleGpu]


class AppleSystemProfiler(FactBase[AppleHardware | None]):
    """
    Returns the chip, memory, CPU and GPU cores ``system_profiler`` reports, or ``None`` when
    it is missing (not macOS) or prints something that is not its JSON.

    .. code:: python

        {
            "chip": "Apple M2 Max",
            "model": "Mac14,6",
            "memory_bytes": 68719476736,
            "cpu_cores": 12,
            "gpus": [{"name": "Apple M2 Max", "vendor": "apple", "cores": 38}],
        }
    """

    def requires_command(self) -> str:
        return "system_profiler"

    def command(self) -> str:
        return "system_profiler -json SPHardwareDataType SPDisplaysDataType 2>/dev/null || true"

    def process(self, output: list[str]) -> AppleHardware | None:
        try:
            data = json.loads("\n".join(output))
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        hardware = _first_dict(data.get("SPHardwareDataType"))
        displays = data.get("SPDisplaysDataType")
        gpus = [
            _apple_gpu(entry)
            for entry in (displays if isinstance(displays, list) else [])
            if isinstance(entry, dict) and (entry.get("sppci_model") or entry.get("_name"))
        ]
        if hardware is None and not gpus:
            return None
        hardware = hardware or {}
        processors = str(hardware.get("number_processors", ""))
        # "proc 12:8:4" (total:performance:efficiency); newer releases add a fourth field whose
        # place differs ("proc 18:6:0:12"), so only the total is read. Intel Macs give an int.
        cores = re.match(r"(?:proc\s+)?(\d+)", processors)
        return AppleHardware(
            chip=_str_or_none(hardware.get("chip_type")),
            model=_str_or_none(hardware.get("machine_model")),
            memory_bytes=_size_bytes(str(hardware.get("physical_memory", ""))),
            cpu_cores=int(cores.group(1)) if cores else None,
            gpus=gpus,
        )


def _first_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _apple_gpu(entry: dict[str, Any]) -> AppleGpu:
    vendor = str(entry.get("spdisplays_vendor", ""))
    # "sppci_vendor_Apple" on Apple Silicon; Intel Macs say "Intel" or "sppci_vendor_amd".
    vendor_name = vendor.removeprefix("sppci_vendor_").split(" ")[0].lower() or "unknown"
    return AppleGpu(
        name=str(entry.get("sppci_model") or entry.get("_name")),
        vendor=vendor_name,
        cores=to_int(str(entry.get("sppci_cores", ""))),
    )


_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _size_bytes(text: str) -> int | None:
    """ "64 GB" -> 68719476736 (system_profiler's GB are GiB: it prints installed RAM)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]B)\s*", text)
    return int(match.group(1)) * _UNITS[match.group(2)] if match else None
