"""Bad input never touches a host: one line naming the host and the field, exit 2.

Every case runs the real CLI against an inventory of a real lab host (or the inventory itself
is the bad input); a digest of everything rigctl manages on that host is taken before and after
all cases, and must not change.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import rigctl

from rigctl.lab import LAB_MODEL_FILE, Lab
from rigctl.lab.model import place_model
from rigctl.pyinfra_api import Session, load_inventory

pytestmark = pytest.mark.lab

# What rigctl manages on a host; any change there means a bad input got through.
MANAGED = "/etc/rigctl /etc/systemd/system /opt/rigctl /var/lib/rigctl /usr/local/bin"
DIGEST = f"find {MANAGED} -xdev -printf '%p %s %T@ %m %u\\n' 2>/dev/null | sort | sha256sum"

# a port another service listens on, on the lab host (a transient socket unit the fixture starts)
LISTENER_PORT = 8765

# (name, host data overrides, command, expected field) — provision unless the command says so
HOST_DATA_CASES = [
    ("unknown runtime", {"runtime": "tgi"}, "provision", "runtime"),
    # vLLM's CPU build runs on the lab's x86 hosts; a GGUF file it cannot serve at all:
    (
        "runtime impossible for the model",
        {"runtime": "vllm", "model": "@LAB_GGUF@"},
        "provision",
        "runtime",
    ),
    (
        "safetensors model for llama.cpp",
        {"runtime": "llamacpp", "model": "@HF_DIR@"},
        "provision",
        "runtime",
    ),
    (
        "model directory without config.json",
        {"model": "/nonexistent/model-dir"},
        "provision",
        "model",
    ),
    ("unknown model", {"model": "llama-9-1t"}, "provision", "model"),
    ("model of an unknown scheme", {"model": "ftp://x/y.gguf"}, "provision", "model"),
    ("hf:// with an empty part", {"model": "hf://org//x.gguf"}, "provision", "model"),
    ("plain http to a public host", {"model": "http://example.com/m.gguf"}, "provision", "model"),
    ("malformed checksum", {"model_sha256": "abc123"}, "provision", "model_sha256"),
    ("negative context", {"context": -5}, "provision", "context"),
    ("absurd context", {"context": 10**9}, "provision", "context"),
    ("context beyond the model", {"context": 1_000_000}, "provision", "context"),
    (
        "two models with one alias",
        {"models": [{"model": "/srv/a.gguf", "alias": "chat"}, {"model": "/srv/b.gguf", "alias": "Chat"}]},
        "provision",
        "models",
    ),
    ("an alias that is a path", {"models": [{"model": "/srv/a.gguf", "alias": "../x"}]}, "plan", "models"),
    ("model and models both", {"models": [{"model": "/srv/a.gguf"}]}, "plan", "model"),
    ("zero models_max", {"models_max": 0}, "provision", "models_max"),
    ("zero concurrency", {"concurrency": 0}, "provision", "concurrency"),
    ("absurd concurrency", {"concurrency": 100000}, "provision", "concurrency"),
    ("concurrency not a number", {"concurrency": "many"}, "provision", "concurrency"),
    ("port zero", {"port": 0}, "provision", "port"),
    ("port out of range", {"port": 70000}, "provision", "port"),
    ("zero threads", {"threads": 0}, "provision", "threads"),
    ("port already used by another service", {"port": LISTENER_PORT}, "provision", "port"),
    ("rollout to a port another service uses", {"port": LISTENER_PORT}, "rollout", "port"),
    ("port is the SSH port", {"port": 22}, "provision", "port"),
    ("listen not an address", {"listen": "my-host"}, "provision", "listen"),
    ("unknown preference", {"prefer": "fastest"}, "provision", "prefer"),
    (
        "mirrors not a list",
        {"model_mirrors": "http://127.0.0.1/x.gguf"},
        "provision",
        "model_mirrors",
    ),
    (
        "cmake args that are not -D",
        {"llamacpp_cmake_args": ["--trace"]},
        "provision",
        "llamacpp_cmake_args",
    ),
    (
        "malformed llama.cpp source",
        {"llamacpp_source": {"mirrors": []}},
        "provision",
        "llamacpp_source",
    ),
    ("unknown llama.cpp mirror kind", {"llamacpp_source": ["ftp"]}, "provision", "llamacpp_source"),
    ("Ollama beyond loopback", {"runtime": "ollama", "listen": "0.0.0.0"}, "provision", "listen"),
    ("model with a control character", {"model": "gemma\x07"}, "provision", "model"),
    ("plan: unknown model", {"model": "nope"}, "plan", "model"),
    # hostile host data (issue #14): refused by the schema when the inventory loads
    ("unit injection through llamacpp_prefix", {"llamacpp_prefix": "/opt/x\nExecStartPre=+/bin/id"}, "provision", "llamacpp_prefix"),
    ("ReadWritePaths widened by a space", {"ollama_models_dir": "/var/lib/m /etc"}, "provision", "ollama_models_dir"),
    ("shell injection through llamacpp_jobs", {"llamacpp_jobs": "2; touch /pwned"}, "provision", "llamacpp_jobs"),
    ("shell injection through llamacpp_ccache_dir", {"llamacpp_ccache_dir": "/var/$(touch /pwned)"}, "provision", "llamacpp_ccache_dir"),
    ("the controller's private key as a mirror", {"model_mirrors": ["~/.ssh/id_ed25519"]}, "provision", "model_mirrors"),
    ("a mirror with a broken IPv6 address", {"model_mirrors": ["https://[::1/x.gguf"]}, "provision", "model_mirrors"),
    ("ollama_version naming a path", {"ollama_version": "../../../tmp/x"}, "provision", "ollama_version"),
    ("superscript digit as a port", {"port": "\u00b2"}, "provision", "port"),
    ("ssh_port a string", {"ssh_port": "22"}, "provision", "ssh_port"),
    ("ssh_strict_host_key_checking a bool", {"ssh_strict_host_key_checking": True}, "status", "ssh_strict_host_key_checking"),
    ("llamacpp_source mirror not a mapping", {"llamacpp_source": {"version": "x", "mirrors": ["a"]}}, "provision", "llamacpp_source"),
    ("a typo of a known key", {"runtim": "vllm"}, "provision", "runtim"),
    ("a Cyrillic look-alike key", {"c\u043entext": 4096}, "bench", "c\\u043entext"),
    ("context beyond the model's trained length", {"context": 65536}, "rollout", "context"),
]


@pytest.fixture(scope="module")
def target(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict:
    host = lab.running_hosts()[0]
    directory = tmp_path_factory.mktemp("bad-input")

    def inventory(name: str, **data: object) -> Path:
        path = directory / f"{re.sub(r'[^A-Za-z0-9]+', '_', name)}.py"
        path.write_text(f"hosts = [({host.name!r}, { {**lab.host_data(host), **data}!r})]\n")
        return path

    with Session(load_inventory(str(inventory("digest")))) as session:
        before = session.fact_command(DIGEST)[host.name]
        # another service's port: systemd itself listens (a transient socket, gone at reboot)
        session.fact_command(
            "systemctl stop rigctl-test-listener.socket 2>/dev/null; systemd-run --quiet"
            f" --unit=rigctl-test-listener --socket-property=ListenStream={LISTENER_PORT}"
            " /bin/true && echo ok"
        )
    hf_dir = directory / "hf-model"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(
        '{"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4,'
        ' "hidden_size": 128, "max_position_embeddings": 2048}'
    )
    (hf_dir / "model.safetensors").write_bytes(b"\0" * 4096)
    paths = {
        "@LAB_GGUF@": str(place_model(lab.models_dir / LAB_MODEL_FILE)),
        "@HF_DIR@": str(hf_dir),
    }
    state = {"host": host, "inventory": inventory, "directory": directory, "paths": paths, "lab": lab}
    yield state
    with Session(load_inventory(str(inventory("digest")))) as session:
        after = session.fact_command(DIGEST)[host.name]
        session.fact_command("systemctl stop rigctl-test-listener.socket; echo stopped")
    assert after == before, "a bad input changed the host"


def _one_line_exit_2(result, host: str | None, field: str) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("rigctl: error:")]
    assert len(errors) == 1, result.stderr
    where = f"host {host}: " if host else ""
    assert errors[0].startswith(f"rigctl: error: {where}field {field}:"), errors[0]
    assert "Traceback" not in result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("name", "data", "command", "field"), HOST_DATA_CASES, ids=[c[0] for c in HOST_DATA_CASES]
)
def test_bad_host_data(target: dict, name: str, data: dict, command: str, field: str) -> None:
    data = {
        key: target["paths"].get(value, value) if isinstance(value, str) else value
        for key, value in data.items()
    }
    result = rigctl(command, str(target["inventory"](name, **data)))
    _one_line_exit_2(result, target["host"].name, field)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("syntax error", "hosts = [('a', {'ssh_hostname': '127.0.0.1'}\n"),
        ("broken import", "import rigctl_no_such_module\nhosts = ['127.0.0.1']\n"),
        ("raises", "raise ValueError('bad data')\n"),
        ("no hosts", "hosts = []\n"),
        ("not UTF-8", None),
    ],
)
def test_malformed_inventory(target: dict, name: str, text: str | None) -> None:
    path = target["directory"] / f"inventory_{name.replace(' ', '_')}.py"
    if text is None:
        path.write_bytes(b"hosts = [('caf\xe9', {})]\n")  # Latin-1, not UTF-8
    else:
        path.write_text(text)
    for command in ("provision", "plan", "detect", "bench", "status", "rollout", "rollback"):
        result = rigctl(command, str(path))
        line = _one_line_exit_2(result, None, "inventory")
        assert str(path) in line


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["provision", "{inv}", "--limit", "no-such-host"], "limit"),
        (["bench", "{inv}", "--concurrency", "0"], "concurrency"),
        (["bench", "{inv}", "--max-tokens", "0"], "max-tokens"),
        (["rollout", "{inv}", "--batch", "0%"], "batch"),
        (["rollout", "{inv}", "--canary", "-1"], "canary"),
        (["rollout", "{inv}", "--max-fail", "-2"], "max-fail"),
        (["rollout", "{inv}", "--gate-tokps-drop", "150"], "gate-tokps-drop"),
        (["rollout", "{inv}", "--lost-host-wait", "-1"], "lost-host-wait"),
        (["rollback", "{inv}", "--limit", "no-such-host"], "limit"),
    ],
)
def test_bad_options(target: dict, argv: list[str], field: str) -> None:
    inventory = str(target["inventory"]("options"))
    result = rigctl(*[inventory if arg == "{inv}" else arg for arg in argv])
    _one_line_exit_2(result, None, field)


def test_rollout_with_bad_input_in_a_later_batch_leaves_the_canary_untouched(target: dict) -> None:
    """The canary (the lab host) is fine; the host of the second batch has a bad port: the
    whole fleet is checked before the first batch, so nothing changes anywhere (exit 2)."""
    host = target["host"]
    path = target["directory"] / "rollout_later_batch.py"
    good = dict(target["lab"].host_data(host))
    bad = dict(good, ssh_hostname="127.0.2.250", port=0)
    path.write_text(f"hosts = [({host.name!r}, {good!r}), ('second', {bad!r})]\n")
    result = rigctl("rollout", str(path), "--canary", "1", "--batch", "1")
    _one_line_exit_2(result, "second", "port")
