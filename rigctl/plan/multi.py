"""Several models on one host: one memory plan for all of them. Pure: no host, no I/O.

:func:`plan_models` plans each model of a host's ``models`` (``rigctl.hostspec.ModelSpec``)
with :func:`rigctl.plan.make_plan`, in the memory the models before it leave, and chooses:

- **resident**: every model loaded at once, when each still gets the placement it would get
  alone (the same GPU layers, expert offload and KV cache types: sharing never makes a model
  slower than swapping would); or
- **swap**: at most ``models_max`` loaded together, the ``keep_loaded`` ones always, the rest
  loaded on demand (the least recently used unloaded first). Each on-demand model is planned
  in the memory the ``keep_loaded`` ones leave, and ``models_max`` is at most the number for
  which the ``keep_loaded`` models and the largest on-demand ones fit together on every device,
  so that no combination the server may load at once runs out of memory.

Memory is shared per device: a model's placement (``DevicePlacement.bytes`` per GPU, and its
host row in RAM) comes off what the next model is planned in; each model is its own process
(llama-server's router runs one per model; vLLM one per unit), so each pays its own runtime
reserve. vLLM claims ``--gpu-memory-utilization`` of each GPU it uses whatever it needs, so that
share is what it takes, and it is never swapped (it is loaded with its unit).

A model with no ``context`` keeps the planner's default (8,192, or its trained length if
shorter) rather than growing into the memory: on a shared host the memory left belongs to all
of them (growing one model's context after the joint placement is left to a later version).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rigctl.hardware import Hardware
from rigctl.plan.limits import validate_inputs
from rigctl.plan.make import make_plan
from rigctl.plan.memory import GPU_MARGIN, GPU_RUNTIME_RESERVE, gpu_devices, host_device
from rigctl.plan.types import Plan
from rigctl.plan.vllm import GPU_MEMORY_UTILIZATION

GiB = 1 << 30


@dataclass(frozen=True)
class ModelEntry:
    """One model to plan: its alias, its facts (what make_plan takes) and what it serves."""

    alias: str
    model: Any  # ModelFacts | CatalogModel
    concurrency: int = 1
    context: int | None = None
    runtime: str = "auto"
    keep_loaded: bool = False


@dataclass
class ModelsPlan:
    """The joint plan of a host's models."""

    mode: str  # "resident" (all loaded at once) | "swap" (at most models_max loaded)
    plans: dict[str, Plan]  # alias -> the plan it runs with whenever it is loaded
    models_max: int  # how many may be loaded at once
    loaded: list[str]  # the aliases loaded first: keep_loaded, then in list order
    keep_loaded: list[str] = field(default_factory=list)
    #: per device ("cuda:0", "cpu"): the bytes the largest combination allowed at once takes
    peak: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(p.ok for p in self.plans.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "models_max": self.models_max,
            "loaded": list(self.loaded),
            "keep_loaded": list(self.keep_loaded),
            "peak_bytes": dict(self.peak),
            "models": {alias: plan.to_json() for alias, plan in self.plans.items()},
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "ok": self.ok,
        }


def _footprint(plan: Plan, hardware: Hardware) -> dict[str, int]:
    """What a plan takes from each device while it is loaded: ``cuda:0`` → bytes (its
    placement and its process's runtime context), ``cpu`` → bytes of RAM (a unified-memory
    GPU's share counted in RAM too)."""
    taken: dict[str, int] = {}
    reserve = GPU_RUNTIME_RESERVE.get(hardware.accelerator, 512 << 20)
    for row in plan.memory.placement:
        if row.device == "cpu":
            taken["cpu"] = taken.get("cpu", 0) + row.bytes
            continue
        if not row.bytes:
            continue
        claim = row.bytes + reserve
        if plan.runtime == "vllm":
            claim = max(claim, int(row.capacity * GPU_MEMORY_UTILIZATION))
        taken[row.device] = taken.get(row.device, 0) + claim
        if hardware.unified_memory:
            taken["cpu"] = taken.get("cpu", 0) + claim
    return taken


def _without(hardware: Hardware, taken: dict[str, int]) -> Hardware:
    """``hardware`` with ``taken`` bytes already in use on each device."""
    gpus = [
        dataclasses.replace(
            gpu,
            memory_bytes=max(0, gpu.memory_bytes - taken.get(f"{hardware.accelerator}:{gpu.index}", 0)),
        )
        for gpu in hardware.gpus
    ]
    memory = max(0, hardware.memory_bytes - taken.get("cpu", 0))
    return dataclasses.replace(hardware, gpus=gpus, memory_bytes=memory)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


def _largest(footprints: list[dict[str, int]], count: int) -> dict[str, int]:
    """Per device, the sum of the ``count`` largest footprints there (an upper bound for any
    ``count`` of them loaded together)."""
    return {
        device: sum(sorted((f.get(device, 0) for f in footprints), reverse=True)[:count])
        for device in {d for f in footprints for d in f}
    }


