"""The ``cuda_toolkit`` role on a converged Debian host (its scenario: Debian's own toolkit):
what its README promises.

Run by Molecule's verifier and by ``tests/test_gpu_builds.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key). No GPU is needed: nvcc compiles device code
for any architecture.
"""

from __future__ import annotations

import shlex

import pytest
import testinfra.host
from rigctl.roles.cuda_toolkit import defaults

from rigctl.plan.gpu_tables import DEBIAN_CUDA_TOOLKIT, show

#: A kernel as llama.cpp's CUDA backend has hundreds of.
KERNEL = "__global__ void scale(float *x, float a) { x[threadIdx.x] *= a; }\n"


def _toolkit_version(host: testinfra.host.Host) -> str:
    major = host.system_info.release.split(".")[0]
    return show(DEBIAN_CUDA_TOOLKIT[major])


@pytest.mark.parametrize("package", defaults.CUDA_TOOLKIT_DEBIAN_PACKAGES)
def test_debian_toolkit_installed(host: testinfra.host.Host, package: str) -> None:
    assert host.package(package).is_installed, f"{package} is not installed"


def test_non_free_is_enabled_on_the_hosts_own_mirror(host: testinfra.host.Host) -> None:
    source = host.file(defaults.CUDA_TOOLKIT_DEBIAN_SOURCE_FILE)
    assert source.exists, source.path
    text = source.content_string
    assert all(component in text for component in defaults.CUDA_TOOLKIT_DEBIAN_COMPONENTS), text


def test_nvcc_is_the_planned_version(host: testinfra.host.Host) -> None:
    out = host.check_output("nvcc --version")
    assert f"release {_toolkit_version(host)}" in out, out


def test_runtime_libraries_are_found(host: testinfra.host.Host) -> None:
    # what a llama.cpp CUDA build links (and a host installing a kept build gets alone)
    listed = host.check_output("ldconfig -p")
    for library in ("libcudart.so.", "libcublas.so.", "libcublasLt.so."):
        assert library in listed, f"{library} is not in the linker's cache"


def test_nvcc_compiles_device_code_for_sm_89(host: testinfra.host.Host) -> None:
    out = host.run(
        f"d=$(mktemp -d) && printf %s {shlex.quote(KERNEL)} > $d/k.cu && "
        "nvcc -arch=sm_89 -cubin -o $d/k.cubin $d/k.cu && cuobjdump --list-elf $d/k.cubin; "
        "rc=$?; rm -rf $d; exit $rc"
    )
    assert out.rc == 0, out.stderr[-2000:]
    assert "sm_89" in out.stdout, out.stdout
