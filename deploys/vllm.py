"""Serve a plan with vLLM on one host: pinned virtualenv, model, dedicated user, hardened unit.

The key is generated on the host into ``VLLM_API_KEY=...`` (an environment file, 0600, owned by
the service user), a Hugging Face token likewise into its own file: vLLM reads both from its
environment, so neither ever appears in argv, the unit or rigctl's output.
"""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING, Any

from rigctl.deploys import (
    GPU_DEVICES,
    GPU_GROUPS,
    MODEL_DIR,
    Deploy,
    HostInputs,
    Served,
    host_gpu_groups,
    record,
)
from rigctl.roles import service, vllm
from rigctl.roles.service import api_key_path
from rigctl.roles.vllm import VenvSpec
from rigctl.templates import env_file, render

from rigctl.errors import BadInput
from rigctl.fetch.model_dir import ModelDir
from rigctl.hostspec import HostSpec
from rigctl.manifest import Deployment
from rigctl.models.hf_model import SERVED_PATTERNS
from rigctl.operations.files import atomic_put, verified_file
from rigctl.plan import Plan
from rigctl.pyinfra_api import files, host

if TYPE_CHECKING:
    from rigctl.fetch.shared import SharedFetches

UNIT = "rigctl-vllm"
USER = vllm.defaults.VLLM_USER
KEY_VARIABLE = "VLLM_API_KEY"
STATE = f"/var/lib/{UNIT}"
#: Seconds the smoke check waits for /health: vLLM loads, profiles and (on GPUs) compiles.
READY_TIMEOUT = 900.0


def token_path() -> str:
    """The Hugging Face token's environment file (beside the API key)."""
    return f"{service.defaults.SERVICE_CONFIG_ROOT}/{UNIT}/hf-token.env"


def token_file_text(hf_token: str) -> str:
    """The token's environment file: systemd reads it (``EnvironmentFile=``) and, as root,
    ``sh`` sources it before a Hub download, so it is quoted for both (a token holding a quote
    or a newline is refused, never written)."""
    return env_file({"HF_TOKEN": hf_token}, field="hf_token")


def server_argv(plan: Plan, spec: HostSpec, python: str) -> list[str]:
    """vLLM's full command line: the plan's flags plus where it listens (the key: environment)."""
    return [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        *plan.args,
        "--host",
        spec.listen,
        "--port",
        str(spec.port),
    ]


