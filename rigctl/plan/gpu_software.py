"""What GPU software a plan needs on its host, chosen to suit the host, and checked before
anything changes: the NVIDIA driver, and for a llama.cpp build the CUDA toolkit, ROCm/HIP or
the Vulkan SDK. Pure: the host's :class:`~rigctl.hardware.Hardware`, the host data's choices
(:class:`GpuSoftwareWanted`) and the tables in :mod:`rigctl.plan.gpu_tables`.

A mismatch (a toolkit too new for the driver, a GPU the toolkit no longer compiles for, a gfx
target the ROCm release does not support, a ROCm older than llama.cpp needs, a GPU without its
driver) is an error of the plan saying what to do; the provision refuses that host before
touching it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rigctl.hardware import Hardware
from rigctl.plan import gpu_tables as tables
from rigctl.plan.gpu_tables import Version, parse, show

NVIDIA_DRIVER_MODES = ("check", "install", "assume-present")
CUDA_TOOLKIT_SOURCES = ("auto", "debian", "nvidia", "present")
ROCM_SOURCES = ("auto", "debian", "amd", "present")


@dataclass(frozen=True)
class GpuSoftwareWanted:
    """The host data's say in it (``nvidia_driver``, ``cuda_toolkit``, ``cuda_toolkit_version``,
    ``rocm``, ``rocm_version``); the defaults fit a host nobody configured."""

    nvidia_driver: str = "check"
    cuda_toolkit: str = "auto"
    cuda_toolkit_version: str | None = None
    rocm: str = "auto"
    rocm_version: str | None = None


@dataclass(frozen=True)
class Toolkit:
    """The SDK a llama.cpp build compiles with, and where it comes from."""

    kind: str  # cuda | rocm | vulkan
    source: str  # debian | nvidia | amd | present | distro
    version: str | None  # "12.4"; None: the distribution's (Vulkan)
    #: the distribution's repository name rigctl adds (``debian13``, ``jammy``), if any
    repository: str | None = None


@dataclass(frozen=True)
class GpuSoftware:
    """The plan's GPU software: the driver's handling and the toolkit to install, if any."""

    accelerator: str  # cuda | rocm | vulkan
    nvidia_driver: str  # check | install | assume-present | none (not an NVIDIA host)
    driver_version: str | None
    toolkit: Toolkit | None  # None: the runtime brings its own libraries (vLLM, Ollama)
    #: NVIDIA's name of the host's distribution in its CUDA repositories ("debian13"), for a
    #: driver or toolkit installed from there
    nvidia_repository: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GpuSoftwarePlan:
    software: GpuSoftware | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan_gpu_software(
    hardware: Hardware, accelerator: str, runtime: str, backend: str | None, wanted: GpuSoftwareWanted
) -> GpuSoftwarePlan:
    """The GPU software for a plan on ``accelerator`` (what the planner settled on) by
    ``runtime``; ``backend`` is llama.cpp's backend when the runtime builds llama.cpp."""
    result = GpuSoftwarePlan(None)
    if hardware.nvidia_pci_without_driver and accelerator != "cuda":
        _driverless(hardware, wanted, result)
        return result
    if accelerator not in ("cuda", "rocm", "vulkan"):
        return result
    driver_mode = "none"
    driver = None
    if accelerator == "cuda":
        driver_mode = wanted.nvidia_driver
        driver = _driver_version(hardware)
        _check_driver_loaded(hardware, wanted, result)
    toolkit: Toolkit | None = None
    if runtime == "llamacpp" and backend == "cuda":
        toolkit = _cuda_toolkit(hardware, wanted, result)
    elif runtime == "llamacpp" and backend == "rocm":
        toolkit = _rocm(hardware, wanted, result)
    elif runtime == "llamacpp" and backend == "vulkan":
        toolkit = Toolkit("vulkan", "distro", None)
        result.reasons.append(
            "Vulkan: the loader's headers, glslc and SPIR-V headers, and Mesa's drivers from the "
            "distribution"
        )
    repository = toolkit.repository if toolkit and toolkit.kind == "cuda" else None
    result.software = GpuSoftware(accelerator, driver_mode, driver, toolkit, repository)
    return result


