"""build_hardware: from the facts' values to one Hardware record, for each kind of host.

Hosts are assembled from the fact fixtures (tests/facts/*/*.json): the values the facts produced
from real command output, so these tests run the same data from tool output to the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rigctl.detect_host import apple_gpu_memory, build_hardware, detect_host
from rigctl.hardware import ACCELERATORS, GIB, MIB, Hardware

FIXTURES = Path(__file__).parent / "facts"


def fixture(fact: str, case: str) -> Any:
    """The value a fact produced from one fixture case's output (``case``.json of ``fact``)."""
    return json.loads((FIXTURES / fact / f"{case}.json").read_text())["fact"]


def linux_host(**facts: Any) -> dict[str, Any]:
    """A Linux box with no GPU, plus ``facts`` (by fact class name) on top."""
    values = {
        "OsRelease": fixture("system.OsRelease", "debian_12"),
        "InitSystem": "systemd",
        "CpuInfo": fixture("cpu.CpuInfo", "core_i7_4790k"),
        "MemoryBytes": fixture("system.MemoryBytes", "linux_64gb"),
        "DiskFreeBytes": fixture("system.DiskFreeBytes", "default_models_dir"),
        "PciDevices": [],
        "NvidiaGpus": None,
        "NvidiaMig": None,
        "NvidiaCudaDriverVersion": None,
        "NvidiaDriverProc": None,
        "CudaToolkit": None,
        "JetsonRelease": None,
        "KfdNodes": [],
        "DrmVram": [],
        "RocmVersion": None,
        "AppleSysctl": None,
        "AppleSystemProfiler": None,
        "VulkanSummary": None,
        "VulkanLimits": None,
        "IntelVram": [],
    }
    values.update(facts)
    return values


def mac_host(sysctl: str, profiler: str, cpu: str, memory: int, **facts: Any) -> dict[str, Any]:
    return linux_host(
        OsRelease=fixture("system.OsRelease", "macos_sonoma"),
        InitSystem="launchd",
        CpuInfo=fixture("cpu.CpuInfo", cpu),
        MemoryBytes=memory,
        DiskFreeBytes=fixture("system.DiskFreeBytes", "macos"),
        AppleSysctl=fixture("apple.AppleSysctl", sysctl),
        AppleSystemProfiler=fixture("apple.AppleSystemProfiler", profiler),
        **facts,
    )


RTX4090 = dict(
    PciDevices=fixture("pci.PciDevices", "desktop_rtx4090_igpu"),
    NvidiaGpus=fixture("nvidia.NvidiaGpus", "rtx4090"),
    NvidiaCudaDriverVersion=fixture("nvidia.NvidiaCudaDriverVersion", "rtx4090_550"),
    NvidiaDriverProc=fixture("nvidia.NvidiaDriverProc", "proprietary_550"),
    CudaToolkit=fixture("nvidia.CudaToolkit", "nvcc_12_4"),
)

HOSTS: dict[str, dict[str, Any]] = {
    "rtx4090": linux_host(**RTX4090),
    "h100_x8": linux_host(
        CpuInfo=fixture("cpu.CpuInfo", "xeon_sapphire_rapids_vm"),
        PciDevices=fixture("pci.PciDevices", "h100_x8_server"),
        NvidiaGpus=fixture("nvidia.NvidiaGpus", "h100_x8"),
        NvidiaCudaDriverVersion=fixture("nvidia.NvidiaCudaDriverVersion", "h100_x8_535"),
        NvidiaDriverProc="535.129.03",
        CudaToolkit=fixture("nvidia.CudaToolkit", "version_json_several"),
    ),
    "a100_driver_no_toolkit": linux_host(
        NvidiaGpus=fixture("nvidia.NvidiaGpus", "a100_80gb_x2"),
        NvidiaCudaDriverVersion="12.4",
        NvidiaDriverProc="550.90.07",
        CudaToolkit=fixture("nvidia.CudaToolkit", "not_installed"),
    ),
    "rx7900xtx": linux_host(
        PciDevices=fixture("pci.PciDevices", "rx7900xtx"),
        KfdNodes=fixture("amd.KfdNodes", "rx7900xtx"),
        DrmVram=fixture("amd.DrmVram", "rx7900xtx"),
        RocmVersion=fixture("amd.RocmVersion", "rocm_6_1_2"),
        VulkanSummary=fixture("pci.VulkanSummary", "radv_rx7900xtx"),
    ),
    "mi300x_x8": linux_host(
        CpuInfo=fixture("cpu.CpuInfo", "xeon_sapphire_rapids_vm"),
        KfdNodes=fixture("amd.KfdNodes", "mi300x_x8"),
        RocmVersion="6.2.0",
    ),
    "m2max_64gb": mac_host("m2max_sonoma", "m2max_64gb", "macos_m2max", 64 * GIB),
    "m1_8gb": mac_host("m1_ventura", "m1_8gb", "macos_m1", 8 * GIB),
    "intel_igpu_vulkan": linux_host(VulkanSummary=fixture("pci.VulkanSummary", "intel_igpu")),
    "xeon_avx512": linux_host(CpuInfo=fixture("cpu.CpuInfo", "xeon_sapphire_rapids_vm")),
    "i7_avx2": linux_host(VulkanSummary=fixture("pci.VulkanSummary", "llvmpipe_only")),
    "graviton3": linux_host(
        OsRelease=fixture("system.OsRelease", "ubuntu_22_04_aarch64"),
        CpuInfo=fixture("cpu.CpuInfo", "graviton3_aarch64"),
    ),
}


