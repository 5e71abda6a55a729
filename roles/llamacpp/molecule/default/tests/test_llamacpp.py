"""The ``llamacpp`` role on a converged host (CPU build): what its README promises.

Run by Molecule's verifier and by ``tests/test_roles.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key).
"""

from __future__ import annotations

import json
import re

import pytest
import testinfra.host
from rigctl.roles.llamacpp import backends, defaults

from rigctl.fetch.llamacpp_source import DEFAULT_COMMIT

PREFIX = defaults.LLAMACPP_PREFIX
CURRENT = f"{PREFIX}/current"


@pytest.fixture(scope="module")
def build_dir(host: testinfra.host.Host) -> str:
    """The build ``current`` points at (a link into ``builds/``, not a directory of its own)."""
    current = host.file(CURRENT)
    assert current.is_symlink, f"{CURRENT} is not a link"
    target = current.linked_to
    assert target.startswith(f"{PREFIX}/builds/"), target
    return target


@pytest.fixture(scope="module")
def build_info(host: testinfra.host.Host, build_dir: str) -> dict[str, object]:
    text = host.file(f"{build_dir}/BUILD_INFO.json").content_string
    # the first JSON value: builds made before a fix of the role's printf end with a stray "n"
    info, _end = json.JSONDecoder().raw_decode(text)
    assert isinstance(info, dict)
    return info


def test_build_named_by_version_backend_and_key(build_dir: str, build_info: dict) -> None:
    name = build_dir.rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9a-f]+-cpu-[0-9a-f]{12}", name), name
    assert build_info["build"] == name
    assert name == f"{build_info['version']}-{build_info['backend']}-{build_info['key']}"
    assert build_info["version"] == DEFAULT_COMMIT, "not the pinned llama.cpp source"


def test_built_with_the_backends_cmake_arguments(build_info: dict) -> None:
    # the one table of switches (backends.py): Release, static, no tests, no downloaded UI, ...
    assert build_info["cmake_args"] == backends.cmake_args("cpu")


@pytest.mark.parametrize("binary", backends.TARGETS)
def test_binary_installed_executable_and_self_contained(
    host: testinfra.host.Host, build_dir: str, binary: str
) -> None:
    path = host.file(f"{build_dir}/bin/{binary}")
    assert path.is_file and path.mode == 0o755 and path.user == "root"
    # -DBUILD_SHARED_LIBS=OFF: llama.cpp's own libraries are linked in, so a build can be
    # copied to another host (rigctl's kept builds)
    libraries = host.check_output("ldd %s", path.path)
    assert "not found" not in libraries, libraries
    assert not re.search(r"lib(llama|ggml)[^ ]*\.so", libraries), libraries


def test_llama_server_runs(host: testinfra.host.Host) -> None:
    # through `current`, the path units run
    result = host.run("%s/bin/llama-server --version", CURRENT)
    assert result.rc == 0, result.stderr
    assert "version:" in result.stdout + result.stderr


def test_install_was_atomic_and_scratch_removed(host: testinfra.host.Host, build_dir: str) -> None:
    assert not host.file(f"{build_dir}.partial").exists
    leftovers = host.run("ls -A %s 2>/dev/null", defaults.LLAMACPP_BUILD_ROOT).stdout.split()
    # a compile's tree and an uploaded build are removed once installed
    assert leftovers == [], leftovers
