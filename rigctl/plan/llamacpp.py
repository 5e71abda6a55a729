"""llama.cpp's ``llama-server``: memory layout (shared with Ollama) and its argv."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rigctl.hardware import Hardware
from rigctl.models.facts import ModelFacts
from rigctl.plan.memory import (
    F16_COPY_BACKENDS,
    LLAMACPP_BATCH,
    LLAMACPP_UBATCH,
    Device,
    LayerPlacement,
    fit_experts,
    fit_layers,
    gib,
    kv_cache_bytes,
    place_layers,
)

# KV cache types tried, best first, as (K, V) pairs (llama.cpp's -ctk/-ctv values). q8_0 costs
# almost nothing in quality; K is the more sensitive of the two (its error enters every
# attention score, V's only the weighted sum), so a q8_0 K with a q4_0 V comes before q4_0 for
# both; q4_0 is the last resort before spilling layers to the CPU.
KV_PAIRS: tuple[tuple[str, str], ...] = (
    ("f16", "f16"), ("q8_0", "q8_0"), ("q8_0", "q4_0"), ("q4_0", "q4_0"),
)

#: Backends that run flash attention with K and V of different types in the pinned build: the
#: CPU and Vulkan (ggml-vulkan's supports_op checks each type alone). Metal needs the same type
#: for both (ggml-metal-device.m), and ggml-cuda compiles only the pairs in GGML_CUDA_FA_QUANTS
#: (default q4_0-q4_0, q8_0-q8_0, f16-f16, bf16-bf16) and converts any other pair to f16.
MIXED_KV_BACKENDS = ("cpu", "vulkan")


def kv_pairs(mixed: bool) -> tuple[tuple[str, str], ...]:
    """The cache-type ladder: with ``mixed`` False, only pairs of one type."""
    return tuple(p for p in KV_PAIRS if mixed or p[0] == p[1])


def mixed_kv_supported(accelerator: str, gpus: Sequence[Device]) -> bool:
    """Whether the backend the plan runs on takes K and V of different types."""
    return (accelerator if gpus else "cpu") in MIXED_KV_BACKENDS


@dataclass
class GgufLayout:
    """The chosen llama.cpp placement and the sentences that explain it."""

    placement: LayerPlacement
    reasons: list[str] = field(default_factory=list)

    @property
    def kv_quantized(self) -> bool:
        return self.placement.kv_quantized


def choose_layout(
    facts: ModelFacts,
    hardware: Hardware,
    gpus: Sequence[Device],
    *,
    context_per_slot: int,
    slots: int,
    moe_offload: bool = True,
    mixed_kv: bool | None = None,
) -> GgufLayout:
    """Return the layout llama.cpp (or Ollama) should use.

    Everything on the GPU(s) with an f16 KV cache when it fits; else a quantized KV cache
    when that is what makes everything fit; else, for a mixture-of-experts model (with
    ``moe_offload``: llama.cpp's ``--n-cpu-moe``, which Ollama lacks), every layer on the
    GPU(s) with the routed experts of as few layers as needed in RAM; else a partial offload
    (most layers that fit, f16 cache). On CPU the same ladder applies to RAM. ``mixed_kv``
    (default: what the backend runs, :func:`mixed_kv_supported`; Ollama has one type for both)
    allows a q8_0 K with a q4_0 V.
    """
    if mixed_kv is None:
        mixed_kv = mixed_kv_supported(hardware.accelerator, gpus)
    pairs = kv_pairs(mixed_kv)
    total_context = context_per_slot * slots
    label = facts.display_name
    if not gpus:
        ladder = [
            fit_layers(facts, hardware, gpus, context_per_slot=context_per_slot, slots=slots,
                       kv_type=k, v_type=v)
            for k, v in pairs
        ]
        # The first cache type that fits RAM; f16 (and an error later) when none does.
        placement = next((p for p in ladder if p.host.fits), ladder[0])
        reasons = [
            f"CPU only: {label} with {total_context:,} tokens of context needs "
            f"{gib(placement.host.bytes)} of RAM ({gib(placement.host.usable)} usable)"
        ]
        if placement.kv_quantized:
            rejected = [
                f"{p.kv_label} would need {gib(p.host.bytes)}"
                for p in ladder[1:ladder.index(placement)]
            ]
            reasons.append(
                f"KV cache {placement.kv_label}: an f16 cache would take "
                f"{gib(ladder[0].host.kv_cache)} and not fit in RAM; {placement.kv_label} takes "
                f"{gib(placement.host.kv_cache)}"
                + (f" (given up: {', '.join(rejected)} of RAM)" if rejected else "")
            )
        return GgufLayout(placement, reasons)

    f16 = fit_layers(facts, hardware, gpus, context_per_slot=context_per_slot, slots=slots,
                     kv_type="f16")
    names = ", ".join(g.name for g in gpus)
    usable = sum(g.usable for g in gpus)
    if f16.full_offload:
        return GgufLayout(f16, [_full_sentence(f16, label, total_context, names, usable)])
    # after f16: a q8_0 cache (near-lossless); for a MoE model then some experts in RAM (a
    # token touches few of them) with an f16, then a q8_0 cache; then the lower cache types,
    # the last resort before whole layers leave the GPU
    quantized_pairs = [p for p in pairs if p != ("f16", "f16")]
    steps: list[tuple[str, tuple[str, str]]] = [("full", quantized_pairs[0])]
    if moe_offload and facts.is_moe:
        steps += [("experts", ("f16", "f16")), ("experts", quantized_pairs[0])]
        steps += [("full", p) for p in quantized_pairs[1:]]
        steps += [("experts", p) for p in quantized_pairs[1:]]
    else:
        steps += [("full", p) for p in quantized_pairs[1:]]
    given_up: list[str] = []  # the better cache types that did not fit, with what they needed
    for step, (k, v) in steps:
        if step == "experts":
            experts = fit_experts(facts, hardware, gpus, context_per_slot=context_per_slot,
                                  slots=slots, kv_type=k, v_type=v)
            if experts is not None:
                return GgufLayout(experts, [_experts_sentence(experts, facts, total_context,
                                                              names, usable)])
            continue
        quantized = fit_layers(facts, hardware, gpus, context_per_slot=context_per_slot,
                               slots=slots, kv_type=k, v_type=v)
        if not quantized.full_offload:
            whole = place_layers(facts, hardware, gpus, gpu_layers=facts.n_layers + 1,
                                 context_per_slot=context_per_slot, slots=slots,
                                 kv_type=k, v_type=v)
            given_up.append(f"{whole.kv_label} would need {gib(sum(g.bytes for g in whole.gpus))}")
            continue
        f16_kv = kv_cache_bytes(facts, context_per_slot, slots=slots,
                                swa_extra_tokens=LLAMACPP_UBATCH)
        q_kv = sum(g.kv_cache for g in quantized.gpus)
        return GgufLayout(quantized, [
            _full_sentence(quantized, label, total_context, names, usable),
            f"KV cache {quantized.kv_label}: an f16 cache for {total_context:,} tokens takes "
            f"{gib(f16_kv)} and does not fit next to the weights on {names}; "
            f"{quantized.kv_label} takes {gib(q_kv)} and does (needs flash attention: -fa on)"
            + (f"; given up: {', '.join(given_up)} on {names}" if given_up else "")
            + _copy_note(quantized),
        ])
    on_gpu = sum(g.layers for g in f16.gpus)
    everything = place_layers(facts, hardware, gpus, gpu_layers=facts.n_layers + 1,
                              context_per_slot=context_per_slot, slots=slots, kv_type="f16")
    needed = sum(g.bytes for g in everything.gpus)
    return GgufLayout(f16, [
        f"partial offload: {label} with {total_context:,} tokens of context needs about "
        f"{gib(needed)} on the GPU but {names} offer {gib(usable)} usable; {on_gpu} of "
        f"{facts.n_layers} layers fit on the GPU (-ngl {f16.gpu_layers}), the rest run on "
        f"the CPU from RAM, so each token waits on the CPU's memory bandwidth for them",
    ])


def _copy_note(placement: LayerPlacement) -> str:
    """What a quantized cache costs on CUDA/ROCm besides itself: the f16 copy of one layer."""
    if not placement.gpus or placement.gpus[0].device.split(":", 1)[0] not in F16_COPY_BACKENDS:
        return ""
    return "; counted: the f16 copy of one layer's K and V that CUDA's flash attention makes " \
        "of a quantized cache while it reads a prompt"


def _experts_sentence(
    placement: LayerPlacement, facts: ModelFacts, total_context: int, names: str, usable: int
) -> str:
    """Why some experts stay in RAM, and what a token then reads from it."""
    n, used, count = placement.cpu_moe_layers, facts.expert_used_count, facts.expert_count
    per_token = placement.cpu_moe_bytes * used // count if count else placement.cpu_moe_bytes
    kv = "" if not placement.kv_quantized else f", KV cache {placement.kv_label} (-fa on)"
    return (
        f"MoE expert offload: {facts.display_name} ({count} experts, {used} used per token) "
        f"with {total_context:,} tokens of context does not fit on {names} whole "
        f"({gib(usable)} usable); every layer, the attention and the KV cache stay on the "
        f"GPU and the routed experts of the first {n} of {placement.n_layers} layers "
        f"({gib(placement.cpu_moe_bytes)}) in RAM (--n-cpu-moe {n}){kv}: each token reads "
        f"about {per_token / (1 << 20):,.0f} MiB of them from RAM, {used} of {count} "
        f"experts per layer, instead of whole layers as a layer split would"
    )


def _full_sentence(
    placement: LayerPlacement, label: str, total_context: int, names: str, usable: int
) -> str:
    used = sum(g.bytes for g in placement.gpus)
    return (
        f"full offload: {label} with {total_context:,} tokens of context takes {gib(used)} "
        f"on {names} ({gib(usable)} usable): all {placement.n_layers} layers and the output "
        f"head (-ngl {placement.gpu_layers})"
    )


def llama_server_args(
    *,
    model_path: str,
    layout: GgufLayout,
    context_per_slot: int,
    slots: int,
    threads: int,
) -> list[str]:
    """Return llama-server's argv after the program name.

    ``-c`` is the total context: llama-server divides it among the ``-np`` slots. Every
    argument the plan fitted is set, and the server's own fitting is off (``--fit off``).
    """
    placement = layout.placement
    args = [
        "-m", model_path,
        "-c", str(context_per_slot * slots),
        "-np", str(slots),
        "-ngl", str(placement.gpu_layers),
        "-t", str(threads),
        "-b", str(LLAMACPP_BATCH),
        "-ub", str(LLAMACPP_UBATCH),
        # llama-server's own fitting (on by default since the pinned build) would change the
        # arguments left unset to suit the memory it finds: the plan's numbers are what runs
        "--fit", "off",
    ]
    if placement.tensor_split:
        args += ["--tensor-split", ",".join(str(w) for w in placement.tensor_split)]
    if placement.cpu_moe_layers:
        args += ["--n-cpu-moe", str(placement.cpu_moe_layers)]
    if layout.kv_quantized:
        args += ["-ctk", placement.kv_type, "-ctv", placement.v_cache_type, "-fa", "on"]
    return args


def llamacpp_backend(accelerator: str, gpu_layers: int | None) -> str:
    """llama.cpp's backend: the host's accelerator when the plan puts layers on it (Metal is
    compiled in on macOS either way), else the CPU one."""
    if gpu_layers and accelerator in ("cuda", "rocm", "vulkan", "metal"):
        return accelerator
    return "metal" if accelerator == "metal" else "cpu"
