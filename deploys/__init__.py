"""Deploys: a host's plan served by one runtime, composed from the roles.

Every runtime's deploy has the same shape, so ``rigctl.provision`` never branches on the
runtime. ``deploys/<runtime>.py`` offers one :class:`Deploy` subclass, made per host from its
:class:`HostInputs`; the pipeline calls, in order:

1. the constructor: the runtime's own settings from host data, checked (``BadInput``: exit 2,
   before anything changes anywhere);
2. :meth:`Deploy.prepare`, on the controller: what the host needs from it before the run
   (models, sources, release archives, wheels), each fetched once per run through
   :class:`~rigctl.fetch.shared.SharedFetches`;
3. :meth:`Deploy.serve`, inside a pyinfra deploy context (``Session.prepare`` runs it per
   host): the operations that serve the plan, ending in :func:`record` (the manifest written,
   a :class:`Served` returned);
4. :meth:`Deploy.keep`, on the controller once the host serves: what the controller keeps
   from it for other hosts (llama.cpp: its build, for hosts with the same build key).

:data:`rigctl.deploys.runtimes.RUNTIMES` maps each runtime's name to its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rigctl.errors import BadInput
from rigctl.hardware import Hardware
from rigctl.health import Offload
from rigctl.hostspec import HostSpec
from rigctl.manifest import MANIFEST, Deployment
from rigctl.plan import DEFAULT_MODEL_DIR, Plan
from rigctl.plan.multi import ModelsPlan
from rigctl.progress import Reporter

if TYPE_CHECKING:
    from rigctl.fetch.shared import SharedFetches
    from rigctl.pyinfra_api import Host

#: Where every runtime's model files live on a host.
MODEL_DIR = DEFAULT_MODEL_DIR

#: Device nodes a GPU backend needs inside a unit's closed device policy (DeviceAllow=).
GPU_DEVICES: dict[str, list[str]] = {
    "cuda": [
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "char-nvidia*",
    ],
    "rocm": ["/dev/kfd", "/dev/dri", "char-drm"],
    "vulkan": ["/dev/dri", "char-drm"],
}

#: Groups that own GPU device nodes on Debian/Ubuntu (upstream installers add their users too).
GPU_GROUPS: dict[str, list[str]] = {
    "cuda": [],
    "rocm": ["render", "video"],
    "vulkan": ["render", "video"],
}


def host_gpu_groups(backend: str) -> list[str]:
    """The backend's GPU groups that exist on the current host (inside its deploy): a bare
    server or container may have no ``render`` group, and ``useradd -G`` or a unit's
    ``SupplementaryGroups=`` naming a missing group fails."""
    from rigctl.pyinfra_api import host, server_facts

    present = host.get_fact(server_facts.Groups) or []
    return [group for group in GPU_GROUPS.get(backend, []) if group in present]


def model_paths(plans: Mapping[str, Plan], host_name: str) -> dict[str, str]:
    """Each model's path on the host (a file, or vLLM's directory) -> the first alias serving
    it; two different models that would land on one path are refused (BadInput, ``models``)."""
    paths: dict[str, str] = {}
    for alias, plan in plans.items():
        path = plan.model.runtime_ref
        first = paths.setdefault(path, alias)
        if plans[first].model.source != plan.model.source:
            raise BadInput(
                f"{first} and {alias} are different models with one name on the host ({path}): "
                "rename one of them", host=host_name, field="models",
            )
    return paths


@dataclass(frozen=True)
class HostInputs:
    """Everything known of one host before its deploy: checked host data, hardware, plan."""

    name: str
    #: the host's data (pyinfra's ``host.data`` or a mapping), already checked by the schema
    data: Any
    spec: HostSpec
    hardware: Hardware
    plan: Plan  # the first model's (the only one's, unless the host lists several `models`)
    #: the joint plan, when the host serves several models (a runtime that ``SERVES_SEVERAL``)
    models: ModelsPlan | None = None

    @property
    def plans(self) -> dict[str, Plan]:
        """Every model this deploy serves, by alias (one, unless the host lists several)."""
        if self.models is not None:
            return dict(self.models.plans)
        return {self.spec.models[0].alias if self.spec.models else "default": self.plan}

    @property
    def allow_http(self) -> bool:
        """Host data ``allow_http``: plain http beyond loopback, and then only with a sha256."""
        return self.data.get("allow_http", False) is True

    @property
    def mirrors(self) -> list[str]:
        """``model_mirrors`` (checked by the host-data schema), paths as ``file:`` URLs."""
        value = self.data.get("model_mirrors", []) or []
        return [str(Path(v).resolve().as_uri()) if v.startswith("/") else v for v in value]


@dataclass(frozen=True)
class Served:
    """What was set up, for the summary and the smoke check."""

    unit: str
    endpoint: str
    api_key_file: str
    build: str
    model_path: str
    #: files rendered for this host, path -> content (``provision --dry`` diffs them)
    rendered: dict[str, str] = field(default_factory=dict)
    #: the model name clients send (Ollama needs it; llama-server serves any name)
    served_model: str = "default"
    #: the path that answers 200 once the server is ready
    health_path: str = "/health"
    #: where the plan put the model, checked in the server's log once it answers (llama.cpp on
    #: a GPU; None where there is nothing to check)
    offload: Offload | None = None
    #: seconds the smoke check waits for it (vLLM loads and compiles for minutes)
    ready_timeout: float = 180.0
    #: several models behind the endpoint: each alias is smoke-checked (loaded, then asked)
    aliases: tuple[str, ...] = ()
    #: the endpoint is llama-server's router: each alias is loaded through its API (and waited
    #: for) before it is asked; other servers load a model on its first request
    router: bool = False
    #: the port the endpoint listens on (the first model's server, where each has one)
    port: int = 0
    #: the runtime serving it (what a probe of an unchanged host asks: rigctl.bench.probe)
    runtime: str = ""
    #: each model has a server of its own (vLLM): alias -> its unit and port
    servers: dict[str, tuple[str, int]] = field(default_factory=dict)

    def endpoint_of(self, alias: str) -> str:
        """The URL clients reach ``alias`` at: its own server's, or the endpoint."""
        if alias not in self.servers:
            return self.endpoint
        base, _, _ = self.endpoint.rpartition(":")
        return f"{base}:{self.servers[alias][1]}"


