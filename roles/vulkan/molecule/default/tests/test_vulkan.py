"""The ``vulkan`` role on a converged Debian host: what its README promises.

Run by Molecule's verifier and by ``tests/test_roles.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key).
"""

from __future__ import annotations

import shlex

import pytest
import testinfra.host
from rigctl.roles.vulkan import defaults

#: A compute shader as llama.cpp's Vulkan build compiles hundreds of (GLSL 450, one workgroup).
SHADER = "#version 450\nlayout(local_size_x = 1) in;\nvoid main() {}\n"


@pytest.mark.parametrize("package", defaults.VULKAN_APT_PACKAGES)
def test_apt_package_installed(host: testinfra.host.Host, package: str) -> None:
    assert host.package(package).is_installed, f"{package} is not installed"


def test_lavapipe_is_a_vulkan_device(host: testinfra.host.Host) -> None:
    # Mesa's CPU device: what a host without a GPU has, and what detection reads
    summary = host.check_output("vulkaninfo --summary 2>/dev/null")
    assert "llvmpipe" in summary and "PHYSICAL_DEVICE_TYPE_CPU" in summary, summary


def test_glslc_compiles_a_compute_shader(host: testinfra.host.Host) -> None:
    out = host.run(
        f"d=$(mktemp -d) && printf %s {shlex.quote(SHADER)} > $d/s.comp && "
        "glslc -fshader-stage=compute $d/s.comp -o $d/s.spv && od -An -tx4 -N4 $d/s.spv; rm -rf $d"
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ["07230203"]  # SPIR-V's magic number


def test_spirv_headers_cmake_package_is_found(host: testinfra.host.Host) -> None:
    # llama.cpp's ggml-vulkan: find_package(SPIRV-Headers CONFIG REQUIRED)
    found = host.run("ls /usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake "
                     "/usr/lib/*/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake 2>/dev/null")
    assert found.stdout.strip(), "no SPIRV-HeadersConfig.cmake"
