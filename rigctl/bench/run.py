"""``rigctl bench``: measure every host's endpoint at several concurrency levels, compare with
the host's baseline, keep the results (``status`` shows the last ones)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.bench.load import Client, LevelResult, calibrate_prompt, run_level
from rigctl.bench.router import load_model
from rigctl.errors import BadInput
from rigctl.fleet import FleetResult
from rigctl.manifest import Deployment, read_api_key, read_deployment
from rigctl.paths import confined, state_dir
from rigctl.pyinfra_api import (
    Session,
    endpoint_from_controller,
    load_inventory,
    select_hosts,
)


@dataclass
class HostBench:
    name: str
    deployment: Deployment | None = None
    levels: list[LevelResult] = field(default_factory=list)
    prompt_tokens: int = 0
    baseline: dict[str, Any] | None = None
    error: str | None = None
    #: the model benched, of several behind the endpoint (None: the host's one model)
    alias: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or (bool(self.levels) and all(lv.requests == lv.errors for lv in self.levels))

    def change_vs_baseline(self) -> dict[int, dict[str, float | None]]:
        """Per concurrency: relative change (percent) of aggregate and per-user tok/s and TTFT."""
        if not self.baseline:
            return {}
        before = {level["concurrency"]: level for level in self.baseline.get("levels", [])}
        changes: dict[int, dict[str, float | None]] = {}
        for level in self.levels:
            old = before.get(level.concurrency)
            if not old:
                continue
            changes[level.concurrency] = {
                "aggregate_tps": _percent(level.aggregate_tps, old.get("aggregate_tps")),
                "decode_tps_per_request": _percent(level.decode_tps_per_request, old.get("decode_tps_per_request")),
                "ttft_p50_ms": _percent(level.ttft_p50_ms, old.get("ttft_p50_ms")),
            }
        return changes

    def _model(self) -> str | None:
        if self.deployment is None:
            return None
        entry = next((m for m in self.deployment.models if m["alias"] == self.alias), None)
        if entry is not None:
            return f"{entry['model_name']} {entry['model_quant']}"
        return f"{self.deployment.model_name} {self.deployment.model_quant}"

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.deployment.runtime if self.deployment else None,
            "build": self.deployment.build if self.deployment else None,
            "model": self._model(),
            "alias": self.alias,
            "config": " ".join(self.deployment.args[1:]) if self.deployment else None,
            "prompt_tokens": self.prompt_tokens,
            "levels": [level.to_json() for level in self.levels],
            "vs_baseline": {str(c): v for c, v in self.change_vs_baseline().items()},
            "error": self.error,
        }


@dataclass
class BenchResult(FleetResult[HostBench]):
    def fleet(self) -> dict[int, float]:
        """Aggregate tok/s of the whole fleet at each concurrency level (per host)."""
        totals: dict[int, float] = {}
        for host in self.hosts.values():
            for level in host.levels:
                totals[level.concurrency] = round(totals.get(level.concurrency, 0.0) + level.aggregate_tps, 2)
        return totals

    def extra_json(self) -> dict[str, Any]:
        return {"fleet_aggregate_tps": {str(c): v for c, v in self.fleet().items()}}


def _percent(new: float | None, old: float | None) -> float | None:
    if new is None or not old:
        return None
    return round((new - old) / old * 100, 1)


def results_dir() -> Path:
    return state_dir() / "bench"


def result_path(host: str, kind: str) -> Path:
    """Where a host's results of ``kind`` (``last``, ``baseline``) are kept: the host's name
    comes from the inventory, so it is made one safe file name inside :func:`results_dir`."""
    return confined(results_dir(), f"{host}.{kind}.json")


def load_baseline(host: str) -> dict[str, Any] | None:
    try:
        return json.loads(result_path(host, "baseline").read_text())
    except (OSError, ValueError):
        return None


def load_last(host: str) -> dict[str, Any] | None:
    try:
        return json.loads(result_path(host, "last").read_text())
    except (OSError, ValueError):
        return None


def _save(host: str, kind: str, document: dict[str, Any]) -> None:
    results_dir().mkdir(parents=True, exist_ok=True)
    path = result_path(host, kind)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadInput(f"must be comma-separated integers, got {text!r}", field="concurrency") from None
    if not levels or any(not 1 <= level <= 1024 for level in levels):
        raise BadInput(f"each level must be from 1 to 1024, got {text!r}", field="concurrency")
    return levels


def bench(
    target: str,
    *,
    levels: list[int],
    prompt_tokens: int = 512,
    max_tokens: int = 128,
    duration_s: float = 10.0,
    save_baseline: bool = False,
    limit: list[str] | None = None,
    record: bool = True,
    alias: str | None = None,
) -> BenchResult:
    """Measure each host; ``record`` keeps the results (last run, and the baseline when there is
    none yet or ``save_baseline``); rollout gates measure without recording.

    A host serving several models is measured per model (``alias``: that one only), each loaded
    first, its results kept as ``<host>/<alias>``; ``alias`` on a host serving one model, or
    one it does not serve, is that host's error.
    """
    if not 1 <= prompt_tokens <= 131072:
        raise BadInput(f"must be from 1 to 131072, got {prompt_tokens}", field="prompt-tokens")
    if not 1 <= max_tokens <= 32768:
        raise BadInput(f"must be from 1 to 32768, got {max_tokens}", field="max-tokens")
    if not 0 <= duration_s <= 3600:
        raise BadInput(f"must be from 0 to 3600 seconds, got {duration_s}", field="duration")
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    result = BenchResult()
    with Session(inventory, limit=hosts) as session:
        deployments = session.each_host(read_deployment)
        for name, host_result in session.results.items():
            if host_result.failed:
                result.hosts[name] = HostBench(name, error=host_result.error)
        # One host at a time: on shared hardware (a lab) parallel runs would measure each other.
        for name, deployment in deployments.items():
            served = [entry["alias"] for entry in deployment.models]
            if alias is not None and alias not in served:
                what = f"serves {', '.join(served)}" if served else "serves one model"
                result.hosts[name] = HostBench(
                    name, deployment=deployment, alias=alias,
                    error=f"no model {alias!r} on this host ({what})",
                )
                continue
            targets: list[str | None] = [alias] if alias is not None else [*served] or [None]
            for each in targets:
                key_name = name if each is None else f"{name}/{each}"
                outcome = result.hosts[key_name] = HostBench(
                    name, deployment=deployment, baseline=load_baseline(key_name), alias=each
                )
                _measure(session.host(name), outcome, levels, prompt_tokens, max_tokens, duration_s)
                if not record or outcome.error is not None:
                    continue
                document = outcome.to_json()
                _save(key_name, "last", document)
                if save_baseline or outcome.baseline is None:
                    _save(key_name, "baseline", document)
    return result


def _measure(
    host_obj: Any,
    outcome: HostBench,
    levels: list[int],
    prompt_tokens: int,
    max_tokens: int,
    duration_s: float,
) -> None:
    """One endpoint (one of its models) at each level; errors end up in ``outcome.error``."""
    deployment = outcome.deployment
    assert deployment is not None
    try:
        key = read_api_key(host_obj, deployment.api_key_file)
        _, port = deployment.server_of(outcome.alias)
        with endpoint_from_controller(host_obj, deployment.listen, port) as endpoint:
            if outcome.alias is not None and deployment.router:  # loaded first, not measured
                load_model(endpoint, key, outcome.alias)
            client = Client(endpoint, key, model=outcome.alias or deployment.served_model)
            prompt, outcome.prompt_tokens = calibrate_prompt(client, prompt_tokens)
            for level in levels:
                outcome.levels.append(
                    run_level(client, prompt, concurrency=level, max_tokens=max_tokens, duration_s=duration_s)
                )
    except (OSError, TimeoutError, ValueError) as e:
        outcome.error = str(e)