def record(
    manifest: Deployment,
    spec: HostSpec,
    rendered: Mapping[str, str],
    *,
    ready_timeout: float = 180.0,
    offload: Offload | None = None,
    router: bool = False,
) -> Served:
    """The end of every serve: the deployment manifest written atomically on the host (what
    ``bench``, ``status``, ``verify`` and ``rollback`` read), and what was served."""
    from rigctl.operations.files import atomic_put

    text = manifest.render()
    atomic_put(name="deployment manifest", src=StringIO(text), dest=MANIFEST, mode="0644")
    address = f"[{spec.listen}]" if ":" in spec.listen else spec.listen
    return Served(
        unit=manifest.unit,
        endpoint=f"http://{address}:{manifest.port}",  # the first model's own, where each has one
        port=manifest.port,
        runtime=manifest.runtime,
        api_key_file=manifest.api_key_file,
        build=manifest.build,
        model_path=manifest.model_path,
        rendered={**rendered, MANIFEST: text},
        served_model=manifest.served_model,
        health_path=manifest.health_path,
        ready_timeout=ready_timeout,
        offload=offload,
        aliases=tuple(entry["alias"] for entry in manifest.models) if len(manifest.models) > 1 else (),
        router=router,
        servers={e["alias"]: (e["unit"], e["port"]) for e in manifest.models if "unit" in e},
    )


class Deploy:
    """One host's deploy of one runtime: the shape every runtime has (see the module doc)."""

    #: the service this runtime runs (systemd unit name, without ``.service``)
    UNIT: ClassVar[str]
    #: whether one deploy serves several models of a host (``models``) behind its endpoint
    SERVES_SEVERAL: ClassVar[bool] = False

    def __init__(self, inputs: HostInputs) -> None:
        """Check the runtime's own settings from host data (``BadInput``, nothing changed)."""
        self.inputs = inputs

    def prepare(self, fetches: SharedFetches) -> None:
        """On the controller, before the run: fetch what the host needs."""
        raise NotImplementedError

    def serve(self) -> Served:
        """Inside the host's pyinfra deploy context: the operations that serve the plan."""
        raise NotImplementedError

    @property
    def ports(self) -> list[int]:
        """The ports this deploy's servers listen on (``listen``): the host's ``port``, unless
        each model has a server of its own."""
        return [self.inputs.spec.port]

    @property
    def build_key(self) -> str | None:
        """Hosts with the same key run the same build: the first compiles it and the controller
        keeps it (:meth:`keep`); None when this runtime builds nothing on the host."""
        return None

    def keep(self, host: Host, report: Reporter) -> None:
        """On the controller, once the host serves: keep what other hosts can reuse."""
        return None

    def lock(self) -> tuple[str, int]:
        """The model's sha256 and size, as served, for the inventory's lockfile."""
        return self.inputs.plan.model.sha256 or "", self.inputs.plan.model.size_bytes

    def lock_models(self) -> dict[str, tuple[str, int]]:
        """Each served model's sha256 and size by alias (a runtime that ``SERVES_SEVERAL``
        overrides it)."""
        return {alias: self.lock() for alias in self.inputs.plans}
