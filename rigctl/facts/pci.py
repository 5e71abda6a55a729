"""What GPUs the hardware has, independently of drivers: PCI devices, and what Vulkan sees.

PCI tells "there is an NVIDIA card" even when no driver is installed, which is what turns
"no GPU" into the useful warning "driver not installed?"; likewise an Intel Arc on a host without
vulkaninfo, whose VRAM only some Intel drivers publish in sysfs (:class:`IntelVram`).
"""

from __future__ import annotations

import re
from typing import TypedDict

from rigctl.pyinfra_api import FactBase

PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel", "0x106b": "apple"}

VULKAN_DEVICE_TYPES = {
    "PHYSICAL_DEVICE_TYPE_DISCRETE_GPU": "discrete",
    "PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU": "integrated",
    "PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU": "virtual",
    "PHYSICAL_DEVICE_TYPE_CPU": "cpu",
    "PHYSICAL_DEVICE_TYPE_OTHER": "other",
}

_HEX_ID = re.compile(r"0x[0-9a-fA-F]{4,6}")

#: Intel's discrete GPUs by PCI device id, from Linux's include/drm/intel/pciids.h (INTEL_DG1_IDS,
#: INTEL_DG2_G10/G11/G12_IDS, INTEL_ATS_M_IDS, INTEL_BMG_IDS): every other Intel display device is
#: an integrated GPU, which shares the system's memory.
INTEL_DISCRETE_GPUS: dict[str, str] = {
    **dict.fromkeys(("0x4905", "0x4906", "0x4907", "0x4908", "0x4909"), "Intel DG1 GPU"),
    **dict.fromkeys(
        (
            "0x5690", "0x5691", "0x5692", "0x56a0", "0x56a1", "0x56a2", "0x56be", "0x56bf",
            "0x5693", "0x5694", "0x5695", "0x56a5", "0x56a6", "0x56b0", "0x56b1", "0x56ba",
            "0x56bb", "0x56bc", "0x56bd", "0x5696", "0x5697", "0x56a3", "0x56a4", "0x56b2",
            "0x56b3",
        ),
        "Intel Arc GPU",
    ),
    **dict.fromkeys(("0x56c0", "0x56c1", "0x56c2"), "Intel Data Center GPU Flex"),
    **dict.fromkeys(
        (
            "0xe202", "0xe209", "0xe20b", "0xe20c", "0xe20d", "0xe210", "0xe211", "0xe212",
            "0xe215", "0xe216", "0xe220", "0xe221", "0xe222",
        ),
        "Intel Arc GPU",
    ),
}


class PciDevice(TypedDict):
    slot: str  # "0000:01:00.0"
    vendor: str  # nvidia | amd | intel | the vendor id for others
    vendor_id: str  # "0x10de"
    device_id: str  # "0x2684"
    pci_class: str  # "0x030000"; 0x03xxxx display, 0x12xxxx processing accelerator
    driver: str | None  # the bound kernel driver: "nvidia", "nouveau", "amdgpu", None


class PciDevices(FactBase[list[PciDevice]]):
    """
    Returns the display controllers and processing accelerators on the PCI bus (Linux sysfs;
    an empty list elsewhere), with the kernel driver bound to each.

    .. code:: python

        [
            {
                "slot": "0000:01:00.0",
                "vendor": "nvidia",
                "vendor_id": "0x10de",
                "device_id": "0x2684",
                "pci_class": "0x030000",
                "driver": "nvidia",
            },
        ]
    """

    @staticmethod
    def default() -> list[PciDevice]:
        return []

    def command(self) -> str:
        return (
            "for d in /sys/bus/pci/devices/*; do "
            '[ -r "$d/class" ] || continue; c=$(cat "$d/class" 2>/dev/null); '
            'case "$c" in 0x03*|0x12*) '
            'l=$(readlink "$d/driver" 2>/dev/null); '
            'echo "${d##*/} $(cat "$d/vendor" 2>/dev/null) $(cat "$d/device" 2>/dev/null) '
            '$c ${l##*/}";; '
            "esac; done; true"
        )

    def process(self, output: list[str]) -> list[PciDevice]:
        devices: list[PciDevice] = []
        for line in output:
            fields = line.split()
            if len(fields) not in (4, 5):
                continue
            slot, vendor_id, device_id, pci_class = (field.lower() for field in fields[:4])
            if not all(_HEX_ID.fullmatch(value) for value in (vendor_id, device_id, pci_class)):
                continue
            devices.append(
                PciDevice(
                    slot=slot,
                    vendor=PCI_VENDORS.get(vendor_id, vendor_id),
                    vendor_id=vendor_id,
                    device_id=device_id,
                    pci_class=pci_class,
                    driver=fields[4] if len(fields) == 5 else None,
                )
            )
        return devices


