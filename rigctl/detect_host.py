"""One connected host's detection facts turned into its :class:`~rigctl.hardware.Hardware`.

:func:`detect_host` reads every fact of :data:`rigctl.facts.DETECTION_FACTS` from one host;
:func:`build_hardware` is the pure part (fact values in, one record out), tested from captured
real tool output. Fact values are what a host answers: each is checked for its shape and one
of the wrong shape is dropped with a warning, never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rigctl.facts import DETECTION_FACTS
from rigctl.facts.pci import INTEL_DISCRETE_GPUS
from rigctl.facts.system import DEFAULT_MODELS_DIR, DiskFreeBytes
from rigctl.hardware import GIB, MIB, MIG_UUID, Cpu, Gpu, Hardware, OsInfo
from rigctl.pyinfra_api import Host

__all__ = ["DETECTION_FACTS", "apple_gpu_memory", "build_hardware", "detect_host"]

# How much of an Apple Silicon Mac's unified memory the GPU may wire when iogpu.wired_limit_mb
# is 0 (unset): the default macOS applies, which Metal reports as the device's
# recommendedMaxWorkingSetSize and llama.cpp's Metal backend logs at start-up. Apple documents
# the property ("an approximation of how much memory ... this GPU device can allocate without
# affecting its runtime performance"), not its formula; the shares are measured from those logs
# (MiB): 8 GiB M1 5461.34 (h2oai/h2ogpt#1359), 16 GiB M1 10922.67 (ise-uiuc/magicoder#19), 32 GiB
# M2 Max 21845.34 (ollama/ollama#434): two thirds; 96 GiB M2 Max 73728.00 (llama.cpp#3213): three
# quarters. Where between 32 and 48 GiB the step lies is not measured here: at or below 36 GiB
# (the 36 GiB M3/M4 Max) gets the smaller share.
APPLE_GPU_SHARE_LARGE = 0.75
APPLE_GPU_SHARE_SMALL = 2 / 3
APPLE_GPU_SHARE_THRESHOLD_BYTES = 36 * GIB
# macOS 26 gives more: 107.52 GiB of a 128 GiB Mac (84%, measured on two machines of different
# chip generations with iogpu.wired_limit_mb 0: antirez/ds4#893, osaurus-ai/osaurus#1958) where
# the rule above reads 96 GiB. Only measured sizes are used; other sizes keep the older rule,
# below what macOS 26 gives wherever it was measured.
APPLE_MACOS26_GPU_SHARE = {128 * GIB: 0.84}
APPLE_MACOS26_MAJOR = 26

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
    if not any(candidates[name] for name in ("cuda", "rocm", "metal")):
        candidates["vulkan"] = _intel_discrete_gpus(facts, candidates["vulkan"])
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
        plan_warnings=facts.plan_warnings,
    )


class _Facts:
    """Typed, forgiving access to fact values: one of the wrong shape is dropped with a warning."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.warnings: list[str] = []
        self.plan_warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def plan_warn(self, message: str) -> None:
        """A warning every plan of this host repeats (``Hardware.plan_warnings``)."""
        self.warn(message)
        if message not in self.plan_warnings:
            self.plan_warnings.append(message)

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
    mig = _mig_enabled(facts)
    gpus: list[Gpu] = []
    in_mig: list[Gpu] = []
    for entry in listed or []:
        mib = entry.get("memory_mib")
        partitioned = entry.get("uuid") in mig
        if partitioned:
            # nvidia-smi's memory.total is the whole card's, which no process gets in MIG mode
            gpu_memory = 0
        elif isinstance(mib, int):
            gpu_memory = mib * MIB
        elif jetson is not None:
            gpu_memory = memory  # Jetson: the GPU shares system memory, nvidia-smi says [N/A]
        else:
            gpu_memory = 0
            facts.warn(f"nvidia-smi gives no memory size for GPU {entry['index']}")
        (in_mig if partitioned else gpus).append(
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
    if in_mig:
        return _with_mig_slices(facts, gpus, in_mig, mig)
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


def _mig_enabled(facts: _Facts) -> dict[str, dict[str, Any]]:
    """NvidiaMig's GPUs in MIG mode, by GPU UUID."""
    records = facts.records("NvidiaMig", {"uuid": str, "mig_mode": str, "devices": list}) or []
    return {record["uuid"]: record for record in records if record["mig_mode"] == "Enabled"}


def _with_mig_slices(
    facts: _Facts, cards: list[Gpu], in_mig: list[Gpu], mig: dict[str, dict[str, Any]]
) -> list[Gpu]:
    """The GPUs to plan when some are in MIG mode.

    A process uses one MIG device (CUDA enumerates a single MIG instance; llama.cpp and vLLM
    take the one CUDA_VISIBLE_DEVICES names), so a service gets at most one slice: the largest.
    GPUs not in MIG mode come first, whole; the partitioned cards are listed beside them with
    no memory, so the plan leaves them out and pins the others.
    """
    slices: list[Gpu] = []
    for card in in_mig:
        devices = [d for d in mig[card.uuid or ""]["devices"] if isinstance(d, dict)]
        if not devices:
            facts.plan_warn(
                f"MIG enabled on GPU {card.index} but no GPU instances created: it cannot run "
                "anything (create instances with nvidia-smi mig -cgi ... -C, or disable MIG)"
            )
        for device in devices:
            uuid, profile = device.get("uuid"), _str_or_none(device.get("profile"))
            mib = device.get("memory_mib")
            label = f"MIG device {device.get('index')} ({profile or '?'}) of GPU {card.index}"
            if not (isinstance(uuid, str) and MIG_UUID.fullmatch(uuid)):
                facts.plan_warn(f"{label} has no MIG UUID in nvidia-smi -L: not planned")
            elif type(mib) is not int or mib <= 0:
                facts.plan_warn(
                    f"{label}: memory unknown (nvidia-smi -q -x gave none): not planned"
                )
            else:
                slices.append(
                    Gpu(
                        vendor="nvidia",
                        name=f"{card.name} MIG {profile}" if profile else f"{card.name} MIG",
                        index=card.index,
                        memory_bytes=mib * MIB,
                        driver=card.driver,
                        compute_capability=card.compute_capability,
                        uuid=uuid,
                        mig_profile=profile,
                    )
                )
    if cards:
        if slices:
            named = ", ".join(f"{g.mig_profile or 'MIG'} on GPU {g.index}" for g in slices)
            facts.plan_warn(
                f"MIG slices {named} are left for other services: the GPUs not in MIG mode "
                "are planned"
            )
        return cards + in_mig
    if not slices:
        if any(mig[card.uuid or ""]["devices"] for card in in_mig):
            facts.plan_warn("no MIG device can be planned: planning for CPU")
        return []
    chosen = max(slices, key=lambda gpu: gpu.memory_bytes)  # the first of equals
    others = [gpu for gpu in slices if gpu is not chosen]
    if others:
        named = ", ".join(f"{g.mig_profile or 'MIG'} {g.uuid}" for g in others)
        facts.plan_warn(
            f"MIG: one slice planned, the largest ({chosen.mig_profile} {chosen.uuid}, "
            f"{chosen.memory_bytes / GIB:.1f} GiB); a process uses one MIG device, so the others "
            f"are left for other services: {named}"
        )
    return [chosen]


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
            memory_bytes=apple_gpu_memory(
                memory, (sysctl or {}).get("wired_limit_mb"), macos_version=os_info.version
            ),
            cores=cores if isinstance(cores, int) else None,
        )
    ]


