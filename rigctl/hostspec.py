"""What the inventory asks of one host, validated before anything touches it.

Host data keys (documented for users in ``inventories/homelab.py``): ``model``,
``model_sha256``, ``concurrency``, ``context``, ``threads``, ``runtime``, ``prefer``, ``listen``,
``port``.
Every problem is a :class:`~rigctl.errors.BadInput` naming the host and the field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from rigctl.errors import BadInput
from rigctl.plan.types import PREFER_CHOICES, RUNTIME_CHOICES

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class HostSpec:
    host: str
    model: str
    model_sha256: str | None = None
    concurrency: int = 1
    context: int | None = None
    threads: int | None = None  # llama.cpp's -t; None: the planner's choice (physical cores)
    runtime: str = "auto"
    prefer: str = "control"
    listen: str = DEFAULT_LISTEN
    port: int = DEFAULT_PORT

    @property
    def loopback_only(self) -> bool:
        return ipaddress.ip_address(self.listen).is_loopback

    @property
    def endpoint(self) -> str:
        address = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"http://{address}:{self.port}"


def _int(host: str, field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise BadInput(f"must be an integer, got {value!r}", host=host, field=field)
    if not low <= value <= high:
        raise BadInput(f"must be from {low} to {high:,}, got {value}", host=host, field=field)
    return value


def _text(host: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"must be a non-empty string, got {value!r}", host=host, field=field)
    if any(ord(ch) < 32 for ch in value):
        raise BadInput("must not contain control characters", host=host, field=field)
    return value.strip()


def host_spec(host: str, data: dict[str, Any], *, model: str | None = None) -> HostSpec:
    """Validate one host's data (``model`` overrides the host's own)."""
    model_value = model if model is not None else data.get("model")
    if model_value is None:
        raise BadInput(
            "no model: set `model` in the host data or pass --model", host=host, field="model"
        )
    spec_model = _text(host, "model", model_value)
    sha = data.get("model_sha256")
    if sha is not None:
        sha = _text(host, "model_sha256", sha).lower()
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            raise BadInput(f"must be 64 hex digits, got {sha!r}", host=host, field="model_sha256")
    concurrency = _int(host, "concurrency", data.get("concurrency", 1), 1, 1024)
    context = data.get("context")
    if context is not None:
        context = _int(host, "context", context, 256, 1_048_576)
    threads = data.get("threads")
    if threads is not None:
        threads = _int(host, "threads", threads, 1, 1024)
    runtime = data.get("runtime", "auto")
    if runtime not in RUNTIME_CHOICES:
        raise BadInput(
            f"must be one of {', '.join(RUNTIME_CHOICES)}, got {runtime!r}",
            host=host,
            field="runtime",
        )
    prefer = data.get("prefer", "control")
    if prefer not in PREFER_CHOICES:
        raise BadInput(
            f"must be one of {', '.join(PREFER_CHOICES)}, got {prefer!r}", host=host, field="prefer"
        )
    listen = _text(host, "listen", data.get("listen", DEFAULT_LISTEN))
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise BadInput(
            f"must be an IP address, got {listen!r}", host=host, field="listen"
        ) from None
    port = _int(host, "port", data.get("port", DEFAULT_PORT), 1, 65535)
    return HostSpec(
        host=host,
        model=spec_model,
        model_sha256=sha,
        concurrency=concurrency,
        context=context,
        threads=threads,
        runtime=runtime,
        prefer=prefer,
        listen=listen,
        port=port,
    )