@pytest.mark.parametrize(
    ("host", "accelerator", "gpu_count", "gpu_memory"),
    [
        ("rtx4090", "cuda", 1, 24564 * MIB),
        ("h100_x8", "cuda", 8, 8 * 81559 * MIB),
        ("a100_driver_no_toolkit", "cuda", 2, 2 * 81920 * MIB),
        ("rx7900xtx", "rocm", 1, 25753026560),
        ("mi300x_x8", "rocm", 8, 8 * 206141652992),
        ("m2max_64gb", "metal", 1, 48 * GIB),
        ("m1_8gb", "metal", 1, int(8 * GIB * 2 / 3)),
        ("intel_igpu_vulkan", "vulkan", 1, 0),
        ("xeon_avx512", "cpu", 0, 0),
        ("i7_avx2", "cpu", 0, 0),
        ("graviton3", "cpu", 0, 0),
    ],
)
def test_accelerator_and_gpu_memory(
    host: str, accelerator: str, gpu_count: int, gpu_memory: int
) -> None:
    hardware = build_hardware(HOSTS[host])

    assert hardware.accelerator == accelerator
    assert len(hardware.gpus) == gpu_count
    assert hardware.gpu_memory_bytes == gpu_memory


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_json_round_trip(host: str) -> None:
    hardware = build_hardware(HOSTS[host])

    assert Hardware.from_json(hardware.to_json()) == hardware
    assert Hardware.from_json(json.loads(json.dumps(hardware.to_json()))) == hardware


def test_rtx4090_desktop() -> None:
    hardware = build_hardware(HOSTS["rtx4090"])

    (gpu,) = hardware.gpus
    assert (gpu.vendor, gpu.name, gpu.index) == ("nvidia", "NVIDIA GeForce RTX 4090", 0)
    assert gpu.compute_capability == "8.9"
    assert gpu.driver == "550.54.14"
    assert gpu.uuid == "GPU-5a6e4a3c-8f0e-4b2b-9d53-0c1e8f3b6a71"
    assert hardware.cuda_driver_version == "12.4"
    assert hardware.cuda_toolkit_version == "12.4"
    assert hardware.memory_bytes == 65755464 * 1024
    assert hardware.cpu.cores == 4 and hardware.cpu.threads == 8
    assert hardware.os.distro == "debian" and hardware.os.init == "systemd"
    assert hardware.disk_free_bytes == 499118322 * 1024
    assert not hardware.unified_memory
    assert hardware.warnings == []


def test_h100_server() -> None:
    hardware = build_hardware(HOSTS["h100_x8"])

    assert [gpu.index for gpu in hardware.gpus] == list(range(8))
    assert {gpu.compute_capability for gpu in hardware.gpus} == {"9.0"}
    assert hardware.cuda_driver_version == "12.2"
    assert hardware.cuda_toolkit_version == "12.4"  # minor-version compatible with 12.2
    assert hardware.warnings == []


def test_driver_without_toolkit_is_still_cuda() -> None:
    hardware = build_hardware(HOSTS["a100_driver_no_toolkit"])

    assert hardware.accelerator == "cuda"
    assert hardware.cuda_toolkit_version is None
    assert {gpu.compute_capability for gpu in hardware.gpus} == {"8.0"}
    assert hardware.warnings == []


def test_toolkit_of_a_newer_major_than_the_driver_is_warned() -> None:
    hardware = build_hardware(linux_host(**{**RTX4090, "CudaToolkit": "13.0"}))

    assert hardware.accelerator == "cuda"
    assert hardware.warnings == ["CUDA toolkit 13.0 needs a newer driver (it supports CUDA 12.4)"]


