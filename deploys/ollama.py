"""Serve a plan with Ollama on one host: upstream's install, rigctl's drop-in, the model imported.

Ollama has no API key of its own (ollama/ollama#1053, #14003), so rigctl serves it on loopback
addresses only and refuses any other ``listen`` (an authenticating reverse proxy in front is
the planned way to open it up); ``provision`` checks that before anything is changed.
"""

from __future__ import annotations

import ipaddress
from io import StringIO

from rigctl.deploys import GPU_DEVICES, MODEL_DIR, Served
from rigctl.roles import ollama
from rigctl.roles.ollama import defaults
from rigctl.templates import ollama_modelfile, render

from rigctl.errors import BadInput
from rigctl.fetch.http import Verified
from rigctl.hardware import Hardware
from rigctl.hostspec import HostSpec
from rigctl.manifest import MANIFEST, Deployment
from rigctl.operations.files import atomic_put, verified_file
from rigctl.plan import Plan
from rigctl.pyinfra_api import files, host, server_facts


def check_listen(spec: HostSpec) -> None:
    """Refuse to expose Ollama beyond loopback: it cannot check an API key."""
    if not ipaddress.ip_address(spec.listen).is_loopback:
        raise BadInput(
            f"Ollama has no API key, so rigctl serves it on loopback only; got {spec.listen} "
            "(use runtime llamacpp, or put an authenticating proxy in front yourself)",
            host=spec.host,
            field="listen",
        )


def served_model_name(plan: Plan) -> str:
    """The name the model gets in Ollama: the catalog name and quant, lowercase."""
    name = plan.model.name.lower().replace(" ", "-")
    return f"{name}:{plan.model.quant.lower()}"


def server_environment(spec: HostSpec, plan: Plan, models_dir: str) -> dict[str, str]:
    return {
        "OLLAMA_HOST": f"{spec.listen}:{spec.port}",
        **plan.env,
        "OLLAMA_MODELS": models_dir,
    }


def render_dropin(
    spec: HostSpec, plan: Plan, accelerator: str, models_dir: str = defaults.OLLAMA_MODELS_DIR
) -> str:
    return render(
        "ollama-dropin.conf.j2",
        model_name=f"{plan.model.name} {plan.model.quant}",
        environment=server_environment(spec, plan, models_dir),
        writable_paths=[models_dir, defaults.OLLAMA_HOME],
        gpu_devices=GPU_DEVICES.get(accelerator, []),
    )


def serve(
    spec: HostSpec,
    hardware: Hardware,
    plan: Plan,
    archives: list[Verified],
    model: Verified,
) -> Served:
    check_listen(spec)
    groups = host.get_fact(server_facts.Groups) or []
    installed = ollama.install(
        archives=[(str(a.path), a.sha256) for a in archives],
        user_groups=[g for g in ("render", "video") if g in groups],
    )
    model_path = f"{MODEL_DIR}/{model.path.name}"
    files.directory(name="model: directory", path=MODEL_DIR, mode="0755")
    verified_file(name=f"model: {model.path.name}", src=str(model.path), dest=model_path, sha256=model.sha256, mode="0644")

    models_dir = ollama.models_dir(host)
    dropin = render_dropin(spec, plan, hardware.accelerator, models_dir)
    base_unit = render("ollama.service.j2", install_dir=ollama.install_dir(host), user=defaults.OLLAMA_USER)
    ollama.configure(dropin_text=dropin, base_unit_text=base_unit, changed_inputs=[installed])
    name = served_model_name(plan)
    text = ollama_modelfile(model_path, {"num_ctx": plan.context})
    ollama.import_model(model_name=name, modelfile=text, server_address=f"{spec.listen}:{spec.port}")

    manifest = Deployment(
        runtime="ollama",
        unit="ollama",
        listen=spec.listen,
        port=spec.port,
        api_key_file="",
        user=defaults.OLLAMA_USER,
        build=f"ollama-{archives[0].sha256[:12]}",
        model_name=plan.model.name,
        model_quant=plan.model.quant,
        model_path=model_path,
        model_sha256=model.sha256,
        args=[f"{k}={v}" for k, v in server_environment(spec, plan, models_dir).items()],
        metrics_path="",
        served_model=name,
        health_path="/",
        config_files=[ollama.DROPIN],
    )
    atomic_put(name="deployment manifest", src=StringIO(manifest.render()), dest=MANIFEST, mode="0644")
    return Served(
        unit="ollama",
        endpoint=spec.endpoint,
        api_key_file="",
        build=manifest.build,
        model_path=model_path,
        rendered={ollama.DROPIN: dropin, MANIFEST: manifest.render()},
        served_model=name,
        health_path="/",
    )
