"""`rigctl verify` on a real lab host: passes on a provisioned host, and after each fault names
the check that broke (exit 1); re-provisioning converges and verify passes again.

The host is provisioned as in test_llamacpp_e2e (model over HTTP from 127.0.0.1, llama.cpp built
on the host); faults are injected over SSH by hand, as an operator or an attacker would."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import rigctl
from fileserver import FileServer

from rigctl.lab import LAB_MODEL_FILE, Lab
from rigctl.lab.model import place_model
from rigctl.paths import cache_dir
from rigctl.pyinfra_api import Session, load_inventory, run_command
from rigctl.verify.results import CHECKS

pytestmark = [pytest.mark.lab, pytest.mark.slow]

UNIT = "rigctl-llama-server"
UNIT_FILE = f"/etc/systemd/system/{UNIT}.service"
KEY_FILE = f"/etc/rigctl/{UNIT}/api-key"
MODEL = f"/var/lib/rigctl/models/{LAB_MODEL_FILE}"


@pytest.fixture(scope="module")
def model_server(lab: Lab) -> Iterator[FileServer]:
    path = place_model(lab.models_dir / LAB_MODEL_FILE)
    with FileServer(path.parent) as server:
        yield server


@pytest.fixture(scope="module")
def controller_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh controller cache, seeded with the packed llama.cpp source when this machine has it."""
    cache = tmp_path_factory.mktemp("rigctl-cache")
    sources = cache_dir() / "sources"
    if sources.is_dir():
        shutil.copytree(sources, cache / "sources")
    return cache


