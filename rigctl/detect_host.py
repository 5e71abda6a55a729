"""One connected host's detection facts turned into its :class:`~rigctl.hardware.Hardware`.

:func:`detect_host` reads every fact of :data:`rigctl.facts.DETECTION_FACTS` from one host;
:func:`build_hardware` is the pure part (fact values in, one record out), tested from captured
real tool output. Fact values are what a host answers: each is checked for its shape and one
of the wrong shape is dropped with a warning, never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rigctl.facts import DETECTION_FACTS
from rigctl.facts.system import DEFAULT_MODELS_DIR, DiskFreeBytes
from rigctl.hardware import GIB, MIB, Cpu, Gpu, Hardware, OsInfo
from rigctl.pyinfra_api import Host

__all__ = ["DETECTION_FACTS", "apple_gpu_memory", "build_hardware", "detect_host"]

# How much of an Apple Silicon Mac's unified memory the GPU may wire when iogpu.wired_limit_mb
# is 0 (unset): the defaults macOS applies (Metal's recommendedMaxWorkingSetSize), about 3/4 of
# RAM above 36 GiB and about 2/3 at or below it.
APPLE_GPU_SHARE_LARGE = 0.75
APPLE_GPU_SHARE_SMALL = 2 / 3
APPLE_GPU_SHARE_THRESHOLD_BYTES = 36 * GIB

# Accelerators in order of preference; the first with a GPU wins, else "cpu".
_GPU_ACCELERATORS = ("cuda", "rocm", "metal", "vulkan")


def detect_host(host: Host, models_dir: str | None = None) -> Hardware:
    """Read every detection fact from one connected host and build its :class:`Hardware`.

    ``models_dir`` is where models will be stored (free disk space is measured there);
    default ``/var/lib/rigctl``. Safe to call concurrently for many hosts (``Session.each_host``).
    """
    values: dict[str, Any] = {}
    for fact in DETECTION_FACTS:
        args = (models_dir or DEFAULT_MODELS_DIR,) if fact is DiskFreeBytes else ()
        values[fact.__name__] = host.get_fact(fact, *args)
    return build_hardware(values, vulkan_cpu_devices=host.data.get("vulkan_cpu_devices") is True)


def build_hardware(values: Mapping[str, Any], *, vulkan_cpu_devices: bool = False) -> Hardware:
    """Turn the processed fact values (keyed by fact class name) into one :class:`Hardware`.

    Accelerator: ``cuda`` when nvidia-smi lists GPUs (or the host is a Jetson), else ``rocm``
    when KFD lists AMD GPUs, else ``metal`` on Apple Silicon, else ``vulkan`` when Vulkan sees
    a discrete or integrated GPU, else ``cpu``. ``gpus`` holds the chosen accelerator's GPUs.
    Missing, unknown or malformed values never raise: they become defaults plus a line in
    ``warnings`` (a GPU on the PCI bus that no driver reports is such a line, too).
    ``vulkan_cpu_devices`` (host data of that name) counts Vulkan's CPU devices (Mesa's lavapipe)
    as GPUs sharing the system's memory: the Vulkan path run without a GPU.
    """
    facts = _Facts(values)
    os_info = _os_info(facts)
    memory = _memory_bytes(facts)
    cpu = _cpu(facts)
    disk = facts.get("DiskFreeBytes", int)
    if disk is None:
        facts.warn("free disk space unknown (df gave nothing readable)")

    jetson = facts.get("JetsonRelease", str)
    candidates = {
        "cuda": _nvidia_gpus(facts, memory, jetson),
        "rocm": _amd_gpus(facts),
        "metal": _apple_gpus(facts, os_info, memory),
        "vulkan": _vulkan_gpus(facts, memory if vulkan_cpu_devices else None),
    }
    accelerator = next((name for name in _GPU_ACCELERATORS if candidates[name]), "cpu")
    for name in ("cuda", "rocm", "metal"):
        if candidates[name] and name != accelerator:
            found = ", ".join(gpu.name for gpu in candidates[name])
            facts.warn(f"also found {found} ({name}): not used, one accelerator per host")
    cuda_driver = facts.get("NvidiaCudaDriverVersion", str)
    cuda_toolkit = facts.get("CudaToolkit", str)
    # Within a CUDA major version, newer-toolkit binaries run on older drivers (minor version
    # compatibility); a newer major version needs a newer driver.
    if cuda_driver and cuda_toolkit and _major(cuda_toolkit) > _major(cuda_driver):
        facts.warn(
            f"CUDA toolkit {cuda_toolkit} needs a newer driver (it supports CUDA {cuda_driver})"
        )

    return Hardware(
        accelerator=accelerator,
        gpus=candidates.get(accelerator, []),
        memory_bytes=memory,
        cpu=cpu,
        os=os_info,
        disk_free_bytes=disk or 0,
        cuda_driver_version=cuda_driver,
        cuda_toolkit_version=cuda_toolkit,
        rocm_version=facts.get("RocmVersion", str),
        unified_memory=accelerator == "metal"
        or (accelerator == "cuda" and jetson is not None)
        or (accelerator == "vulkan" and all(g.device_type == "cpu" for g in candidates["vulkan"])),
        jetson_release=jetson,
        nvidia_kernel_driver=facts.get("NvidiaDriverProc", str),
        nvidia_pci_without_driver=_nvidia_without_driver(facts, candidates["cuda"]),
        warnings=facts.warnings,
    )


class _Facts:
    """Typed, forgiving access to fact values: one of the wrong shape is dropped with a warning."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def get(self, fact: str, kind: type) -> Any:
        value = self.values.get(fact)
        if value is None:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.warn(f"{fact}: unexpected value {_short(value)}, ignored")
            return None
        return value

    def records(self, fact: str, required: Mapping[str, type]) -> list[dict[str, Any]] | None:
        """A list-of-dicts fact, keeping the entries whose ``required`` keys have the right type."""
        value = self.get(fact, list)
        if value is None:
            return None
        good = [
            item
            for item in value
            if isinstance(item, dict)
            and all(isinstance(item.get(key), kind) for key, kind in required.items())
        ]
        if len(good) != len(value):
            self.warn(f"{fact}: {len(value) - len(good)} entries not understood, ignored")
        return good

    def record(self, fact: str, required: Mapping[str, type]) -> dict[str, Any] | None:
        """A dict fact whose ``required`` keys have the right type, else None (with a warning)."""
        value = self.get(fact, dict)
        if value is None:
            return None
        if not all(isinstance(value.get(key), kind) for key, kind in required.items()):
            self.warn(f"{fact}: unexpected value {_short(value)}, ignored")
            return None
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _os_info(facts: _Facts) -> OsInfo:
    init = facts.get("InitSystem", str) or "unknown"
    release = facts.record("OsRelease", {"system": str, "arch": str, "distro": str, "version": str})
    if release is None:
        facts.warn("operating system unknown (uname/os-release gave nothing readable)")
        return OsInfo(system="unknown", distro="unknown", version="", arch="unknown", init=init)
    return OsInfo(
        system=release["system"],
        distro=release["distro"],
        version=release["version"],
        arch=release["arch"],
        init=init,
    )


