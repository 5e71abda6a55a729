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
reserve. A device two models use must hold both (less the GPU's margin, or the OS's share of
RAM).

An entry's ``gpus`` (indices as detection numbers them) restricts every plan of it to those
GPUs; an index the host lacks is an error naming it.

vLLM claims ``--gpu-memory-utilization`` of the *whole* memory of each GPU it uses, whatever it
needs (a per-instance limit: instances sharing a GPU each claim their own), plus its CUDA
context beside it; that is what it takes, and it is never swapped (it is loaded with its unit).
So a vLLM model is always planned on its GPUs' whole memory, at a share: vLLM's 0.90 when no
other model of the host uses its GPUs (no other entry's placement alone, or ``gpus``, is on
them); else only what its plan needs (the layout it gets alone: weights, every user's KV cache
at full length and vLLM's reservation, :func:`rigctl.plan.vllm.needed_utilization`), rounded up
to 0.01, the others planned in the rest. A vLLM model that uses fewer GPUs than the host has is
pinned to them (``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES``, physical indices in nvidia-smi's
PCI order, which every CUDA plan sets with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``), as many as its
tensor-parallel size: vLLM takes the first GPUs it sees; so is a model of another runtime whose
``gpus`` names fewer than the host has. On a CPU host (vLLM's CPU build) vLLM's RAM (weights,
``VLLM_CPU_KVCACHE_SPACE``, runtime) is a footprint like any other.

A model with no ``context`` keeps the planner's default (8,192, or its trained length if
shorter) rather than growing into the memory: on a shared host the memory left belongs to all
of them (growing one model's context after the joint placement is left to a later version).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rigctl.hardware import Hardware
from rigctl.plan.limits import validate_inputs
from rigctl.plan.make import VISIBLE_DEVICES_VARIABLE, make_plan
from rigctl.plan.memory import (
    GPU_MARGIN,
    GPU_RUNTIME_RESERVE,
    gpu_devices,
    host_device,
    memoryless_gpus,
)
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
    gpus: tuple[int, ...] | None = None  # the GPU indices it may use (None: any of the host's)


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


def _utilization(plan: Plan) -> float | None:
    """A vLLM GPU plan's --gpu-memory-utilization (None for any other plan)."""
    args = plan.args
    if plan.runtime != "vllm" or "--gpu-memory-utilization" not in args:
        return None
    return float(args[args.index("--gpu-memory-utilization") + 1])


def _gpus_of(plan: Plan) -> list[str]:
    """The GPUs a plan places anything on (``cuda:1``), in its order."""
    return [r.device for r in plan.memory.placement if r.device != "cpu" and r.bytes]


def _footprint(plan: Plan, hardware: Hardware) -> dict[str, int]:
    """What a plan takes from each device while it is loaded: ``cuda:0`` → bytes (its
    placement and its process's runtime context; vLLM: its own --gpu-memory-utilization of the
    GPU's whole memory, and its CUDA context beside it), ``cpu`` → bytes of RAM (a
    unified-memory GPU's share counted in RAM too)."""
    taken: dict[str, int] = {}
    reserve = GPU_RUNTIME_RESERVE.get(hardware.accelerator, 512 << 20)
    share = _utilization(plan)
    for row in plan.memory.placement:
        if row.device == "cpu":
            taken["cpu"] = taken.get("cpu", 0) + row.bytes
            continue
        if not row.bytes:
            continue
        claim = row.bytes if share is None else max(row.bytes, math.floor(row.capacity * share))
        taken[row.device] = taken.get(row.device, 0) + claim + reserve
        if hardware.unified_memory:
            taken["cpu"] = taken.get("cpu", 0) + claim + reserve
    return taken


def _over(hardware: Hardware, taken: dict[str, int], more: dict[str, int]) -> list[str]:
    """The devices that ``more`` shares with ``taken`` and that cannot hold both (less the GPU's
    margin, or the OS's share of RAM), each in words. A device one model has to itself is
    that model's own plan's business (vLLM's 0.90 of a small GPU is over the margin)."""
    return [
        f"{device}: {_gib(more[device])} beside {_gib(taken[device])} of "
        f"{_gib(_usable(hardware, device))} usable"
        for device in sorted(more)
        if more[device] and taken.get(device)
        and taken[device] + more[device] > _usable(hardware, device)
    ]


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
    return (plan.runtime, plan.memory.gpu_layers, moe, plan.memory.kv_cache_type,
            plan.memory.v_cache_type, plan.model.quant, tuple(_gpus_of(plan)))


def _gib(value: int) -> str:
    return f"{value / GiB:.1f} GiB"


def _host_gpus(hardware: Hardware) -> list[int]:
    """The indices of the host's GPUs a plan can use (its accelerator's, reporting memory)."""
    return [int(d.name.split(":", 1)[1]) for d in gpu_devices(hardware, hardware.accelerator)]


def restricted(hardware: Hardware, entry: ModelEntry) -> tuple[Hardware, str | None]:
    """The hardware an entry is planned on: the host's, with only the GPUs its ``gpus`` names;
    and the error when it names one the host lacks (then the host's, whole, for a plan to
    show)."""
    if entry.gpus is None:
        return hardware, None
    have = _host_gpus(hardware)
    missing = [index for index in entry.gpus if index not in have]
    if missing:
        listed = f"its GPUs: {', '.join(map(str, have))}" if have else "it has none"
        return hardware, f"{entry.alias}: gpus: the host has no GPU {missing[0]} ({listed})"
    wanted = set(entry.gpus)
    return dataclasses.replace(hardware, gpus=[g for g in hardware.gpus if g.index in wanted]), None


def _claims(entry: ModelEntry, alone: Plan, accelerator: str) -> set[str]:
    """The GPUs a model uses or may be planned into: its placement alone and its ``gpus``."""
    return set(_gpus_of(alone)) | {f"{accelerator}:{index}" for index in entry.gpus or ()}


def _sharing(entries: list[ModelEntry], alone: dict[str, Plan], accelerator: str
             ) -> dict[str, list[str]]:
    """Each vLLM model on GPUs → the other models on one of its GPUs (empty: it has them to
    itself)."""
    claims = {e.alias: _claims(e, alone[e.alias], accelerator) for e in entries}
    return {
        e.alias: [f.alias for f in entries
                  if f.alias != e.alias and claims[f.alias] & set(_gpus_of(alone[e.alias]))]
        for e in entries
        if alone[e.alias].runtime == "vllm" and _gpus_of(alone[e.alias])
    }


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
    where = {e.alias: restricted(hardware, e) for e in ordered}

    def plan(entry: ModelEntry, on: Hardware, utilization: float | None) -> Plan:
        context = validate_inputs(entry.model, concurrency=entry.concurrency,
                                  context=entry.context, runtime=entry.runtime, prefer=prefer)
        planned = make_plan(on, entry.model, concurrency=entry.concurrency, context=context,
                            runtime=entry.runtime, prefer=prefer, threads=threads,
                            gpu_memory_utilization=utilization, **plan_options)
        if entry.context is None:
            planned.reasons.append(
                f"context: {context:,} per user, the default: none given, and on a host with "
                "several models the memory left is shared, not grown into"
            )
        return planned

    alone = {e.alias: plan(e, where[e.alias][0], GPU_MEMORY_UTILIZATION) for e in ordered}
    bad_gpus = [error for _, error in where.values() if error]
    for alias, (_, error) in where.items():
        if error:
            alone[alias].errors.append(error)
    if bad_gpus:
        return ModelsPlan("resident", alone, len(entries), [], keep, errors=bad_gpus)
    sharing = _sharing(ordered, alone, hardware.accelerator)

    def placed(entry: ModelEntry, taken: dict[str, int]) -> Plan:
        """The entry planned beside ``taken``: vLLM on its GPUs' whole memory at its share (its
        own or what it needs, :data:`sharing`), any other in the memory ``taken`` leaves."""
        on = where[entry.alias][0]
        if entry.alias in sharing:
            return plan(entry, on, None if sharing[entry.alias] else GPU_MEMORY_UTILIZATION)
        return plan(entry, _without(on, taken), GPU_MEMORY_UTILIZATION)

    joint = _joint(hardware, ordered, alone, placed, models_max=models_max, keep=keep)
    for entry in ordered:
        others = sharing.get(entry.alias) if not joint.errors else None
        _explain(joint.plans[entry.alias], entry, hardware, others)
    return joint


def _joint(
    hardware: Hardware,
    ordered: list[ModelEntry],
    alone: dict[str, Plan],
    placed: Callable[[ModelEntry, dict[str, int]], Plan],
    *,
    models_max: int | None,
    keep: list[str],
) -> ModelsPlan:
    """Resident or a swap set (the module's docstring), each model ``placed`` beside the
    memory the ones before it take."""
    count = len(ordered)
    errors = [
        f"{alias}: does not fit on this host even alone: {'; '.join(p.errors)}"
        for alias, p in alone.items() if not p.ok
    ]
    if errors:
        return ModelsPlan("resident", alone, count, [], keep, errors=errors)
    if models_max is not None and models_max < len(keep):
        return ModelsPlan("swap", alone, models_max, [], keep, errors=[
            f"models_max {models_max} is fewer than the {len(keep)} keep_loaded models"
            f" ({', '.join(keep)})"
        ])
    swappable = [e for e in ordered if not e.keep_loaded and alone[e.alias].runtime != "vllm"]
    pinned = [e for e in ordered if e.keep_loaded or alone[e.alias].runtime == "vllm"]
    kept_names = [e.alias for e in pinned]

    # 1. every model at once, each as it would run alone
    if models_max is None or models_max >= count:
        resident: dict[str, Plan] = {}
        taken: dict[str, int] = {}
        shared = True
        for entry in ordered:
            resident[entry.alias] = p = placed(entry, taken)
            footprint = _footprint(p, hardware)
            if (not p.ok or _shape(p) != _shape(alone[entry.alias])
                    or _over(hardware, taken, footprint)):
                shared = False
                break
            taken = _add(taken, footprint)
        if shared:
            reasons = [
                f"all {count} models resident at once: together they take "
                + ", ".join(f"{_gib(b)} of {d}" for d, b in sorted(taken.items()))
                + ", each with the placement it gets alone"
            ]
            return ModelsPlan("resident", resident, count, [e.alias for e in ordered],
                              keep, peak=taken, reasons=reasons)
        why_not = (
            f"{entry.alias} does not fit beside the models before it as it would alone"
        )
    else:
        why_not = f"models_max {models_max} is fewer than the {count} models"

    # 2. a swap set: the pinned models (keep_loaded, vLLM) always, the others on demand
    plans: dict[str, Plan] = {}
    base: dict[str, int] = {}
    for entry in pinned:
        plans[entry.alias] = p = placed(entry, base)
        footprint = _footprint(p, hardware)
        over = _over(hardware, base, footprint)
        if not p.ok or over:
            before = ", ".join(kept_names[:kept_names.index(entry.alias)])
            return ModelsPlan("swap", {**alone, **plans}, models_max or len(pinned), [], keep,
                              errors=[f"{entry.alias} does not fit beside {before} (loaded at "
                                      f"all times): {'; '.join(p.errors + over)}"
                                      + _gpus_hint(entry, p, hardware)])
        base = _add(base, footprint)
    first: dict[str, Plan] = {}
    errors = []
    for entry in swappable:
        first[entry.alias] = p = placed(entry, base)
        over = _over(hardware, base, _footprint(p, hardware))
        if not p.ok or over:
            errors.append(f"{entry.alias} does not fit beside {', '.join(kept_names)} (loaded at "
                          f"all times): {'; '.join(p.errors + over)}")
    if errors:
        return ModelsPlan("swap", {**plans, **first}, models_max or len(pinned) + 1, [], keep,
                          errors=errors)
    if not swappable:  # only pinned models, and they do not share as they would alone
        return ModelsPlan("resident", plans, len(pinned), kept_names, keep, peak=base,
                          reasons=[f"all models loaded at all times ({why_not}: each planned in"
                                   " the memory the ones before it leave)"])

    def peak_of(chosen: dict[str, Plan], count: int) -> dict[str, int] | None:
        """The pinned models and the ``count`` largest on-demand ones, per device; None when
        that is more than a device the on-demand ones use holds."""
        largest = _largest([_footprint(p, hardware) for p in chosen.values()], count)
        peak = _add(base, largest)
        fits = all(peak[d] <= _usable(hardware, d) for d, b in largest.items() if b)
        return peak if fits else None

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
            again = placed(entry, _add(base, beside))
            if not again.ok or _footprint(again, hardware) == footprints[largest]:
                return None  # it cannot shrink further
            chosen[largest] = again
        return chosen if peak_of(chosen, count) is not None else None

    asked = models_max is not None
    slots = min(max((models_max or count) - len(pinned), 1), len(swappable))
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
    if effective >= count:
        mode, reasons = "resident", [
            f"all {count} models resident at once, as models_max asks ({why_not})"]
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


def _gpus_hint(entry: ModelEntry, plan: Plan, hardware: Hardware) -> str:
    """For a vLLM model with no ``gpus`` on a host with GPUs it does not use: how to move it."""
    used = _gpus_of(plan)
    if plan.runtime != "vllm" or entry.gpus is not None or len(used) >= len(_host_gpus(hardware)):
        return ""
    first = f"first {len(used)} GPUs" if len(used) > 1 else "first GPU"
    return f" (it runs on the host's {first}, as vLLM does: `gpus` on its entry puts it on others)"


def _explain(plan: Plan, entry: ModelEntry, hardware: Hardware, others: list[str] | None
             ) -> None:
    """The joint plan's say in one model's plan: its share of each GPU (a vLLM model on GPUs:
    ``others`` are the models that use them too; None: not said, the joint plan failed) and
    the GPUs it is pinned to (:func:`pin_to_gpus`)."""
    used = _gpus_of(plan)
    share = _utilization(plan)
    if others is not None and share is not None and used:
        plan.reasons.append(_share_reason(plan, used, share, others))
    pin_to_gpus(plan, entry, hardware)


def pin_to_gpus(plan: Plan, entry: ModelEntry, hardware: Hardware) -> None:
    """Pin a plan that uses fewer GPUs than ``hardware`` (the host's) has to those it uses
    (vLLM: its tensor-parallel ones; another runtime: those its entry's ``gpus`` named), by
    physical index (``CUDA_VISIBLE_DEVICES`` with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``,
    ``HIP_VISIBLE_DEVICES``), said in its reasons. A MIG slice's UUID pin is kept."""
    used = _gpus_of(plan)
    accelerator = hardware.accelerator
    variable = VISIBLE_DEVICES_VARIABLE.get(accelerator)
    if variable is None or not used or plan.env.get(variable, "").startswith("MIG-"):
        return  # no such variable, no GPU, or a MIG slice make_plan pinned by its UUID
    if plan.runtime == "vllm":
        pinned = used
        why = f"the GPU{'s' if len(used) > 1 else ''} its tensor parallel {len(used)} runs on"
    elif entry.gpus is not None:  # the GPUs planned for (its split follows them), used or not
        pinned = [r.device for r in plan.memory.placement if r.device != "cpu"]
        why = "the GPUs its entry's `gpus` names"
    else:
        return
    host = len(gpu_devices(hardware, accelerator)) + len(memoryless_gpus(hardware, accelerator))
    if len(pinned) >= host:
        return
    indexes = ",".join(device.split(":", 1)[1] for device in pinned)
    plan.env = {**plan.env, variable: indexes}
    order = ""
    if accelerator == "cuda":
        plan.env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        order = ", nvidia-smi's indices (CUDA_DEVICE_ORDER=PCI_BUS_ID)"
    plan.reasons = [r for r in plan.reasons if not r.startswith(f"{variable}=")]
    plan.reasons.append(f"{variable}={indexes}: {why}, of the host's {host}{order}")


def _share_reason(plan: Plan, used: list[str], share: float, others: list[str]) -> str:
    """Why a vLLM model claims the share of its GPUs it does."""
    devices = ", ".join(used)
    it = "it" if len(used) == 1 else "them"
    if not others:
        return (f"--gpu-memory-utilization {share:.2f} of {devices}: vLLM's default; no other "
                f"model of the host uses {it}")
    row = next(r for r in plan.memory.placement if r.device == used[0])
    head = (f"--gpu-memory-utilization {share:.2f} of {devices}: shares {it} with "
            f"{', '.join(others)}")
    if share >= GPU_MEMORY_UTILIZATION:
        return (f"{head}, but needs all of vLLM's default {GPU_MEMORY_UTILIZATION:.2f} (its KV "
                "pool does not hold every user at full length even there)")
    return (
        f"{head}: the least, in steps of 0.01, that holds what its plan needs per GPU "
        f"({_gib(row.weights)} of weights, the KV cache of {plan.concurrency} × "
        f"{plan.context:,} tokens and {_gib(row.overhead)} of activations, CUDA graphs and "
        f"non-torch memory: a {_gib(row.usable)} budget of {_gib(row.capacity)}, its CUDA "
        f"context beside it), not vLLM's {GPU_MEMORY_UTILIZATION:.2f}: "
        f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} planned in the rest"
    )


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
