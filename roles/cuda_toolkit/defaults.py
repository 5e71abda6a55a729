"""Role variables of ``cuda_toolkit``, with their defaults. Which toolkit (source and version)
is the plan's choice (host data ``cuda_toolkit``, ``cuda_toolkit_version``: see
:mod:`rigctl.plan.gpu_software`); these say what each choice installs."""

from __future__ import annotations

#: Debian's own toolkit, from ``non-free`` (nvcc, cudart, cuBLAS and the rest).
CUDA_TOOLKIT_DEBIAN_PACKAGES: list[str] = ["nvidia-cuda-toolkit"]

#: The components Debian's toolkit needs beside ``main``: it is in ``non-free``, and some of
#: its dependencies are in ``contrib``.
CUDA_TOOLKIT_DEBIAN_COMPONENTS: list[str] = ["contrib", "non-free"]

#: What a host that receives a prebuilt CUDA build needs of Debian's toolkit: the runtime
#: libraries llama.cpp links (cudart, cuBLAS, cuBLASLt), per toolkit version.
CUDA_TOOLKIT_DEBIAN_RUNTIME: dict[str, list[str]] = {
    "11.8": ["libcudart11.0", "libcublas11", "libcublaslt11"],
    "12.4": ["libcudart12", "libcublas12", "libcublaslt12"],
}

#: NVIDIA's toolkit package, per version ("12.8" -> ``cuda-toolkit-12-8``).
CUDA_TOOLKIT_NVIDIA_PACKAGE: str = "cuda-toolkit-{major}-{minor}"

#: NVIDIA's runtime libraries for a prebuilt build, per version.
CUDA_TOOLKIT_NVIDIA_RUNTIME: list[str] = ["cuda-cudart-{major}-{minor}", "libcublas-{major}-{minor}"]

#: Where the apt source for Debian's extra components is written.
CUDA_TOOLKIT_DEBIAN_SOURCE_FILE: str = "/etc/apt/sources.list.d/rigctl-cuda-non-free.list"
