"""What the inventory asks of one host, validated before anything touches it.

Host data keys (declared, with their formats, in :mod:`rigctl.hostdata`): ``model``,
``model_sha256``, ``concurrency``, ``context``, ``context_max``, ``threads``, ``runtime``,
``prefer``, ``listen``, ``port``, and ``models``/``models_max`` for several models on one host
(``model`` is the one-entry case of ``models``). Every problem is a
:class:`~rigctl.errors.BadInput` naming the host and the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from rigctl.errors import BadInput
from rigctl.hostdata import SCHEMA
from rigctl.plan.gpu_software import GpuSoftwareWanted

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``models`` (or the host's single ``model``): what to serve, by which name."""

    alias: str
    model: str
    model_sha256: str | None = None
    concurrency: int = 1
    context: int | None = None
    runtime: str = "auto"
    keep_loaded: bool = False
    #: ``gpus``: the GPU indices this model may use (None: any of the host's)
    gpus: tuple[int, ...] | None = None
    #: ``port``: its own server's port, where each model runs its own server (vLLM)
    port: int | None = None


@dataclass(frozen=True)
class HostSpec:
    host: str
    model: str
    model_sha256: str | None = None
    concurrency: int = 1
    context: int | None = None
    context_max: int | None = None  # how far a plan with no context grows it (None: 32,768)
    threads: int | None = None  # llama.cpp's -t; None: the planner's choice (physical cores)
    runtime: str = "auto"
    prefer: str = "control"
    listen: str = DEFAULT_LISTEN
    port: int = DEFAULT_PORT
    gpu_software: GpuSoftwareWanted = GpuSoftwareWanted()
    #: vllm_index_url or vllm_wheelhouse is set: vLLM's ROCm build (not on PyPI) can be had
    vllm_rocm_source: bool = False
    #: every model the host serves, the first being ``model`` (one entry unless ``models``)
    models: tuple[ModelSpec, ...] = ()
    #: ``models_max``: how many may be loaded at once (None: as many as fit together)
    models_max: int | None = None
    #: ``models_idle_seconds``: an idle model not kept loaded is unloaded after it (None: never)
    models_idle_seconds: int | None = None

    @property
    def multi_model(self) -> bool:
        return len(self.models) > 1

    @property
    def loopback_only(self) -> bool:
        return ipaddress.ip_address(self.listen).is_loopback

    @property
    def endpoint(self) -> str:
        address = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"http://{address}:{self.port}"


def _field(host: str, name: str, value: Any) -> Any:
    """One value checked by the host-data schema, the error naming the host and the field."""
    try:
        return SCHEMA[name].check(value, name)
    except ValueError as e:
        raise BadInput(str(e), host=host, field=name) from None


def default_alias(model: str) -> str | None:
    """The name a model is served by when its entry gives none: a catalog model's name (its
    quant left out), else the file's or repository's last path part without ``.gguf``, made
    URL-safe; None when nothing usable is left."""
    name = model.split(":", 1)[0] if "/" not in model else model.rstrip("/").rsplit("/", 1)[-1]
    name = name.split("@", 1)[0]
    if name.lower().endswith(".gguf"):
        name = name[: -len(".gguf")]
    name = re.sub(r"-0*1-of-0*[0-9]+$", "", name)  # a split GGUF's first shard
    name = re.sub(r"[^A-Za-z0-9._~-]", "-", name).strip("-._~")[:64]
    return name or None


