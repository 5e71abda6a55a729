"""The on-host rollback snapshot: taken before a rollout changes a host, put back when it fails.

The snapshot lives on the host itself, so it outlives the controller and the connection (a
host lost during its own update is rolled back when it comes back, by the same rollout or by
``rigctl rollback`` later)::

    /etc/rigctl/rollback/
        deployment.json   the manifest in force before the change
        files/0 .. N-1    the files it names in ``config_files`` (unit, drop-ins), in order
        current           where the llama.cpp ``current`` build link pointed, when it existed
        taken             when the snapshot was taken (UTC, ISO 8601)
        pending           present while the change it guards is unproven

The previous version stays until the new one is proven: a snapshot is ``pending`` from the
moment it is taken until its host passes the rollout's gates (or is rolled back to it). A
rollout that finds a pending snapshot (an earlier rollout was killed, or lost the host, before
it could judge the change) keeps it instead of snapshotting the half-applied change, so a
rollback still goes back to the last version that was proven.

A new snapshot is written beside the old one and renamed over it: a host has one whole
snapshot or the previous one, never half of each. Restoring replaces each file atomically
(copy beside, rename over), stops the new deployment's unit when the change moved the endpoint
to another runtime, restarts the previous unit and waits until it answers its health check.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from rigctl.bench.smoke import wait_ready
from rigctl.deploys.vllm import READY_TIMEOUT as VLLM_READY_TIMEOUT
from rigctl.fleet import FleetResult
from rigctl.health import crash_watch
from rigctl.manifest import MANIFEST, Deployment, parse_deployment, read_deployment
from rigctl.progress import Reporter, quiet
from rigctl.pyinfra_api import (
    CONNECTION_LOST,
    Host,
    Session,
    connection_lost,
    endpoint_from_controller,
    load_inventory,
    read_file,
    run_command,
    select_hosts,
)
from rigctl.roles.llamacpp import install_prefix
from rigctl.roles.service import restart_stamp

ROLLBACK_DIR = "/etc/rigctl/rollback"
SNAPSHOT_MANIFEST = f"{ROLLBACK_DIR}/deployment.json"
PENDING = f"{ROLLBACK_DIR}/pending"
#: how long a restored service may take to answer (vLLM loads and compiles for minutes)
READY_TIMEOUTS = {"vllm": VLLM_READY_TIMEOUT}
READY_TIMEOUT = 180.0


def config_files(deployment: Deployment) -> list[str]:
    # manifests written before config_files existed name only their unit
    return deployment.config_files or [f"/etc/systemd/system/{deployment.unit}.service"]


def _sh(host: Host, steps: list[str]) -> None:
    try:
        ok, _out, err = run_command(host, f"sh -c {shlex.quote(' && '.join(steps))}")
    except Exception:
        ok, err = False, ""
    if not ok:
        if connection_lost(host):
            raise OSError(CONNECTION_LOST)
        raise OSError(err.strip().splitlines()[-1][-300:] if err.strip() else "failed")


def _read(host: Host, path: str) -> bytes | None:
    """A file's bytes, or None when it does not exist; OSError(CONNECTION_LOST) when the
    connection is gone (a lost host is not a host without a snapshot)."""
    try:
        return read_file(host, path)
    except Exception:
        if connection_lost(host):
            raise OSError(CONNECTION_LOST) from None
        return None


def snapshot_steps(deployment: Deployment, prefix: str) -> list[str]:
    """The shell steps that take a snapshot of ``deployment`` (run joined by ``&&``): every
    value in them is a constant or quoted."""
    new = f"{ROLLBACK_DIR}.new"
    link = shlex.quote(f"{prefix}/current")
    steps = [f"rm -rf {new}", f"mkdir -p {new}/files", f"cp -p {MANIFEST} {new}/deployment.json"]
    for index, path in enumerate(config_files(deployment)):
        steps.append(f"cp -p {shlex.quote(path)} {new}/files/{index}")
    steps += [
        f"if [ -L {link} ]; then readlink {link} > {new}/current; fi",
        f"date -u +%Y-%m-%dT%H:%M:%SZ > {new}/taken",
        f"touch {new}/pending",
        # the snapshot replaces the previous one whole, or not at all
        f"rm -rf {ROLLBACK_DIR}.old",
        f"if [ -e {ROLLBACK_DIR} ]; then mv {ROLLBACK_DIR} {ROLLBACK_DIR}.old; fi",
        f"mv {new} {ROLLBACK_DIR}",
        f"rm -rf {ROLLBACK_DIR}.old",
    ]
    return steps


#: A build directory's name (``<version>-<backend>-<key>``), as a ``current`` link names it.
_BUILD_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}")


def current_target(raw: bytes, prefix: str) -> str:
    """The snapshot's ``current`` file (``readlink``'s output) as a link target, which must be a
    build directory under ``prefix/builds``: the file is read back from the host, so anything
    else is refused (ValueError), never linked."""
    target = raw.decode(errors="replace").rstrip("\n")
    builds = f"{prefix}/builds/"
    name = target[len(builds) :] if target.startswith(builds) else ""
    if not _BUILD_NAME.fullmatch(name):
        raise ValueError(f"the snapshot's build link {target!r} is not a build under {builds}")
    return target


def restore_steps(
    previous: Deployment,
    now: Deployment | None,
    prefix: str,
    build_link: str | None,
    stamp: str | list[str],
) -> list[str]:
    """The shell steps that put the snapshot of ``previous`` back (run joined by ``&&``).

    + now: the deployment in force (a unit of it that ``previous`` has not is stopped and
      disabled: the change moved to another runtime, or added a model with a server of its own;
      the next provision removes such a unit's file)
    + build_link: where ``prefix/current`` pointed when the snapshot was taken
      (:func:`current_target`), None when it did not exist
    + stamp: the restart stamp of each of ``previous``'s units
    """
    steps = []
    for unit in now.units if now is not None else []:
        if unit in previous.units:
            continue
        steps.append(f"systemctl disable --now {shlex.quote(unit)}.service")
    for index, path in enumerate([*config_files(previous), MANIFEST]):
        quoted = shlex.quote(path)
        source = f"{ROLLBACK_DIR}/files/{index}" if path != MANIFEST else SNAPSHOT_MANIFEST
        steps += [f"cp -p {source} {quoted}.rigctl-new", f"mv -f {quoted}.rigctl-new {quoted}"]
    if build_link is not None:
        staged = shlex.quote(f"{prefix}/current.rollback")
        steps.append(
            f"ln -sfn {shlex.quote(build_link)} {staged}"
            f" && mv -T {staged} {shlex.quote(f'{prefix}/current')}"
        )
    units = " ".join(f"{shlex.quote(unit)}.service" for unit in previous.units)
    steps += [
        "systemctl daemon-reload",
        f"systemctl enable {units}",
        f"systemctl restart {units}",
        # the restored files are newer than the last restart rigctl recorded: record this one,
        # or the next provision would restart the service for nothing
        *(f"touch {shlex.quote(each)}" for each in ([stamp] if isinstance(stamp, str) else stamp)),
    ]
    return steps


def take_snapshot(host: Host, report: Reporter = quiet) -> Deployment:
    """Snapshot the host's deployment, or keep a pending one (raises OSError when the host has
    neither: nothing to go back to)."""
    if _read(host, PENDING) is not None:
        raw = _read(host, SNAPSHOT_MANIFEST)
        if raw is not None:
            report(
                host.name,
                "snapshot",
                f"keeping the snapshot of {snapshot_taken(host)}: the change made after it was "
                "never proven",
            )
            return parse_deployment(raw)
    deployment = read_deployment(host)
    steps = snapshot_steps(deployment, install_prefix(host))
    try:
        _sh(host, steps)
    except OSError as e:
        raise OSError(f"rollback snapshot failed: {e}") from None
    return deployment


def settle(host: Host) -> None:
    """The change the snapshot guarded is proven (or undone): a later rollout may replace it."""
    _sh(host, [f"rm -f {PENDING}"])


def snapshot_taken(host: Host) -> str:
    raw = _read(host, f"{ROLLBACK_DIR}/taken")
    return raw.decode(errors="replace").strip() if raw else ""


def restore(host: Host, report: Reporter = quiet) -> Deployment:
    """Put the host's snapshot back and restart its service; raise when it does not serve again."""
    raw = _read(host, SNAPSHOT_MANIFEST)
    if raw is None:
        raise OSError(
            f"no rollback snapshot on the host ({SNAPSHOT_MANIFEST} missing): "
            "only `rigctl rollout` takes one"
        )
    previous = parse_deployment(raw)
    current = _read(host, MANIFEST)
    try:
        now = parse_deployment(current) if current else None
    except ValueError:
        now = None
    prefix = install_prefix(host)
    link = _read(host, f"{ROLLBACK_DIR}/current")
    try:
        build_link = current_target(link, prefix) if link is not None else None
    except ValueError as e:
        raise OSError(f"restore refused: {e}") from None
    steps = restore_steps(previous, now, prefix, build_link,
                          [restart_stamp(unit) for unit in previous.units])
    try:
        _sh(host, steps)
    except OSError as e:
        raise OSError(str(e) if str(e) == CONNECTION_LOST else f"restore failed: {e}") from None
    report(host.name, "rollback", f"{previous.unit} restored; waiting for {previous.health_path}")
    for unit in previous.units:  # each model's own server, where it has one
        port = next((p for u, p in map(previous.server_of, _aliases(previous)) if u == unit),
                    previous.port)
        with endpoint_from_controller(host, previous.listen, port) as endpoint:
            try:
                wait_ready(
                    endpoint,
                    timeout=READY_TIMEOUTS.get(previous.runtime, READY_TIMEOUT),
                    give_up=crash_watch(host, unit),
                    health_path=previous.health_path,
                )
            except TimeoutError as e:
                raise OSError(f"{unit} never became ready after the rollback: {e}") from None
    settle(host)  # the host runs the snapshot's version again
    return previous


