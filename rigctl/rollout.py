"""``rigctl rollout``: change a fleet in batches, gate each host on health and speed, roll back.

For each batch (the canary batch first):

1. each host already serving is snapshotted on the host itself (its unit file, its deployment
   manifest and the build its ``current`` link points at: ``/etc/rigctl/rollback/``), and its
   single-user decode speed is measured;
2. the batch is provisioned (the normal pipeline, smoke check included);
3. gates: the host must be serving (provision and smoke check passed) and its decode tok/s must
   not drop more than ``gate_tokps_drop`` percent below the measurement before the change;
4. a host that fails a gate is rolled back: the previous unit, manifest and build are put back
   (each replaced atomically), the service restarted and checked healthy again;
5. when more than ``max_fail`` hosts have failed, the rollout halts: later batches are not
   touched.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rigctl.bench.run import bench
from rigctl.bench.smoke import wait_ready
from rigctl.deployment import MANIFEST, Deployment, read_deployment
from rigctl.errors import BadInput
from rigctl.provision import crash_watch, provision
from rigctl.pyinfra_api import (
    Host,
    Session,
    endpoint_from_controller,
    load_inventory,
    run_command,
    select_hosts,
)
from rigctl.roles.llamacpp import install_prefix

ROLLBACK_DIR = "/etc/rigctl/rollback"
GATE_PROMPT_TOKENS = 128
GATE_MAX_TOKENS = 64
GATE_SECONDS = 5.0

Reporter = Callable[[str | None, str, str], None]


@dataclass
class HostRollout:
    name: str
    batch: int
    status: str = "pending"  # updated | unchanged | rolled-back | failed | skipped
    before_tps: float | None = None
    after_tps: float | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "status": self.status,
            "before_tps": self.before_tps,
            "after_tps": self.after_tps,
            "reason": self.reason,
        }


@dataclass
class RolloutResult:
    hosts: dict[str, HostRollout] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    halted_after_batch: int | None = None

    @property
    def failed(self) -> list[str]:
        return [n for n, h in self.hosts.items() if h.status in ("rolled-back", "failed")]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.halted_after_batch is not None else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "hosts": {name: h.to_json() for name, h in self.hosts.items()},
            "halted_after_batch": self.halted_after_batch,
            "failed": self.failed,
            "ok": self.exit_code == 0,
        }


def parse_batch(text: str, total: int) -> int:
    """``N`` hosts or ``P%`` of the fleet per batch (at least one)."""
    value = text.strip()
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return max(1, math.ceil(total * percent / 100))
        size = int(value)
        if size < 1:
            raise ValueError
        return size
    except ValueError:
        raise BadInput(f"must be a positive count or a percentage like 25%, got {text!r}", field="batch") from None


def make_batches(names: list[str], canary: int, size: int) -> list[list[str]]:
    if canary < 0:
        raise BadInput(f"must be 0 or more, got {canary}", field="canary")
    batches = [names[:canary]] if canary else []
    rest = names[canary:]
    batches += [rest[i : i + size] for i in range(0, len(rest), size)]
    return [b for b in batches if b]


def regression(before: float | None, after: float | None, limit_percent: float) -> str | None:
    """Why a speed change fails the gate, or None when it passes (or cannot be judged)."""
    if before is None or after is None or before <= 0:
        return None
    drop = (before - after) / before * 100
    if drop > limit_percent:
        return f"decode {after:.1f} tok/s is {drop:.1f}% below {before:.1f} before the change (gate {limit_percent:g}%)"
    return None


def _quiet(_host: str | None, _stage: str, _detail: str) -> None:
    return None


def rollout(
    target: str,
    *,
    batch: str = "1",
    canary: int = 1,
    max_fail: int = 0,
    gate_tokps_drop: float = 10.0,
    limit: list[str] | None = None,
    report: Reporter = _quiet,
) -> RolloutResult:
    if max_fail < 0:
        raise BadInput(f"must be 0 or more, got {max_fail}", field="max-fail")
    if not 0 <= gate_tokps_drop <= 100:
        raise BadInput(f"must be a percentage from 0 to 100, got {gate_tokps_drop}", field="gate-tokps-drop")
    inventory = load_inventory(target)
    names = [h.name for h in select_hosts(inventory, limit)]
    result = RolloutResult()
    result.batches = make_batches(names, canary, parse_batch(batch, len(names)))
    for index, members in enumerate(result.batches):
        for name in members:
            result.hosts[name] = HostRollout(name, batch=index)
    failures = 0
    for index, members in enumerate(result.batches):
        report(None, "batch", f"{index} ({'canary' if index == 0 and canary else 'batch'}): {', '.join(members)}")
        previous = _snapshot(inventory, members)
        before = _decode_speed(target, [n for n in members if n in previous])
        provisioned = provision(target, limit=members)
        after = _decode_speed(target, [n for n in members if not provisioned.hosts[n].result.failed])
        for name in members:
            outcome = result.hosts[name]
            outcome.before_tps, outcome.after_tps = before.get(name), after.get(name)
            host_result = provisioned.hosts[name].result
            why = host_result.error if host_result.failed else regression(
                outcome.before_tps, outcome.after_tps, gate_tokps_drop
            )
            if why is None:
                outcome.status = "updated" if host_result.changed_ops else "unchanged"
                continue
            failures += 1
            outcome.reason = why
            report(name, "gate", f"failed: {why}")
            if name in previous:
                restored = _roll_back(inventory, name, previous[name])
                outcome.status = "rolled-back" if restored is None else "failed"
                if restored:
                    outcome.reason = f"{why}; rollback failed: {restored}"
            else:
                outcome.status = "failed"
        if failures > max_fail:
            result.halted_after_batch = index
            for later in result.batches[index + 1 :]:
                for name in later:
                    result.hosts[name].status = "skipped"
                    result.hosts[name].reason = f"rollout halted after batch {index} ({failures} failed > max-fail {max_fail})"
            break
    return result


def _config_files(deployment: Deployment) -> list[str]:
    # manifests written before config_files existed name only their unit
    return deployment.config_files or [f"/etc/systemd/system/{deployment.unit}.service"]


def _snapshot(inventory: Any, members: list[str]) -> dict[str, Deployment]:
    """Keep each serving host's service files, manifest and build on the host, for rollback."""
    hosts = [h for h in inventory if h.name in members]

    def snapshot(host: Host) -> Deployment:
        deployment = read_deployment(host)
        prefix = install_prefix(host)
        steps = [f"rm -rf {ROLLBACK_DIR}.tmp", f"mkdir -p {ROLLBACK_DIR}.tmp"]
        for index, path in enumerate([*_config_files(deployment), MANIFEST]):
            steps.append(f"cp -p {shlex.quote(path)} {ROLLBACK_DIR}.tmp/{index}")
        steps.append(f"if [ -L {prefix}/current ]; then readlink {prefix}/current > {ROLLBACK_DIR}.tmp/current; fi")
        # the snapshot replaces the previous one whole, or not at all
        steps += [f"rm -rf {ROLLBACK_DIR}", f"mv {ROLLBACK_DIR}.tmp {ROLLBACK_DIR}"]
        ok, _out, err = run_command(host, f"sh -c {shlex.quote(' && '.join(steps))}")
        if not ok:
            raise OSError(f"snapshot failed: {err[-200:]}")
        return deployment

    with Session(inventory, limit=hosts) as session:
        return session.each_host(snapshot)


