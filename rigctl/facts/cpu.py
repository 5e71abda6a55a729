"""The CPU: model, physical cores, logical CPUs and the instruction-set flags inference cares about.

Linux is read from ``/proc/cpuinfo`` (``lscpu`` is missing on minimal hosts), macOS from sysctl.
Flags are normalised to one name per capability across kernels and operating systems:
``neon`` (Linux ``asimd``, macOS ``hw.optional.AdvSIMD``), ``dotprod`` (``asimddp``,
``FEAT_DotProd``), ``i8mm``, ``sve``/``sve2``; x86 flags keep the Linux names (``avx2``,
``avx512_vnni``, ``amx_tile``).
"""

from __future__ import annotations

from typing import TypedDict

from rigctl.facts._parse import split_pairs, to_int
from rigctl.pyinfra_api import FactBase

# x86 flags (Linux names) that decide llama.cpp/ggml kernels; every avx512* and amx_* is kept too.
X86_FLAGS = frozenset({"avx", "avx2", "avx_vnni", "f16c", "fma", "sse4_2"})
X86_FLAG_PREFIXES = ("avx512", "amx_")

# Linux aarch64 "Features" -> our name.
ARM_FLAGS = {"asimd": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve", "sve2": "sve2"}

# macOS Intel spells a few flags differently from Linux.
_MACOS_X86_RENAMES = {"avx1_0": "avx", "avx512vnni": "avx512_vnni"}

# macOS Apple Silicon: sysctl key -> flag, set when the key reads 1.
_MACOS_ARM_KEYS = {
    "hw.optional.AdvSIMD": "neon",
    "hw.optional.arm.FEAT_DotProd": "dotprod",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
}

# /proc/cpuinfo on aarch64 has no model name, only the implementer and part numbers (as lscpu
# decodes them); the common server and board cores.
ARM_PARTS = {
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0xc0", "0xac3"): "Ampere-1",
    ("0xc0", "0xac4"): "Ampere-1a",
}

_SYSCTL_KEYS = (
    "machdep.cpu.brand_string",
    "hw.physicalcpu",
    "hw.logicalcpu",
    "machdep.cpu.features",
    "machdep.cpu.leaf7_features",
    *_MACOS_ARM_KEYS,
)


class CpuValues(TypedDict):
    model: str
    cores: int  # physical cores
    threads: int  # logical CPUs
    flags: list[str]  # sorted


class CpuInfo(FactBase[CpuValues | None]):
    """
    Returns the CPU model, physical cores, logical CPUs and inference-relevant flags.

    Linux: ``/proc/cpuinfo`` plus ``nproc`` (the CPUs this process may use, which a cgroup or
    affinity mask can make fewer than the machine has). Physical cores are the distinct
    (physical id, core id) pairs; without them (aarch64) every logical CPU is a core.
    macOS: ``sysctl`` with key names (keys that do not exist on this Mac are skipped).

    .. code:: python

        {
            "model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
            "cores": 2,
            "threads": 4,
            "flags": ["amx_bf16", "amx_int8", "amx_tile", "avx", "avx2", "avx512bw", ...],
        }
    """

    def command(self) -> str:
        return (
            "if [ -r /proc/cpuinfo ]; then cat /proc/cpuinfo; "
            'echo "nproc: $(nproc 2>/dev/null)"; '
            f"else sysctl {' '.join(_SYSCTL_KEYS)} 2>/dev/null; fi; true"
        )

    def process(self, output: list[str]) -> CpuValues | None:
        pairs = split_pairs(output, ":")
        keys = {key for key, _ in pairs}
        if "hw.logicalcpu" in keys:
            return _macos_cpu(dict(pairs))
        if "processor" in keys or "nproc" in keys:
            return _linux_cpu(pairs)
        return None


def _linux_cpu(pairs: list[tuple[str, str]]) -> CpuValues | None:
    processors = 0
    core_ids: set[tuple[str, str]] = set()
    physical_id = core_id = None
    first: dict[str, str] = {}
    nproc = None
    for key, value in pairs:
        if key == "processor":
            if physical_id is not None and core_id is not None:
                core_ids.add((physical_id, core_id))
            processors += 1
            physical_id = core_id = None
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
        elif key == "nproc":
            nproc = to_int(value)
        first.setdefault(key, value)
    if physical_id is not None and core_id is not None:
        core_ids.add((physical_id, core_id))

    threads = processors or nproc or 0
    if threads <= 0:
        return None
    cores = len(core_ids) or threads
    if nproc and nproc < threads:
        # Confined to fewer CPUs than the machine has: only those count.
        threads, cores = nproc, min(cores, nproc)

    model = first.get("model name") or ARM_PARTS.get(
        (first.get("CPU implementer", ""), first.get("CPU part", ""))
    )
    if not model and "CPU part" in first:
        model = f"ARM implementer {first.get('CPU implementer')} part {first['CPU part']}"

    flags = set()
    for flag in first.get("flags", "").split():
        if flag in X86_FLAGS or flag.startswith(X86_FLAG_PREFIXES):
            flags.add(flag)
    for feature in first.get("Features", "").split():
        if feature in ARM_FLAGS:
            flags.add(ARM_FLAGS[feature])
    return CpuValues(model=model or "unknown", cores=cores, threads=threads, flags=sorted(flags))


def _macos_cpu(values: dict[str, str]) -> CpuValues | None:
    threads = to_int(values.get("hw.logicalcpu"))
    if not threads or threads <= 0:
        return None
    cores = to_int(values.get("hw.physicalcpu")) or threads
    flags = set()
    features = values.get("machdep.cpu.features", "").split()
    features += values.get("machdep.cpu.leaf7_features", "").split()
    for token in features:
        flag = token.lower().replace(".", "_")
        flag = _MACOS_X86_RENAMES.get(flag, flag)
        if flag in X86_FLAGS or flag.startswith(X86_FLAG_PREFIXES):
            flags.add(flag)
    for key, flag in _MACOS_ARM_KEYS.items():
        if values.get(key) == "1":
            flags.add(flag)
    return CpuValues(
        model=values.get("machdep.cpu.brand_string") or "unknown",
        cores=cores,
        threads=threads,
        flags=sorted(flags),
    )