def _model_specs(host: str, data: dict[str, Any], model: str | None) -> tuple[ModelSpec, ...]:
    """``models`` checked (unique aliases, defaults filled in), or the single ``model``."""
    entries = data.get("models")
    if model is not None or entries is None:
        model_value = model if model is not None else data.get("model")
        if model_value is None:
            raise BadInput(
                "no model: set `model` (or `models`) in the host data or pass --model",
                host=host, field="model",
            )
        single = _field(host, "model", model_value)
        sha = data.get("model_sha256")
        context = data.get("context")
        return (ModelSpec(
            alias=default_alias(single) or "model",
            model=single,
            model_sha256=None if sha is None else _field(host, "model_sha256", sha),
            concurrency=_field(host, "concurrency", data.get("concurrency", 1)),
            context=None if context is None else _field(host, "context", context),
            runtime=_field(host, "runtime", data.get("runtime", "auto")),
        ),)
    checked = _field(host, "models", entries)
    # the host's own concurrency, context and runtime are each entry's defaults
    concurrency = _field(host, "concurrency", data.get("concurrency", 1))
    context = data.get("context")
    context = None if context is None else _field(host, "context", context)
    runtime = _field(host, "runtime", data.get("runtime", "auto"))
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(checked):
        alias = entry.get("alias") or default_alias(entry["model"])
        if alias is None:
            raise BadInput(
                f"entry {index}: give it an alias: no name can be made from its model",
                host=host, field="models",
            )
        if alias.lower() in seen:
            raise BadInput(
                f"entry {index}: alias {alias!r} is already entry {seen[alias.lower()]}'s"
                " (set `alias` on one of them)",
                host=host, field="models",
            )
        seen[alias.lower()] = index
        specs.append(ModelSpec(
            alias=alias,
            model=entry["model"],
            model_sha256=entry.get("model_sha256"),
            concurrency=entry.get("concurrency", concurrency),
            context=entry.get("context", context),
            runtime=entry.get("runtime", runtime),
            keep_loaded=entry.get("keep_loaded", False),
            gpus=tuple(entry["gpus"]) if "gpus" in entry else None,
            port=entry.get("port"),
        ))
    if data.get("model") is not None:
        raise BadInput(
            "both `model` and `models` are set: list the model in `models` instead",
            host=host, field="model",
        )
    return tuple(specs)


def host_spec(host: str, data: dict[str, Any], *, model: str | None = None) -> HostSpec:
    """Validate one host's data (``model`` overrides the host's own, ``models`` included)."""
    models = _model_specs(host, data, model)
    first = models[0]
    context_max = data.get("context_max")
    threads = data.get("threads")
    models_max = data.get("models_max")
    idle = data.get("models_idle_seconds")
    port = _field(host, "port", data.get("port", DEFAULT_PORT))
    ssh_port = data.get("ssh_port") or 22
    if port == ssh_port:
        raise BadInput(
            f"{port} is the host's SSH port: the server cannot listen there", host=host, field="port"
        )
    _check_model_ports(host, models, port, ssh_port)
    return HostSpec(
        host=host,
        model=first.model,
        model_sha256=first.model_sha256,
        concurrency=first.concurrency,
        context=first.context,
        context_max=None if context_max is None else _field(host, "context_max", context_max),
        threads=None if threads is None else _field(host, "threads", threads),
        runtime=first.runtime,
        prefer=_field(host, "prefer", data.get("prefer", "control")),
        listen=_field(host, "listen", data.get("listen", DEFAULT_LISTEN)),
        port=port,
        gpu_software=GpuSoftwareWanted(
            nvidia_driver=_field(host, "nvidia_driver", data.get("nvidia_driver", "check")),
            cuda_toolkit=_field(host, "cuda_toolkit", data.get("cuda_toolkit", "auto")),
            cuda_toolkit_version=_optional(host, "cuda_toolkit_version", data),
            rocm=_field(host, "rocm", data.get("rocm", "auto")),
            rocm_version=_optional(host, "rocm_version", data),
        ),
        vllm_rocm_source=bool(data.get("vllm_index_url") or data.get("vllm_wheelhouse")),
        models=models,
        models_max=None if models_max is None else _field(host, "models_max", models_max),
        models_idle_seconds=None if idle is None else _field(host, "models_idle_seconds", idle),
    )


def _check_model_ports(
    host: str, models: tuple[ModelSpec, ...], port: int, ssh_port: Any
) -> None:
    """Each entry's own ``port`` is its alone: not another entry's, not the host's ``port``
    nor its SSH port."""
    seen: dict[int, int] = {}
    for index, entry in enumerate(models):
        if entry.port is None:
            continue
        for taken, what in ((port, "`port`"), (ssh_port, "SSH port")):
            if entry.port == taken:
                raise BadInput(
                    f"entry {index}: {entry.alias} cannot listen on port {entry.port}, the "
                    f"host's {what} (set another `port` on the entry)", host=host, field="models",
                )
        if entry.port in seen:
            other = seen[entry.port]
            raise BadInput(
                f"entry {index}: {entry.alias} cannot listen on port {entry.port}, "
                f"{models[other].alias}'s (entry {other}; set another `port` on one of them)",
                host=host, field="models",
            )
        seen[entry.port] = index


def _optional(host: str, name: str, data: dict[str, Any]) -> Any:
    value = data.get(name)
    return None if value is None else _field(host, name, value)