def server_environment(plan: Plan) -> dict[str, str]:
    """The plan's settings, caches under the service's own directory, and no phoning home."""
    return {
        **plan.env,
        "HOME": STATE,
        "XDG_CACHE_HOME": f"{STATE}/cache",
        "VLLM_CACHE_ROOT": f"{STATE}/cache/vllm",
        "HF_HOME": f"{STATE}/cache/huggingface",
        "TORCHINDUCTOR_CACHE_DIR": f"{STATE}/cache/torchinductor",
        "TRITON_CACHE_DIR": f"{STATE}/cache/triton",
        # vLLM's engine and workers talk over ZMQ and torch.distributed (gloo, NCCL) sockets
        # bound to the address it guesses from the hostname (often the LAN address), open to
        # the network without any key: one node keeps them all on loopback.
        "VLLM_HOST_IP": "127.0.0.1",
        "GLOO_SOCKET_IFNAME": "lo",
        "NCCL_SOCKET_IFNAME": "lo",
        # The weights are on disk already: serving never reaches the Hub.
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def render_unit(
    spec: HostSpec,
    plan: Plan,
    venv: VenvSpec,
    accelerator: str,
    prefix: str = vllm.defaults.VLLM_PREFIX,
    groups: list[str] | None = None,
) -> str:
    """The systemd unit for this host's vLLM server; ``groups``: the GPU groups the host has
    (default: all the accelerator's)."""
    gpu = accelerator if venv.variant in ("cuda", "rocm") else "cpu"
    return render(
        "vllm.service.j2",
        unit=UNIT,
        model_name=f"{plan.model.name} {plan.model.quant}",
        venv_name=venv.name,
        plan_summary=f"{plan.runtime}, {plan.concurrency} user(s), {plan.context} tokens each",
        user=USER,
        group=USER,
        supplementary_groups=GPU_GROUPS.get(gpu, []) if groups is None else groups,
        argv=server_argv(plan, spec, vllm.python(venv, prefix)),
        environment_files=[api_key_path(UNIT, variable=KEY_VARIABLE), f"-{token_path()}"],
        environment=server_environment(plan),
        state_directory=UNIT,
        read_only_paths=[MODEL_DIR, prefix, f"/etc/rigctl/{UNIT}"],
        gpu_devices=GPU_DEVICES.get(gpu, []),
    )


def hf_token(data: Any, host_name: str) -> str | None:
    """The Hugging Face token for gated repositories (host data ``hf_token``), or None."""
    token = data.get("hf_token")
    if token is None or token == "":
        return None
    if not isinstance(token, str) or not token.isprintable() or any(c.isspace() for c in token):
        raise BadInput("must be a single-line token", host=host_name, field="hf_token")
    return token


class VllmDeploy(Deploy):
    """vLLM: a pinned virtualenv, the model (pushed from the controller, or fetched by the host
    from the Hub at a pinned revision), a dedicated user and a hardened unit."""

    UNIT = UNIT

    def __init__(self, inputs: HostInputs) -> None:
        super().__init__(inputs)
        self.venv = vllm.venv_spec(
            inputs.data, inputs.name, vllm.variant_for(inputs.hardware.accelerator)
        )
        self.hf_token = hf_token(inputs.data, inputs.name)
        self.model: ModelDir | None = None

    def prepare(self, fetches: SharedFetches) -> None:
        """A model directory on the controller is hashed for the push; a Hub repository is
        fetched by the host itself (its revision pinned), so nothing is fetched here."""
        source = self.inputs.plan.model.source
        if not source.startswith("hf://"):
            self.model = fetches.model_dir(self.inputs.name, source)

    def lock(self) -> tuple[str, int]:
        if self.model is None:
            return super().lock()
        return self.model.sha256, self.model.size

    def serve(self) -> Served:
        """Deploy vLLM: the model is a directory from the controller, or None to fetch
        ``plan.model.source`` (``hf://org/repo@revision``) from the Hub on the host."""
        spec, hardware, plan, venv, model = (
            self.inputs.spec,
            self.inputs.hardware,
            self.inputs.plan,
            self.venv,
            self.model,
        )
        installed = vllm.install(venv)
        prefix = vllm.install_prefix(host)
        model_path = plan.model.runtime_ref
        files.directory(name="model: directory", path=MODEL_DIR, mode="0755")

        token_file = token_path()
        if self.hf_token:
            token_op = atomic_put(
                name="vllm: Hugging Face token",
                src=StringIO(token_file_text(self.hf_token)),
                dest=token_file,
                mode="0600",
                user=USER,
                group=USER,
            )
        else:
            token_op = files.file(name="vllm: no Hugging Face token", path=token_file, present=False)

        groups = host_gpu_groups(venv.variant)
        service.user(user_name=USER, groups=groups)
        model_ops = []
        if model is not None:
            for item in model.files:
                model_ops.append(
                    verified_file(
                        name=f"model: {model_path.rsplit('/', 1)[-1]}/{item.relative}",
                        src=str(item.path),
                        dest=f"{model_path}/{item.relative}",
                        sha256=item.sha256,
                        mode="0644",
                    )
                )
            sha256 = model.sha256
        else:
            repo, _, revision = plan.model.source.removeprefix("hf://").partition("@")
            model_ops.append(
                vllm.hub_snapshot(
                    name=f"model: {repo}@{revision or 'main'} from the Hub",
                    venv=f"{prefix}/{venv.name}",
                    repo=repo,
                    revision=revision or "main",
                    dest=model_path,
                    env_files=[token_file],
                    patterns=list(SERVED_PATTERNS),
                )
            )
            sha256 = ""

        unit_text = render_unit(spec, plan, venv, hardware.accelerator, prefix, groups)
        unit_file = service.unit_path(UNIT)
        service.install(
            unit=UNIT,
            unit_text=unit_text,
            user_name=USER,
            changed_inputs=[installed, token_op, *model_ops],
            key_variable=KEY_VARIABLE,
            # what those write: changed since the last restart (a run killed in between), they
            # restart the service too (the model directory's ctime moves with each file placed)
            input_paths=[model_path, f"{prefix}/{venv.name}/.rigctl-installed", token_file],
        )
        key_file = api_key_path(UNIT, variable=KEY_VARIABLE)
        served_name = plan.args[plan.args.index("--served-model-name") + 1]
        manifest = Deployment(
            runtime="vllm",
            unit=UNIT,
            listen=spec.listen,
            port=spec.port,
            api_key_file=key_file,
            user=USER,
            build=venv.name,
            model_name=plan.model.name,
            model_quant=plan.model.quant,
            model_path=model_path,
            model_sha256=sha256,
            args=server_argv(plan, spec, vllm.python(venv, prefix)),
            metrics_path="/metrics",
            served_model=served_name,
            health_path="/health",
            config_files=[unit_file],
        )
        return record(manifest, spec, {unit_file: unit_text}, ready_timeout=READY_TIMEOUT)
