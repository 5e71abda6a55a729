"""llama.cpp end to end on a real lab host: bare host -> built from source -> model fetched over
HTTP from 127.0.0.1 (the real Gemma 3 270M GGUF, checksum verified) -> hardened unit running as
its own user -> the real `openai` client gets a completion with the key and is refused without.
A second run changes nothing and rebuilds nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from conftest import rigctl
from fileserver import FileServer

from rigctl.lab import LAB_MODEL_FILE, Lab
from rigctl.lab.model import SHA256, place_model
from rigctl.paths import cache_dir
from rigctl.pyinfra_api import Session, load_inventory, read_file, run_command

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def model_server(lab: Lab) -> Iterator[FileServer]:
    path = place_model(lab.models_dir / LAB_MODEL_FILE)
    with FileServer(path.parent) as server:
        yield server


@pytest.fixture(scope="module")
def controller_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh controller cache (so the model really travels over HTTP), seeded with the packed
    llama.cpp source when this machine has it (tests may reuse caches, never need them)."""
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
) -> dict:
    host = lab.running_hosts()[0]
    data = dict(lab.host_data(host), model_mirrors=[f"{model_server.url}/{LAB_MODEL_FILE}"])
    inventory = tmp_path_factory.mktemp("e2e") / "e2e.py"
    inventory.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
    env = {"RIGCTL_CACHE_DIR": str(controller_cache)}
    first = _provision(inventory, env)
    return {"host": host, "inventory": inventory, "first": first, "env": env}


def _provision(inventory: Path, env: dict[str, str]) -> dict:
    result = _rigctl_env(env, "provision", str(inventory), "--json", timeout=1800)
    return json.loads(result.stdout)


def test_provision_builds_fetches_serves_and_smokes(
    provisioned: dict, model_server: FileServer, controller_cache: Path
) -> None:
    outcome = provisioned["first"]["hosts"][provisioned["host"].name]
    assert outcome["status"] == "changed"
    assert outcome["runtime"] == "llamacpp"
    assert any(op.endswith("llama.cpp: build " + outcome["build"]) for op in outcome["changed_ops"])
    assert (
        outcome["smoke"]["ok"]
        and outcome["smoke"]["ttft_ms"] > 0
        and outcome["smoke"]["tokens_per_second"] > 0
    )
    # the model travelled over HTTP from 127.0.0.1 into the controller cache, verified
    assert any(r["path"] == f"/{LAB_MODEL_FILE}" for r in model_server.faults.requests)
    cached = list((controller_cache / "models").rglob(LAB_MODEL_FILE))
    assert len(cached) == 1 and cached[0].stat().st_size == 253_113_024
    assert outcome["api_key_file"] == "/etc/rigctl/rigctl-llama-server/api-key"
    assert "key" not in json.dumps(outcome["smoke"]).lower()


