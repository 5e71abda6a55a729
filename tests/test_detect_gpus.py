"""GPUs that detection used to misread (issue #17, item 4), from the tools' output to the plan.

Each case starts from fact fixtures (tests/facts/*/*.json: a tool's output and the value its fact
makes of it), builds the Hardware record and plans Llama 3.1 8B on it:

- NVIDIA MIG: nvidia-smi's memory.total is the whole card, a process gets one slice;
- an Intel Arc on a host without vulkaninfo: a warning in every plan, never a silent CPU plan;
- macOS 26: the GPU's default wired-memory share, measured larger than macOS 14's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_hardware import fixture, linux_host, mac_host

from rigctl.detect_host import apple_gpu_memory, build_hardware
from rigctl.errors import BadInput
from rigctl.facts.nvidia import NvidiaMig
from rigctl.hardware import GIB, MIB, Hardware
from rigctl.models import get_catalog_model
from rigctl.plan import Plan, make_plan

FIXTURES = Path(__file__).parent / "facts"
GPU0 = "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a"  # the A100 of netdata's capture
SLICE0 = "MIG-5c1c5a11-6c1e-5ad1-9d2e-1f0b3f6e8a21"
SLICE1 = "MIG-b3d7e0f2-4a9c-5e18-8f6d-2c7a1e9b0d34"


def plan_8b(hardware: Hardware) -> Plan:
    return make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct"))


def gpu_rows(plan: Plan) -> dict[str, Any]:
    return {row.device: row for row in plan.memory.placement if row.device != "cpu"}


# --------------------------------------------------------------------------- NVIDIA MIG

A100_MIG = dict(
    NvidiaGpus=fixture("nvidia.NvidiaGpus", "a100_40gb_mig"),
    NvidiaMig=fixture("nvidia.NvidiaMig", "a100_40gb_two_3g_20gb"),
    # what driver 510.47.03, the capture's, reports
    NvidiaCudaDriverVersion="11.6",
    NvidiaDriverProc="510.47.03",
)


def test_a_mig_slice_is_planned_with_its_own_memory_and_pinned_by_uuid() -> None:
    hardware = build_hardware(linux_host(**A100_MIG))

    (gpu,) = hardware.gpus
    assert (gpu.name, gpu.index, gpu.mig_profile) == ("NVIDIA A100-SXM4-40GB MIG 3g.20gb", 0, "3g.20gb")
    assert gpu.memory_bytes == 19968 * MIB  # the slice's <fb_memory_usage><total>, not 40960 MiB
    assert gpu.uuid == SLICE0
    assert Hardware.from_json(json.loads(json.dumps(hardware.to_json()))) == hardware

    plan = plan_8b(hardware)
    (row,) = gpu_rows(plan).values()
    assert row.capacity == 19968 * MIB
    assert row.bytes <= row.usable < 19968 * MIB
    assert plan.env["CUDA_VISIBLE_DEVICES"] == SLICE0
    assert any(f"CUDA_VISIBLE_DEVICES={SLICE0}" in reason for reason in plan.reasons)
    assert plan.warnings[0] == (
        f"MIG: one slice planned, the largest (3g.20gb {SLICE0}, 19.5 GiB); a process uses one "
        f"MIG device, so the others are left for other services: 3g.20gb {SLICE1}"
    )
    # the capture's driver is too old for the pinned llama.cpp: the plan says so, MIG or not
    assert plan.errors and all("driver" in error for error in plan.errors)


def _a100_80gb_two_slices() -> list[dict[str, Any]]:
    """NvidiaMig's value for the A100 80GB of the issue (a 3g.40gb and a 2g.20gb): -L as it
    prints it, the capture's XML with that card's slice sizes (40192 MiB, a 3g.40gb as a
    process sees it; 19968 MiB, a 2g.20gb)."""
    captured = json.loads((FIXTURES / "nvidia.NvidiaMig" / "a100_40gb_two_3g_20gb.json").read_text())
    xml = captured["output"][4:]
    first = next(i for i, line in enumerate(xml) if "<total>19968 MiB</total>" in line)
    xml[first] = xml[first].replace("19968", "40192")
    output = [
        f"{GPU0}, Enabled",
        f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: {GPU0})",
        f"  MIG 3g.40gb     Device  0: (UUID: {SLICE0})",
        f"  MIG 2g.20gb     Device  1: (UUID: {SLICE1})",
        *xml,
    ]
    value = NvidiaMig().process(output)
    assert value is not None
    return json.loads(json.dumps(value))


def test_the_largest_slice_is_planned_and_the_whole_card_never() -> None:
    card = [{**fixture("nvidia.NvidiaGpus", "a100_40gb_mig")[0], "name": "NVIDIA A100-SXM4-80GB",
             "memory_mib": 81920}]
    hardware = build_hardware(
        linux_host(**{**A100_MIG, "NvidiaGpus": card, "NvidiaMig": _a100_80gb_two_slices()})
    )

    (gpu,) = hardware.gpus
    assert (gpu.mig_profile, gpu.uuid, gpu.memory_bytes) == ("3g.40gb", SLICE0, 40192 * MIB)
    plan = plan_8b(hardware)
    assert [row.capacity for row in gpu_rows(plan).values()] == [40192 * MIB]
    assert plan.env["CUDA_VISIBLE_DEVICES"] == SLICE0
    assert f"left for other services: 2g.20gb {SLICE1}" in plan.warnings[0]


def test_mig_enabled_without_instances_plans_the_cpu_and_says_why() -> None:
    hardware = build_hardware(
        linux_host(**{**A100_MIG, "NvidiaMig": fixture("nvidia.NvidiaMig", "enabled_no_instances")})
    )

    assert hardware.accelerator == "cpu" and hardware.gpus == []
    plan = plan_8b(hardware)
    assert gpu_rows(plan) == {}
    assert plan.warnings[0].startswith("MIG enabled on GPU 0 but no GPU instances created")


def test_unreadable_mig_output_never_plans_the_whole_card() -> None:
    """The hostile fixture: shell in UUIDs, old-format UUIDs, an XML bomb (not parsed). The one
    well-formed slice has no memory then: nothing is planned on the GPU, and the plan says so."""
    hardware = build_hardware(
        linux_host(**{**A100_MIG, "NvidiaMig": fixture("nvidia.NvidiaMig", "hostile")})
    )

    assert hardware.accelerator == "cpu" and hardware.gpus == []
    plan = plan_8b(hardware)
    assert "CUDA_VISIBLE_DEVICES" not in plan.env
    assert plan.warnings[:2] == [
        "MIG device 0 (3g.20gb) of GPU 0: memory unknown (nvidia-smi -q -x gave none): not planned",
        "no MIG device can be planned: planning for CPU",
    ]


def test_gpus_not_in_mig_mode_are_planned_whole_beside_a_partitioned_one() -> None:
    second = {
        "index": 1,
        "name": "NVIDIA A100-SXM4-40GB",
        "uuid": "GPU-0d2f4b6c-8e3a-4c7d-9f1b-2a4c6e8d0f13",
        "memory_mib": 40960,
        "driver_version": "510.47.03",
        "compute_capability": "8.0",
    }
    mig = fixture("nvidia.NvidiaMig", "a100_40gb_two_3g_20gb")
    mig.append({"index": 1, "uuid": second["uuid"], "mig_mode": "Disabled", "devices": []})
    hardware = build_hardware(
        linux_host(**{**A100_MIG, "NvidiaGpus": [*A100_MIG["NvidiaGpus"], second], "NvidiaMig": mig})
    )

    assert [(g.index, g.memory_bytes) for g in hardware.gpus] == [(1, 40960 * MIB), (0, 0)]
    plan = plan_8b(hardware)
    assert list(gpu_rows(plan)) == ["cuda:1"]
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert plan.warnings[0] == (
        "MIG slices 3g.20gb on GPU 0, 3g.20gb on GPU 0 are left for other services: the GPUs not "
        "in MIG mode are planned"
    )


@pytest.mark.parametrize("uuid", ["MIG-$(reboot)", "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a", None])
def test_a_mig_slice_from_a_file_without_a_mig_uuid_is_refused(uuid: str | None) -> None:
    """``rigctl plan --hardware FILE``: the UUID would go into the unit's environment."""
    data = build_hardware(linux_host(**A100_MIG)).to_json()
    data["gpus"][0]["uuid"] = uuid

    with pytest.raises(BadInput, match="without a MIG UUID"):
        plan_8b(Hardware.from_json(data))


