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
    model_paths,
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
from rigctl.pyinfra_api import file_facts, files, host, systemd

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


def server_argv(
    plan: Plan, spec: HostSpec, python: str, *, port: int | None = None, alias: str | None = None
) -> list[str]:
    """vLLM's full command line: the plan's flags plus where it listens (the key: environment);
    ``port`` and ``alias`` for one of several models: its own port, and the name clients ask
    for (its alias, in place of the plan's served name)."""
    args = list(plan.args)
    if alias is not None and "--served-model-name" in args:
        args[args.index("--served-model-name") + 1] = alias
    return [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        *args,
        "--host",
        spec.listen,
        "--port",
        str(spec.port if port is None else port),
    ]


def unit_of(alias: str) -> str:
    """The unit serving ``alias`` when a host serves several models (one vLLM each)."""
    return f"{UNIT}-{alias}"


def servers(spec: HostSpec, host_name: str) -> dict[str, tuple[str, int]]:
    """Several models: each alias's own unit and port (its entry's ``port``, else the host's
    ``port`` plus its place in ``models``), checked: BadInput (field ``models``) for an alias
    that cannot name a unit (``~``) or a port two models would share."""
    found: dict[str, tuple[str, int]] = {}
    holder: dict[int, str] = {}
    for index, entry in enumerate(spec.models):
        if "~" in entry.alias:
            raise BadInput(
                f"entry {index}: alias {entry.alias!r}: with vLLM each model is a unit named "
                "after its alias, and `~` cannot be in a unit name", host=host_name, field="models",
            )
        port = entry.port if entry.port is not None else spec.port + index
        if port in holder or not 1 <= port <= 65535:
            raise BadInput(
                f"entry {index}: {entry.alias} would listen on port {port}"
                + (f", {holder[port]}'s" if port in holder else ", not a TCP port")
                + " (set `port` on the entries)", host=host_name, field="models",
            )
        holder[port] = entry.alias
        found[entry.alias] = (unit_of(entry.alias), port)
    return found


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
    *,
    alias: str | None = None,
    port: int | None = None,
) -> str:
    """The systemd unit for this host's vLLM server; ``groups``: the GPU groups the host has
    (default: all the accelerator's); ``alias`` and ``port``: the unit of one of several
    models (named after the alias; the key, the token and the caches are the host's one)."""
    gpu = accelerator if venv.variant in ("cuda", "rocm") else "cpu"
    return render(
        "vllm.service.j2",
        unit=UNIT if alias is None else unit_of(alias),
        model_name=f"{plan.model.name} {plan.model.quant}",
        venv_name=venv.name,
        plan_summary=f"{plan.runtime}, {plan.concurrency} user(s), {plan.context} tokens each",
        user=USER,
        group=USER,
        supplementary_groups=GPU_GROUPS.get(gpu, []) if groups is None else groups,
        argv=server_argv(plan, spec, vllm.python(venv, prefix), port=port, alias=alias),
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
    from the Hub at a pinned revision), a dedicated user and a hardened unit; for several
    models, one unit each (``rigctl-vllm-<alias>``) on its own port, with the plan's memory
    fraction and GPU set, all reading the host's one key."""

    UNIT = UNIT
    SERVES_SEVERAL = True

    def __init__(self, inputs: HostInputs) -> None:
        super().__init__(inputs)
        self.venv = vllm.venv_spec(
            inputs.data, inputs.name, vllm.variant_for(inputs.hardware.accelerator)
        )
        self.hf_token = hf_token(inputs.data, inputs.name)
        self.plans = inputs.plans
        self.several = inputs.models is not None and len(self.plans) > 1
        #: alias -> its unit and port (one model: the host's unit and port)
        self.servers = (
            servers(inputs.spec, inputs.name) if self.several
            else {alias: (UNIT, inputs.spec.port) for alias in self.plans}
        )
        self.paths = model_paths(self.plans, inputs.name)
        #: alias -> its model directory pushed from the controller (None: fetched from the Hub)
        self.dirs: dict[str, ModelDir | None] = {}

    @property
    def model(self) -> ModelDir | None:
        """The first model's directory (the only one's, unless the host serves several)."""
        return self.dirs.get(next(iter(self.plans)))

    @property
    def ports(self) -> list[int]:
        return [port for _, port in self.servers.values()]

    def prepare(self, fetches: SharedFetches) -> None:
        """A model directory on the controller is hashed for the push; a Hub repository is
        fetched by the host itself (its revision pinned), so nothing is fetched here."""
        for alias, plan in self.plans.items():
            source = plan.model.source
            self.dirs[alias] = (
                None if source.startswith("hf://") else fetches.model_dir(self.inputs.name, source)
            )

    def lock(self) -> tuple[str, int]:
        if self.model is None:
            return super().lock()
        return self.model.sha256, self.model.size

    def lock_models(self) -> dict[str, tuple[str, int]]:
        return {
            alias: (directory.sha256, directory.size) if directory is not None
            else (plan.model.sha256 or "", plan.model.size_bytes)
            for alias, plan in self.plans.items()
            for directory in [self.dirs.get(alias)]
        }

    def serve(self) -> Served:
        """Deploy vLLM: each model is a directory from the controller, or None to fetch
        ``plan.model.source`` (``hf://org/repo@revision``) from the Hub on the host."""
        spec, hardware, venv = self.inputs.spec, self.inputs.hardware, self.venv
        installed = vllm.install(venv)
        prefix = vllm.install_prefix(host)
        files.directory(name="model: directory", path=MODEL_DIR, mode="0755")
        token_file = token_path()
        if self.several:  # the key and the token every model's unit reads
            files.directory(
                name="vllm: config directory", path=service.config_dir(UNIT), user="root",
                group=USER, mode="0750",
            )
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
        model_ops: dict[str, list[Any]] = {}
        for path, alias in self.paths.items():
            model_ops[path] = self._model_ops(self.plans[alias], self.dirs.get(alias), prefix,
                                              token_file)
        retire({unit for unit, _ in self.servers.values()})

        python = vllm.python(venv, prefix)
        key_file = api_key_path(UNIT, variable=KEY_VARIABLE)
        rendered: dict[str, str] = {}
        entries = []
        for alias, plan in self.plans.items():
            unit, port = self.servers[alias]
            path = plan.model.runtime_ref
            unit_text = render_unit(
                spec, plan, venv, hardware.accelerator, prefix, groups,
                **({"alias": alias, "port": port} if self.several else {}),
            )
            rendered[service.unit_path(unit)] = unit_text
            service.install(
                unit=unit,
                unit_text=unit_text,
                user_name=USER,
                changed_inputs=[installed, token_op, *model_ops[path]],
                key_variable=KEY_VARIABLE,
                # what those write: changed since the last restart (a run killed in between),
                # they restart the service too (the model directory's ctime moves with each
                # file placed)
                input_paths=[path, f"{prefix}/{venv.name}/.rigctl-installed", token_file],
                key_of=UNIT,
            )
            directory = self.dirs.get(alias)
            entries.append({
                "alias": alias,
                "model_name": plan.model.name,
                "model_quant": plan.model.quant,
                "model_path": path,
                "model_sha256": directory.sha256 if directory is not None else "",
                "unit": unit,
                "port": port,
            })
        plan = self.inputs.plan
        first = next(iter(self.plans))
        unit, port = self.servers[first]
        argv = server_argv(plan, spec, python, **({"port": port, "alias": first} if self.several else {}))
        manifest = Deployment(
            runtime="vllm",
            unit=unit,
            listen=spec.listen,
            port=port,
            api_key_file=key_file,
            user=USER,
            build=venv.name,
            model_name=plan.model.name,
            model_quant=plan.model.quant,
            model_path=plan.model.runtime_ref,
            model_sha256=entries[0]["model_sha256"],
            args=argv,
            metrics_path="/metrics",
            served_model=argv[argv.index("--served-model-name") + 1],
            health_path="/health",
            config_files=list(rendered),
            models=entries if self.several else [],
        )
        return record(manifest, spec, rendered, ready_timeout=READY_TIMEOUT)

    def _model_ops(
        self, plan: Plan, model: ModelDir | None, prefix: str, token_file: str
    ) -> list[Any]:
        """The operations that put one model on the host: its files pushed, each verified, or
        its pinned revision fetched from the Hub by the host."""
        model_path = plan.model.runtime_ref
        if model is not None:
            return [
                verified_file(
                    name=f"model: {model_path.rsplit('/', 1)[-1]}/{item.relative}",
                    src=str(item.path),
                    dest=f"{model_path}/{item.relative}",
                    sha256=item.sha256,
                    mode="0644",
                )
                for item in model.files
            ]
        repo, _, revision = plan.model.source.removeprefix("hf://").partition("@")
        return [
            vllm.hub_snapshot(
                name=f"model: {repo}@{revision or 'main'} from the Hub",
                venv=f"{prefix}/{self.venv.name}",
                repo=repo,
                revision=revision or "main",
                dest=model_path,
                env_files=[token_file],
                patterns=list(SERVED_PATTERNS),
            )
        ]


def retire(wanted: set[str]) -> None:
    """Stop, disable and remove the host's vLLM units that serve no model now (a model taken
    out of ``models``, the single unit after a switch to several models, or back)."""
    unit_dir = service.unit_path(UNIT).rsplit("/", 1)[0]
    found = host.get_fact(
        file_facts.FindFiles, path=unit_dir, maxdepth=1, fname=f"{UNIT}*.service"
    ) or []
    stale = sorted(
        name for name in (path.rsplit("/", 1)[-1].removesuffix(".service") for path in found)
        if name not in wanted and (name == UNIT or name.startswith(f"{UNIT}-"))
    )
    for unit in stale:
        systemd.service(
            name=f"vllm: {unit} stopped (no model of the plan is served by it)",
            service=f"{unit}.service", running=False, enabled=False,
        )
        files.file(name=f"vllm: {unit}'s unit file removed", path=service.unit_path(unit),
                   present=False)
    if stale:
        systemd.daemon_reload(name="vllm: units reloaded")
