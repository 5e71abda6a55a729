"""The ``toolchain`` role on a converged Debian host: what its README promises.

Run by Molecule's verifier and by ``tests/test_roles.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key).
"""

from __future__ import annotations

import pytest
import testinfra.host
from rigctl.roles.toolchain import defaults

#: llama.cpp's CMakeLists.txt asks for at least this CMake.
CMAKE_MINIMUM = (3, 14)


@pytest.mark.parametrize("package", defaults.TOOLCHAIN_APT_PACKAGES)
def test_apt_package_installed(host: testinfra.host.Host, package: str) -> None:
    assert host.package(package).is_installed, f"{package} is not installed"


@pytest.mark.parametrize(
    "tool", ["cc", "c++", "make", "cmake", "git", "ccache", "pkg-config", "curl"]
)
def test_tool_on_path(host: testinfra.host.Host, tool: str) -> None:
    assert host.exists(tool), f"{tool} is not on PATH"


def test_cmake_new_enough_for_llamacpp(host: testinfra.host.Host) -> None:
    first = host.check_output("cmake --version").splitlines()[0]  # cmake version 3.25.1
    version = tuple(int(part) for part in first.split()[-1].split(".")[:2])
    assert version >= CMAKE_MINIMUM, first


def test_apt_update_recorded_within_cache_time(host: testinfra.host.Host) -> None:
    # the stamp `apt-get update` leaves (pyinfra touches it on Debian): a re-run within
    # TOOLCHAIN_APT_CACHE_TIME does not update again, so it reports no change
    stamp = host.file("/var/lib/apt/periodic/update-success-stamp")
    assert stamp.exists
    now = int(host.check_output("date +%s"))
    assert 0 <= now - stamp.mtime.timestamp() < defaults.TOOLCHAIN_APT_CACHE_TIME


def test_cmake_builds_cxx_through_ccache(host: testinfra.host.Host) -> None:
    """What the toolchain is for: a CMake C++ build, compiled through ccache, that runs."""
    work = host.check_output("mktemp -d")
    try:
        host.check_output(
            "printf '%%s\\n' 'cmake_minimum_required(VERSION 3.14)' 'project(probe CXX)'"
            " 'add_executable(probe probe.cpp)' > %s/CMakeLists.txt",
            work,
        )
        host.check_output(
            "printf '%%s\\n' '#include <iostream>' 'int main() { std::cout << \"built\" << std::endl; }'"
            " > %s/probe.cpp",
            work,
        )
        host.check_output(
            "cd %s && export CCACHE_DIR=%s/ccache"
            " && cmake -S . -B build -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null"
            " && cmake --build build >/dev/null",
            work,
            work,
        )
        assert host.check_output("%s/build/probe", work) == "built"
        stats = host.check_output("CCACHE_DIR=%s/ccache ccache --print-stats", work)
        counters = dict(line.split("\t", 1) for line in stats.splitlines() if "\t" in line)
        assert int(counters.get("cache_miss", "0")) >= 1, (
            f"nothing compiled through ccache: {stats}"
        )
    finally:
        host.run("rm -rf %s", work)