class IntelLocalMemory(TypedDict):
    slot: str  # "0000:03:00.0"
    vram_bytes: int
    source: str  # the sysfs file it was read from, relative to the PCI device


class IntelVram(FactBase[list[IntelLocalMemory]]):
    """
    Returns the local memory (VRAM) of the Intel display devices whose driver publishes it in
    sysfs, an empty list where none does.

    Neither driver does so reliably: ``xe`` published ``tile<N>/physical_vram_size_bytes`` under
    the PCI device in its first releases (drivers/gpu/drm/xe/xe_tile_sysfs.c; physical, so a
    little above what Vulkan can allocate), later kernels do not (a live Arc B580 on xe shows no
    VRAM file in sysfs at all); mainline ``i915`` never has, Intel's out-of-tree (DKMS) i915
    puts ``lmem_total_bytes`` on the DRM card. The real figure is otherwise only in the
    drivers' memory-region query ioctls, which Vulkan (vulkaninfo) reads.

    .. code:: python

        [{"slot": "0000:03:00.0", "vram_bytes": 12884901888,
          "source": "tile0/physical_vram_size_bytes"}]
    """

    @staticmethod
    def default() -> list[IntelLocalMemory]:
        return []

    def command(self) -> str:
        return (
            "for d in /sys/bus/pci/devices/*; do "
            '[ "$(cat "$d/vendor" 2>/dev/null)" = 0x8086 ] || continue; '
            'case "$(cat "$d/class" 2>/dev/null)" in 0x03*) ;; *) continue;; esac; '
            'for f in "$d"/tile*/physical_vram_size_bytes "$d"/drm/card*/lmem_total_bytes; do '
            '[ -r "$f" ] && echo "${d##*/} ${f#"$d"/} $(cat "$f" 2>/dev/null)"; '
            "done; done; true"
        )

    def process(self, output: list[str]) -> list[IntelLocalMemory]:
        tiles: dict[str, int] = {}
        lmem: dict[str, int] = {}
        for line in output:
            fields = line.split()
            if len(fields) != 3 or not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]",
                                                    fields[0]):
                continue
            slot, source, value = fields
            size = _size(value)
            if size is None:
                continue
            if re.fullmatch(r"tile\d{1,2}/physical_vram_size_bytes", source):
                tiles[slot] = tiles.get(slot, 0) + size  # a multi-tile part splits its VRAM
            elif re.fullmatch(r"drm/card\d{1,3}/lmem_total_bytes", source):
                lmem.setdefault(slot, size)
        found = [
            IntelLocalMemory(slot=slot, vram_bytes=size, source="tile*/physical_vram_size_bytes")
            for slot, size in tiles.items()
        ]
        found += [
            IntelLocalMemory(slot=slot, vram_bytes=size, source="drm/card*/lmem_total_bytes")
            for slot, size in lmem.items()
            if slot not in tiles
        ]
        return sorted(found, key=lambda entry: entry["slot"])


def _size(value: str) -> int | None:
    """Bytes as sysfs prints them (decimal, or 0x-hex), between 256 MiB and 1 TiB, else None."""
    try:
        size = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None
    return size if 256 * 1024**2 <= size <= 1024**4 else None


class VulkanDevice(TypedDict):
    index: int
    name: str
    type: str  # discrete | integrated | virtual | cpu | other
    vendor: str  # nvidia | amd | intel | apple | the vendor id for others
    vendor_id: str | None  # "0x1002"
    device_id: str | None
    driver: str | None  # "radv", "NVIDIA", "Intel open-source Mesa driver"
    api_version: str | None  # "1.3.255"