def _decode_speed(target: str, names: list[str]) -> dict[str, float]:
    if not names:
        return {}
    measured = bench(
        target,
        levels=[1],
        prompt_tokens=GATE_PROMPT_TOKENS,
        max_tokens=GATE_MAX_TOKENS,
        duration_s=GATE_SECONDS,
        limit=names,
        record=False,
    )
    speeds = {}
    for name, host in measured.hosts.items():
        if host.levels and host.levels[0].decode_tps_per_request:
            speeds[name] = host.levels[0].decode_tps_per_request
    return speeds


def _roll_back(inventory: Any, name: str, previous: Deployment) -> str | None:
    """Put the snapshot back and restart; None when the host serves again, else why not."""
    hosts = [h for h in inventory if h.name == name]

    def restore(host: Host) -> str | None:
        prefix = install_prefix(host)
        steps = []
        for index, path in enumerate([*_config_files(previous), MANIFEST]):
            quoted = shlex.quote(path)
            steps += [f"cp -p {ROLLBACK_DIR}/{index} {quoted}.rigctl-new", f"mv -f {quoted}.rigctl-new {quoted}"]
        steps += [
            f"if [ -f {ROLLBACK_DIR}/current ]; then ln -sfn \"$(cat {ROLLBACK_DIR}/current)\" {prefix}/current.rollback"
            f" && mv -T {prefix}/current.rollback {prefix}/current; fi",
            "systemctl daemon-reload",
            f"systemctl restart {previous.unit}.service",
        ]
        ok, _out, err = run_command(host, f"sh -c {shlex.quote(' && '.join(steps))}")
        if not ok:
            return f"restore failed: {err[-200:]}"
        with endpoint_from_controller(host, previous.listen, previous.port) as endpoint:
            try:
                wait_ready(
                    endpoint,
                    timeout=120,
                    give_up=crash_watch(host, previous.unit),
                    health_path=previous.health_path,
                )
            except TimeoutError as e:
                return str(e)
        return None

    with Session(inventory, limit=hosts) as session:
        outcome = session.each_host(restore)
        if name not in outcome:
            return session.results[name].error or "unreachable"
        return outcome[name]
