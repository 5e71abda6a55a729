"""What rigctl deployed on a host, recorded on the host itself: ``/etc/rigctl/deployment.json``.

Written by each runtime's deploy (atomically, no secrets: the API key's *path* only) and read by
``bench``, ``status`` and ``verify``, so they need no plan, no inventory model key and no
guessing about which runtime serves where.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: verify's testinfra suite parses manifests without pyinfra
    from rigctl.pyinfra_api import Host

MANIFEST = "/etc/rigctl/deployment.json"


@dataclass(frozen=True)
class Deployment:
    runtime: str
    unit: str
    listen: str
    port: int
    api_key_file: str
    user: str
    build: str
    model_name: str
    model_quant: str
    model_path: str
    model_sha256: str
    args: list[str] = field(default_factory=list)
    metrics_path: str = "/metrics"  # "" where the runtime has none (Ollama)
    served_model: str = "default"
    health_path: str = "/health"
    #: the files rigctl wrote that define the service (a rollout snapshots and restores them)
    config_files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def read_api_key(host: Host, path: str) -> str:
    """The endpoint's API key, read over SFTP ("" for runtimes without one: Ollama on loopback).

    The file holds the bare key, or ``VARIABLE=key`` (an environment file, as vLLM's).
    """
    from rigctl.pyinfra_api import read_file

    if not path:
        return ""
    return api_key_from_text(read_file(host, path).decode())


def api_key_from_text(text: str) -> str:
    """The key in a key file's text: its first line, bare or ``VARIABLE=key``."""
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    return line.split("=", 1)[1] if "=" in line else line


def read_deployment(host: Host) -> Deployment:
    """The host's manifest; raises OSError/ValueError when it has none (not provisioned)."""
    from rigctl.pyinfra_api import read_file

    try:
        raw = read_file(host, MANIFEST)
    except OSError:
        raise OSError(
            f"no rigctl deployment on {host.name} ({MANIFEST} missing): run `rigctl provision` first"
        ) from None
    return parse_deployment(raw)


def parse_deployment(raw: bytes | str) -> Deployment:
    """A manifest's text as a :class:`Deployment` (keys it does not know are ignored)."""
    data = json.loads(raw)
    known = set(Deployment.__dataclass_fields__)
    return Deployment(**{key: value for key, value in data.items() if key in known})
