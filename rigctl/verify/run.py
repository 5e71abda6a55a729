"""``rigctl verify`` on the controller: the shipped suite, one pytest run per host, in parallel.

Each host gets its own pytest process (testinfra's fixtures and the connection are per process,
and one host that hangs cannot hold up the others' results), with a :class:`Target` file saying
how to reach it and what the model lockfile pinned for it; the suite's plugin writes the
outcome of each check, which becomes a :class:`HostVerify`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigctl.errors import BadInput
from rigctl.lockfile import lockfile_path
from rigctl.paths import confined
from rigctl.pyinfra_api import Host, load_inventory, select_hosts, ssh_settings
from rigctl.roles import ollama as ollama_role
from rigctl.roles.llamacpp import install_prefix
from rigctl.roles.ollama import defaults as ollama_defaults
from rigctl.roles.vllm import install_prefix as vllm_install_prefix
from rigctl.verify.results import HostVerify, VerifyResult
from rigctl.verify.target import Target

SUITE = Path(__file__).resolve().parent / "suite"

#: Hosts checked at once (each is one Python process on the controller).
PARALLEL = 8

#: How long one host may take: hashing a 40 GB model on a slow disk takes minutes.
HOST_TIMEOUT_S = 1800


def read_lockfile(target: str) -> tuple[Path, dict[str, Any] | None]:
    """The inventory's model lockfile and its host entries (None when there is none yet)."""
    path = lockfile_path(target)
    if not path.exists():
        return path, None
    try:
        hosts = json.loads(path.read_text())["hosts"]
        if not isinstance(hosts, dict):
            raise ValueError("'hosts' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInput(
            f"{path}: not a rigctl model lockfile ({type(e).__name__}: {e})", field="lockfile"
        ) from None
    return path, hosts


def host_target(host: Host, lockfile: Path, lock: dict[str, Any] | None) -> Target | None:
    """What the suite needs about ``host``; None when it is not reached over SSH."""
    settings = ssh_settings(host)
    if settings is None:
        return None
    entry = (lock or {}).get(host.name)
    return Target(
        name=host.name,
        ssh=settings.to_json(),
        lock=entry if isinstance(entry, dict) else None,
        lockfile=str(lockfile) if entry else None,
        llamacpp_prefix=install_prefix(host),
        vllm_prefix=vllm_install_prefix(host),
        ollama_install_dir=ollama_role.install_dir(host),
        ollama_paths=[ollama_role.models_dir(host), ollama_defaults.OLLAMA_HOME],
    )


@dataclass
class _Run:
    """One host's pytest process."""

    name: str
    process: subprocess.Popen[bytes]
    report: Path
    output: Path

    def finish(self, deadline: float) -> HostVerify:
        try:
            self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return HostVerify(self.name, error=f"verify did not finish within {HOST_TIMEOUT_S} s")
        try:
            report = json.loads(self.report.read_text())
        except (OSError, ValueError):
            tail = self.output.read_text(errors="replace").strip().splitlines()[-5:]
            return HostVerify(
                self.name,
                error=f"the verify suite did not run (pytest exit {self.process.returncode}): {' | '.join(tail)}",
            )
        return HostVerify.from_report(self.name, report)


def _start(target: Target, workdir: Path) -> _Run:
    # the host's name comes from the inventory: one safe component, inside workdir whatever it is
    directory = confined(workdir, target.name)
    directory.mkdir(mode=0o700)
    target_file = directory / "target.json"
    target.write(target_file)
    report = directory / "report.json"
    output = directory / "pytest.log"
    config = directory / "pytest.ini"
    config.write_text("[pytest]\n")  # none of the caller's pytest settings apply
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-p",
        "rigctl.verify.plugin",
        "-p",
        "no:cacheprovider",
        "-c",
        str(config),
        "--rootdir",
        str(directory),
        "--rigctl-target",
        str(target_file),
        "--rigctl-report",
        str(report),
        "-q",
        "-rN",
        "--tb=short",
    ]
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1")
    with output.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=directory, env=env
        )
    return _Run(target.name, process, report, output)


def verify(target: str, limit: list[str] | None = None) -> VerifyResult:
    """Run the suite against every host of ``target`` (or those in ``limit``)."""
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    lockfile, lock = read_lockfile(target)
    result = VerifyResult(lockfile=str(lockfile) if lock is not None else None)
    found: dict[str, HostVerify] = {}
    targets: list[Target] = []
    for host in hosts:
        host_spec = host_target(host, lockfile, lock)
        if host_spec is None:
            found[host.name] = HostVerify(
                host.name, error="verify checks hosts over SSH; this one uses another connector"
            )
        else:
            targets.append(host_spec)
    with tempfile.TemporaryDirectory(prefix="rigctl-verify-") as workdir:
        for first in range(0, len(targets), PARALLEL):
            runs = [_start(t, Path(workdir)) for t in targets[first : first + PARALLEL]]
            deadline = time.monotonic() + HOST_TIMEOUT_S
            for run in runs:
                found[run.name] = run.finish(deadline)
    result.hosts = {host.name: found[host.name] for host in hosts}
    return result