def test_hardware_json_without_the_new_fields_still_loads() -> None:
    data = build_hardware(linux_host(**A100_MIG)).to_json()
    del data["plan_warnings"]
    del data["gpus"][0]["mig_profile"]

    hardware = Hardware.from_json(data)
    assert hardware.plan_warnings == [] and hardware.gpus[0].mig_profile is None


# --------------------------------------------------------------------------- Intel Arc


def test_an_arc_without_vulkaninfo_or_a_vram_size_is_a_warned_cpu_plan() -> None:
    hardware = build_hardware(
        linux_host(
            PciDevices=fixture("pci.PciDevices", "arc_a770_i915"),
            IntelVram=fixture("pci.IntelVram", "none_published"),
        )
    )

    assert hardware.accelerator == "cpu"
    plan = plan_8b(hardware)
    assert gpu_rows(plan) == {}
    assert plan.warnings[0] == (
        "Intel Arc GPU found (PCI 8086:56a0) but vulkaninfo is missing: install vulkan-tools "
        "(and mesa-vulkan-drivers) to plan for it; planning for CPU"
    )


def test_an_arc_whose_driver_publishes_its_vram_is_planned_on_vulkan() -> None:
    hardware = build_hardware(
        linux_host(
            PciDevices=fixture("pci.PciDevices", "arc_b580_xe"),
            IntelVram=fixture("pci.IntelVram", "b580_xe_tile0"),
        )
    )

    assert hardware.accelerator == "vulkan" and not hardware.unified_memory
    (gpu,) = hardware.gpus
    assert (gpu.vendor, gpu.index, gpu.device_type, gpu.driver) == ("intel", 0, "discrete", "xe")
    assert gpu.memory_bytes == 12 * GIB
    plan = plan_8b(hardware)
    assert [row.capacity for row in gpu_rows(plan).values()] == [12 * GIB]
    assert plan.env["GGML_VK_VISIBLE_DEVICES"] == "0"
    assert plan.warnings[0].startswith(
        "Intel Arc GPU found (PCI 8086:e20b) but vulkaninfo is missing: planned for Vulkan with "
        "12.0 GiB of VRAM from sysfs"
    )


