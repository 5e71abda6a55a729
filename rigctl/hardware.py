"""One typed record of what a host is: the shape of ``rigctl detect --json``.

Facts (``rigctl.facts``) read a host; :mod:`rigctl.detect_host` turns their values into a
:class:`Hardware`. The planner (``rigctl.plan``) only ever sees this record, so "what should
run here" is testable from a JSON file with no host at all. This module is pure data: it
imports neither pyinfra nor the facts (``tests/test_layout.py`` holds it to that).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

ACCELERATORS = ("cuda", "rocm", "metal", "vulkan", "cpu")

#: A MIG device's UUID as ``nvidia-smi -L`` prints it and CUDA_VISIBLE_DEVICES takes it (R470
#: and newer drivers; older ones used ``MIG-GPU-<uuid>/<gi>/<ci>``)
MIG_UUID = re.compile(r"MIG-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass
class Gpu:
    vendor: str  # nvidia | amd | apple | intel
    name: str
    index: int
    memory_bytes: int  # dedicated VRAM; for Apple the GPU-usable share of unified memory
    driver: str | None = None
    compute_capability: str | None = None  # NVIDIA, e.g. "8.9"
    gfx_target: str | None = None  # AMD, e.g. "gfx1100"
    uuid: str | None = None
    cores: int | None = None  # Apple GPU cores
    #: Vulkan's device type: discrete | integrated | cpu (Mesa's lavapipe, counted only when
    #: host data says vulkan_cpu_devices); None for the other accelerators
    device_type: str | None = None
    #: NVIDIA MIG: the slice's GPU instance profile ("3g.40gb") when this Gpu is one MIG device
    #: of the card ``index`` names; then ``uuid`` is the slice's (``MIG-...``), the only name
    #: CUDA_VISIBLE_DEVICES takes for it, and ``memory_bytes`` the slice's own memory
    mig_profile: str | None = None
    #: Vulkan: the largest tensor (a weight, or its product over a 512-token batch) the
    #: backend takes on this device, from vulkaninfo's maxStorageBufferRange and
    #: maxMemoryAllocationSize; a larger one stays in host memory. None: no such limit known
    max_tensor_bytes: int | None = None

    @property
    def mig_uuid(self) -> str | None:
        """``uuid`` when this is a MIG slice and it has a MIG UUID's exact shape, else None: what
        a unit may put in CUDA_VISIBLE_DEVICES (a record read from a file is not trusted)."""
        if self.mig_profile is None or not isinstance(self.uuid, str):
            return None
        return self.uuid if MIG_UUID.fullmatch(self.uuid) else None


@dataclass
class Cpu:
    model: str
    cores: int  # physical cores (threads for llama.cpp come from these)
    threads: int  # logical CPUs
    flags: list[str] = field(default_factory=list)  # avx2, avx512f, amx_tile, neon, ...


@dataclass
class OsInfo:
    system: str  # Linux | Darwin
    distro: str  # debian | ubuntu | fedora | macos | ...
    version: str
    arch: str  # x86_64 | aarch64 | arm64
    init: str  # systemd | launchd | unknown


@dataclass
class Hardware:
    accelerator: str  # one of ACCELERATORS
    gpus: list[Gpu]
    memory_bytes: int
    cpu: Cpu
    os: OsInfo
    disk_free_bytes: int
    cuda_driver_version: str | None = None  # highest CUDA the driver supports, e.g. "12.4"
    cuda_toolkit_version: str | None = None  # nvcc / version.json, None when no toolkit
    rocm_version: str | None = None
    unified_memory: bool = False  # Apple Silicon: GPU and CPU share memory_bytes
    jetson_release: str | None = None  # L4T release of a Jetson ("36.3.0"), from /etc/nv_tegra_release
    #: the NVIDIA kernel module's version as loaded (/proc/driver/nvidia/version); None when no
    #: module is loaded, as in a container, whatever nvidia-smi answers
    nvidia_kernel_driver: str | None = None
    #: NVIDIA PCI devices that no NVIDIA driver serves ("0000:01:00.0"): a driver to install
    nvidia_pci_without_driver: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the detection warnings a plan repeats (each is in ``warnings`` too): GPUs present that
    #: the plan cannot use or uses only in part (MIG slices left for other services, an Intel
    #: Arc that nothing measured), so that no plan falls back to the CPU silently
    plan_warnings: list[str] = field(default_factory=list)

    @property
    def gpu_memory_bytes(self) -> int:
        return sum(gpu.memory_bytes for gpu in self.gpus)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hardware:
        """Inverse of :meth:`to_json`; accepts one host's entry of ``detect --json``, or the
        minimum written by hand (``plan --hardware``): what detection adds beyond it is
        defaulted (``cpu.threads``: its ``cores``; the NVIDIA kernel module's version, which
        detection writes even when it is null: the GPUs' driver)."""
        values = dict(data)
        values["gpus"] = [Gpu(**gpu) for gpu in values.get("gpus", [])]
        cpu = dict(values["cpu"])
        if "threads" not in cpu and isinstance(cpu.get("cores"), int):
            cpu["threads"] = cpu["cores"]
        values["cpu"] = Cpu(**cpu)
        drivers = [gpu.driver for gpu in values["gpus"] if gpu.vendor == "nvidia" and gpu.driver]
        if "nvidia_kernel_driver" not in values and drivers:  # detect writes it, null or not
            values["nvidia_kernel_driver"] = drivers[0]
        values["os"] = OsInfo(**values["os"])
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in values.items() if key in known})


# --------------------------------------------------------------------------- building

GIB = 1024**3
MIB = 1024**2
