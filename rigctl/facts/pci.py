"""What GPUs the hardware has, independently of drivers: PCI devices, and what Vulkan sees.

PCI tells "there is an NVIDIA card" even when no driver is installed, which is what turns
"no GPU" into the useful warning "driver not installed?".
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


def _hex_id(value: str | None) -> str | None:
    if value and re.fullmatch(r"0x[0-9a-fA-F]+", value):
        return value.lower()
    return None


def _dotted(value: str | None) -> str | None:
    # "1.3.255", or in older releases "4206847 (1.3.255)"
    match = re.search(r"\d+\.\d+\.\d+", value or "")
    return match.group() if match else None
