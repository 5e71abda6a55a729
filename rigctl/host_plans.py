"""Plan every host of an inventory (detect, then the pure planner), or one host offline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.errors import BadInput
from rigctl.hardware import Hardware
from rigctl.hostspec import HostSpec, ModelSpec, host_spec
from rigctl.models import resolve_model
from rigctl.plan import Plan, make_plan, validate_inputs
from rigctl.plan.multi import ModelEntry, ModelsPlan, pin_to_gpus, plan_models, restricted


@dataclass
class HostPlan:
    spec: HostSpec
    hardware: Hardware
    plan: Plan  # the first model's (the only one's, unless the host lists several `models`)
    #: the joint plan when the host serves several models
    models: ModelsPlan | None = None

    @property
    def ok(self) -> bool:
        return self.models.ok if self.models is not None else self.plan.ok

    def to_json(self) -> dict[str, Any]:
        data = self.plan.to_json()
        data["endpoint"] = self.spec.endpoint
        if self.models is not None:
            data["models"] = self.models.to_json()
            data["ok"] = self.ok
        return data


@dataclass
class Planning:
    plans: dict[str, HostPlan] = field(default_factory=dict)
    failed: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or any(not p.ok for p in self.plans.values()) else 0

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


def resolve_for(
    spec: HostSpec, entry: ModelSpec | None = None, cache: dict[tuple[str, str | None], Any] | None = None
) -> Any:
    """The model's facts for a host's spec (or one of its ``models``), checked against what it
    asks of it (a context beyond the model's trained length, an impossible runtime) before any
    host is contacted; BadInput names the host (and the entry's alias)."""
    entry = entry or spec.models[0]
    key = (entry.model, entry.model_sha256)
    cache = {} if cache is None else cache
    try:
        if key not in cache:  # a model named by several hosts is resolved (maybe fetched) once
            cache[key] = resolve_model(key[0], sha256=key[1])
        model = cache[key]
        validate_inputs(
            model,
            concurrency=entry.concurrency,
            context=entry.context,
            runtime=entry.runtime,
            prefer=spec.prefer,
        )
    except BadInput as e:
        where = f"{entry.alias}: " if spec.multi_model else ""
        field = "models" if spec.multi_model else e.field
        raise BadInput(where + e.detail, host=spec.host, field=field) from None
    return model


def resolve_models(
    spec: HostSpec, cache: dict[tuple[str, str | None], Any] | None = None
) -> dict[str, Any]:
    """Every model of the host's spec resolved and checked: alias -> facts (``cache`` shared
    between hosts)."""
    return {entry.alias: resolve_for(spec, entry, cache) for entry in spec.models}


def host_plan_for(spec: HostSpec, hardware: Hardware, models: dict[str, Any]) -> HostPlan:
    """The host's plan: its one model's (on the GPUs its entry's ``gpus`` names, pinned to
    them), or the joint plan of its ``models``."""
    entries = [
        ModelEntry(e.alias, models[e.alias], concurrency=e.concurrency, context=e.context,
                   runtime=e.runtime, keep_loaded=e.keep_loaded, gpus=e.gpus)
        for e in spec.models
    ]
    if not spec.multi_model:
        on, error = restricted(hardware, entries[0])
        plan = plan_for(spec, on, entries[0].model)
        if error:
            plan.errors.append(error)
        elif entries[0].gpus is not None:
            pin_to_gpus(plan, entries[0], hardware)
        return HostPlan(spec, hardware, plan)
    try:
        joint = plan_models(
            hardware,
            entries,
            models_max=spec.models_max,
            prefer=spec.prefer,
            threads=spec.threads,
            gpu_software=spec.gpu_software,
            vllm_rocm_source=spec.vllm_rocm_source,
        )
    except BadInput as e:
        raise BadInput(e.detail, host=spec.host, field=e.field) from None
    return HostPlan(spec, hardware, joint.plans[spec.models[0].alias], joint)


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
    models = resolve_models(spec)
    planning = Planning()
    planning.plans[name] = host_plan_for(spec, hardware, models)
    return planning


def plan_inventory(
    target: str, *, model: str | None = None, overrides: dict[str, Any] | None = None
) -> Planning:
    """Validate every host's data first (exit 2 before connecting), then detect and plan."""
    from rigctl.detect import detect_inventory
    from rigctl.pyinfra_api import load_inventory

    inventory = load_inventory(target)
    def data_of(host: Any) -> dict[str, Any]:
        data = {**host.data.dict(), **(overrides or {})}
        if "models" in (overrides or {}):  # several --model: they replace the host's own
            data.pop("model", None)
        return data

    specs = {host.name: host_spec(host.name, data_of(host), model=model) for host in inventory}
    cache: dict[tuple[str, str | None], Any] = {}
    models = {name: resolve_models(spec, cache) for name, spec in specs.items()}
    detection = detect_inventory(inventory)
    planning = Planning()
    for name, result in detection.summary.hosts.items():
        if result.failed:
            planning.failed[name] = {"status": result.status, "error": result.error}
    for name, hardware in detection.hardware.items():
        planning.plans[name] = host_plan_for(specs[name], hardware, models[name])
    return planning