# --------------------------------------------------------------------------- the driver


def _driver_version(hardware: Hardware) -> str | None:
    return next((gpu.driver for gpu in hardware.gpus if gpu.driver), None) or (
        hardware.nvidia_kernel_driver
    )


def _driverless(hardware: Hardware, wanted: GpuSoftwareWanted, result: GpuSoftwarePlan) -> None:
    slots = ", ".join(hardware.nvidia_pci_without_driver)
    if wanted.nvidia_driver == "install":
        repository = tables.NVIDIA_REPO_DISTROS.get((hardware.os.distro, _repo_version(hardware)))
        if repository is None:
            result.errors.append(
                f"nvidia_driver: install, but NVIDIA's CUDA repository has no "
                f"{hardware.os.distro} {hardware.os.version} rigctl knows: install the driver "
                "yourself"
            )
            return
        result.software = GpuSoftware("cuda", "install", None, None, repository)
        result.reasons.append(
            f"NVIDIA GPU at PCI {slots} has no driver: rigctl installs it from NVIDIA's CUDA "
            "repository and reboots the host (nvidia_driver: install)"
        )
        result.warnings.append(
            "this run plans without the GPU (its memory and compute capability are unknown "
            "until the driver answers): provision again after the reboot to plan for it"
        )
    elif wanted.nvidia_driver == "check":
        result.errors.append(
            f"NVIDIA GPU at PCI {slots} has no NVIDIA driver loaded: install the driver "
            "(NVIDIA's CUDA repository: cuda-drivers or nvidia-open), or set "
            "nvidia_driver: install to let rigctl install it and reboot the host"
        )
    else:
        result.warnings.append(
            f"NVIDIA GPU at PCI {slots} shows no driver; nvidia_driver: assume-present, so "
            "planning without it"
        )


def _check_driver_loaded(
    hardware: Hardware, wanted: GpuSoftwareWanted, result: GpuSoftwarePlan
) -> None:
    if wanted.nvidia_driver != "check" or hardware.jetson_release:
        return
    if not hardware.nvidia_kernel_driver:
        result.errors.append(
            "nvidia-smi answers but no NVIDIA kernel module is loaded "
            "(/proc/driver/nvidia/version is missing): load it (modprobe nvidia, or reboot "
            "after installing the driver); in a container that reaches the host's GPU, set "
            "nvidia_driver: assume-present"
        )


# --------------------------------------------------------------------------- CUDA


def _compute_capabilities(hardware: Hardware) -> list[Version]:
    found = (parse(gpu.compute_capability) for gpu in hardware.gpus if gpu.vendor == "nvidia")
    return sorted({cc for cc in found if cc is not None})


def _distro_major(hardware: Hardware) -> str:
    return hardware.os.version.split(".")[0]


