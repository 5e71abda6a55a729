"""pyinfra facts that read a host, one module per tool; :data:`DETECTION_FACTS` lists them all.

Each fact is safe to run on any host: a missing tool or file yields its ``default()`` (None or
an empty list), never a failed host. :func:`rigctl.detect_host.build_hardware` turns their values
into one :class:`rigctl.hardware.Hardware` record.
"""

from __future__ import annotations

from typing import Any

from rigctl.facts.amd import DrmVram, KfdNodes, RocmVersion
from rigctl.facts.apple import AppleSysctl, AppleSystemProfiler
from rigctl.facts.cpu import CpuInfo
from rigctl.facts.nvidia import (
    CudaToolkit,
    JetsonRelease,
    NvidiaCudaDriverVersion,
    NvidiaDriverProc,
    NvidiaGpus,
    NvidiaMig,
)
from rigctl.facts.pci import IntelVram, PciDevices, VulkanLimits, VulkanSummary
from rigctl.facts.system import DiskFreeBytes, InitSystem, MemoryBytes, OsRelease
from rigctl.pyinfra_api import FactBase

#: Every fact detection reads; build_hardware's input is keyed by their class names.
DETECTION_FACTS: list[type[FactBase[Any]]] = [
    OsRelease,
    InitSystem,
    CpuInfo,
    MemoryBytes,
    DiskFreeBytes,
    PciDevices,
    NvidiaGpus,
    NvidiaMig,
    NvidiaCudaDriverVersion,
    NvidiaDriverProc,
    CudaToolkit,
    JetsonRelease,
    KfdNodes,
    DrmVram,
    RocmVersion,
    AppleSysctl,
    AppleSystemProfiler,
    VulkanSummary,
    VulkanLimits,
    IntelVram,
]