def _memory_bytes(facts: _Facts) -> int:
    memory = facts.get("MemoryBytes", int)
    if memory:
        return int(memory)
    for fact, key in (("AppleSysctl", "memsize"), ("AppleSystemProfiler", "memory_bytes")):
        record = facts.record(fact, {key: int})
        if record:
            return int(record[key])
    facts.warn("installed memory unknown (/proc/meminfo and hw.memsize unreadable)")
    return 0


def _cpu(facts: _Facts) -> Cpu:
    values = facts.record("CpuInfo", {"model": str, "cores": int, "threads": int, "flags": list})
    if values is None or values["threads"] < 1:
        facts.warn("CPU unknown (/proc/cpuinfo and sysctl gave nothing readable)")
        return Cpu(model="unknown", cores=1, threads=1)
    return Cpu(
        model=values["model"],
        cores=max(values["cores"], 1),
        threads=values["threads"],
        flags=[flag for flag in values["flags"] if isinstance(flag, str)],
    )


def _pci(facts: _Facts, vendor: str) -> list[dict[str, Any]]:
    devices = facts.records("PciDevices", {"vendor": str, "slot": str, "pci_class": str}) or []
    return [device for device in devices if device["vendor"] == vendor]


def _nvidia_without_driver(facts: _Facts, cuda_gpus: list[Gpu]) -> list[str]:
    """PCI slots of NVIDIA GPUs (display or 3D controllers) that nvidia-smi does not list."""
    if cuda_gpus:
        return []
    return [
        device["slot"]
        for device in _pci(facts, "nvidia")
        if device["pci_class"].startswith(("0x03", "0x12")) and device.get("driver") != "nvidia"
    ]


