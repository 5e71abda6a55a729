"""HIP on a Debian 13 lab host: the pre-flight refusal, through ``rigctl provision``.

The pinned llama.cpp needs HIP 6.1 or newer (its CMake stops with ``FATAL_ERROR`` below it) and
Debian 13 ships ROCm 5.7, so a trixie host with an AMD GPU is refused at the plan, before
anything changes on it, with the version it needs and where to get it. The host detects as an
RX 7900 XTX (gfx1100) through the TEST DOUBLE of its KFD topology (tests/doubles/kfd_topology.py:
a real topology, mounted over the container's /sys/class); detection reads it over SSH with
rigctl's own fact. The HIP configure line is pinned by tests/golden/llamacpp-configure-hip.txt;
the HIP build itself is not compiled here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import forget_known_hosts, rigctl
from doubles.kfd_topology import mount_into

from rigctl.lab import Lab, LabHost
from rigctl.pyinfra_api import Session, load_inventory, run_command

pytestmark = [pytest.mark.lab]

#: A trixie host of its own (its /sys/class is the double's until it is stopped).
HIP_INDEX = 24


@pytest.fixture(scope="module")
def amd_host(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[LabHost, Path]:
    host = lab.up_host(HIP_INDEX, release="trixie")
    forget_known_hosts()
    mount_into(host)
    data = dict(lab.host_data(host), runtime="llamacpp")
    inventory = tmp_path_factory.mktemp("hip") / "amd.py"
    inventory.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
    return host, inventory


def test_trixie_host_detects_as_gfx1100(amd_host: tuple[LabHost, Path]) -> None:
    host, inventory = amd_host
    result = rigctl("detect", str(inventory), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    detected = json.loads(result.stdout)["hosts"][host.name]
    assert detected["accelerator"] == "rocm"
    assert [gpu["gfx_target"] for gpu in detected["gpus"]] == ["gfx1100"]
    assert detected["os"]["version"].startswith("13")


def test_hip_build_is_refused_before_anything_changes(amd_host: tuple[LabHost, Path]) -> None:
    host, inventory = amd_host
    result = rigctl("provision", str(inventory), "--json", timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    outcome = json.loads(result.stdout)["hosts"][host.name]
    assert outcome["status"] == "failed" and outcome["changed_ops"] == []
    error = outcome["error"]
    # what it needs, what the host would get, and where to get the right one
    assert error.startswith("plan: "), error
    for said in ("HIP 6.1 or newer", "ROCm 5.7", "AMD's repository", "rocm: amd", "rocm: present"):
        assert said in error, error
    with Session(load_inventory(str(inventory))) as session:
        ok, out, err = run_command(
            session.host(host.name),
            "ls /opt/rigctl /var/lib/rigctl 2>&1; dpkg-query -W hipcc rocm-cmake 2>&1; true",
        )
    assert ok, err
    assert out.count("No such file or directory") == 2, out
    assert "no packages found matching hipcc" in out, out
