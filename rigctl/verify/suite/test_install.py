"""The runtime at the planned build, and the model file with the pinned sha256."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from typing import Any

import pytest
import testinfra.host

from rigctl.manifest import Deployment
from rigctl.verify.parse import BuildName
from rigctl.verify.target import Target


def planned_build(target: Target, deployment: Deployment, problems: list[str]) -> str:
    """The build the lockfile pinned for this host, else the one its manifest records."""
    locked = (target.lock or {}).get("build")
    if locked and locked != deployment.build:
        problems.append(f"manifest records build {deployment.build}, lockfile pins {locked}")
    return str(locked or deployment.build)


def _realpath(host: testinfra.host.Host, path: str) -> str:
    return str(host.run("readlink -f -- %s", path).stdout.strip())


def _running_exe(host: testinfra.host.Host, unit: str) -> str | None:
    pid = host.run("systemctl show -p MainPID --value -- %s", f"{unit}.service").stdout.strip()
    if not pid.isdigit() or pid == "0":
        return None
    return _realpath(host, f"/proc/{pid}/exe") or None


def _llamacpp(
    host: testinfra.host.Host,
    target: Target,
    deployment: Deployment,
    build: str,
    problems: list[str],
) -> str:
    prefix = target.llamacpp_prefix
    install = f"{prefix}/builds/{build}"
    try:
        name = BuildName.parse(build)
    except ValueError as e:
        problems.append(str(e))
        return ""
    info_file = host.file(f"{install}/BUILD_INFO.json")
    if not info_file.exists:
        problems.append(f"build {build} is not installed ({install}/BUILD_INFO.json missing)")
        return ""
    # the first JSON value: builds made before a fix of the role's printf end with a stray "n"
    info, _end = json.JSONDecoder().raw_decode(info_file.content_string)
    for field in ("version", "backend", "key"):
        if str(info.get(field)) != getattr(name, field):
            problems.append(
                f"{install}/BUILD_INFO.json says {field} {info.get(field)}, planned {getattr(name, field)}"
            )
    server = host.file(f"{install}/bin/llama-server")
    if not (server.is_file and server.mode & 0o111):
        problems.append(f"{install}/bin/llama-server is missing or not executable")
    current = host.file(f"{prefix}/current")
    if not current.is_symlink:
        problems.append(f"{prefix}/current is not a link to a build")
    elif _realpath(host, current.path) != _realpath(host, install):
        problems.append(f"{prefix}/current points at {current.linked_to}, planned {install}")
    running = _running_exe(host, deployment.unit)
    if running and not running.startswith(_realpath(host, install) + "/"):
        problems.append(f"the running server is {running}, not from build {build} (restart it)")
    return f"llama.cpp {name.version} ({name.backend}) in {install}" + (
        ", running" if running else ""
    )


def _ollama(host: testinfra.host.Host, target: Target, build: str, problems: list[str]) -> str:
    install = target.ollama_install_dir
    marker = host.file(f"{install}/lib/ollama/.rigctl-archive")
    binary = host.file(f"{install}/bin/ollama")
    if not (binary.is_file and binary.mode & 0o111):
        problems.append(f"{install}/bin/ollama is missing or not executable")
    if not marker.exists:
        problems.append(f"no Ollama archive installed by rigctl ({marker.path} missing)")
        return ""
    installed = marker.content_string.strip()
    if f"ollama-{installed[:12]}" != build:
        problems.append(f"installed archive {installed[:12]}, planned {build}")
    return f"Ollama archive {installed[:12]} in {install}"


def _vllm(
    host: testinfra.host.Host,
    target: Target,
    deployment: Deployment,
    build: str,
    problems: list[str],
) -> str:
    venv = f"{target.vllm_prefix}/{build}"
    key = build.rsplit("-", 1)[-1]
    marker = host.file(f"{venv}/.rigctl-installed")
    if not marker.exists:
        problems.append(f"virtualenv {build} is not installed ({marker.path} missing)")
        return ""
    if marker.content_string.strip() != key:
        problems.append(f"{venv} holds install {marker.content_string.strip()}, planned {key}")
    python = host.file(f"{venv}/bin/python")
    if not python.exists:
        problems.append(f"{venv}/bin/python is missing")
    pid = host.run(
        "systemctl show -p MainPID --value -- %s", f"{deployment.unit}.service"
    ).stdout.strip()
    running = ""
    if pid.isdigit() and pid != "0":
        argv = host.run("cat -- %s", f"/proc/{pid}/cmdline").stdout.split("\0")
        running = argv[0] if argv else ""
        if running != python.path:
            problems.append(
                f"the running server is {running or '?'}, not {python.path} (restart it)"
            )
    return f"vLLM virtualenv {build}" + (", running" if running else "")


def test_runtime(
    host: testinfra.host.Host, target: Target, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """The runtime is installed at the planned build (and the running server is that build)."""
    problems: list[str] = []
    build = planned_build(target, deployment, problems)
    if deployment.runtime == "llamacpp":
        seen = _llamacpp(host, target, deployment, build, problems)
    elif deployment.runtime == "ollama":
        seen = _ollama(host, target, build, problems)
    elif deployment.runtime == "vllm":
        seen = _vllm(host, target, deployment, build, problems)
    else:
        pytest.fail(f"verify has no checks for runtime {deployment.runtime} yet")
    assert not problems, "; ".join(problems)
    detail(seen)


def test_model(
    host: testinfra.host.Host, target: Target, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """The model file is there with the lockfile's sha256 (else the manifest's); with several
    models, each one's (the lockfile's entry of its alias)."""
    lock = target.lock or {}
    if deployment.models:
        raw = lock.get("models")
        locked: dict[str, Any] = raw if isinstance(raw, dict) else {}
        problems: list[str] = []
        shown = []
        for entry in deployment.models:
            alias = entry["alias"]
            found = locked.get(alias)
            each: dict[str, object] = found if isinstance(found, dict) else {}
            if lock and not each:
                problems.append(f"{alias}: not in the lockfile (provisioned since it was written?)")
            shown.append(f"{alias}: " + _model_file(
                host, entry["model_path"], entry["model_sha256"], each, target, problems
            ))
        assert not problems, "; ".join(problems)
        detail("; ".join(shown))
        return
    problems = []
    shown_one = _model_file(host, deployment.model_path, deployment.model_sha256, lock, target,
                            problems)
    assert not problems, "; ".join(problems)
    detail(shown_one)


def _model_file(
    host: testinfra.host.Host,
    path: str,
    manifest_sha256: str,
    lock: dict[str, object],
    target: Target,
    problems: list[str],
) -> str:
    """One model file (or directory) against its lockfile entry, else the manifest: what was
    found, for the detail line; what is wrong goes to ``problems``."""
    source = (
        f"lockfile {posixpath.basename(target.lockfile or '')}"
        if lock.get("sha256")
        else "manifest"
    )
    wanted = str(lock.get("sha256") or manifest_sha256)
    if lock.get("sha256") and manifest_sha256 != wanted:
        problems.append(
            f"manifest records sha256 {manifest_sha256[:12]}, lockfile pins {wanted[:12]}"
        )
    model = host.file(path)
    if model.is_directory:  # a Hugging Face model directory (vLLM)
        _model_directory(host, path, wanted, source, problems)
        return f"{path}/: tree sha256 {wanted[:12] or '(Hub revision)'}, as the {source} pins"
    if not model.is_file:
        problems.append(f"model {path} is missing")
        return f"{path}: missing"
    size = model.size
    wanted_size = lock.get("size_bytes")
    if wanted_size is not None and size != int(str(wanted_size)):
        problems.append(
            f"{path} has {size} bytes, the lockfile says {wanted_size} (truncated or replaced)"
        )
    else:
        got = host.check_output("sha256sum -- %s", path).split()[0]
        if got != wanted:
            problems.append(f"{path} has sha256 {got[:12]}, the {source} pins {wanted[:12]}")
    return f"{path}: sha256 {wanted[:12]}, {size} bytes, as the {source} pins"


def _model_directory(
    host: testinfra.host.Host, path: str, wanted: str, source: str, problems: list[str]
) -> None:
    """A model directory: its tree digest (rigctl.fetch.model_dir.tree_digest) on the host, or
    for a Hub snapshot (no digest pinned) the completed-download marker."""
    if not host.file(f"{path}/config.json").exists:
        problems.append(f"{path}/config.json is missing")
    if not wanted:
        if not host.file(f"{path}/.rigctl-revision").exists:
            problems.append(f"{path} is not a completed Hub snapshot (.rigctl-revision missing)")
        return
    got = host.check_output(
        "cd -- %s && find . -type f ! -name '*.sha256' ! -name '.rigctl-*' | sed 's|^./||'"
        " | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        path,
    ).split()[0]
    if got != wanted:
        problems.append(f"{path}/ has tree sha256 {got[:12]}, the {source} pins {wanted[:12]}")