def test_rx7900xtx_takes_its_name_from_vulkan() -> None:
    hardware = build_hardware(HOSTS["rx7900xtx"])

    (gpu,) = hardware.gpus
    assert gpu.vendor == "amd"
    assert gpu.gfx_target == "gfx1100"
    assert gpu.name == "AMD Radeon RX 7900 XTX (RADV NAVI31)"
    assert hardware.rocm_version == "6.1.2"
    assert hardware.warnings == []


def test_mi300x_without_vulkan_is_named_by_gfx_target() -> None:
    hardware = build_hardware(HOSTS["mi300x_x8"])

    assert {gpu.gfx_target for gpu in hardware.gpus} == {"gfx942"}
    assert hardware.gpus[0].name == "AMD gfx942 GPU (0x74a1)"
    assert [gpu.index for gpu in hardware.gpus] == list(range(8))


def test_amd_vram_falls_back_to_drm_when_kfd_gives_none() -> None:
    nodes = [{**fixture("amd.KfdNodes", "rx7900xtx")[0], "memory_bytes": None}]
    hardware = build_hardware(
        linux_host(KfdNodes=nodes, DrmVram=fixture("amd.DrmVram", "rx7900xtx"))
    )

    assert hardware.gpus[0].memory_bytes == 25753026560


def test_apple_m2_max_gets_the_macos_default_share() -> None:
    hardware = build_hardware(HOSTS["m2max_64gb"])

    (gpu,) = hardware.gpus
    assert (gpu.vendor, gpu.name, gpu.cores) == ("apple", "Apple M2 Max", 38)
    assert gpu.memory_bytes == 48 * GIB  # 75% of 64 GiB
    assert hardware.unified_memory
    assert hardware.memory_bytes == 64 * GIB
    assert hardware.os == hardware.os.__class__("Darwin", "macos", "14.4.1", "arm64", "launchd")
    assert "neon" in hardware.cpu.flags
    assert hardware.warnings == []


def test_apple_wired_limit_overrides_the_default() -> None:
    hardware = build_hardware(
        mac_host("m2max_wired_limit_set", "m2max_64gb", "macos_m2max", 64 * GIB)
    )

    assert hardware.gpus[0].memory_bytes == 57344 * MIB


def test_apple_m1_8gb() -> None:
    hardware = build_hardware(HOSTS["m1_8gb"])

    (gpu,) = hardware.gpus
    assert (gpu.name, gpu.cores) == ("Apple M1", 7)
    assert gpu.memory_bytes == int(8 * GIB * 2 / 3)


@pytest.mark.parametrize(
    ("memory", "share"),
    [(8 * GIB, 2 / 3), (36 * GIB, 2 / 3), (48 * GIB, 0.75), (192 * GIB, 0.75)],
)
def test_apple_default_share_by_memory_size(memory: int, share: float) -> None:
    assert apple_gpu_memory(memory) == int(memory * share)
    assert apple_gpu_memory(memory, 0) == int(memory * share)
    assert apple_gpu_memory(memory, 4096) == 4 * GIB


def test_apple_silicon_without_system_profiler_is_still_metal() -> None:
    values = mac_host("m2max_sonoma", "m2max_64gb", "macos_m2max", 64 * GIB)
    values["AppleSystemProfiler"] = None
    hardware = build_hardware(values)

    assert hardware.accelerator == "metal"
    assert hardware.gpus[0].name == "Apple M2 Max"  # from sysctl's brand string
    assert hardware.gpus[0].cores is None
    assert any("system_profiler" in warning for warning in hardware.warnings)


def test_intel_mac_is_cpu() -> None:
    values = mac_host("m2max_sonoma", "intel_mac", "macos_intel", 16 * GIB)
    values["OsRelease"] = {**values["OsRelease"], "arch": "x86_64"}
    hardware = build_hardware(values)

    assert hardware.accelerator == "cpu"
    assert hardware.cpu.flags == ["avx", "avx2", "f16c", "fma", "sse4_2"]