def apple_gpu_memory(
    memory_bytes: int, wired_limit_mb: Any = None, *, macos_version: str | None = None
) -> int:
    """The share of unified memory an Apple Silicon GPU may use.

    ``iogpu.wired_limit_mb`` when the user set it (> 0), else the default macOS applies: on
    macOS 26 and later its measured share for this memory size where there is one
    (:data:`APPLE_MACOS26_GPU_SHARE`), else 75% of RAM above 36 GiB, two thirds at or below.
    """
    if type(wired_limit_mb) is int and wired_limit_mb > 0:
        return wired_limit_mb * MIB
    major = re.match(r"(\d+)\.", f"{macos_version or ''}.")
    if major and int(major.group(1)) >= APPLE_MACOS26_MAJOR:
        share = APPLE_MACOS26_GPU_SHARE.get(memory_bytes)
        if share is not None:
            return int(memory_bytes * share)
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
            if memory == 0 and device.get("vendor_id") == "0x8086":
                memory = _intel_vram_of(facts, device.get("device_id"))
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
                max_tensor_bytes=_vulkan_max_tensor(facts, device["index"]),
            )
        )
    return gpus


def _vulkan_max_tensor(facts: _Facts, index: int) -> int | None:
    """The largest tensor ggml-vulkan takes on device ``index`` (its ``supports_op``: nothing
    over the allocation limit, nor over maxStorageBufferRange without 64-bit indexing), or None
    when vulkaninfo reported no limit."""
    entries = facts.records("VulkanLimits", {"index": int}) or []
    entry = next((e for e in entries if e["index"] == index), None)
    if entry is None:
        return None
    limits = [entry.get("max_memory_allocation_size")]
    if entry.get("shader_64bit_indexing") is not True:
        limits.append(entry.get("max_storage_buffer_range"))
    known = [v for v in limits if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return min(known) if known else None


def _intel_vram(facts: _Facts) -> dict[str, dict[str, Any]]:
    """IntelVram's entries by PCI slot."""
    entries = facts.records("IntelVram", {"slot": str, "vram_bytes": int, "source": str}) or []
    return {entry["slot"]: entry for entry in entries if entry["vram_bytes"] > 0}


def _intel_discrete_gpus(facts: _Facts, vulkan: list[Gpu]) -> list[Gpu]:
    """Vulkan's GPUs, or the Intel discrete GPUs only the PCI bus shows (vulkaninfo missing).

    Without vulkaninfo such a GPU is planned only when its driver published its VRAM in sysfs
    (:class:`rigctl.facts.pci.IntelVram`) and it is the host's only GPU besides others like it:
    then it is Vulkan's device 0 (Mesa's device-select layer puts the default GPU first, and
    the CPU renderer is never the default while a GPU is there), else which Vulkan device it is
    cannot be known. Every Intel discrete GPU that is not planned is a warning of every plan.
    """
    arcs = [
        device
        for device in _pci(facts, "intel")
        if device["pci_class"].startswith(("0x0300", "0x0380"))
        and device.get("device_id") in INTEL_DISCRETE_GPUS
    ]
    listed = {(d.get("vendor_id"), d.get("device_id")) for d in _vulkan_devices(facts)}
    missing = [d for d in arcs if ("0x8086", d["device_id"]) not in listed]
    if not missing:
        return vulkan
    if facts.values.get("VulkanSummary") is not None:
        for device in missing:
            facts.plan_warn(
                f"{_intel_label(device)} but Vulkan does not list it: not planned for; install "
                "mesa-vulkan-drivers (Mesa's ANV driver) and the GPU's firmware"
            )
        return vulkan
    vram = _intel_vram(facts)
    others = [
        device["slot"]
        for vendor in ("nvidia", "amd", "intel")
        for device in _pci(facts, vendor)
        if device["pci_class"].startswith("0x03") and device not in arcs
    ]
    if others or not all(device["slot"] in vram for device in arcs):
        for device in missing:
            beside = (
                f"which Vulkan device it is beside the GPU at {', '.join(others)} is unknown: "
                if others and device["slot"] in vram
                else ""
            )
            facts.plan_warn(
                f"{_intel_label(device)} but vulkaninfo is missing: {beside}install vulkan-tools "
                "(and mesa-vulkan-drivers) to plan for it; planning for CPU"
            )
        return vulkan
    gpus = []
    for index, device in enumerate(sorted(arcs, key=lambda d: d["slot"])):
        found = vram[device["slot"]]
        facts.plan_warn(
            f"{_intel_label(device)} but vulkaninfo is missing: planned for Vulkan with "
            f"{found['vram_bytes'] / GIB:.1f} GiB of VRAM from sysfs ({found['source']}), as "
            f"Vulkan device {index}; install vulkan-tools (and mesa-vulkan-drivers) to check what "
            "Vulkan sees"
        )
        gpus.append(
            Gpu(
                vendor="intel",
                name=f"{INTEL_DISCRETE_GPUS[device['device_id']]} (PCI {device['slot']})",
                index=index,
                memory_bytes=found["vram_bytes"],
                driver=_str_or_none(device.get("driver")),
                device_type="discrete",
            )
        )
    return gpus


def _intel_vram_of(facts: _Facts, device_id: Any) -> int:
    """The sysfs VRAM of the one Intel PCI device of ``device_id``, else 0 (none, or several:
    which Vulkan device is which of those is unknown)."""
    slots = [d["slot"] for d in _pci(facts, "intel") if d.get("device_id") == device_id]
    vram = _intel_vram(facts)
    return int(vram[slots[0]]["vram_bytes"]) if len(slots) == 1 and slots[0] in vram else 0


def _intel_label(device: dict[str, Any]) -> str:
    """ "Intel Arc GPU found (PCI 8086:56a0)" """
    family = INTEL_DISCRETE_GPUS.get(device.get("device_id") or "", "Intel GPU")
    return f"{family} found (PCI 8086:{str(device.get('device_id'))[2:]})"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0