class VulkanSummary(FactBase[list[VulkanDevice] | None]):
    """
    Returns the devices of ``vulkaninfo --summary`` (one ``GPUn:`` block each), or ``None``
    when vulkaninfo is not installed. Software renderers (llvmpipe) are listed with type "cpu".

    .. code:: python

        [
            {
                "index": 0,
                "name": "AMD Radeon RX 7900 XTX (RADV NAVI31)",
                "type": "discrete",
                "vendor": "amd",
                "vendor_id": "0x1002",
                "device_id": "0x744c",
                "driver": "radv",
                "api_version": "1.3.255",
            },
        ]
    """

    def requires_command(self) -> str:
        return "vulkaninfo"

    def command(self) -> str:
        # vulkaninfo exits non-zero when no driver (ICD) is installed; that is "no device".
        return "vulkaninfo --summary 2>/dev/null || true"

    def process(self, output: list[str]) -> list[VulkanDevice] | None:
        blocks: list[tuple[int, dict[str, str]]] = []
        in_devices = False
        for line in output:
            if line.strip() == "Devices:":
                in_devices = True
                continue
            if not in_devices:
                continue
            header = re.fullmatch(r"GPU(\d+):", line.strip())
            if header:
                blocks.append((int(header.group(1)), {}))
            elif blocks and "=" in line:
                key, _, value = line.partition("=")
                blocks[-1][1][key.strip()] = value.strip()
        devices: list[VulkanDevice] = []
        for index, values in blocks:
            name = values.get("deviceName")
            if not name:
                continue
            vendor_id = _hex_id(values.get("vendorID"))
            devices.append(
                VulkanDevice(
                    index=index,
                    name=name,
                    type=VULKAN_DEVICE_TYPES.get(values.get("deviceType", ""), "other"),
                    vendor=PCI_VENDORS.get(vendor_id or "", vendor_id or "unknown"),
                    vendor_id=vendor_id,
                    device_id=_hex_id(values.get("deviceID")),
                    driver=values.get("driverName") or None,
                    api_version=_dotted(values.get("apiVersion")),
                )
            )
        return devices


class VulkanLimit(TypedDict):
    index: int
    max_storage_buffer_range: int | None
    max_memory_allocation_size: int | None
    shader_64bit_indexing: bool


class VulkanLimits(FactBase[list[VulkanLimit] | None]):
    """
    Returns, per ``GPUn`` of ``vulkaninfo``'s full report, the limits that decide which tensors
    llama.cpp's Vulkan backend takes: ``maxStorageBufferRange`` (a weight, or the result of its
    matrix product over a 512-token batch, larger than this stays in host memory unless the
    device has ``VK_EXT_shader_64bit_indexing``: ggml-vulkan's ``supports_op``) and
    ``maxMemoryAllocationSize``; ``None`` when vulkaninfo is not installed.

    .. code:: python

        [{"index": 0, "max_storage_buffer_range": 134217728,
          "max_memory_allocation_size": 2147483648, "shader_64bit_indexing": False}]
    """

    def requires_command(self) -> str:
        return "vulkaninfo"

    def command(self) -> str:
        return (
            "vulkaninfo 2>/dev/null | grep -E '^GPU[0-9]+:|maxStorageBufferRange|"
            "maxMemoryAllocationSize|VK_EXT_shader_64bit_indexing' || true"
        )

    def process(self, output: list[str]) -> list[VulkanLimit] | None:
        devices: list[VulkanLimit] = []
        for line in output:
            header = re.fullmatch(r"GPU(\d+):", line.strip())
            if header:
                devices.append(VulkanLimit(index=int(header.group(1)),
                                           max_storage_buffer_range=None,
                                           max_memory_allocation_size=None,
                                           shader_64bit_indexing=False))
                continue
            if not devices:
                continue
            if "VK_EXT_shader_64bit_indexing" in line:
                devices[-1]["shader_64bit_indexing"] = True
                continue
            key, _, value = line.partition("=")
            number = _number(value)
            if key.strip() == "maxStorageBufferRange" and devices[-1]["max_storage_buffer_range"] is None:
                devices[-1]["max_storage_buffer_range"] = number
            elif key.strip() == "maxMemoryAllocationSize" and devices[-1]["max_memory_allocation_size"] is None:
                devices[-1]["max_memory_allocation_size"] = number
        return devices


def _number(value: str) -> int | None:
    """``134217728`` or ``0x80000000`` (vulkaninfo prints both forms), else None."""
    text = value.strip().split(" ", 1)[0]
    if re.fullmatch(r"[0-9]{1,20}", text):
        return int(text)
    if re.fullmatch(r"0x[0-9a-fA-F]{1,16}", text):
        return int(text, 16)
    return None


def _hex_id(value: str | None) -> str | None:
    if value and re.fullmatch(r"0x[0-9a-fA-F]+", value):
        return value.lower()
    return None


def _dotted(value: str | None) -> str | None:
    # "1.3.255", or in older releases "4206847 (1.3.255)"
    match = re.search(r"\d+\.\d+\.\d+", value or "")
    return match.group() if match else None