@pytest.fixture(scope="module")
def provisioned(
    lab: Lab,
    model_server: FileServer,
    controller_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    host = lab.running_hosts()[0]
    data = dict(lab.host_data(host), model_mirrors=[f"{model_server.url}/{LAB_MODEL_FILE}"])
    directory = tmp_path_factory.mktemp("verify")
    inventory = directory / "verify.py"
    inventory.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
    env = {"RIGCTL_CACHE_DIR": str(controller_cache), "RIGCTL_STATE_DIR": str(directory / "state")}
    provision(inventory, env)
    return {"host": host, "data": data, "inventory": inventory, "env": env, "directory": directory}


def provision(inventory: Path, env: dict[str, str]) -> None:
    result = rigctl("provision", str(inventory), "--json", timeout=1800, env=env)
    if result.returncode != 0:
        pytest.fail(f"provision failed: {result.stdout[-2500:]}\n{_journal(inventory)}")


def _journal(inventory: Path) -> str:
    """The unit's status and journal, to say why a provision failed (the lab is gone afterwards)."""
    try:
        with Session(load_inventory(str(inventory))) as session:
            host = next(iter(session.results))
            _ok, out, err = run_command(
                session.host(host),
                f"systemctl status {UNIT} --no-pager -n 0; journalctl -u {UNIT} -n 60 --no-pager -o short-precise",
            )
        return out + err
    except Exception as e:
        return f"(no journal: {e})"


def verify(
    provisioned: dict[str, Any], *argv: str, inventory: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    result = rigctl(
        "verify",
        str(inventory or provisioned["inventory"]),
        *argv,
        timeout=900,
        env=provisioned["env"],
    )
    return (
        result.returncode,
        json.loads(result.stdout) if "--json" in argv else {},
        result.stdout + result.stderr,
    )


def on_host(provisioned: dict[str, Any], command: str) -> str:
    with Session(load_inventory(str(provisioned["inventory"]))) as session:
        ok, out, err = run_command(session.host(provisioned["host"].name), command)
    assert ok, f"{command}: {err}"
    return out


def assert_all_pass(provisioned: dict[str, Any]) -> dict[str, Any]:
    code, document, _ = verify(provisioned, "--json")
    name = provisioned["host"].name
    host = document["hosts"][name]
    assert code == 0, json.dumps(host, indent=2)
    assert host["status"] == "passed" and host["error"] is None
    assert list(host["checks"]) == list(CHECKS)
    assert {check["status"] for check in host["checks"].values()} == {"passed"}, host
    return document


def test_verify_passes_on_a_provisioned_host(provisioned: dict[str, Any]) -> None:
    document = assert_all_pass(provisioned)
    checks = document["hosts"][provisioned["host"].name]["checks"]
    assert document["ok"] is True and document["failed"] == []
    assert document["lockfile"] == str(provisioned["inventory"].with_suffix(".lock.json"))
    assert "as the lockfile verify.lock.json pins" in checks["model"]["message"]
    assert checks["service"]["message"].startswith(f"{UNIT}.service enabled and active as llama")
    assert checks["listening"]["message"] == f"{provisioned['data']['listen']}:8080 (llama-server)"
    # the table, for people
    code, _, text = verify(provisioned)
    assert code == 0 and "passed" in text and "FAIL" not in text


# fault: (command that breaks the host, the check that must name it, the checks that fail with
# it when that is certain (None: whatever else breaks in its wake), words of the failure)
FAULTS: dict[str, tuple[str, str, set[str] | None, str]] = {
    "service stopped": (
        f"systemctl stop {UNIT}",
        "service",
        {"service", "listening", "health", "auth", "models", "metrics"},
        "is not running (ActiveState=inactive",
    ),
    "key world-readable": (
        f"chmod 644 {KEY_FILE}",
        "api_key",
        {"api_key"},
        "has mode 0644, expected 0600",
    ),
    # llama-server maps the model: cutting the file under it may crash it too
    "model truncated": (
        f"truncate -s 1000000 {MODEL}",
        "model",
        None,
        "has 1000000 bytes, the lockfile says",
    ),
    # as root, with no capabilities, the server cannot read its own 0600 key: it may not come up
    "unit user root": (
        f"sed -i 's/^User=.*/User=root/' {UNIT_FILE} && systemctl daemon-reload && systemctl restart {UNIT}",
        "service",
        None,
        "runs as User=root, planned llama",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_verify_names_the_broken_check_and_provision_repairs_it(
    provisioned: dict[str, Any], fault: str
) -> None:
    command, check, failing, words = FAULTS[fault]
    name = provisioned["host"].name
    on_host(provisioned, command)
    try:
        code, document, _ = verify(provisioned, "--json")
        host = document["hosts"][name]
        assert code == 1, json.dumps(host, indent=2)
        assert document["failed"] == [name] and host["status"] == "failed"
        assert check in host["failed_checks"], host
        assert words in host["checks"][check]["message"], host["checks"][check]
        if failing is not None:
            assert set(host["failed_checks"]) == failing, host
        code, _, text = verify(provisioned)
        assert (
            code == 1
            and "FAIL" in text
            and f"host {name}: failed checks: " in text
            and check in text
        )
    finally:
        provision(provisioned["inventory"], provisioned["env"])  # converge: undo the fault
    assert_all_pass(provisioned)


def test_verify_checks_the_model_against_the_lockfile(provisioned: dict[str, Any]) -> None:
    """The lockfile, not the host's own manifest, is what the model must match."""
    lockfile = provisioned["inventory"].with_suffix(".lock.json")
    pinned = lockfile.read_text()
    lock = json.loads(pinned)
    lock["hosts"][provisioned["host"].name]["sha256"] = "0" * 64
    lockfile.write_text(json.dumps(lock))
    try:
        code, document, _ = verify(provisioned, "--json")
    finally:
        lockfile.write_text(pinned)
    host = document["hosts"][provisioned["host"].name]
    assert code == 1 and host["failed_checks"] == ["model"], host
    assert "lockfile pins 000000000000" in host["checks"]["model"]["message"]


def test_unreachable_host_is_reported_and_the_others_checked(provisioned: dict[str, Any]) -> None:
    name, data = provisioned["host"].name, provisioned["data"]
    nobody = data["ssh_hostname"].rsplit(".", 1)[0] + ".250"  # in the lab's network, no host there
    inventory = provisioned["directory"] / "with-ghost.py"
    inventory.write_text(
        f"hosts = [({name!r}, {data!r}), ('ghost', {dict(data, ssh_hostname=nobody)!r})]\n"
    )
    code, document, _ = verify(provisioned, "--json", inventory=inventory)
    assert code == 1 and document["failed"] == ["ghost"]
    assert document["hosts"]["ghost"]["status"] == "unreachable"
    assert f"could not connect to {nobody}:22" in document["hosts"]["ghost"]["error"]
    assert document["hosts"][name]["status"] == "passed"
    code, document, _ = verify(provisioned, "--json", "--limit", name, inventory=inventory)
    assert code == 0 and list(document["hosts"]) == [name]
