"""Plan every host of an inventory (detect, then the pure planner), or one host offline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.errors import BadInput
from rigctl.hardware import Hardware
from rigctl.hostspec import HostSpec, host_spec
from rigctl.models import resolve_model
from rigctl.plan import Plan, make_plan, validate_inputs


@dataclass
class HostPlan:
    spec: HostSpec
    hardware: Hardware
    plan: Plan

    def to_json(self) -> dict[str, Any]:
        data = self.plan.to_json()
        data["endpoint"] = self.spec.endpoint
        return data


@dataclass
class Planning:
    plans: dict[str, HostPlan] = field(default_factory=dict)
    failed: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or any(not p.plan.ok for p in self.plans.values()) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {name: host_plan.to_json() for name, host_plan in self.plans.items()},
            "failed": self.failed,
        }


def plan_for(spec: HostSpec, hardware: Hardware, model: Any) -> Plan:
    """The plan for one host; BadInput from the planner is re-raised naming the host."""
    try:
        return make_plan(
            hardware,
            model,
            concurrency=spec.concurrency,
            context=spec.context,
            context_max=spec.context_max,
            threads=spec.threads,
            runtime=spec.runtime,
            prefer=spec.prefer,
            gpu_software=spec.gpu_software,
            vllm_rocm_source=spec.vllm_rocm_source,
        )
    except BadInput as e:
        raise BadInput(e.detail, host=spec.host, field=e.field) from None


def resolve_for(spec: HostSpec) -> Any:
    """The model's facts for a host's spec, checked against what the spec asks of it (a context
    beyond the model's trained length, an impossible runtime) before any host is contacted;
    BadInput names the host."""
    try:
        model = resolve_model(spec.model, sha256=spec.model_sha256)
        validate_inputs(
            model,
            concurrency=spec.concurrency,
            context=spec.context,
            runtime=spec.runtime,
            prefer=spec.prefer,
        )
    except BadInput as e:
        raise BadInput(e.detail, host=spec.host, field=e.field) from None
    return model


def load_hardware_file(path: str) -> tuple[str, Hardware]:
    """One host's hardware from a ``detect --json`` file (its first host) or one host's entry."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}", field="hardware") from None
    except ValueError as e:
        raise BadInput(f"{path} is not JSON: {e}", field="hardware") from None
    name = Path(path).stem
    if isinstance(document, dict) and isinstance(document.get("hosts"), dict):
        if not document["hosts"]:
            raise BadInput(f"{path} lists no hosts", field="hardware")
        name, document = next(iter(document["hosts"].items()))
    try:
        return name, Hardware.from_json(document)
    except (KeyError, TypeError, ValueError) as e:
        raise BadInput(
            f"{path} is not a detect --json host entry ({e})", field="hardware"
        ) from None


def plan_offline(hardware_file: str, data: dict[str, Any]) -> Planning:
    name, hardware = load_hardware_file(hardware_file)
    spec = host_spec(name, data)
    model = resolve_for(spec)
    planning = Planning()
    planning.plans[name] = HostPlan(spec, hardware, plan_for(spec, hardware, model))
    return planning


def plan_inventory(
    target: str, *, model: str | None = None, overrides: dict[str, Any] | None = None
) -> Planning:
    """Validate every host's data first (exit 2 before connecting), then detect and plan."""
    from rigctl.detect import detect_inventory
    from rigctl.pyinfra_api import load_inventory

    inventory = load_inventory(target)
    specs = {
        host.name: host_spec(host.name, {**host.data.dict(), **(overrides or {})}, model=model)
        for host in inventory
    }
    models = {spec.model: resolve_for(spec) for spec in specs.values()}
    detection = detect_inventory(inventory)
    planning = Planning()
    for name, result in detection.summary.hosts.items():
        if result.failed:
            planning.failed[name] = {"status": result.status, "error": result.error}
    for name, hardware in detection.hardware.items():
        spec = specs[name]
        planning.plans[name] = HostPlan(
            spec, hardware, plan_for(spec, hardware, models[spec.model])
        )
    return planning