def test_jetson_without_nvidia_smi_is_cuda_with_unified_memory() -> None:
    hardware = build_hardware(
        linux_host(
            OsRelease=fixture("system.OsRelease", "ubuntu_22_04_aarch64"),
            JetsonRelease=fixture("nvidia.JetsonRelease", "orin_r36"),
            NvidiaDriverProc="540.3.0",
            MemoryBytes=64 * GIB,
        )
    )

    assert hardware.accelerator == "cuda"
    assert hardware.unified_memory
    assert hardware.jetson_release == "36.3.0"  # Ollama's JetPack archive is chosen from it
    (gpu,) = hardware.gpus
    assert (gpu.name, gpu.memory_bytes, gpu.driver) == ("Jetson (L4T 36.3.0)", 64 * GIB, "540.3.0")
    # nvidia-smi's "CUDA Version: N/A" there is no driver version: vLLM is refused, not tried
    from rigctl.errors import BadInput
    from rigctl.models import get_catalog_model
    from rigctl.plan import make_plan

    plan = make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct"), concurrency=10)
    assert plan.runtime == "llamacpp"
    assert any("Jetson" in said for said in plan.reasons + plan.warnings), plan.reasons
    with pytest.raises(BadInput, match="Jetson"):
        make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct"), runtime="vllm")


def test_cpu_flags() -> None:
    xeon = build_hardware(HOSTS["xeon_avx512"]).cpu
    i7 = build_hardware(HOSTS["i7_avx2"]).cpu
    arm = build_hardware(HOSTS["graviton3"]).cpu

    assert {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni"} <= set(xeon.flags)
    assert (xeon.cores, xeon.threads) == (2, 4)
    assert i7.flags == ["avx", "avx2", "f16c", "fma", "sse4_2"]
    assert arm.flags == ["dotprod", "i8mm", "neon", "sve"]
    assert arm.model == "ARM Neoverse-V1"


@pytest.mark.parametrize(
    ("pci_case", "smi", "proc", "expected"),
    [
        ("nvidia_no_driver", None, None, "nvidia-smi missing: driver not installed?"),
        ("nvidia_nouveau", None, None, "nouveau"),
        ("nvidia_no_driver", None, "550.54.14", "loaded but nvidia-smi is missing"),
        ("desktop_rtx4090_igpu", "driver_not_loaded", "550.54.14", "listed no GPU"),
        ("desktop_rtx4090_igpu", "garbled", None, "listed no GPU"),
    ],
)
def test_nvidia_gpu_that_no_driver_reports_is_warned(
    pci_case: str, smi: str | None, proc: str | None, expected: str
) -> None:
    hardware = build_hardware(
        linux_host(
            PciDevices=fixture("pci.PciDevices", pci_case),
            NvidiaGpus=fixture("nvidia.NvidiaGpus", smi) if smi else None,
            NvidiaDriverProc=proc,
        )
    )

    assert hardware.accelerator == "cpu"
    assert hardware.gpus == []
    assert len(hardware.warnings) == 1
    assert expected in hardware.warnings[0]


def test_amd_gpu_without_kfd_is_warned() -> None:
    hardware = build_hardware(linux_host(PciDevices=fixture("pci.PciDevices", "rx7900xtx")))

    assert hardware.accelerator == "cpu"
    assert len(hardware.warnings) == 1
    assert "KFD lists no compute node" in hardware.warnings[0]


def test_nvidia_and_amd_together_use_nvidia_and_say_so() -> None:
    hardware = build_hardware(linux_host(**RTX4090, KfdNodes=fixture("amd.KfdNodes", "rx7900xtx")))

    assert hardware.accelerator == "cuda"
    assert [gpu.vendor for gpu in hardware.gpus] == ["nvidia"]
    assert len(hardware.warnings) == 1
    assert "also found AMD gfx1100 GPU (0x744c) (rocm)" in hardware.warnings[0]


def test_software_vulkan_is_not_a_gpu() -> None:
    hardware = build_hardware(HOSTS["i7_avx2"])

    assert hardware.accelerator == "cpu"
    assert hardware.warnings == []


def test_vulkan_gpu_of_unknown_vram_is_warned() -> None:
    hardware = build_hardware(HOSTS["intel_igpu_vulkan"])

    (gpu,) = hardware.gpus
    assert (gpu.vendor, gpu.name) == ("intel", "Intel(R) UHD Graphics 770 (ADL-S GT1)")
    assert hardware.warnings == [
        "VRAM of Vulkan device Intel(R) UHD Graphics 770 (ADL-S GT1) unknown"
    ]


def test_garbled_tool_output_gives_cpu_with_a_warning() -> None:
    """Every fact fed its garbled fixture: detection degrades, never raises."""
    hardware = build_hardware(
        linux_host(
            PciDevices=fixture("pci.PciDevices", "desktop_rtx4090_igpu"),
            NvidiaGpus=fixture("nvidia.NvidiaGpus", "garbled"),
            NvidiaCudaDriverVersion=fixture("nvidia.NvidiaCudaDriverVersion", "cuda_not_available"),
            CudaToolkit=fixture("nvidia.CudaToolkit", "garbled"),
            KfdNodes=fixture("amd.KfdNodes", "garbled"),
            DrmVram=fixture("amd.DrmVram", "garbled"),
            AppleSystemProfiler=fixture("apple.AppleSystemProfiler", "garbled"),
            CpuInfo=fixture("cpu.CpuInfo", "garbled"),
            MemoryBytes=fixture("system.MemoryBytes", "garbled"),
            DiskFreeBytes=fixture("system.DiskFreeBytes", "garbled"),
            OsRelease=fixture("system.OsRelease", "garbled"),
        )
    )

    assert hardware.accelerator == "cpu"
    assert hardware.gpus == []
    assert any("nvidia-smi" in warning for warning in hardware.warnings)
    assert hardware.cpu.model == "unknown"
    assert hardware.os.system == "unknown"
    assert Hardware.from_json(hardware.to_json()) == hardware


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"NvidiaGpus": "garbage", "KfdNodes": 42, "VulkanSummary": {"GPU0": "x"}},
        {"NvidiaGpus": [{"index": "0", "name": 5}, "row"], "KfdNodes": [None, {"node": 1}]},
        {"CpuInfo": ["x"], "OsRelease": {"system": 1}, "MemoryBytes": "lots", "InitSystem": 7},
        {"PciDevices": [{"vendor": 5}], "AppleSysctl": [], "AppleSystemProfiler": {"gpus": "x"}},
        {"MemoryBytes": True, "DiskFreeBytes": -1.5, "JetsonRelease": 36, "RocmVersion": 6.1},
        {"VulkanSummary": [{"index": 0, "name": None, "type": "discrete"}]},
    ],
)
def test_unknown_values_never_crash(values: dict[str, Any]) -> None:
    hardware = build_hardware(values)

    assert hardware.accelerator == "cpu"
    assert hardware.accelerator in ACCELERATORS
    assert hardware.warnings
    assert hardware.cpu.threads >= 1
    assert Hardware.from_json(hardware.to_json()) == hardware


