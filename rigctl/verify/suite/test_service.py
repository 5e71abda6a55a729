"""The service: enabled, running as its own non-root user, hardened, listening where planned,
its API key private to it."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

import pytest
import testinfra.host

from rigctl.manifest import Deployment
from rigctl.verify import hardening
from rigctl.verify.parse import BuildName, proc_uids, same_address, ss_listeners
from rigctl.verify.suite import skip_unless_keyed
from rigctl.verify.target import Target


def _uid(host: testinfra.host.Host, user: str) -> int | None:
    entry = host.run("getent passwd -- %s", user)
    fields = entry.stdout.strip().split(":")
    return int(fields[2]) if entry.rc == 0 and len(fields) > 2 and fields[2].isdigit() else None


def test_service(
    host: testinfra.host.Host,
    deployment: Deployment,
    unit: dict[str, str],
    detail: Callable[[str], None],
) -> None:
    """Enabled, active, and running as the planned user, which is not root."""
    name = f"{deployment.unit}.service"
    problems = []
    if unit.get("LoadState") != "loaded":
        problems.append(f"{name} is {unit.get('LoadState') or 'unknown'} (LoadState)")
    if unit.get("UnitFileState") != "enabled":
        problems.append(
            f"{name} is not enabled (UnitFileState={unit.get('UnitFileState') or '(none)'})"
        )
    if unit.get("ActiveState") != "active":
        problems.append(
            f"{name} is not running (ActiveState={unit.get('ActiveState')}, SubState={unit.get('SubState')})"
        )
    if unit.get("NeedDaemonReload") == "yes":
        problems.append(f"{name} changed on disk since systemd loaded it (daemon-reload pending)")
    user = unit.get("User") or "root"
    if user != deployment.user:
        problems.append(f"{name} runs as User={user}, planned {deployment.user}")
    if user == "root" or deployment.user == "root":
        problems.append(f"{name} runs as root")
    uid = _uid(host, deployment.user)
    if uid is None:
        problems.append(f"user {deployment.user} does not exist")
    elif uid == 0:
        problems.append(f"user {deployment.user} has uid 0")
    pid = int(unit.get("MainPID") or 0)
    seen = ""
    if pid > 0:
        status = host.run("cat /proc/%s/status", str(pid))
        if status.rc == 0:
            real = proc_uids(status.stdout)[0]
            seen = f", pid {pid} with uid {real}"
            if real == 0:
                problems.append(f"its process {pid} runs as root (uid 0)")
            elif uid is not None and real != uid:
                problems.append(
                    f"its process {pid} runs with uid {real}, not {deployment.user} ({uid})"
                )
    assert not problems, "; ".join(problems)
    detail(f"{name} enabled and active as {deployment.user} (uid {uid}){seen}")


def test_hardening(
    deployment: Deployment, target: Target, unit: dict[str, str], detail: Callable[[str], None]
) -> None:
    """The unit's sandboxing is in force (systemctl show: what systemd applies, not the file)."""
    backend = None
    if deployment.runtime == "llamacpp":
        try:
            backend = BuildName.parse(deployment.build).backend
        except ValueError:
            backend = None
    elif deployment.runtime == "vllm":
        # the virtualenv is named <version>-<variant>-<key>; the variant is cuda, rocm or cpu
        parts = deployment.build.split("-")
        backend = parts[1] if len(parts) == 3 else None
    read_only = [
        posixpath.dirname(path) for path in (deployment.model_path, deployment.api_key_file) if path
    ]
    profile = hardening.expected(deployment.runtime, backend, read_only, target.ollama_paths)
    if not profile:
        pytest.skip(f"no hardening profile for runtime {deployment.runtime}")
    problems = hardening.problems(profile, unit)
    assert not problems, "; ".join(problems)
    detail(f"{len(profile)} properties in force")


def _service_pids(host: testinfra.host.Host, unit: dict[str, str]) -> set[int]:
    """Every process of the service (its cgroup: a server's workers and runners too)."""
    pids = {int(unit.get("MainPID") or 0)} - {0}
    group = unit.get("ControlGroup") or ""
    if group:
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
            procs = host.run("cat -- %s", f"{base}{group}/cgroup.procs")
            if procs.rc == 0:
                pids |= {int(p) for p in procs.stdout.split() if p.isdigit()}
                break
    return pids


def test_listening(
    host: testinfra.host.Host,
    deployment: Deployment,
    unit: dict[str, str],
    detail: Callable[[str], None],
) -> None:
    """The service listens on the planned address and port, and beyond loopback nowhere else."""
    pids = _service_pids(host, unit)
    assert pids, f"{deployment.unit} has no running process"
    ss = host.run("ss -Htlnp")
    assert ss.rc == 0, f"ss -Htlnp failed: {ss.stderr.strip() or ss.rc} (ss is in iproute2)"
    mine = [listener for listener in ss_listeners(ss.stdout) if pids & set(listener.pids)]
    planned = [
        listener
        for listener in mine
        if listener.port == deployment.port and same_address(listener.address, deployment.listen)
    ]
    shown = ", ".join(str(listener) for listener in mine) or "nothing"
    problems = []
    if not planned:
        problems.append(
            f"not listening on {deployment.listen}:{deployment.port} (listens on {shown})"
        )
    for listener in mine:
        if listener in planned:
            continue
        if listener.wildcard or not listener.loopback:
            problems.append(f"also listens on {listener}")
    assert not problems, "; ".join(problems)
    names = sorted({process for listener in mine for process in listener.processes})
    detail(f"{shown} ({', '.join(names)})")


def test_api_key(
    host: testinfra.host.Host, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """The API key file is mode 0600, owned by the service user, and not empty."""
    skip_unless_keyed(deployment)
    key = host.file(deployment.api_key_file)
    assert key.is_file, f"{deployment.api_key_file} is missing"
    problems = []
    if key.mode != 0o600:
        problems.append(f"{deployment.api_key_file} has mode {key.mode:04o}, expected 0600")
    if key.user != deployment.user:
        problems.append(
            f"{deployment.api_key_file} is owned by {key.user}, expected {deployment.user}"
        )
    if key.size == 0:
        problems.append(f"{deployment.api_key_file} is empty")
    assert not problems, "; ".join(problems)
    detail(f"{deployment.api_key_file}: 0600 {key.user}:{key.group}")