def _shape(plan: Plan) -> tuple[Any, ...]:
    """What sharing must not change: runtime, GPU layers, expert offload, KV types, the
    checkpoint, the GPUs used."""
    args = plan.args
    moe = args[args.index("--n-cpu-moe") + 1] if "--n-cpu-moe" in args else None
    gpus = tuple(r.device for r in plan.memory.placement if r.device != "cpu" and r.bytes)
    return (plan.runtime, plan.memory.gpu_layers, moe, plan.memory.kv_cache_type,
            plan.memory.v_cache_type, plan.model.quant, gpus)


def _gib(value: int) -> str:
    return f"{value / GiB:.1f} GiB"


def plan_models(
    hardware: Hardware,
    entries: list[ModelEntry],
    *,
    models_max: int | None = None,
    prefer: str = "control",
    threads: int | None = None,
    **plan_options: Any,
) -> ModelsPlan:
    """The joint plan of ``entries`` on ``hardware`` (see the module's docstring);
    ``plan_options`` go to every make_plan (gpu_software, vllm_rocm_source)."""
    ordered = [e for e in entries if e.keep_loaded] + [e for e in entries if not e.keep_loaded]
    keep = [e.alias for e in ordered if e.keep_loaded]

    def plan(entry: ModelEntry, where: Hardware) -> Plan:
        context = validate_inputs(entry.model, concurrency=entry.concurrency,
                                  context=entry.context, runtime=entry.runtime, prefer=prefer)
        planned = make_plan(where, entry.model, concurrency=entry.concurrency, context=context,
                            runtime=entry.runtime, prefer=prefer, threads=threads,
                            **plan_options)
        if entry.context is None:
            planned.reasons.append(
                f"context: {context:,} per user, the default: none given, and on a host with "
                "several models the memory left is shared, not grown into"
            )
        return planned

    alone = {e.alias: plan(e, hardware) for e in ordered}
    errors = [
        f"{alias}: does not fit on this host even alone: {'; '.join(p.errors)}"
        for alias, p in alone.items() if not p.ok
    ]
    if errors:
        return ModelsPlan("resident", alone, len(entries), [], keep, errors=errors)
    if models_max is not None and models_max < len(keep):
        return ModelsPlan("swap", alone, models_max, [], keep, errors=[
            f"models_max {models_max} is fewer than the {len(keep)} keep_loaded models"
            f" ({', '.join(keep)})"
        ])
    swappable = [e for e in ordered if not e.keep_loaded and alone[e.alias].runtime != "vllm"]
    pinned = [e for e in ordered if e.keep_loaded or alone[e.alias].runtime == "vllm"]
    kept_names = [e.alias for e in pinned]

    # 1. every model at once, each as it would run alone
    if models_max is None or models_max >= len(entries):
        resident: dict[str, Plan] = {}
        taken: dict[str, int] = {}
        shared = True
        for entry in ordered:
            resident[entry.alias] = p = plan(entry, _without(hardware, taken))
            if not p.ok or _shape(p) != _shape(alone[entry.alias]):
                shared = False
                break
            taken = _add(taken, _footprint(p, hardware))
        if shared:
            reasons = [
                f"all {len(entries)} models resident at once: together they take "
                + ", ".join(f"{_gib(b)} of {d}" for d, b in sorted(taken.items()))
                + ", each with the placement it gets alone"
            ]
            return ModelsPlan("resident", resident, len(entries), [e.alias for e in ordered],
                              keep, peak=taken, reasons=reasons)
        why_not = (
            f"{entry.alias} does not fit beside the models before it as it would alone"
        )
    else:
        why_not = f"models_max {models_max} is fewer than the {len(entries)} models"

    # 2. a swap set: the pinned models (keep_loaded, vLLM) always, the others on demand
    plans: dict[str, Plan] = {}
    base: dict[str, int] = {}
    for entry in pinned:
        plans[entry.alias] = p = plan(entry, _without(hardware, base))
        if not p.ok:
            return ModelsPlan("swap", {**alone, **plans}, models_max or len(pinned), [], keep,
                              errors=[f"{entry.alias} does not fit beside "
                                      f"{', '.join(kept_names[:kept_names.index(entry.alias)])}"
                                      f" (loaded at all times): {'; '.join(p.errors)}"])
        base = _add(base, _footprint(p, hardware))
    left = _without(hardware, base)
    first: dict[str, Plan] = {}
    errors = []
    for entry in swappable:
        first[entry.alias] = p = plan(entry, left)
        if not p.ok:
            errors.append(f"{entry.alias} does not fit beside {', '.join(kept_names)} (loaded at "
                          f"all times): {'; '.join(p.errors)}")
    if errors:
        return ModelsPlan("swap", {**plans, **first}, models_max or len(pinned) + 1, [], keep,
                          errors=errors)
    if not swappable:  # only pinned models, and they do not share as they would alone
        return ModelsPlan("resident", plans, len(pinned), kept_names, keep, peak=base,
                          reasons=[f"all models loaded at all times ({why_not}: each planned in"
                                   " the memory the ones before it leave)"])

    def peak_of(chosen: dict[str, Plan], count: int) -> dict[str, int] | None:
        """The pinned models and the ``count`` largest on-demand ones, per device; None when
        that is more than a device holds."""
        peak = _add(base, _largest([_footprint(p, hardware) for p in chosen.values()], count))
        return peak if all(b <= _usable(hardware, d) for d, b in peak.items()) else None

    def budgeted(count: int) -> dict[str, Plan] | None:
        """Until any ``count`` on-demand models fit together beside the pinned ones: the
        largest on-demand model planned again beside the ``count - 1`` largest others (a
        smaller KV cache type, fewer GPU layers where it must); None if they cannot."""
        chosen = dict(first)
        for _ in range(3 * len(swappable)):
            if peak_of(chosen, count) is not None:
                return chosen
            footprints = {a: _footprint(p, hardware) for a, p in chosen.items()}
            largest = max(chosen, key=lambda a: sum(v for d, v in footprints[a].items() if d != "cpu")
                          or footprints[a].get("cpu", 0))
            beside = _largest([f for a, f in footprints.items() if a != largest], count - 1)
            entry = next(e for e in swappable if e.alias == largest)
            again = plan(entry, _without(left, beside))
            if not again.ok or _footprint(again, hardware) == footprints[largest]:
                return None  # it cannot shrink further
            chosen[largest] = again
        return chosen if peak_of(chosen, count) is not None else None

    asked = models_max is not None
    slots = min(max((models_max or len(entries)) - len(pinned), 1), len(swappable))
    chosen: dict[str, Plan] | None = None
    while slots > 1:
        # with no models_max, only as many as fit together each planned as it is alone
        chosen = budgeted(slots) if asked else (first if peak_of(first, slots) else None)
        if chosen is not None:
            break
        slots -= 1
    chosen = chosen or first
    peak = peak_of(chosen, slots) or {}
    effective = len(pinned) + slots
    if effective >= len(entries):
        mode, reasons = "resident", [
            f"all {len(entries)} models resident at once, as models_max asks ({why_not})"]
    else:
        mode, reasons = "swap", [f"swap set: {why_not}"]
    if kept_names:
        reasons.append(f"loaded at all times: {', '.join(kept_names)}")
    together = ", ".join(f"{_gib(b)} of {d}" for d, b in sorted(peak.items()))
    if mode == "resident":
        reasons.append(f"together they take {together}")
    else:
        reasons.append(
            f"at most {effective} loaded at once ({slots} on demand of "
            f"{', '.join(e.alias for e in swappable)}, the least recently used unloaded); "
            f"{'any ' + str(slots) + ' of them fit' if slots > 1 else 'each fits'} beside the "
            f"ones loaded at all times: at most, together, {together}"
        )
    if asked and models_max is not None and effective < models_max:
        reasons.append(
            f"models_max {models_max} lowered to {effective}: {slots + 1} of the on-demand "
            "models cannot fit together"
        )
    for alias, p in chosen.items():
        change = _changed(alone[alias], p)
        if change:
            p.reasons.append(
                f"sharing the host: {change} (alone: the plan it gets on this host by itself), "
                f"so that any {slots} of the on-demand models fit together"
            )
    plans.update(chosen)
    loaded = kept_names + [e.alias for e in swappable][:slots]
    return ModelsPlan(mode, plans, effective, loaded, keep, peak=peak, reasons=reasons)