def test_detection_facts_cover_every_value_build_hardware_reads() -> None:
    from rigctl.detect_host import DETECTION_FACTS

    assert {fact.__name__ for fact in DETECTION_FACTS} == set(linux_host())


def test_detect_host_on_this_machine() -> None:
    """The real facts through pyinfra's @local connector: no fact may fail the host."""
    from rigctl.pyinfra_api import Session, load_inventory

    with Session(load_inventory("@local")) as session:
        detected = session.each_host(detect_host)
        summary = session.summary()

    assert summary.failed_hosts == []
    hardware = detected["@local"]
    assert hardware.accelerator in ACCELERATORS
    assert hardware.os.system in ("Linux", "Darwin")
    assert hardware.cpu.threads >= 1 and hardware.cpu.model != "unknown"
    assert hardware.memory_bytes > 0
    assert hardware.disk_free_bytes > 0


def test_lavapipe_counts_as_the_vulkan_gpu_only_when_host_data_says_so() -> None:
    """Mesa's lavapipe is a CPU device: planned for only with ``vulkan_cpu_devices``, then as a
    GPU sharing the system's memory (unified), so the planner never counts that memory twice."""
    values = HOSTS["i7_avx2"]  # vulkaninfo lists llvmpipe alone
    assert build_hardware(values).accelerator == "cpu"
    hardware = build_hardware(values, vulkan_cpu_devices=True)
    assert hardware.accelerator == "vulkan" and hardware.unified_memory
    (gpu,) = hardware.gpus
    assert gpu.device_type == "cpu" and gpu.name.startswith("llvmpipe")
    assert gpu.memory_bytes == hardware.memory_bytes
    assert any("CPU renderer" in warning for warning in hardware.warnings)
    # a real GPU beside it is a GPU either way, and keeps its own type
    radv = build_hardware(HOSTS["intel_igpu_vulkan"], vulkan_cpu_devices=True)
    assert [g.device_type for g in radv.gpus] == ["integrated"]


def test_an_nvidia_gpu_without_its_driver_is_recorded_by_slot() -> None:
    hardware = build_hardware(linux_host(PciDevices=fixture("pci.PciDevices", "nvidia_no_driver")))
    assert hardware.accelerator == "cpu"
    assert hardware.nvidia_pci_without_driver == ["0000:01:00.0"]
    assert build_hardware(HOSTS["rtx4090"]).nvidia_pci_without_driver == []
