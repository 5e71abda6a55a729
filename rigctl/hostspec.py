"""What the inventory asks of one host, validated before anything touches it.

Host data keys (declared, with their formats, in :mod:`rigctl.hostdata`): ``model``,
``model_sha256``, ``concurrency``, ``context``, ``context_max``, ``threads``, ``runtime``,
``prefer``, ``listen``, ``port``. Every problem is a :class:`~rigctl.errors.BadInput` naming the host and the field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from rigctl.errors import BadInput
from rigctl.hostdata import SCHEMA
from rigctl.plan.gpu_software import GpuSoftwareWanted

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8080


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


def host_spec(host: str, data: dict[str, Any], *, model: str | None = None) -> HostSpec:
    """Validate one host's data (``model`` overrides the host's own)."""
    model_value = model if model is not None else data.get("model")
    if model_value is None:
        raise BadInput(
            "no model: set `model` in the host data or pass --model", host=host, field="model"
        )
    sha = data.get("model_sha256")
    context = data.get("context")
    context_max = data.get("context_max")
    threads = data.get("threads")
    port = _field(host, "port", data.get("port", DEFAULT_PORT))
    ssh_port = data.get("ssh_port") or 22
    if port == ssh_port:
        raise BadInput(
            f"{port} is the host's SSH port: the server cannot listen there", host=host, field="port"
        )
    return HostSpec(
        host=host,
        model=_field(host, "model", model_value),
        model_sha256=None if sha is None else _field(host, "model_sha256", sha),
        concurrency=_field(host, "concurrency", data.get("concurrency", 1)),
        context=None if context is None else _field(host, "context", context),
        context_max=None if context_max is None else _field(host, "context_max", context_max),
        threads=None if threads is None else _field(host, "threads", threads),
        runtime=_field(host, "runtime", data.get("runtime", "auto")),
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
    )


def _optional(host: str, name: str, data: dict[str, Any]) -> Any:
    value = data.get(name)
    return None if value is None else _field(host, name, value)
