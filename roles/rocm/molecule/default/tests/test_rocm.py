"""The ``rocm`` role on a converged Debian 13 host (its scenario: Debian's own ROCm): what its
README promises.

Run by Molecule's verifier and by ``tests/test_gpu_builds.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key). No GPU is needed: hipcc compiles device
code for any gfx target.
"""

from __future__ import annotations

import shlex

import pytest
import testinfra.host
from rigctl.roles.rocm import defaults

from rigctl.plan.gpu_tables import DEBIAN_ROCM, show

KERNEL = (
    "#include <hip/hip_runtime.h>\n"
    "__global__ void scale(float *x, float a) { x[threadIdx.x] *= a; }\n"
)


@pytest.mark.parametrize("package", defaults.ROCM_DEBIAN_PACKAGES)
def test_debian_rocm_packages_installed(host: testinfra.host.Host, package: str) -> None:
    assert host.package(package).is_installed, f"{package} is not installed"


def test_hip_is_debians_version(host: testinfra.host.Host) -> None:
    major = host.system_info.release.split(".")[0]
    out = host.check_output("HIP_PLATFORM=amd hipconfig --version")
    assert out.startswith(show(DEBIAN_ROCM[major]) + "."), out


def test_hipcc_compiles_device_code_for_gfx1100(host: testinfra.host.Host) -> None:
    out = host.run(
        f"d=$(mktemp -d) && printf %s {shlex.quote(KERNEL)} > $d/k.hip && "
        # HIP_PLATFORM: hipcc takes a host that has nvcc too (the cuda_toolkit scenario's) for an
        # NVIDIA one; llama.cpp's HIP build sets it as well
        "HIP_PLATFORM=amd hipcc --genco --offload-arch=gfx1100 -o $d/k.co $d/k.hip && "
        "grep -c -a amdgcn-amd-amdhsa--gfx1100 $d/k.co; rc=$?; rm -rf $d; exit $rc"
    )
    assert out.rc == 0, out.stderr[-2000:]
    assert int(out.stdout.strip() or 0) > 0


def test_rocblas_and_hipblas_are_found(host: testinfra.host.Host) -> None:
    listed = host.check_output("ldconfig -p")
    for library in ("librocblas.so.", "libhipblas.so."):
        assert library in listed, f"{library} is not in the linker's cache"


def test_rocm_cmake_modules_are_installed(host: testinfra.host.Host) -> None:
    # llama.cpp's HIP build: find_package(hip), and rocm-cmake's modules
    found = host.check_output("dpkg -L rocm-cmake | grep -c '\\.cmake$' || true")
    assert int(found or 0) > 0