def _aliases(deployment: Deployment) -> list[str | None]:
    return [entry["alias"] for entry in deployment.models] or [None]


def restore_one(inventory: Any, name: str, report: Reporter = quiet) -> tuple[str | None, bool]:
    """Restore one host in its own session: (why it failed or None, whether it was reachable)."""
    hosts = [h for h in inventory if h.name == name]
    with Session(inventory, limit=hosts) as session:
        session.each_host(lambda host: restore(host, report))
        result = session.results[name]
    if not result.failed:
        return None, True
    why = result.error or "unreachable"
    return why, not (result.status == "unreachable" or CONNECTION_LOST in why)


def restore_when_back(
    inventory: Any, name: str, wait_s: float, report: Reporter = quiet, retry_s: float = 5.0
) -> tuple[str | None, bool]:
    """:func:`restore_one`, retried while the host cannot be reached, for up to ``wait_s``
    seconds (a host that lost power or network during its update and comes back)."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        why, reachable = restore_one(inventory, name, report)
        if why is None or reachable or time.monotonic() + retry_s > deadline:
            return why, reachable
        if not told:
            report(
                name,
                "rollback",
                f"unreachable ({why}); retrying until it is back (up to {wait_s:g} s)",
            )
            told = True
        time.sleep(retry_s)


# --------------------------------------------------------------------------- rigctl rollback


@dataclass
class HostRollback:
    name: str
    status: str = "pending"  # rolled-back | failed | unreachable
    taken: str = ""
    unit: str = ""
    build: str = ""
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != "rolled-back"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "snapshot_taken": self.taken or None,
            "unit": self.unit or None,
            "build": self.build or None,
            "error": self.error,
        }


@dataclass
class RollbackResult(FleetResult[HostRollback]):
    """Per host: the version put back, or why not."""


def rollback(
    target: str, *, limit: list[str] | None = None, report: Reporter = quiet
) -> RollbackResult:
    """Put every selected host back to its rollback snapshot, in parallel."""
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    result = RollbackResult({h.name: HostRollback(h.name) for h in hosts})

    def one(host: Host) -> None:
        outcome = result.hosts[host.name]
        outcome.taken = snapshot_taken(host)
        previous = restore(host, report)
        outcome.unit, outcome.build = previous.unit, previous.build

    with Session(inventory, limit=hosts) as session:
        session.each_host(one)
        for name, host_result in session.results.items():
            outcome = result.hosts[name]
            if host_result.failed:
                outcome.status = "unreachable" if host_result.status == "unreachable" else "failed"
                outcome.error = host_result.error
            else:
                outcome.status = "rolled-back"
    return result
