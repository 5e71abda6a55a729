"""AMD: compute GPUs from the KFD topology in sysfs, VRAM from DRM, the ROCm release.

KFD (``/sys/class/kfd``) is what ROCm itself enumerates, so a GPU listed there is one ROCm can
see; it needs only the amdgpu kernel driver, not ROCm userspace. All reads are of sysfs/opt
files and end in ``true``: a host without AMD hardware prints nothing.
"""

from __future__ import annotations

import re
from typing import TypedDict

from rigctl.facts._parse import to_int
from rigctl.pyinfra_api import FactBase

AMD_VENDOR_ID = 0x1002

# KFD's memory heap types that are the GPU's own memory (FB_PUBLIC, FB_PRIVATE); 0 is system RAM.
_LOCAL_HEAP_TYPES = (1, 2)

_PCI_SLOT = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
_PCI_ID = re.compile(r"0x[0-9a-fA-F]{4}")

_NODE_MARKER = "== node "
_BANK_MARKER = "== mem_bank "


def gfx_target(version: int) -> str | None:
    """KFD's ``gfx_target_version`` (major*10000 + minor*100 + stepping) as the LLVM target name.

    Minor and stepping are printed in hex: 90010 -> gfx90a, 90402 -> gfx942, 110000 -> gfx1100.
    """
    major, minor, stepping = version // 10000, (version // 100) % 100, version % 100
    if major == 0 or minor > 15 or stepping > 15:
        return None
    return f"gfx{major}{minor:x}{stepping:x}"


class KfdGpu(TypedDict):
    node: int
    gfx_target: str
    device_id: str  # PCI device id, "0x744c"
    pci_slot: str | None  # "0000:03:00.0", from KFD's domain + location_id
    simd_count: int
    memory_bytes: int | None  # VRAM (local memory banks); None when KFD does not say
    drm_render_minor: int | None


class KfdNodes(FactBase[list[KfdGpu]]):
    """
    Returns the AMD GPU nodes of the KFD topology; CPU nodes (``gfx_target_version 0``) are
    skipped. One command prints every node's ``properties`` and the ``properties`` of its memory
    banks, each file after a marker line (``== node 1``, ``== mem_bank 0``).

    .. code:: python

        [
            {
                "node": 1,
                "gfx_target": "gfx1100",
                "device_id": "0x744c",
                "pci_slot": "0000:03:00.0",
                "simd_count": 192,
                "memory_bytes": 25753026560,
                "drm_render_minor": 128,
            },
        ]
    """

    @staticmethod
    def default() -> list[KfdGpu]:
        return []

    def command(self) -> str:
        return (
            "for n in /sys/class/kfd/kfd/topology/nodes/*; do "
            '[ -r "$n/properties" ] || continue; '
            f'echo "{_NODE_MARKER}${{n##*/}}"; cat "$n/properties" 2>/dev/null; '
            'for b in "$n"/mem_banks/*/properties; do [ -r "$b" ] || continue; '
            f'd="${{b%/properties}}"; echo "{_BANK_MARKER}${{d##*/}}"; cat "$b" 2>/dev/null; '
            "done; done; true"
        )

    def process(self, output: list[str]) -> list[KfdGpu]:
        nodes: list[tuple[int, dict[str, int], list[dict[str, int]]]] = []
        current: dict[str, int] | None = None
        for line in output:
            if line.startswith(_NODE_MARKER):
                node = to_int(line[len(_NODE_MARKER) :])
                if node is None:
                    current = None
                    continue
                nodes.append((node, {}, []))
                current = nodes[-1][1]
            elif line.startswith(_BANK_MARKER):
                if nodes:
                    nodes[-1][2].append({})
                    current = nodes[-1][2][-1]
            elif current is not None:
                key, _, value = line.strip().partition(" ")
                number = to_int(value)
                if key and number is not None:
                    current[key] = number
        gpus: list[KfdGpu] = []
        for node, properties, banks in nodes:
            gpu = _kfd_gpu(node, properties, banks)
            if gpu is not None:
                gpus.append(gpu)
        return gpus


