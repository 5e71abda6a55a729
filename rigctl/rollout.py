"""``rigctl rollout``: change a fleet in batches, gate each host on health and speed, roll back.

For each batch (the canary batch first):

1. each host already serving is snapshotted on the host itself (its unit file, its deployment
   manifest and the build its ``current`` link points at: :mod:`rigctl.rollback`), and its
   single-user decode speed is measured;
2. the batch is provisioned (the normal pipeline, smoke check included);
3. gates: the host must be serving (provision and smoke check passed) and its decode tok/s must
   not drop more than ``gate_tokps_drop`` percent below the measurement before the change;
4. a host that fails a gate is rolled back: the previous unit, manifest and build are put back
   (each replaced atomically), the service restarted and checked healthy again. A host lost
   during its own update (powered off, network gone) is rolled back when it comes back, for up
   to ``lost_wait_s`` seconds; after that it is reported ``lost``, its snapshot kept on it for
   ``rigctl rollback``;
5. when more than ``max_fail`` hosts have failed, the rollout halts: later batches are not
   touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rigctl.bench.run import bench
from rigctl.errors import BadInput
from rigctl.fleet import FleetResult
from rigctl.manifest import Deployment
from rigctl.progress import Reporter, quiet
from rigctl.provision import provision
from rigctl.pyinfra_api import Session, load_inventory, select_hosts
from rigctl.rollback import ROLLBACK_DIR, restore_when_back, settle, take_snapshot

LOST_HOST_WAIT = 180.0  # seconds a host lost during its update has to come back (a reboot)
GATE_PROMPT_TOKENS = 128
GATE_MAX_TOKENS = 64
GATE_SECONDS = 5.0

@dataclass
class HostRollout:
    name: str
    batch: int
    status: str = "pending"  # updated | unchanged | rolled-back | failed | lost | skipped
    before_tps: float | None = None
    after_tps: float | None = None
    reason: str | None = None
    #: several models: alias -> (before, after) decode tok/s, each model gated on its own
    models_tps: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("rolled-back", "failed", "lost")

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "status": self.status,
            "before_tps": self.before_tps,
            "after_tps": self.after_tps,
            "models_tps": {
                alias: {"before": before, "after": after}
                for alias, (before, after) in self.models_tps.items()
            },
            "reason": self.reason,
        }


@dataclass
class RolloutResult(FleetResult[HostRollout]):
    batches: list[list[str]] = field(default_factory=list)
    halted_after_batch: int | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.halted_after_batch is not None else 0

    def extra_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "halted_after_batch": self.halted_after_batch}


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


def rollout(
    target: str,
    *,
    batch: str = "1",
    canary: int = 1,
    max_fail: int = 0,
    gate_tokps_drop: float = 10.0,
    lost_wait_s: float = LOST_HOST_WAIT,
    limit: list[str] | None = None,
    report: Reporter = quiet,
) -> RolloutResult:
    if max_fail < 0:
        raise BadInput(f"must be 0 or more, got {max_fail}", field="max-fail")
    if not 0 <= gate_tokps_drop <= 100:
        raise BadInput(f"must be a percentage from 0 to 100, got {gate_tokps_drop}", field="gate-tokps-drop")
    if not 0 <= lost_wait_s <= 86_400:
        raise BadInput(f"must be from 0 to 86400 seconds, got {lost_wait_s:g}", field="lost-host-wait")
    inventory = load_inventory(target)
    names = [h.name for h in select_hosts(inventory, limit)]
    result = RolloutResult()
    result.batches = make_batches(names, canary, parse_batch(batch, len(names)))
    # Every host's inputs are checked, and every host detected and planned, before the first
    # batch changes anything: bad input in a later batch is exit 2 with the fleet untouched.
    report(None, "check", f"planning all {len(names)} host(s) before any change")
    provision(target, limit=names, plan_only=True)
    for index, members in enumerate(result.batches):
        for name in members:
            result.hosts[name] = HostRollout(name, batch=index)
    failures = 0
    for index, members in enumerate(result.batches):
        proven: list[str] = []
        report(None, "batch", f"{index} ({'canary' if index == 0 and canary else 'batch'}): {', '.join(members)}")
        previous = _snapshot(inventory, members, report)
        before = _decode_speed(target, [n for n in members if n in previous])
        provisioned = provision(target, limit=members, report=report)
        after = _decode_speed(target, [n for n in members if not provisioned.hosts[n].result.failed])
        for name in members:
            outcome = result.hosts[name]
            was, now = before.get(name, {}), after.get(name, {})
            outcome.before_tps, outcome.after_tps = was.get(None), now.get(None)
            outcome.models_tps = {
                alias: (was.get(alias), now.get(alias))
                for alias in dict.fromkeys([*was, *now]) if alias is not None
            }
            host_result = provisioned.hosts[name].result
            why = host_result.error if host_result.failed else _gate(
                was, now, gate_tokps_drop
            )
            if why is None:
                outcome.status = "updated" if host_result.changed_ops else "unchanged"
                proven.append(name)
                continue
            failures += 1
            outcome.reason = why
            report(name, "gate", f"failed: {why}")
            if name not in previous:
                outcome.status = "failed"  # it served nothing before: nothing to go back to
                continue
            report(name, "rollback", f"to {previous[name].unit} as it was before the change")
            failed, reachable = restore_when_back(inventory, name, lost_wait_s, report)
            if failed is None:
                outcome.status = "rolled-back"
            elif not reachable:
                outcome.status = "lost"
                outcome.reason = (
                    f"{why}; not back within {lost_wait_s:g} s to roll back ({failed}): its "
                    f"previous version waits on it in {ROLLBACK_DIR}; once it is back run "
                    f"`rigctl rollback {target} --limit {name}`"
                )
            else:
                outcome.status = "failed"
                outcome.reason = f"{why}; rollback failed: {failed}"
        _settle(inventory, [n for n in proven if n in previous])
        if failures > max_fail:
            result.halted_after_batch = index
            for later in result.batches[index + 1 :]:
                for name in later:
                    result.hosts[name].status = "skipped"
                    result.hosts[name].reason = f"rollout halted after batch {index} ({failures} failed > max-fail {max_fail})"
            break
    return result


def _snapshot(inventory: Any, members: list[str], report: Reporter) -> dict[str, Deployment]:
    """Keep each serving host's service files, manifest and build on the host, for rollback."""
    hosts = [h for h in inventory if h.name in members]
    with Session(inventory, limit=hosts) as session:
        return session.each_host(lambda host: take_snapshot(host, report))


def _settle(inventory: Any, names: list[str]) -> None:
    """Hosts that passed their gates: their snapshot may be replaced by the next rollout."""
    if not names:
        return
    hosts = [h for h in inventory if h.name in names]
    with Session(inventory, limit=hosts) as session:
        session.each_host(settle)


def _gate(
    before: dict[str | None, float], after: dict[str | None, float], limit_percent: float
) -> str | None:
    """Why a host's change fails the speed gate: its model's regression, or with several
    models the first whose speed dropped (a model added or removed has nothing to compare)."""
    for alias in before:
        why = regression(before.get(alias), after.get(alias), limit_percent)
        if why is not None:
            return why if alias is None else f"{alias}: {why}"
    return None


def _decode_speed(target: str, names: list[str]) -> dict[str, dict[str | None, float]]:
    """Decode tok/s at one user, per host: ``{None: speed}``, or with several models each
    alias's (``bench`` measures them in turn)."""
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
    speeds: dict[str, dict[str | None, float]] = {}
    for host in measured.hosts.values():
        if host.levels and host.levels[0].decode_tps_per_request:
            speeds.setdefault(host.name, {})[host.alias] = host.levels[0].decode_tps_per_request
    return speeds
