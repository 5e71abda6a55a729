"""Facts from captured command output to parsed value: one directory per fact, one file per case.

``tests/facts/<module>.<FactClass>/<case>.json`` holds the command the fact runs, the output a real
host printed, and the value ``process()`` must return (pyinfra-testing's format).
"""

import json
import subprocess
from pathlib import Path

import pytest
from pyinfra_testing.facts import make_fact_tests

from rigctl.facts.amd import DrmVram, KfdNodes, gfx_target
from rigctl.facts.nvidia import NvidiaMig
from rigctl.facts.pci import IntelVram, PciDevices
from rigctl.facts.system import DiskFreeBytes

BASE_IMPORT_PATH = "rigctl.facts"
TESTS_BASE = Path(__file__).parent / "facts"

for fact_path in sorted(d.name for d in TESTS_BASE.iterdir() if d.is_dir()):
    locals()[fact_path] = make_fact_tests(BASE_IMPORT_PATH, fact_path, TESTS_BASE / fact_path)


@pytest.mark.parametrize(
    ("version", "target"),
    [
        (90006, "gfx906"),
        (90008, "gfx908"),
        (90010, "gfx90a"),
        (90402, "gfx942"),
        (100300, "gfx1030"),
        (110000, "gfx1100"),
        (110501, "gfx1151"),
        (120001, "gfx1201"),
        (0, None),
        (91600, None),
    ],
)
def test_gfx_target_names(version: int, target: str | None) -> None:
    assert gfx_target(version) == target


# The fixtures prove process() reads real output; these prove each shell command prints that
# output's shape, by running it against a small sysfs tree built in tmp_path.