def _cuda_toolkit(
    hardware: Hardware, wanted: GpuSoftwareWanted, result: GpuSoftwarePlan
) -> Toolkit | None:
    driver_cuda = parse(hardware.cuda_driver_version)
    driver = _driver_version(hardware)
    ccs = _compute_capabilities(hardware)
    source = wanted.cuda_toolkit
    installed = parse(hardware.cuda_toolkit_version)
    if source == "auto":
        debian = tables.DEBIAN_CUDA_TOOLKIT.get(_distro_major(hardware))
        if installed and not _cuda_problems(installed, driver_cuda, driver, ccs):
            source = "present"
        elif (
            hardware.os.distro == "debian"
            and debian
            and not _cuda_problems(debian, driver_cuda, driver, ccs)
        ):
            source = "debian"
        else:
            source = "nvidia"
    repository = None
    if source == "present":
        if installed is None:
            result.errors.append(
                "cuda_toolkit: present, but no CUDA toolkit was found (nvcc, version.json): "
                "install one or set cuda_toolkit: auto"
            )
            return None
        version, why = installed, f"CUDA toolkit {show(installed)} already installed"
    elif source == "debian":
        debian = tables.DEBIAN_CUDA_TOOLKIT.get(_distro_major(hardware))
        if hardware.os.distro != "debian" or debian is None:
            result.errors.append(
                f"cuda_toolkit: debian, but this host runs {hardware.os.distro} "
                f"{hardware.os.version}; Debian's nvidia-cuda-toolkit is known for Debian "
                f"{', '.join(sorted(tables.DEBIAN_CUDA_TOOLKIT))}: set cuda_toolkit: nvidia"
            )
            return None
        version = debian
        why = f"CUDA toolkit {show(debian)}: Debian's nvidia-cuda-toolkit from non-free"
    else:
        repository = tables.NVIDIA_REPO_DISTROS.get((hardware.os.distro, _repo_version(hardware)))
        if repository is None:
            result.errors.append(
                f"NVIDIA's CUDA repository has no {hardware.os.distro} {hardware.os.version} "
                "rigctl knows: install the toolkit yourself and set cuda_toolkit: present"
            )
            return None
        pinned = parse(wanted.cuda_toolkit_version)
        chosen = pinned or _newest_toolkit(driver_cuda, ccs)
        if chosen is None:
            result.errors.append(
                "no CUDA toolkit in rigctl's table suits this driver and GPU: pin "
                "cuda_toolkit_version or upgrade the driver"
            )
            return None
        version = chosen
        why = (
            f"CUDA toolkit {show(chosen)} from NVIDIA's repository ({repository}): "
            + ("pinned by cuda_toolkit_version" if pinned else "the newest the driver supports")
        )
    problems = _cuda_problems(version, driver_cuda, driver, ccs)
    if problems:
        result.errors += problems
        return None
    result.reasons.append(why)
    if driver_cuda and version > driver_cuda:
        result.warnings.append(
            f"CUDA toolkit {show(version)} is newer than the driver's CUDA "
            f"{show(driver_cuda)}: it runs through minor version compatibility (no PTX JIT of "
            "newer code); a newer driver is safer"
        )
    for cc in ccs:
        if cc not in tables.CUDA_ARCH_TOOLKITS:
            result.warnings.append(
                f"compute capability {show(cc)} is not in rigctl's table: the build targets it "
                "as given"
            )
    return Toolkit("cuda", source, show(version), repository)


def _repo_version(hardware: Hardware) -> str:
    if hardware.os.distro == "ubuntu":
        return ".".join(hardware.os.version.split(".")[:2])
    return _distro_major(hardware)


def _newest_toolkit(driver_cuda: Version | None, ccs: list[Version]) -> Version | None:
    for toolkit in sorted(tables.CUDA_TOOLKIT_DRIVER, reverse=True):
        if driver_cuda and toolkit > driver_cuda:
            continue
        if all(_arch_supported(cc, toolkit) is None for cc in ccs):
            return toolkit
    return None


def _arch_supported(cc: Version, toolkit: Version) -> str | None:
    """None when ``toolkit`` compiles for ``cc``, else why not."""
    span = tables.CUDA_ARCH_TOOLKITS.get(cc)
    if span is None:
        return None
    first, dropped = span
    if toolkit < first:
        return f"compute capability {show(cc)} needs CUDA {show(first)} or newer"
    if dropped is not None and toolkit >= dropped:
        last = "12.9" if dropped == (13, 0) else f"one before {show(dropped)}"
        return (
            f"CUDA {show(dropped)} and newer no longer compile for compute capability "
            f"{show(cc)}: use CUDA {last} (cuda_toolkit_version)"
        )
    return None