def _changed(alone: Plan, shared: Plan) -> str:
    """How a model's plan on a shared host differs from its plan alone, in words."""
    words = []
    a, b = alone.memory, shared.memory
    if (a.gpu_layers or 0) != (b.gpu_layers or 0):
        words.append(f"{b.gpu_layers} GPU layers instead of {a.gpu_layers}")
    if (a.kv_cache_type, a.v_cache_type) != (b.kv_cache_type, b.v_cache_type):
        words.append(f"a {b.kv_cache_type}/{b.v_cache_type or b.kv_cache_type} KV cache instead "
                     f"of {a.kv_cache_type}/{a.v_cache_type or a.kv_cache_type}")
    if _shape(alone)[2] != _shape(shared)[2]:
        words.append(f"the experts of {_shape(shared)[2] or 0} layers in RAM instead of "
                     f"{_shape(alone)[2] or 0}")
    return ", ".join(words)


def _usable(hardware: Hardware, device: str) -> int:
    """A device's memory less what the planner never plans into (RAM: the OS's share; a GPU:
    the safety margin; each process's runtime context is in its footprint)."""
    if device == "cpu":
        return host_device(hardware, 0).usable
    for gpu in gpu_devices(hardware, hardware.accelerator):
        if gpu.name == device:
            return gpu.capacity - GPU_MARGIN
    return 0