def test_openai_client_with_and_without_key(provisioned: dict) -> None:
    host = provisioned["host"]
    outcome = provisioned["first"]["hosts"][host.name]
    with Session(load_inventory(str(provisioned["inventory"]))) as session:
        key = read_file(session.host(host.name), outcome["api_key_file"]).decode().strip()
    client = openai.OpenAI(
        base_url=f"{outcome['endpoint']}/v1", api_key=key, max_retries=0, timeout=120
    )
    reply = client.chat.completions.create(
        model="served",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage and reply.usage.completion_tokens > 0
    refused = openai.OpenAI(
        base_url=f"{outcome['endpoint']}/v1", api_key="not-the-key", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        refused.chat.completions.create(
            model="served", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )


def test_service_runs_hardened_as_its_own_user(provisioned: dict) -> None:
    host = provisioned["host"]
    with Session(load_inventory(str(provisioned["inventory"]))) as session:
        target = session.host(host.name)
        _ok, show, _ = run_command(
            target, "systemctl show rigctl-llama-server -p User -p ActiveState -p NoNewPrivileges"
        )
        _ok, security, _ = run_command(
            target, "systemd-analyze security rigctl-llama-server.service --no-pager | tail -1"
        )
        _ok, ps, _ = run_command(target, "ps -o user=,args= -C llama-server")
        _ok, key_stat, _ = run_command(
            target, "stat -c '%U %a' /etc/rigctl/rigctl-llama-server/api-key"
        )
        _ok, model_sum, _ = run_command(
            target, "sha256sum /var/lib/rigctl/models/gemma-3-270m-q4_k_m.gguf"
        )
    assert "User=llama" in show and "ActiveState=active" in show and "NoNewPrivileges=yes" in show
    exposure = float(re.search(r"exposure level for \S+: ([0-9.]+)", security).group(1))
    assert exposure <= 3.0, security
    assert ps.startswith("llama ") and "--api-key-file" in ps and "--api-key " not in ps
    assert key_stat == "llama 600"
    assert model_sum.split()[0] == SHA256


def test_second_run_changes_nothing_and_rebuilds_nothing(provisioned: dict) -> None:
    second = _provision(provisioned["inventory"], provisioned["env"])
    outcome = second["hosts"][provisioned["host"].name]
    assert outcome["status"] == "ok", outcome
    assert outcome["changed_ops"] == []
    assert outcome["build"] == provisioned["first"]["hosts"][provisioned["host"].name]["build"]
    assert outcome["smoke"]["ok"]


def test_a_host_with_the_same_build_key_receives_the_build(
    lab: Lab, provisioned: dict, model_server: FileServer, tmp_path: Path
) -> None:
    """The fleet compiles once: the second host gets the first host's binaries."""
    first, second = lab.running_hosts()[:2]
    mirror = [f"{model_server.url}/{LAB_MODEL_FILE}"]
    entries = [(h.name, dict(lab.host_data(h), model_mirrors=mirror)) for h in (first, second)]
    inventory = tmp_path / "fleet.py"
    inventory.write_text(f"hosts = {entries!r}\n")
    fleet = _provision(inventory, provisioned["env"])
    build = provisioned["first"]["hosts"][first.name]["build"]
    assert fleet["hosts"][first.name]["changed_ops"] == []
    received = fleet["hosts"][second.name]
    assert received["build"] == build and received["smoke"]["ok"]
    assert any(op.endswith(f"install prebuilt {build}") for op in received["changed_ops"])
    assert not any(op.endswith(f"build {build}") for op in received["changed_ops"])


def test_bench_measures_levels_and_compares_with_baseline(provisioned: dict, tmp_path: Path) -> None:
    env = dict(provisioned["env"], RIGCTL_STATE_DIR=str(tmp_path / "state"))
    argv = ["bench", str(provisioned["inventory"]), "--concurrency", "1,2", "--duration", "1",
            "--prompt-tokens", "64", "--max-tokens", "16", "--json"]
    first = json.loads(_rigctl_env(env, *argv).stdout)
    host = first["hosts"][provisioned["host"].name]
    assert host["runtime"] == "llamacpp" and host["error"] is None
    assert 48 <= host["prompt_tokens"] <= 80  # calibrated by the server's own count
    levels = {level["concurrency"]: level for level in host["levels"]}
    assert set(levels) == {1, 2}
    for level in levels.values():
        assert level["errors"] == 0 and level["requests"] >= level["concurrency"]
        assert level["aggregate_tps"] > 0 and level["decode_tps_per_request"] > 0 and level["ttft_p50_ms"] > 0
    assert host["vs_baseline"] == {}  # the first run is the baseline
    second = json.loads(_rigctl_env(env, *argv).stdout)["hosts"][provisioned["host"].name]
    assert set(second["vs_baseline"]) == {"1", "2"}
    assert isinstance(second["vs_baseline"]["1"]["aggregate_tps"], float)

    status = json.loads(_rigctl_env(env, "status", str(provisioned["inventory"]), "--json").stdout)
    row = status["hosts"][provisioned["host"].name]
    assert row["ok"] and row["unit_state"] == "active" and row["healthy"]
    assert row["model_sha256"] == SHA256 and row["runtime"] == "llamacpp"
    assert any(name.startswith("llamacpp:") for name in row["metrics"])
    assert row["last_bench"]["levels"][0]["concurrency"] == 1


def _rigctl_env(env: dict[str, str], *argv: str, timeout: float = 600):  # type: ignore[no-untyped-def]
    """Run the CLI with extra environment (the controller cache of this test module)."""
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        result = rigctl(*argv, timeout=timeout)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return result


def test_rollout_rolls_back_a_failing_canary_and_halts(
    lab: Lab, provisioned: dict, model_server: FileServer, tmp_path: Path
) -> None:
    """The canary's change makes its server fail to start (its new port is taken by sshd): it is
    rolled back and serving again on its old port, the rollout halts, the next batch is untouched."""
    first, second = lab.running_hosts()[:2]
    mirror = [f"{model_server.url}/{LAB_MODEL_FILE}"]
    entries = [
        (first.name, dict(lab.host_data(first), model_mirrors=mirror, port=22)),  # taken by sshd
        (second.name, dict(lab.host_data(second), model_mirrors=mirror, port=8081)),
    ]
    inventory = tmp_path / "rollout.py"
    inventory.write_text(f"hosts = {entries!r}\n")
    env = dict(provisioned["env"], RIGCTL_STATE_DIR=str(tmp_path / "state"))
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        result = rigctl("rollout", str(inventory), "--canary", "1", "--batch", "1", "--json", timeout=900)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert result.returncode == 1, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["batches"] == [[first.name], [second.name]]
    assert document["halted_after_batch"] == 0
    canary = document["hosts"][first.name]
    assert canary["status"] == "rolled-back", canary
    assert "keeps failing" in canary["reason"] or "never became ready" in canary["reason"]
    assert document["hosts"][second.name]["status"] == "skipped"

    with Session(load_inventory(str(provisioned["inventory"]))) as session:
        _ok, first_port, _ = run_command(session.host(first.name), "grep -o -- '--port [0-9]*' /etc/systemd/system/rigctl-llama-server.service")
        _ok, health, _ = run_command(session.host(first.name), "systemctl is-active rigctl-llama-server")
    assert first_port == "--port 8080" and health == "active"
    import requests

    assert requests.get(f"http://{first.address}:8080/health", timeout=5).status_code == 200
    # the second host was never touched: still on its old port
    assert requests.get(f"http://{second.address}:8080/health", timeout=5).status_code == 200
