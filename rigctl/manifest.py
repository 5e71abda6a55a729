"""What rigctl deployed on a host, recorded on the host itself: ``/etc/rigctl/deployment.json``.

Written by each runtime's deploy (atomically, no secrets: the API key's *path* only) and read by
``bench``, ``status`` and ``verify``, so they need no plan, no inventory model key and no
guessing about which runtime serves where.
"""

from __future__ import annotations

import ipaddress
import json
import re
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
    #: every model served, when there are several: ``{alias, model_name, model_quant,
    #: model_path, model_sha256}`` each, the first being the one the ``model_*`` fields above
    #: name; where each model has a server of its own (vLLM), also its ``unit`` and ``port``
    #: (the first's are ``unit`` and ``port`` above)
    models: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def separate(self) -> bool:
        """Each model has a server (unit, port) of its own, rather than one behind the endpoint."""
        return any("port" in entry for entry in self.models)

    @property
    def router(self) -> bool:
        """Several models behind llama-server's router (loaded through its API)."""
        return self.runtime == "llamacpp" and bool(self.models)

    @property
    def units(self) -> list[str]:
        """Every unit that serves this deployment's models, the endpoint's first."""
        units = [self.unit]
        for entry in self.models:
            if entry.get("unit", self.unit) not in units:
                units.append(entry["unit"])
        return units

    def server_of(self, alias: str | None) -> tuple[str, int]:
        """The unit and port that serve ``alias`` (None, or one behind the endpoint: the
        endpoint's own)."""
        entry = next((e for e in self.models if e["alias"] == alias), {})
        return entry.get("unit", self.unit), entry.get("port", self.port)

    def render(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def ollama_names(alias: str) -> set[str]:
    """The names Ollama may list an imported alias under (``ollama create chat`` is
    ``chat:latest``)."""
    return {alias, f"{alias}:latest"}


def read_api_key(host: Host, path: str) -> str:
    """The endpoint's API key, read over SFTP ("" for runtimes without one: Ollama on loopback).

    The file holds the bare key, or ``VARIABLE=key`` (an environment file, as vLLM's).
    """
    from rigctl.pyinfra_api import read_file
    from rigctl.redact import register_secret

    if not path:
        return ""
    key = api_key_from_text(read_file(host, path).decode())
    register_secret(key)  # never shown: errors and JSON that quote it are redacted
    return key


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
    """A manifest's text as a :class:`Deployment` (keys it does not know are ignored).

    The manifest is read back from a host, and what it says ends up in commands run there as
    root (``systemctl restart <unit>``, ``cp`` over each of ``config_files``) and in paths: it
    is validated here, and a manifest that fails is refused (ValueError), never used.
    """
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a manifest is a JSON object")
    known = set(Deployment.__dataclass_fields__)
    try:
        deployment = Deployment(**{key: value for key, value in data.items() if key in known})
    except TypeError as e:  # a field missing
        raise ValueError(f"not a rigctl manifest: {e}") from None
    check_deployment(deployment)
    return deployment


#: A systemd unit name without its ``.service`` (rigctl's own and Ollama's ``ollama``).
UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
#: Where the files that define a service may be: units, their drop-ins (Ollama's
#: ``/etc/systemd/system/ollama.service.d/``), rigctl's configuration, launchd daemons.
CONFIG_DIRS = ("/etc/systemd/system/", "/etc/rigctl/", "/Library/LaunchDaemons/")
#: An absolute path on a host, as rigctl writes them (``rigctl.hostdata.host_path``'s set).
HOST_PATH = re.compile(r"/[A-Za-z0-9/._+@-]{0,1023}")
SHA256 = re.compile(r"[0-9a-f]{64}")
#: A model's alias (host data ``models``: URL-safe, at most 64).
ALIAS = re.compile(r"[A-Za-z0-9._~-]{1,64}")
MODEL_KEYS = ("alias", "model_name", "model_quant", "model_path", "model_sha256")
#: A model's own server, where each has one (vLLM): its unit and port.
SERVER_KEYS = ("unit", "port")
RUNTIMES = ("llamacpp", "ollama", "vllm")


def plain_host_path(value: object, what: str) -> str:
    """``value`` when it is an absolute path of the characters rigctl writes paths with, with
    no empty, ``.`` or ``..`` part; else ValueError naming ``what``."""
    if (
        not isinstance(value, str)
        or not HOST_PATH.fullmatch(value)
        or any(part in ("", ".", "..") for part in value[1:].split("/"))
    ):
        raise ValueError(f"{what}: not a plain absolute path: {value!r}")
    return value


def _abs_path(value: object, what: str, *, empty: bool = False) -> str:
    """An absolute path without ``..`` or control characters (read over SFTP, or passed to
    commands quoted): model files may have names of any other characters."""
    if empty and value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{what}: not an absolute path: {value!r}")
    _text(value, what)
    if ".." in value.split("/") or len(value) > 4096:
        raise ValueError(f"{what}: not a plain absolute path: {value!r}")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what}: not a line of text: {value!r}")
    return value


