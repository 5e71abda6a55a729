"""``rigctl status``: what each host serves and how it is doing, as one fleet table."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import requests

from rigctl.bench.router import router_models
from rigctl.bench.run import load_last
from rigctl.fleet import FleetResult
from rigctl.manifest import Deployment, ollama_names, read_api_key, read_deployment
from rigctl.pyinfra_api import (
    Host,
    Session,
    endpoint_from_controller,
    load_inventory,
    run_command,
    select_hosts,
)
from rigctl.rollback import PENDING, ROLLBACK_DIR


@dataclass
class HostStatus:
    name: str
    deployment: Deployment | None = None
    unit_state: str | None = None
    since: str | None = None
    healthy: bool = False
    health_detail: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    last_bench: dict[str, Any] | None = None
    #: when the rollback snapshot of a change not yet proven was taken (a rollout was killed,
    #: or lost the host, before judging it): ``rigctl rollback`` goes back to that version
    unproven_since: str | None = None
    #: several models behind the endpoint: alias -> the router's state (loaded, unloaded, ...)
    models: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.healthy and self.unit_state == "active"

    @property
    def failed(self) -> bool:
        return not self.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.deployment.runtime if self.deployment else None,
            "build": self.deployment.build if self.deployment else None,
            "model": f"{self.deployment.model_name} {self.deployment.model_quant}" if self.deployment else None,
            "model_sha256": self.deployment.model_sha256 if self.deployment else None,
            "endpoint": f"http://{self.deployment.listen}:{self.deployment.port}" if self.deployment else None,
            "unit": self.deployment.unit if self.deployment else None,
            "unit_state": self.unit_state,
            "since": self.since,
            "healthy": self.healthy,
            "health_detail": self.health_detail,
            "metrics": self.metrics,
            "last_bench": self.last_bench,
            "unproven_change_since": self.unproven_since,
            "models": {
                entry["alias"]: {
                    "model": f"{entry['model_name']} {entry['model_quant']}",
                    "model_sha256": entry["model_sha256"],
                    "state": self.models.get(entry["alias"], "unknown"),
                }
                for entry in (self.deployment.models if self.deployment else [])
            },
            "error": self.error,
            "ok": self.ok,
        }


@dataclass
class StatusResult(FleetResult[HostStatus]):
    """Per host: what it serves and how it is doing."""


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {name{labels}: value} (comments and bad lines skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            continue
    return values


def _one_host(host: Host, deployment: Deployment) -> HostStatus:
    status = HostStatus(host.name, deployment=deployment, last_bench=load_last(host.name))
    ok, out, _ = run_command(
        host,
        f"systemctl show {shlex.quote(deployment.unit + '.service')} -p ActiveState -p ActiveEnterTimestamp",
    )
    if ok:
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        status.unit_state = fields.get("ActiveState")
        status.since = fields.get("ActiveEnterTimestamp") or None
    ok, out, _ = run_command(host, f"if [ -f {PENDING} ]; then cat {ROLLBACK_DIR}/taken; fi")
    if ok and out.strip():
        status.unproven_since = out.strip()
    try:
        key = read_api_key(host, deployment.api_key_file)
    except OSError as e:
        status.error = str(e)
        return status
    with endpoint_from_controller(host, deployment.listen, deployment.port) as endpoint:
        try:
            health = requests.get(f"{endpoint}{deployment.health_path}", timeout=5)
            status.healthy = health.status_code == 200
            status.health_detail = f"HTTP {health.status_code}"
            if deployment.router:
                _models(status, endpoint, key)
            elif deployment.runtime == "ollama" and deployment.models:
                _ollama_models(status, endpoint)
            elif deployment.metrics_path and not deployment.separate:
                metrics = requests.get(
                    f"{endpoint}{deployment.metrics_path}", headers={"Authorization": f"Bearer {key}"}, timeout=5
                )
                if metrics.status_code == 200:
                    status.metrics = parse_prometheus(metrics.text)
        except (requests.RequestException, ValueError) as e:
            status.health_detail = type(e).__name__
    if deployment.separate:
        _servers(host, status, key)
    return status


def _ollama_models(status: HostStatus, endpoint: str) -> None:
    """Several models in one Ollama server: each one "loaded" when Ollama's ``GET /api/ps``
    lists it (in memory now), else "unloaded" (it loads on its next request)."""
    assert status.deployment is not None
    response = requests.get(f"{endpoint}/api/ps", timeout=5)
    response.raise_for_status()
    listed = response.json().get("models")
    loaded = {m.get("name") for m in listed if isinstance(m, dict)} if isinstance(listed, list) else set()
    for entry in status.deployment.models:
        alias = entry["alias"]
        status.models[alias] = "loaded" if loaded & ollama_names(alias) else "unloaded"


def _servers(host: Host, status: HostStatus, key: str) -> None:
    """Several models, each with a server of its own (vLLM): each one's state from its own
    health path ("serving", or why not), and its metrics, each series labelled with its alias;
    the host is healthy only when every one serves."""
    deployment = status.deployment
    assert deployment is not None
    for entry in deployment.models:
        alias = entry["alias"]
        unit, port = deployment.server_of(alias)
        with endpoint_from_controller(host, deployment.listen, port) as endpoint:
            try:
                health = requests.get(f"{endpoint}{deployment.health_path}", timeout=5)
                status.models[alias] = (
                    "serving" if health.status_code == 200 else f"HTTP {health.status_code}"
                )
                if health.status_code == 200 and deployment.metrics_path:
                    metrics = requests.get(f"{endpoint}{deployment.metrics_path}",
                                           headers={"Authorization": f"Bearer {key}"}, timeout=5)
                    if metrics.status_code == 200:
                        for name, value in parse_prometheus(metrics.text).items():
                            status.metrics[_labelled(name, alias)] = value
            except (requests.RequestException, ValueError) as e:
                status.models[alias] = f"{unit}: {type(e).__name__}"
    if any(state != "serving" for state in status.models.values()):
        status.healthy = False
        status.health_detail = "; ".join(
            f"{alias}: {state}" for alias, state in status.models.items() if state != "serving")


def _models(status: HostStatus, endpoint: str, key: str) -> None:
    """Several models behind llama-server's router: each one's state from the router, and the
    metrics of the loaded ones, each series labelled with its alias (asked with
    ``autoload=false``: reading a model's metrics never loads it)."""
    assert status.deployment is not None
    served = router_models(endpoint, key)
    headers = {"Authorization": f"Bearer {key}"}
    for entry in status.deployment.models:
        alias = entry["alias"]
        status.models[alias] = served[alias].state if alias in served else "not served"
        if status.models[alias] != "loaded" or not status.deployment.metrics_path:
            continue
        metrics = requests.get(
            f"{endpoint}{status.deployment.metrics_path}",
            params={"model": alias, "autoload": "false"}, headers=headers, timeout=5,
        )
        if metrics.status_code == 200:
            for name, value in parse_prometheus(metrics.text).items():
                status.metrics[_labelled(name, alias)] = value


def _labelled(series: str, alias: str) -> str:
    """``name{labels}`` with ``model="alias"`` added (aliases are URL-safe: nothing to escape)."""
    name, brace, labels = series.partition("{")
    inner = labels.rstrip("}")
    return f'{name}{{model="{alias}"{"," + inner if brace and inner else ""}}}'


def fleet_status(target: str, limit: list[str] | None = None) -> StatusResult:
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    statuses: dict[str, HostStatus] = {}
    with Session(inventory, limit=hosts) as session:
        found = session.each_host(lambda h: _one_host(h, read_deployment(h)))
        statuses.update(found)
        for name, result in session.results.items():
            if name not in statuses:
                statuses[name] = HostStatus(name, error=result.error or result.status)
    return StatusResult({h.name: statuses[h.name] for h in hosts})