def _cuda_problems(
    toolkit: Version,
    driver_cuda: Version | None,
    driver_text: str | None,
    ccs: list[Version],
) -> list[str]:
    driver = parse(driver_text, 3)
    problems = []
    if toolkit < tables.LLAMACPP_MIN_CUDA:
        problems.append(
            f"CUDA toolkit {show(toolkit)} is older than the pinned llama.cpp needs "
            f"({show(tables.LLAMACPP_MIN_CUDA)}): use a newer toolkit (cuda_toolkit: nvidia)"
        )
    problems += [why for cc in ccs if (why := _arch_supported(cc, toolkit))]
    major_min = tables.CUDA_MAJOR_MIN_DRIVER.get(toolkit[0])
    too_new = driver_cuda is not None and toolkit[0] > driver_cuda[0]
    if major_min and driver and driver < (parse(major_min, 3) or ()):
        too_new = True
    if too_new:
        needs = tables.CUDA_TOOLKIT_DRIVER.get(toolkit) or major_min
        has = f"driver {driver_text}" if driver_text else "this host's driver"
        supports = f" (it supports CUDA {show(driver_cuda)})" if driver_cuda else ""
        problems.append(
            f"CUDA toolkit {show(toolkit)} needs NVIDIA driver {needs or 'newer'}"
            f" or newer; {has}{supports} cannot run it: pin cuda_toolkit_version "
            f"{show(driver_cuda) if driver_cuda else 'lower'} or upgrade the driver"
        )
    return problems


# --------------------------------------------------------------------------- ROCm


def _rocm(hardware: Hardware, wanted: GpuSoftwareWanted, result: GpuSoftwarePlan) -> Toolkit | None:
    source = wanted.rocm
    installed = parse(hardware.rocm_version)
    debian = tables.DEBIAN_ROCM.get(_distro_major(hardware)) if hardware.os.distro == "debian" else None
    if source == "auto":
        source = "present" if installed else ("debian" if debian else "amd")
    repository = None
    if source == "present":
        if installed is None:
            result.errors.append(
                "rocm: present, but no ROCm was found (/opt/rocm/.info/version): install it or "
                "set rocm: auto"
            )
            return None
        version, why = installed, f"ROCm {show(installed)} already installed"
    elif source == "debian":
        if debian is None:
            result.errors.append(
                f"rocm: debian, but Debian's own ROCm packages are known for Debian "
                f"{', '.join(sorted(tables.DEBIAN_ROCM))} only: set rocm: amd"
            )
            return None
        version, why = debian, f"ROCm {show(debian)}: Debian's own packages (hipcc, rocBLAS)"
    else:
        repository = tables.ROCM_REPO_SUITES.get((hardware.os.distro, _repo_version(hardware)))
        if repository is None:
            result.errors.append(
                f"AMD's ROCm repository has no {hardware.os.distro} {hardware.os.version} rigctl "
                "knows: install ROCm yourself and set rocm: present"
            )
            return None
        version = parse(wanted.rocm_version) or tables.ROCM_DEFAULT_VERSION
        why = f"ROCm {show(version)} from AMD's repository ({repository})"
    problems = []
    if version < tables.LLAMACPP_MIN_HIP:
        where = (
            f"AMD's repository has ROCm {show(tables.ROCM_DEFAULT_VERSION)} (rocm: amd) for "
            f"{', '.join(f'{d} {v}' for d, v in sorted(tables.ROCM_REPO_SUITES))}"
        )
        problems.append(
            f"the pinned llama.cpp needs ROCm/HIP {show(tables.LLAMACPP_MIN_HIP)} or newer; "
            f"{why} is older: {where}, or install ROCm yourself (rocm: present)"
        )
    for gpu in hardware.gpus:
        span = tables.ROCM_GFX_SUPPORT.get(gpu.gfx_target or "")
        if gpu.vendor != "amd" or not gpu.gfx_target:
            continue
        if span is None:
            result.warnings.append(
                f"{gpu.gfx_target} is not in AMD's ROCm support lists as rigctl knows them: it "
                "may need HSA_OVERRIDE_GFX_VERSION"
            )
            continue
        first, dropped = span
        if version < first or (dropped is not None and version >= dropped):
            supported = f"{show(first)}" + (f" up to before {show(dropped)}" if dropped else " and newer")
            problems.append(
                f"{gpu.name} ({gpu.gfx_target}) is not supported by ROCm {show(version)} "
                f"(ROCm {supported}): pin rocm_version accordingly"
            )
    if problems:
        result.errors += problems
        return None
    result.reasons.append(why)
    return Toolkit("rocm", source, show(version), repository)
