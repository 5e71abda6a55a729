"""Serve a plan with Ollama on one host: upstream's install, rigctl's drop-in, the model imported.

Ollama has no API key of its own (ollama/ollama#1053, #14003), so rigctl serves it on loopback
addresses only and refuses any other ``listen`` (an authenticating reverse proxy in front is
the planned way to open it up); :class:`OllamaDeploy` checks that before anything is changed.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from rigctl.deploys import GPU_DEVICES, MODEL_DIR, Deploy, HostInputs, Served, record
from rigctl.roles import ollama
from rigctl.roles.ollama import defaults
from rigctl.templates import ollama_modelfile, render

from rigctl.errors import BadInput
from rigctl.fetch.http import Verified
from rigctl.hostspec import HostSpec
from rigctl.manifest import Deployment
from rigctl.operations.files import verified_file
from rigctl.paths import cache_dir, confined
from rigctl.plan import Plan
from rigctl.pyinfra_api import files, host, server_facts

if TYPE_CHECKING:
    from rigctl.fetch.shared import SharedFetches


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


class OllamaDeploy(Deploy):
    """Ollama: upstream's release archive(s) for the host, rigctl's drop-in, the model imported."""

    UNIT = ollama.UNIT

    def __init__(self, inputs: HostInputs) -> None:
        super().__init__(inputs)
        check_listen(inputs.spec)
        data = inputs.data
        self.base_url = data.get("ollama_base_url", defaults.OLLAMA_BASE_URL)
        self.version = data.get("ollama_version", defaults.OLLAMA_VERSION)
        self.sums = data.get("ollama_sha256", defaults.OLLAMA_SHA256) or {}
        if not isinstance(self.sums, dict):
            raise BadInput(
                "must map archive names to sha256", host=inputs.name, field="ollama_sha256"
            )
        self.archives: list[Verified] = []
        self.model: Verified | None = None

    def prepare(self, fetches: SharedFetches) -> None:
        """The model file and Ollama's release archive(s), into the controller's cache."""
        name, hardware = self.inputs.name, self.inputs.hardware
        self.model = fetches.model(
            name, self.inputs.plan.model, self.inputs.mirrors, allow_http=self.inputs.allow_http
        )
        self.archives = [
            fetches.file(
                name,
                "ollama",
                [ollama.archive_url(archive, self.base_url, self.version)],
                confined(cache_dir(), "ollama", self.version or "latest", archive),
                sha256=self.sums.get(archive),
                allow_http=self.inputs.allow_http,
                field="ollama_base_url",
            )
            for archive in ollama.archive_names(hardware.os.arch, hardware.accelerator)
        ]

    def lock(self) -> tuple[str, int]:
        assert self.model is not None, "prepare() first"
        return self.model.sha256, self.model.size

    def serve(self) -> Served:
        assert self.model is not None and self.archives, "prepare() first"
        spec, hardware, plan, model = (
            self.inputs.spec,
            self.inputs.hardware,
            self.inputs.plan,
            self.model,
        )
        check_listen(spec)
        groups = host.get_fact(server_facts.Groups) or []
        installed = ollama.install(
            archives=[(str(a.path), a.sha256) for a in self.archives],
            user_groups=[g for g in ("render", "video") if g in groups],
        )
        model_path = f"{MODEL_DIR}/{model.path.name}"
        files.directory(name="model: directory", path=MODEL_DIR, mode="0755")
        verified_file(
            name=f"model: {model.path.name}",
            src=str(model.path),
            dest=model_path,
            sha256=model.sha256,
            mode="0644",
        )

        models_dir = ollama.models_dir(host)
        dropin = render_dropin(spec, plan, hardware.accelerator, models_dir)
        base_unit = render(
            "ollama.service.j2", install_dir=ollama.install_dir(host), user=defaults.OLLAMA_USER
        )
        ollama.configure(dropin_text=dropin, base_unit_text=base_unit, changed_inputs=[installed])
        name = served_model_name(plan)
        text = ollama_modelfile(model_path, {"num_ctx": plan.context})
        ollama.import_model(
            model_name=name, modelfile=text, server_address=f"{spec.listen}:{spec.port}"
        )

        manifest = Deployment(
            runtime="ollama",
            unit=self.UNIT,
            listen=spec.listen,
            port=spec.port,
            api_key_file="",
            user=defaults.OLLAMA_USER,
            build=f"ollama-{self.archives[0].sha256[:12]}",
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
        return record(manifest, spec, {ollama.DROPIN: dropin})