def _nvidia_gpus(facts: _Facts, memory: int, jetson: str | None) -> list[Gpu]:
    listed = facts.records("NvidiaGpus", {"index": int, "name": str})
    kernel_driver = facts.get("NvidiaDriverProc", str)
    gpus = []
    for entry in listed or []:
        mib = entry.get("memory_mib")
        if isinstance(mib, int):
            gpu_memory = mib * MIB
        elif jetson is not None:
            gpu_memory = memory  # Jetson: the GPU shares system memory, nvidia-smi says [N/A]
        else:
            gpu_memory = 0
            facts.warn(f"nvidia-smi gives no memory size for GPU {entry['index']}")
        gpus.append(
            Gpu(
                vendor="nvidia",
                name=entry["name"],
                index=entry["index"],
                memory_bytes=gpu_memory,
                driver=_str_or_none(entry.get("driver_version")) or kernel_driver,
                compute_capability=_str_or_none(entry.get("compute_capability")),
                uuid=_str_or_none(entry.get("uuid")),
            )
        )
    if gpus:
        return gpus

    if jetson is not None:
        # Older L4T ships no nvidia-smi; the integrated GPU shares system memory.
        return [
            Gpu(
                vendor="nvidia",
                name=f"Jetson (L4T {jetson})",
                index=0,
                memory_bytes=memory,
                driver=kernel_driver,
            )
        ]

    pci = _pci(facts, "nvidia")
    if listed is not None:
        cuda = facts.get("NvidiaCudaDriverVersion", str)
        detail = f" although the driver reports CUDA {cuda}" if cuda else ""
        facts.warn(
            f"nvidia-smi is installed but listed no GPU{detail}: driver not loaded, "
            "or output not understood"
        )
    elif pci:
        slots = ", ".join(device["slot"] for device in pci)
        drivers = {device.get("driver") for device in pci}
        if "nouveau" in drivers:
            facts.warn(
                f"NVIDIA PCI device {slots} runs the nouveau driver: "
                "install the NVIDIA driver for CUDA"
            )
        elif kernel_driver:
            facts.warn(
                f"NVIDIA kernel driver {kernel_driver} is loaded but nvidia-smi is missing "
                f"(PCI {slots})"
            )
        else:
            facts.warn(
                f"nvidia PCI device found ({slots}) but nvidia-smi missing: driver not installed?"
            )
    return []


def _amd_gpus(facts: _Facts) -> list[Gpu]:
    nodes = facts.records("KfdNodes", {"node": int, "gfx_target": str}) or []
    cards = facts.records("DrmVram", {"vram_bytes": int}) or []
    vulkan = _vulkan_devices(facts)
    gpus = []
    for index, node in enumerate(sorted(nodes, key=lambda n: n["node"])):
        device_id = _str_or_none(node.get("device_id"))
        slot = _str_or_none(node.get("pci_slot"))
        memory = node.get("memory_bytes")
        if not isinstance(memory, int) or memory <= 0:
            memory = next((c["vram_bytes"] for c in cards if slot and c.get("pci_slot") == slot), 0)
        # KFD knows no marketing name; Vulkan's is the readable one when it sees the same card.
        name = next(
            (
                v["name"]
                for v in vulkan
                if v.get("vendor_id") == "0x1002" and device_id and v.get("device_id") == device_id
            ),
            f"AMD {node['gfx_target']} GPU ({device_id or 'unknown device'})",
        )
        if memory == 0:
            facts.warn(f"VRAM of AMD GPU {name} (KFD node {node['node']}) unknown")
        gpus.append(
            Gpu(
                vendor="amd",
                name=name,
                index=index,
                memory_bytes=memory,
                gfx_target=node["gfx_target"],
            )
        )
    if not gpus:
        pci = [device for device in _pci(facts, "amd") if device["pci_class"].startswith("0x03")]
        if pci:
            slots = ", ".join(device["slot"] for device in pci)
            if any(device.get("driver") == "amdgpu" for device in pci):
                facts.warn(
                    f"AMD GPU {slots} runs amdgpu but KFD lists no compute node: "
                    "GPU without ROCm compute support?"
                )
            else:
                facts.warn(f"AMD PCI device found ({slots}) but the amdgpu driver is not bound")
    return gpus