def test_an_arc_beside_an_integrated_gpu_is_not_guessed_without_vulkaninfo() -> None:
    """Which Vulkan device it is then depends on which GPU is the boot display: unknown."""
    hardware = build_hardware(
        linux_host(
            PciDevices=fixture("pci.PciDevices", "igpu_and_arc_b580_xe"),
            IntelVram=fixture("pci.IntelVram", "b580_xe_tile0"),
        )
    )

    assert hardware.accelerator == "cpu"
    assert plan_8b(hardware).warnings[0] == (
        "Intel Arc GPU found (PCI 8086:e20b) but vulkaninfo is missing: which Vulkan device it is "
        "beside the GPU at 0000:00:02.0 is unknown: install vulkan-tools (and "
        "mesa-vulkan-drivers) to plan for it; planning for CPU"
    )


def test_an_arc_that_vulkan_does_not_list_is_warned() -> None:
    hardware = build_hardware(
        linux_host(
            PciDevices=fixture("pci.PciDevices", "arc_b580_xe"),
            VulkanSummary=fixture("pci.VulkanSummary", "llvmpipe_only"),
        )
    )

    assert hardware.accelerator == "cpu"
    assert plan_8b(hardware).warnings[0].startswith(
        "Intel Arc GPU found (PCI 8086:e20b) but Vulkan does not list it: not planned for"
    )


def test_an_arc_that_vulkan_lists_takes_its_vram_from_sysfs() -> None:
    a770 = {
        "index": 0,
        "name": "Intel(R) Arc(tm) A770 Graphics (DG2)",
        "type": "discrete",
        "vendor": "intel",
        "vendor_id": "0x8086",
        "device_id": "0x56a0",
        "driver": "Intel open-source Mesa driver",
        "api_version": "1.3.289",
    }
    values = linux_host(PciDevices=fixture("pci.PciDevices", "arc_a770_i915"), VulkanSummary=[a770])

    assert build_hardware(values).warnings == [
        "VRAM of Vulkan device Intel(R) Arc(tm) A770 Graphics (DG2) unknown"
    ]
    hardware = build_hardware({**values, "IntelVram": fixture("pci.IntelVram", "dkms_i915_lmem")})
    assert hardware.accelerator == "vulkan" and hardware.warnings == []
    assert hardware.gpus[0].memory_bytes == 16 * GIB


def test_an_arc_on_a_cuda_host_is_no_concern_of_the_plan() -> None:
    from test_hardware import RTX4090

    pci = fixture("pci.PciDevices", "desktop_rtx4090_igpu") + fixture("pci.PciDevices", "arc_a770_i915")
    hardware = build_hardware(linux_host(**{**RTX4090, "PciDevices": pci}))

    assert hardware.accelerator == "cuda"
    assert hardware.plan_warnings == []


def test_garbled_intel_vram_output_gives_nothing() -> None:
    assert fixture("pci.IntelVram", "garbled") == []


# --------------------------------------------------------------------------- macOS 26


def _mac(sysctl: str, os_release: str, memory: int) -> dict[str, Any]:
    values = mac_host(sysctl, "m2max_64gb", "macos_m2max", memory)
    values["OsRelease"] = fixture("system.OsRelease", os_release)
    values["AppleSystemProfiler"] = None  # the chip's name then comes from sysctl's brand
    return values