def _kfd_gpu(node: int, properties: dict[str, int], banks: list[dict[str, int]]) -> KfdGpu | None:
    target = gfx_target(properties.get("gfx_target_version", 0))
    if target is None or properties.get("vendor_id") != AMD_VENDOR_ID:
        return None
    local = [
        bank.get("size_in_bytes", 0) for bank in banks if bank.get("heap_type") in _LOCAL_HEAP_TYPES
    ]
    # Recent kernels report 0 for the node's local_mem_size; the memory banks are authoritative.
    memory = sum(local) or properties.get("local_mem_size") or None
    location = properties.get("location_id")
    slot = None
    if location is not None:
        bus, device, function = location >> 8, (location >> 3) & 0x1F, location & 0x7
        slot = f"{properties.get('domain', 0):04x}:{bus:02x}:{device:02x}.{function}"
    return KfdGpu(
        node=node,
        gfx_target=target,
        device_id=f"0x{properties.get('device_id', 0):04x}",
        pci_slot=slot,
        simd_count=properties.get("simd_count", 0),
        memory_bytes=memory,
        drm_render_minor=properties.get("drm_render_minor"),
    )


class DrmCard(TypedDict):
    card: str  # "card0"
    pci_slot: str | None
    vendor_id: str | None  # "0x1002"
    device_id: str | None
    vram_bytes: int


class DrmVram(FactBase[list[DrmCard]]):
    """
    Returns the DRM cards whose driver reports VRAM (``mem_info_vram_total``: amdgpu does),
    with their PCI identity so they can be matched with KFD nodes and Vulkan devices.

    .. code:: python

        [
            {
                "card": "card0",
                "pci_slot": "0000:03:00.0",
                "vendor_id": "0x1002",
                "device_id": "0x744c",
                "vram_bytes": 25753026560,
            },
        ]
    """

    @staticmethod
    def default() -> list[DrmCard]:
        return []

    def command(self) -> str:
        return (
            "for c in /sys/class/drm/card*; do "
            'f="$c/device/mem_info_vram_total"; [ -r "$f" ] || continue; '
            'l=$(readlink "$c/device" 2>/dev/null); s=${l##*/}; '
            'v=$(cat "$c/device/vendor" 2>/dev/null); i=$(cat "$c/device/device" 2>/dev/null); '
            'echo "${c##*/} ${s:--} ${v:--} ${i:--} $(cat "$f" 2>/dev/null)"; '
            "done; true"
        )

    def process(self, output: list[str]) -> list[DrmCard]:
        cards: list[DrmCard] = []
        for line in output:
            fields = line.split()
            # Connector entries (card0-DP-1) have no device/mem_info_vram_total; be sure anyway.
            if len(fields) != 5 or not re.fullmatch(r"card\d+", fields[0]):
                continue
            card, slot, vendor, device, vram = fields
            size = to_int(vram)
            if size is None:
                continue
            cards.append(
                DrmCard(
                    card=card,
                    pci_slot=slot if _PCI_SLOT.fullmatch(slot) else None,
                    vendor_id=vendor.lower() if _PCI_ID.fullmatch(vendor) else None,
                    device_id=device.lower() if _PCI_ID.fullmatch(device) else None,
                    vram_bytes=size,
                )
            )
        return cards


class RocmVersion(FactBase[str | None]):
    """
    Returns the ROCm release installed under ``/opt/rocm`` (``.info/version`` holds
    "6.1.2-119"; the build number is dropped), or ``None`` when ROCm is not installed.

    .. code:: python

        "6.1.2"
    """

    def command(self) -> str:
        return "cat /opt/rocm/.info/version 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        for line in output[:1]:
            match = re.match(r"\s*(\d+\.\d+(?:\.\d+)?)", line)
            if match:
                return match.group(1)
        return None