def _apple_gpus(facts: _Facts, os_info: OsInfo, memory: int) -> list[Gpu]:
    profile = facts.record("AppleSystemProfiler", {"gpus": list})
    sysctl = facts.record("AppleSysctl", {})
    profiled = [
        gpu
        for gpu in (profile or {}).get("gpus", [])
        if isinstance(gpu, dict) and gpu.get("vendor") == "apple"
    ]
    apple_silicon = os_info.system == "Darwin" and os_info.arch in ("arm64", "aarch64")
    if not (apple_silicon or profiled):
        return []
    if os_info.system == "Darwin" and profile is None:
        facts.warn("system_profiler gave nothing readable: Apple GPU core count unknown")
    gpu = profiled[0] if profiled else {}
    name = (
        _str_or_none(gpu.get("name"))
        or _str_or_none((profile or {}).get("chip"))
        or _str_or_none((sysctl or {}).get("brand"))
        or "Apple GPU"
    )
    cores = gpu.get("cores")
    return [
        Gpu(
            vendor="apple",
            name=name,
            index=0,
            memory_bytes=apple_gpu_memory(memory, (sysctl or {}).get("wired_limit_mb")),
            cores=cores if isinstance(cores, int) else None,
        )
    ]


def apple_gpu_memory(memory_bytes: int, wired_limit_mb: Any = None) -> int:
    """The share of unified memory an Apple Silicon GPU may use.

    ``iogpu.wired_limit_mb`` when the user set it (> 0), else the defaults macOS applies:
    75% of RAM above 36 GiB, two thirds at or below.
    """
    if type(wired_limit_mb) is int and wired_limit_mb > 0:
        return wired_limit_mb * MIB
    if memory_bytes > APPLE_GPU_SHARE_THRESHOLD_BYTES:
        return int(memory_bytes * APPLE_GPU_SHARE_LARGE)
    return int(memory_bytes * APPLE_GPU_SHARE_SMALL)


def _vulkan_devices(facts: _Facts) -> list[dict[str, Any]]:
    return facts.records("VulkanSummary", {"index": int, "name": str, "type": str}) or []


def _vulkan_gpus(facts: _Facts, cpu_devices_memory: int | None = None) -> list[Gpu]:
    """Vulkan's discrete and integrated GPUs; with ``cpu_devices_memory`` (the system's memory)
    and no such GPU, its CPU devices, each sharing that memory."""
    devices = _vulkan_devices(facts)
    cards = facts.records("DrmVram", {"vram_bytes": int}) or []
    has_gpu = any(device["type"] in ("discrete", "integrated") for device in devices)
    gpus = []
    for device in devices:
        kind = device["type"]
        if kind == "cpu" and cpu_devices_memory is not None and not has_gpu:
            facts.warn(
                f"Vulkan device {device['name']} is a CPU renderer, counted as a GPU "
                "(vulkan_cpu_devices): it computes on the CPU"
            )
            memory = cpu_devices_memory
        elif kind in ("discrete", "integrated"):
            memory = next(
                (
                    card["vram_bytes"]
                    for card in cards
                    if device.get("device_id")
                    and (card.get("vendor_id"), card.get("device_id"))
                    == (device.get("vendor_id"), device.get("device_id"))
                ),
                0,
            )
            if memory == 0:
                facts.warn(f"VRAM of Vulkan device {device['name']} unknown")
        else:
            continue
        gpus.append(
            Gpu(
                vendor=_str_or_none(device.get("vendor")) or "unknown",
                name=device["name"],
                index=device["index"],
                memory_bytes=memory,
                driver=_str_or_none(device.get("driver")),
                device_type=kind,
            )
        )
    return gpus


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0
