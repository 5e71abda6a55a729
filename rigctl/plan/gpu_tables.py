"""The GPU software tables the pre-flight checks read: which toolkit runs on which driver, which
GPU a toolkit still compiles for, which ROCm supports which gfx target, and what the pinned
llama.cpp needs. Pure data; every row says where it comes from.

Versions are ``(major, minor)`` tuples; drivers are strings as ``nvidia-smi`` prints them
("550.54.14"), compared as ``parse(text, 3)``. A toolkit or GPU missing from a table is not refused for that
alone: the check says the table does not know it (a warning) and goes by the rules that hold
for the whole major version.
"""

from __future__ import annotations

Version = tuple[int, ...]

# --------------------------------------------------------------------------- NVIDIA

#: CUDA toolkit -> the Linux x86_64 driver it ships with (NVIDIA's release notes, "CUDA Toolkit
#: and Corresponding Driver Versions", GA releases). A driver at least this new runs everything
#: built with the toolkit.
CUDA_TOOLKIT_DRIVER: dict[Version, str] = {
    (11, 8): "520.61.05",
    (12, 0): "525.60.13",
    (12, 1): "530.30.02",
    (12, 2): "535.54.03",
    (12, 3): "545.23.06",
    (12, 4): "550.54.14",
    (12, 5): "555.42.02",
    (12, 6): "560.28.03",
    (12, 8): "570.26",
    (12, 9): "575.51.03",
    (13, 0): "580.65.06",
}

#: CUDA major -> the oldest driver that runs any toolkit of that major through minor version
#: compatibility (NVIDIA's "CUDA Compatibility" guide, table "CUDA Toolkit 11.x, 12.x, and 13.x
#: Driver Version Ranges"). Below it, binaries of that major do not start.
CUDA_MAJOR_MIN_DRIVER: dict[int, str] = {
    11: "450.80.02",
    12: "525.60.13",
    13: "580.65.06",
}

#: Compute capability -> (the first toolkit that compiles for it, the first toolkit that no
#: longer does, or None). From NVIDIA's release notes: CUDA 12.0 dropped Kepler (3.5, 3.7);
#: CUDA 13.0 dropped offline compilation for everything before Turing (5.x, 6.x, 7.0, 7.2).
CUDA_ARCH_TOOLKITS: dict[Version, tuple[Version, Version | None]] = {
    (3, 5): ((5, 0), (12, 0)),
    (3, 7): ((5, 0), (12, 0)),
    (5, 0): ((6, 0), (13, 0)),
    (5, 2): ((6, 0), (13, 0)),
    (5, 3): ((6, 0), (13, 0)),
    (6, 0): ((8, 0), (13, 0)),
    (6, 1): ((8, 0), (13, 0)),
    (6, 2): ((8, 0), (13, 0)),
    (7, 0): ((9, 0), (13, 0)),
    (7, 2): ((9, 0), (13, 0)),
    (7, 5): ((10, 0), None),
    (8, 0): ((11, 0), None),
    (8, 6): ((11, 1), None),
    (8, 7): ((11, 4), None),
    (8, 9): ((11, 8), None),
    (9, 0): ((11, 8), None),
    (10, 0): ((12, 8), None),
    (10, 3): ((12, 9), None),
    (12, 0): ((12, 8), None),
    (12, 1): ((12, 9), None),
}

#: The CUDA toolkit Debian ships in ``non-free`` (package ``nvidia-cuda-toolkit``), per Debian
#: major version: bookworm 11.8.89, trixie 12.4.131. Ubuntu's ``multiverse`` has one too, but
#: rigctl installs NVIDIA's on Ubuntu (the one NVIDIA supports there).
DEBIAN_CUDA_TOOLKIT: dict[str, Version] = {"12": (11, 8), "13": (12, 4)}

#: NVIDIA's CUDA repositories, per distribution: the path component under
#: ``developer.download.nvidia.com/compute/cuda/repos/`` (``debian13``, ``ubuntu2404``...).
NVIDIA_REPO_DISTROS: dict[tuple[str, str], str] = {
    ("debian", "12"): "debian12",
    ("debian", "13"): "debian13",
    ("ubuntu", "22.04"): "ubuntu2204",
    ("ubuntu", "24.04"): "ubuntu2404",
    ("rhel", "9"): "rhel9",
    ("rhel", "10"): "rhel10",
    ("rocky", "9"): "rhel9",
    ("almalinux", "9"): "rhel9",
    ("fedora", "42"): "fedora42",
}

# --------------------------------------------------------------------------- AMD

#: gfx target -> (the first ROCm release that supports it on Linux, the first that no longer
#: does, or None). After AMD's "System requirements (Linux)" pages of each release; targets AMD
#: never listed are absent (llama.cpp may still run them with HSA_OVERRIDE_GFX_VERSION).
ROCM_GFX_SUPPORT: dict[str, tuple[Version, Version | None]] = {
    "gfx803": ((1, 0), (5, 0)),
    "gfx900": ((1, 0), (6, 0)),
    "gfx906": ((3, 0), None),
    "gfx908": ((4, 0), None),
    "gfx90a": ((5, 0), None),
    "gfx942": ((6, 0), None),
    "gfx950": ((7, 0), None),
    "gfx1030": ((5, 0), None),
    "gfx1100": ((5, 7), None),
    "gfx1101": ((6, 1), None),
    "gfx1102": ((6, 4), None),
    "gfx1151": ((7, 0), None),
    "gfx1200": ((6, 4), None),
    "gfx1201": ((6, 4), None),
}

#: The ROCm (HIP) release Debian ships as its own packages (``hipcc``, ``libhipblas-dev``,
#: ``librocblas-dev``, ``rocm-cmake``), per Debian major version: trixie's hipcc is 5.7.1.
DEBIAN_ROCM: dict[str, Version] = {"13": (5, 7)}

#: What rigctl installs from AMD's repository (``repo.radeon.com/rocm/apt/<version>``) unless
#: host data pins ``rocm_version``.
ROCM_DEFAULT_VERSION: Version = (6, 4)

#: AMD's apt repository suite per distribution (AMD's Linux install guide: Debian 12 uses the
#: jammy repository).
ROCM_REPO_SUITES: dict[tuple[str, str], str] = {
    ("ubuntu", "22.04"): "jammy",
    ("ubuntu", "24.04"): "noble",
    ("debian", "12"): "jammy",
}

# --------------------------------------------------------------------------- llama.cpp

#: What the pinned llama.cpp (commit 0c1e57098) needs: ggml-hip's CMakeLists stops with "At
#: least ROCM/HIP V6.1 is required"; ggml-cuda's code uses CUDA 11.7 features unguarded
#: (CUDART_VERSION >= 11070 is its oldest switch) and its default architectures need 11.8.
LLAMACPP_MIN_HIP: Version = (6, 1)
LLAMACPP_MIN_CUDA: Version = (11, 8)


def show(version: Version) -> str:
    """(12, 4) -> "12.4"; (550, 54, 14) -> "550.54.14"."""
    return ".".join(str(part) for part in version)


def parse(text: str | None, parts: int = 2) -> Version | None:
    """ "12.4" -> (12, 4); "550.54.14" -> (550, 54, 14) with ``parts=3``; None when unreadable.

    Missing parts are zeros, so "570.26" reads as (570, 26, 0)."""
    if not text:
        return None
    fields = text.strip().split(".")
    try:
        numbers = [int(field) for field in fields[:parts]]
    except ValueError:
        return None
    return tuple(numbers + [0] * (parts - len(numbers)))
