"""Role variables of ``rocm``, with their defaults. Which ROCm (source and version) is the
plan's choice (host data ``rocm``, ``rocm_version``: :mod:`rigctl.plan.gpu_software`)."""

from __future__ import annotations

#: Debian's own ROCm (Debian 13): HIP's compiler driver, hipBLAS and rocBLAS with their
#: headers, and the CMake modules llama.cpp's HIP build loads.
ROCM_DEBIAN_PACKAGES: list[str] = ["hipcc", "libhipblas-dev", "librocblas-dev", "rocm-cmake"]

#: From AMD's repository: the HIP SDK (hipcc, the ROCm LLVM, hipBLAS, rocBLAS, rocm-cmake).
ROCM_AMD_PACKAGES: list[str] = ["rocm-hip-sdk"]

#: AMD's repositories (host data ``rocm_repo_base_url``): ``<base>/<version> <suite> main``.
ROCM_REPO_BASE_URL: str = "https://repo.radeon.com/rocm/apt"

#: AMD's signing key (ASCII-armoured; apt reads ``.asc`` keyrings as they are).
ROCM_REPO_KEY_URL: str = "https://repo.radeon.com/rocm/rocm.gpg.key"

#: Where the key and the source go on the host; AMD's packages are pinned above the
#: distribution's (priority 600, as AMD's install guide does).
ROCM_KEYRING: str = "/etc/apt/keyrings/rocm.asc"
ROCM_SOURCE_FILE: str = "/etc/apt/sources.list.d/rocm.list"
ROCM_PIN_FILE: str = "/etc/apt/preferences.d/rocm-pin-600"