def test_macos_26_gives_the_gpu_its_measured_default_share() -> None:
    hardware = build_hardware(_mac("m4max_128gb_tahoe", "macos_tahoe", 128 * GIB))

    assert hardware.accelerator == "metal" and hardware.os.version == "26.0"
    (gpu,) = hardware.gpus
    assert gpu.name == "Apple M4 Max"
    assert gpu.memory_bytes == int(128 * GIB * 0.84)  # 107.52 GiB, not macOS 14's 96
    (row,) = gpu_rows(plan_8b(hardware)).values()
    assert row.capacity == int(128 * GIB * 0.84)

    sonoma = build_hardware(_mac("m4max_128gb_tahoe", "macos_sonoma", 128 * GIB))
    assert sonoma.gpus[0].memory_bytes == 96 * GIB


@pytest.mark.parametrize(
    ("memory", "version", "wired_mb", "expected"),
    [
        (128 * GIB, "26.0", 0, int(128 * GIB * 0.84)),
        (128 * GIB, "26.1", None, int(128 * GIB * 0.84)),
        (128 * GIB, "15.6", 0, 96 * GIB),
        (64 * GIB, "26.0", 0, 48 * GIB),  # not measured on macOS 26: the older, smaller share
        (16 * GIB, "26.0", 0, int(16 * GIB * 2 / 3)),
        (128 * GIB, "26.0", 114688, 112 * GIB),  # a set limit wins (antirez/ds4#893)
        (128 * GIB, None, 0, 96 * GIB),
    ],
)
def test_apple_gpu_share_by_macos_version(
    memory: int, version: str | None, wired_mb: int | None, expected: int
) -> None:
    assert apple_gpu_memory(memory, wired_mb, macos_version=version) == expected


def test_the_macos_26_fixture_is_sysctls_format() -> None:
    output = json.loads((FIXTURES / "apple.AppleSysctl" / "m4max_128gb_tahoe.json").read_text())
    assert all(re.fullmatch(r"[a-z_.]+: \S.*", line) for line in output["output"])
    assert "iogpu.wired_limit_mb: 0" in output["output"]


@pytest.mark.parametrize(
    "values",
    [
        {"NvidiaMig": "garbage", "IntelVram": {"slot": 1}},
        {"NvidiaMig": [None, {"uuid": GPU0, "mig_mode": "Enabled", "devices": "x"}]},
        {"NvidiaMig": [{"uuid": GPU0, "mig_mode": "Enabled", "devices": [None, {"uuid": 5}]}]},
        {"IntelVram": [{"slot": "0000:03:00.0", "vram_bytes": "16G", "source": "x"}, 7]},
    ],
)
def test_malformed_mig_and_intel_values_never_crash(values: dict[str, Any]) -> None:
    hardware = build_hardware(linux_host(**{**A100_MIG, **values}))

    assert hardware.warnings
    assert Hardware.from_json(hardware.to_json()) == hardware
    plan_8b(hardware)


def test_lavapipes_tensor_limit_is_read_and_keeps_a_large_head_in_host_memory() -> None:
    """Lavapipe's maxStorageBufferRange (128 MiB, a real trixie host's vulkaninfo): ggml-vulkan
    refuses a larger weight, so a 170 MiB tied head stays in host memory although -ngl
    offloads its layer; a device with 64-bit indexing has only its allocation limit."""
    import dataclasses

    from rigctl.models.catalog import get_catalog_model
    from rigctl.plan.memory import Device, head_too_large

    values = linux_host(
        VulkanSummary=fixture("pci.VulkanSummary", "llvmpipe_only"),
        VulkanLimits=fixture("pci.VulkanLimits", "llvmpipe_trixie"),
    )
    hardware = build_hardware(values, vulkan_cpu_devices=True)
    assert hardware.accelerator == "vulkan"
    assert hardware.gpus[0].max_tensor_bytes == 128 << 20
    wide = [dict(fixture("pci.VulkanLimits", "llvmpipe_trixie")[0], shader_64bit_indexing=True)]
    assert build_hardware(dict(values, VulkanLimits=wide), vulkan_cpu_devices=True
                          ).gpus[0].max_tensor_bytes == 2 << 30
    assert build_hardware(dict(values, VulkanLimits=None), vulkan_cpu_devices=True
                          ).gpus[0].max_tensor_bytes is None

    gemma = get_catalog_model("gemma-3-270m-it").facts("q8_0")  # a 262,144 × 640 tied head
    lavapipe = Device("vulkan:0", 16 << 30, 0, "llvmpipe", 128 << 20)
    assert head_too_large(gemma, lavapipe)
    assert not head_too_large(gemma, dataclasses.replace(lavapipe, max_tensor_bytes=4 << 30))
    assert not head_too_large(gemma, dataclasses.replace(lavapipe, max_tensor_bytes=None))