def check_deployment(d: Deployment) -> None:
    """Raise ValueError unless every field is what a rigctl deploy writes."""
    if d.runtime not in RUNTIMES:
        raise ValueError(f"runtime: not one of {', '.join(RUNTIMES)}: {d.runtime!r}")
    if not isinstance(d.unit, str) or not UNIT_NAME.fullmatch(d.unit):
        raise ValueError(f"unit: not a unit name: {d.unit!r}")
    if not isinstance(d.user, str) or not UNIT_NAME.fullmatch(d.user):
        raise ValueError(f"user: not a user name: {d.user!r}")
    if isinstance(d.port, bool) or not isinstance(d.port, int) or not 1 <= d.port <= 65535:
        raise ValueError(f"port: not a TCP port: {d.port!r}")
    try:
        if not isinstance(d.listen, str):
            raise ValueError
        ipaddress.ip_address(d.listen)
    except ValueError:
        raise ValueError(f"listen: not an IP address: {d.listen!r}") from None
    _abs_path(d.api_key_file, "api_key_file", empty=True)
    _abs_path(d.model_path, "model_path")
    if not isinstance(d.model_sha256, str) or not (
        d.model_sha256 == "" or SHA256.fullmatch(d.model_sha256)
    ):
        raise ValueError(f"model_sha256: not a sha256: {d.model_sha256!r}")
    for name in ("build", "model_name", "model_quant", "served_model"):
        _text(getattr(d, name), name)
    for name in ("metrics_path", "health_path"):
        value = getattr(d, name)
        if not isinstance(value, str) or not re.fullmatch(r"(/[A-Za-z0-9._~/-]*)?", value):
            raise ValueError(f"{name}: not an HTTP path: {value!r}")
    if not isinstance(d.args, list) or not all(isinstance(arg, str) for arg in d.args):
        raise ValueError("args: not a list of strings")
    if not isinstance(d.models, list) or len(d.models) > 64:
        raise ValueError("models: not a list of at most 64 models")
    for entry in d.models:
        _check_model(entry)
    if len({entry["alias"].lower() for entry in d.models}) != len(d.models):
        raise ValueError("models: two models with one alias")
    servers = [(e["unit"], e["port"]) for e in d.models if "unit" in e]
    if servers and (len(servers) != len(d.models) or servers[0] != (d.unit, d.port)
                    or len({u for u, _ in servers}) != len(servers)
                    or len({p for _, p in servers}) != len(servers)):
        raise ValueError("models: with servers of their own, every model has its own unit and "
                         "port, the first's being the deployment's")
    if not isinstance(d.config_files, list):
        raise ValueError("config_files: not a list")
    for path in d.config_files:
        plain_host_path(path, "config_files")
        if not path.startswith(CONFIG_DIRS):
            raise ValueError(
                f"config_files: {path!r} is not under {', '.join(CONFIG_DIRS)}"
            )


def _check_model(entry: object) -> None:
    """One entry of a manifest's ``models``."""
    if not isinstance(entry, dict) or set(entry) not in (
        set(MODEL_KEYS), set(MODEL_KEYS) | set(SERVER_KEYS)
    ):
        raise ValueError(f"models: an entry is not {{{', '.join(MODEL_KEYS)}}}"
                         f" (and {' and '.join(SERVER_KEYS)}): {entry!r}")
    if "unit" in entry:
        if not isinstance(entry["unit"], str) or not UNIT_NAME.fullmatch(entry["unit"]):
            raise ValueError(f"models.unit: not a unit name: {entry['unit']!r}")
        port = entry["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"models.port: not a TCP port: {port!r}")
    if not isinstance(entry["alias"], str) or not ALIAS.fullmatch(entry["alias"]):
        raise ValueError(f"models: not an alias: {entry['alias']!r}")
    _abs_path(entry["model_path"], "models.model_path")
    if not isinstance(entry["model_sha256"], str) or not (
        entry["model_sha256"] == "" or SHA256.fullmatch(entry["model_sha256"])
    ):
        raise ValueError(f"models.model_sha256: not a sha256: {entry['model_sha256']!r}")
    for name in ("model_name", "model_quant"):
        _text(entry[name], f"models.{name}")
