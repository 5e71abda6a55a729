"""llama.cpp's backends and their CMake switches: the one table in rigctl (after upstream's
docs/build.md). The planner picks a backend and its targets; this turns them into arguments.

Upstream removed the Makefile build (`make GGML_CUDA=1` now stops with "The Makefile build has
been replaced by CMake"), so every backend is a CMake configure + build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rigctl.errors import BadInput

#: For every build: a release build of static binaries (a build directory can be copied to
#: another host with the same key), only what rigctl serves, and nothing fetched at build time
#: (the web UI would otherwise be downloaded from the internet; hosts may be offline).
COMMON_ARGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",  # rigctl fetches models itself; llama-server needs no HTTPS client
)

#: What rigctl builds: the server it serves with, and llama-bench for honest benchmarks.
TARGETS: tuple[str, ...] = ("llama-server", "llama-bench")


@dataclass(frozen=True)
class Backend:
    name: str
    args: tuple[str, ...]
    #: environment for the configure step (shell fragments evaluated on the host)
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


BACKENDS: dict[str, Backend] = {
    # GGML_NATIVE tunes for the build host's CPU (-march=native): the build key includes the
    # CPU's flags, so only hosts with the same instruction sets share a build.
    "cpu": Backend("cpu", ("-DGGML_NATIVE=ON",), note="CPU only, -march=native"),
    "cuda": Backend(
        "cuda",
        ("-DGGML_NATIVE=ON", "-DGGML_CUDA=ON"),
        # Debian's nvcc is on PATH (/usr/bin/nvcc); NVIDIA's packages put it under
        # /usr/local/cuda/bin, which is not
        env={"CUDACXX": "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"},
        note="needs the CUDA toolkit (nvcc)",
    ),
    "rocm": Backend(
        "rocm",
        ("-DGGML_NATIVE=ON", "-DGGML_HIP=ON"),
        # upstream: HIPCXX="$(hipconfig -l)/clang" HIP_PATH="$(hipconfig -R)" cmake ...
        # HIP_PLATFORM: hipcc and hipconfig take a host that also has nvcc for an NVIDIA one
        # (found on a lab host with both SDKs)
        env={
            "HIP_PLATFORM": "amd",
            "HIPCXX": "$(HIP_PLATFORM=amd hipconfig -l)/clang",
            "HIP_PATH": "$(HIP_PLATFORM=amd hipconfig -R)",
        },
        note="needs ROCm (hipconfig)",
    ),
    "metal": Backend("metal", ("-DGGML_METAL=ON",), note="default on macOS"),
    "vulkan": Backend(
        "vulkan", ("-DGGML_NATIVE=ON", "-DGGML_VULKAN=ON"), note="needs Vulkan headers and glslc"
    ),
}


def cmake_args(
    backend: str,
    *,
    cuda_architectures: list[str] | None = None,
    gpu_targets: list[str] | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The CMake configure arguments for a backend.

    + cuda_architectures: compute capabilities as CMake wants them ("89" for 8.9); without
      them CMake builds llama.cpp's default set (slower build, bigger binary)
    + gpu_targets: AMD gfx targets ("gfx1100")
    + extra: more -D arguments from the host data ``llamacpp_cmake_args``
    """
    if backend not in BACKENDS:
        raise BadInput(
            f"unknown llama.cpp backend {backend!r} (one of {', '.join(BACKENDS)})", field="backend"
        )
    args = [*COMMON_ARGS, *BACKENDS[backend].args]
    if backend == "cuda" and cuda_architectures:
        args.append(f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(sorted(set(cuda_architectures)))}")
    if backend == "rocm" and gpu_targets:
        args.append(f"-DGPU_TARGETS={';'.join(sorted(set(gpu_targets)))}")
    for arg in extra or []:
        if not arg.startswith("-D"):
            raise BadInput(f"only -D options are allowed, got {arg!r}", field="llamacpp_cmake_args")
        args.append(arg)
    return args


def cuda_architecture(compute_capability: str) -> str:
    """ "8.9" -> "89", as CMAKE_CUDA_ARCHITECTURES wants it."""
    major, _, minor = compute_capability.partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        raise BadInput(
            f"not a compute capability: {compute_capability!r}", field="compute_capability"
        )
    return f"{major}{minor or '0'}"
