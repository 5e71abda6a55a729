"""The GPU software a plan needs, and the pre-flight refusals (rigctl.plan.gpu_software): each
checked from a Hardware record, before any host is touched."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rigctl.hardware import Cpu, Gpu, Hardware, OsInfo
from rigctl.models.catalog import get_catalog_model
from rigctl.plan import gpu_tables as tables
from rigctl.plan import make_plan
from rigctl.plan.gpu_software import GpuSoftwareWanted, plan_gpu_software

GiB = 1024**3
MODEL = "llama-3.1-8b-instruct:q4_k_m"


def _host(
    distro: str = "debian",
    version: str = "13",
    *,
    gpus: list[Gpu] | None = None,
    accelerator: str = "cuda",
    driver_cuda: str | None = "12.4",
    kernel_driver: str | None = "550.54.14",
    toolkit: str | None = None,
    rocm: str | None = None,
    without_driver: list[str] | None = None,
) -> Hardware:
    return Hardware(
        accelerator=accelerator,
        gpus=gpus if gpus is not None else [_nvidia()],
        memory_bytes=64 * GiB,
        cpu=Cpu("AMD Ryzen 9 7950X", 16, 32, ["avx2"]),
        os=OsInfo("Linux", distro, version, "x86_64", "systemd"),
        disk_free_bytes=500 * GiB,
        cuda_driver_version=driver_cuda,
        cuda_toolkit_version=toolkit,
        rocm_version=rocm,
        nvidia_kernel_driver=kernel_driver,
        nvidia_pci_without_driver=without_driver or [],
    )


def _nvidia(cc: str = "8.9", driver: str = "550.54.14", name: str = "NVIDIA GeForce RTX 4090") -> Gpu:
    return Gpu("nvidia", name, 0, 24 * GiB, driver=driver, compute_capability=cc)


def _amd(gfx: str) -> Gpu:
    return Gpu("amd", f"AMD Radeon ({gfx})", 0, 24 * GiB, gfx_target=gfx)


def _llamacpp(hardware: Hardware, **wanted: str) -> object:
    return make_plan(hardware, get_catalog_model(MODEL), runtime="llamacpp", gpu_software=GpuSoftwareWanted(**wanted))


# --------------------------------------------------------------------------- CUDA


def test_trixie_rtx4090_gets_debians_cuda_124() -> None:
    plan = _llamacpp(_host())
    assert plan.ok, plan.errors
    toolkit = plan.gpu_software.toolkit
    assert (toolkit.kind, toolkit.source, toolkit.version) == ("cuda", "debian", "12.4")
    assert any("Debian's nvidia-cuda-toolkit" in reason for reason in plan.reasons)
    assert plan.to_json()["gpu_software"]["toolkit"]["version"] == "12.4"


def test_ubuntu_gets_nvidias_newest_toolkit_the_driver_supports() -> None:
    hardware = _host("ubuntu", "24.04", driver_cuda="12.8", kernel_driver="570.86.10",
                     gpus=[_nvidia(driver="570.86.10")])
    plan = _llamacpp(hardware)
    assert plan.ok, plan.errors
    toolkit = plan.gpu_software.toolkit
    assert (toolkit.source, toolkit.version, toolkit.repository) == ("nvidia", "12.8", "ubuntu2404")


def test_a_blackwell_gpu_on_trixie_goes_past_debians_124_to_nvidias() -> None:
    hardware = _host(driver_cuda="12.9", kernel_driver="575.51.03",
                     gpus=[_nvidia("12.0", "575.51.03", "NVIDIA GeForce RTX 5090")])
    plan = _llamacpp(hardware)
    assert plan.ok, plan.errors
    assert (plan.gpu_software.toolkit.source, plan.gpu_software.toolkit.version) == ("nvidia", "12.9")
    # asked for Debian's explicitly, it is refused with what to do
    refused = _llamacpp(hardware, cuda_toolkit="debian")
    assert any("compute capability 12.0 needs CUDA 12.8" in e for e in refused.errors)


def test_toolkit_too_new_for_the_driver_is_refused() -> None:
    plan = _llamacpp(_host("ubuntu", "24.04"), cuda_toolkit="nvidia", cuda_toolkit_version="13.0")
    assert not plan.ok
    error = next(e for e in plan.errors if "CUDA toolkit 13.0" in e)
    assert "needs NVIDIA driver 580.65.06" in error and "550.54.14" in error
    assert "cuda_toolkit_version 12.4" in error


def test_compute_capability_61_with_cuda_13_is_refused() -> None:
    hardware = _host("ubuntu", "24.04", driver_cuda="13.0", kernel_driver="580.65.06",
                     gpus=[_nvidia("6.1", "580.65.06", "NVIDIA GeForce GTX 1080 Ti")])
    plan = _llamacpp(hardware, cuda_toolkit="nvidia", cuda_toolkit_version="13.0")
    assert any("no longer compile for compute capability 6.1" in e and "12.9" in e for e in plan.errors)
    # left to choose, rigctl picks the newest toolkit that still compiles for it
    chosen = _llamacpp(hardware)
    assert chosen.ok, chosen.errors
    assert chosen.gpu_software.toolkit.version == "12.9"


def test_a_toolkit_already_installed_that_fits_is_used() -> None:
    plan = _llamacpp(_host(toolkit="12.4"))
    assert plan.ok and plan.gpu_software.toolkit.source == "present"
    missing = _llamacpp(_host(), cuda_toolkit="present")
    assert any("no CUDA toolkit was found" in e for e in missing.errors)


def test_vllm_and_ollama_need_the_driver_but_no_toolkit() -> None:
    plan = make_plan(_host(), get_catalog_model(MODEL), runtime="ollama")
    assert plan.gpu_software is not None and plan.gpu_software.toolkit is None
    assert plan.gpu_software.nvidia_driver == "check"


# --------------------------------------------------------------------------- the driver


def test_driver_missing_without_install_is_refused() -> None:
    hardware = _host(accelerator="cpu", gpus=[], driver_cuda=None, kernel_driver=None,
                     without_driver=["0000:01:00.0"])
    plan = _llamacpp(hardware)
    error = next(e for e in plan.errors if "0000:01:00.0" in e)
    assert "no NVIDIA driver loaded" in error and "nvidia_driver: install" in error


def test_driver_missing_with_install_plans_the_install() -> None:
    hardware = _host(accelerator="cpu", gpus=[], driver_cuda=None, kernel_driver=None,
                     without_driver=["0000:01:00.0"])
    plan = _llamacpp(hardware, nvidia_driver="install")
    assert plan.ok, plan.errors
    software = plan.gpu_software
    assert (software.nvidia_driver, software.nvidia_repository) == ("install", "debian13")
    assert any("reboots the host" in reason for reason in plan.reasons)


def test_nvidia_smi_without_a_loaded_module_needs_assume_present() -> None:
    hardware = _host(kernel_driver=None)  # a container given nvidia-smi: no /proc/driver/nvidia
    refused = _llamacpp(hardware)
    assert any("no NVIDIA kernel module is loaded" in e and "assume-present" in e for e in refused.errors)
    assert _llamacpp(hardware, nvidia_driver="assume-present").ok


# --------------------------------------------------------------------------- ROCm, Vulkan


def test_hip_on_trixie_is_refused_naming_the_version_it_needs_and_where() -> None:
    hardware = _host(accelerator="rocm", gpus=[_amd("gfx1100")], driver_cuda=None, kernel_driver=None)
    plan = _llamacpp(hardware)
    error = next(e for e in plan.errors if "ROCm/HIP 6.1" in e)
    assert "Debian's own packages" in error and "5.7" in error and "rocm: amd" in error


def test_hip_from_amds_repository_on_ubuntu() -> None:
    hardware = _host("ubuntu", "24.04", accelerator="rocm", gpus=[_amd("gfx1100")], driver_cuda=None)
    plan = _llamacpp(hardware)
    assert plan.ok, plan.errors
    toolkit = plan.gpu_software.toolkit
    assert (toolkit.source, toolkit.version, toolkit.repository) == ("amd", "6.4", "noble")


def test_gfx_target_unsupported_by_the_rocm_release_is_refused() -> None:
    hardware = _host("ubuntu", "24.04", accelerator="rocm", gpus=[_amd("gfx1201")], driver_cuda=None)
    plan = _llamacpp(hardware, rocm_version="6.2")
    assert any("gfx1201" in e and "not supported by ROCm 6.2" in e for e in plan.errors)
    old = _host("ubuntu", "24.04", accelerator="rocm", gpus=[_amd("gfx803")], driver_cuda=None)
    assert any("gfx803" in e for e in _llamacpp(old).errors)


def test_vulkan_gets_the_distributions_sdk() -> None:
    hardware = _host(accelerator="vulkan", gpus=[Gpu("intel", "Intel Arc A770", 0, 16 * GiB)],
                     driver_cuda=None, kernel_driver=None)
    plan = _llamacpp(hardware)
    assert plan.ok, plan.errors
    assert plan.gpu_software.toolkit.kind == "vulkan"
    assert plan.gpu_software.nvidia_driver == "none"


def test_cpu_plans_need_no_gpu_software() -> None:
    plan = _llamacpp(_host(accelerator="cpu", gpus=[], driver_cuda=None, kernel_driver=None))
    assert plan.gpu_software is None


# --------------------------------------------------------------------------- the rule


@settings(max_examples=200, deadline=None)
@given(
    driver=st.sampled_from(sorted(tables.CUDA_TOOLKIT_DRIVER.values())).map(lambda v: tables.parse(v, 3)),
    ccs=st.lists(st.sampled_from(sorted(tables.CUDA_ARCH_TOOLKITS)), min_size=1, max_size=3),
)
def test_a_chosen_toolkit_never_outruns_the_driver_or_drops_a_gpu(driver: tuple[int, ...], ccs: list[tuple[int, ...]]) -> None:
    """Whatever the driver and GPUs, the toolkit rigctl picks from NVIDIA's repository is one the
    driver runs and that compiles for every GPU; when none exists, the plan says so."""
    driver_cuda = max(t for t, d in tables.CUDA_TOOLKIT_DRIVER.items() if tables.parse(d, 3) <= driver)
    gpus = [_nvidia(tables.show(cc), tables.show(driver)) for cc in ccs]
    hardware = _host("ubuntu", "24.04", gpus=gpus, driver_cuda=tables.show(driver_cuda),
                     kernel_driver=tables.show(driver))
    result = plan_gpu_software(hardware, "cuda", "llamacpp", "cuda", GpuSoftwareWanted())
    if result.software is None or result.software.toolkit is None:
        assert result.errors
        return
    version = tables.parse(result.software.toolkit.version)
    assert version is not None and version <= driver_cuda
    for cc in ccs:
        first, dropped = tables.CUDA_ARCH_TOOLKITS[cc]
        assert first <= version and (dropped is None or version < dropped)