def run_against(command: str, real: str, fake: Path) -> list[str]:
    assert real in command
    result = subprocess.run(
        ["sh", "-c", command.replace(real, str(fake))],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return result.stdout.splitlines()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_kfd_command_prints_nodes_and_banks(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes"
    write(nodes / "0" / "properties", "cpu_cores_count 16\nsimd_count 0\ngfx_target_version 0\n")
    write(nodes / "0" / "mem_banks" / "0" / "properties", "heap_type 0\nsize_in_bytes 3340\n")
    write(
        nodes / "1" / "properties",
        "simd_count 192\ngfx_target_version 110000\nvendor_id 4098\ndevice_id 29772\n"
        "location_id 768\ndomain 0\ndrm_render_minor 128\nlocal_mem_size 0\n",
    )
    write(
        nodes / "1" / "mem_banks" / "0" / "properties", "heap_type 1\nsize_in_bytes 25753026560\n"
    )

    output = run_against(KfdNodes().command(), "/sys/class/kfd/kfd/topology/nodes", nodes)

    assert KfdNodes().process(output) == [
        {
            "node": 1,
            "gfx_target": "gfx1100",
            "device_id": "0x744c",
            "pci_slot": "0000:03:00.0",
            "simd_count": 192,
            "memory_bytes": 25753026560,
            "drm_render_minor": 128,
        }
    ]


def test_drm_command_follows_the_device_link(tmp_path: Path) -> None:
    device = tmp_path / "devices" / "0000:03:00.0"
    write(device / "vendor", "0x1002\n")
    write(device / "device", "0x744c\n")
    write(device / "mem_info_vram_total", "25753026560\n")
    (tmp_path / "drm" / "card1").mkdir(parents=True)
    (tmp_path / "drm" / "card1" / "device").symlink_to("../../devices/0000:03:00.0")
    (tmp_path / "drm" / "card1-DP-1").mkdir()

    output = run_against(DrmVram().command(), "/sys/class/drm", tmp_path / "drm")

    assert output == ["card1 0000:03:00.0 0x1002 0x744c 25753026560"]
    assert DrmVram().process(output)[0]["pci_slot"] == "0000:03:00.0"


def test_pci_command_lists_display_devices_with_their_driver(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    for slot, vendor, device, pci_class in [
        ("0000:00:1f.3", "0x8086", "0x7a50", "0x040380"),  # audio: not listed
        ("0000:01:00.0", "0x10de", "0x2684", "0x030000"),
        ("0000:02:00.0", "0x10de", "0x2330", "0x030200"),
    ]:
        for name, value in (("vendor", vendor), ("device", device), ("class", pci_class)):
            write(devices / slot / name, value + "\n")
    (tmp_path / "drivers" / "nvidia").mkdir(parents=True)
    (devices / "0000:01:00.0" / "driver").symlink_to("../../drivers/nvidia")

    output = run_against(PciDevices().command(), "/sys/bus/pci/devices", devices)

    assert [(d["slot"], d["driver"]) for d in PciDevices().process(output)] == [
        ("0000:01:00.0", "nvidia"),
        ("0000:02:00.0", None),
    ]


def test_disk_command_measures_the_nearest_existing_parent(tmp_path: Path) -> None:
    command = DiskFreeBytes().command(str(tmp_path / "not" / "yet" / "models"))
    output = subprocess.run(
        ["sh", "-c", command.get_raw_value()], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    free = DiskFreeBytes().process(output)
    assert free is not None and free > 0


def test_intel_vram_command_reads_xe_tiles_and_dkms_lmem(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    for slot, vendor, device, pci_class in [
        ("0000:00:02.0", "0x8086", "0xa780", "0x030000"),  # integrated: no VRAM file
        ("0000:03:00.0", "0x8086", "0xe20b", "0x030000"),  # B580 on xe
        ("0000:04:00.0", "0x8086", "0x56a0", "0x030000"),  # A770 on DKMS i915
        ("0000:05:00.0", "0x1002", "0x744c", "0x030000"),  # not Intel: not read
    ]:
        for name, value in (("vendor", vendor), ("device", device), ("class", pci_class)):
            write(devices / slot / name, value + "\n")
    write(devices / "0000:03:00.0" / "tile0" / "physical_vram_size_bytes", "12884901888\n")
    write(devices / "0000:04:00.0" / "drm" / "card2" / "lmem_total_bytes", "17179869184\n")
    write(devices / "0000:05:00.0" / "tile0" / "physical_vram_size_bytes", "1\n")

    output = run_against(IntelVram().command(), "/sys/bus/pci/devices", devices)

    assert output == [
        "0000:03:00.0 tile0/physical_vram_size_bytes 12884901888",
        "0000:04:00.0 drm/card2/lmem_total_bytes 17179869184",
    ]
    assert [(e["slot"], e["vram_bytes"]) for e in IntelVram().process(output)] == [
        ("0000:03:00.0", 12884901888),
        ("0000:04:00.0", 17179869184),
    ]


def _fake_nvidia_smi(tmp_path: Path, mode: str) -> dict[str, str]:
    """A PATH whose nvidia-smi answers NvidiaMig's three calls from the MIG fixture."""
    case = json.loads((TESTS_BASE / "nvidia.NvidiaMig" / "a100_40gb_two_3g_20gb.json").read_text())
    query, listing, xml = case["output"][0], case["output"][1:4], case["output"][4:]
    write(tmp_path / "query", query.replace("Enabled", mode) + "\n")
    write(tmp_path / "list", "\n".join(listing) + "\n")
    write(tmp_path / "xml", "\n".join(xml) + "\n")
    script = tmp_path / "bin" / "nvidia-smi"
    write(
        script,
        "#!/bin/sh\n"
        f'case "$1" in --query-gpu=*) cat {tmp_path}/query;; -L) cat {tmp_path}/list;; '
        f"-q) cat {tmp_path}/xml;; *) exit 2;; esac\n",
    )
    script.chmod(0o755)
    return {"PATH": f"{script.parent}:/usr/bin:/bin"}


@pytest.mark.parametrize(("mode", "read"), [("Enabled", True), ("Disabled", False), ("[N/A]", False)])
def test_mig_command_reads_the_slices_only_when_mig_is_enabled(
    tmp_path: Path, mode: str, read: bool
) -> None:
    result = subprocess.run(
        ["sh", "-c", NvidiaMig().command()],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        env=_fake_nvidia_smi(tmp_path, mode),
    )
    output = result.stdout.splitlines()

    case = json.loads((TESTS_BASE / "nvidia.NvidiaMig" / "a100_40gb_two_3g_20gb.json").read_text())
    if read:
        assert output == case["output"]
        assert NvidiaMig().process(output) == case["fact"]
    else:
        assert output == []
