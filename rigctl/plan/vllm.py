"""vLLM: tensor parallel size, KV page budget and its ``vllm serve`` argv."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rigctl.models.facts import ModelFacts
from rigctl.plan.memory import Device, GiB, gib, kv_cache_bytes
from rigctl.plan.types import DevicePlacement

# vLLM's default --gpu-memory-utilization: the share of each GPU's memory vLLM claims.
GPU_MEMORY_UTILIZATION = 0.90

# What vLLM needs per GPU besides weights and KV pages. Its startup log splits the budget as
# "model weights take X GiB; non_torch_memory takes ~0.3-0.6 GiB; PyTorch activation peak
# memory takes ~0.5-1.5 GiB; the rest of the memory reserved for KV Cache", and CUDA
# graph capture adds ~0.3-1 GiB after that.
RUNTIME_OVERHEAD = 2 * GiB

# FP8 KV cache needs FP8 hardware: Ada (8.9) and Hopper (9.0) or newer.
FP8_KV_MIN_COMPUTE_CAPABILITY = (8, 9)


@dataclass
class VllmFit:
    """One tensor-parallel layout and what its KV page pool holds."""

    tensor_parallel: int
    kv_dtype: str  # auto | fp8
    gpus: list[DevicePlacement]
    weights_per_gpu: int
    kv_pool_per_gpu: int  # bytes left for KV pages on each GPU (may be negative)
    kv_per_sequence_per_gpu: int  # one max-model-len sequence's KV on each GPU
    kv_target_per_gpu: int  # concurrency × max-model-len

    @property
    def sequences(self) -> int:
        """Return how many full-length sequences the KV pool holds at once."""
        if self.kv_pool_per_gpu <= 0:
            return 0
        return self.kv_pool_per_gpu // max(1, self.kv_per_sequence_per_gpu)

    @property
    def meets_target(self) -> bool:
        return self.kv_pool_per_gpu >= self.kv_target_per_gpu

    @property
    def runs(self) -> bool:
        return self.sequences >= 1


def tensor_parallel_sizes(facts: ModelFacts, gpu_count: int) -> list[int]:
    """Return the tensor-parallel sizes vLLM accepts here, smallest first.

    vLLM needs the attention heads divisible by the size, and the KV heads either divisible
    by it or a divisor of it (then each GPU keeps a replicated KV head).
    """
    sizes = []
    for size in range(1, gpu_count + 1):
        if facts.n_heads % size:
            continue
        if facts.n_kv_heads % size and size % facts.n_kv_heads:
            continue
        sizes.append(size)
    return sizes


def _layout(
    facts: ModelFacts, gpus: Sequence[Device], size: int, kv_dtype: str, *, context: int,
    concurrency: int,
) -> VllmFit:
    used = list(gpus[:size])
    smallest = min(g.capacity for g in used)
    budget = math.floor(smallest * GPU_MEMORY_UTILIZATION)
    weights = math.ceil((facts.hf_weights_bytes or 0) / size)
    kv_heads = max(1, facts.n_kv_heads // size)
    per_sequence = kv_cache_bytes(facts, context, kv_type=kv_dtype, kv_heads=kv_heads)
    target = kv_cache_bytes(facts, context, slots=concurrency, kv_type=kv_dtype,
                            kv_heads=kv_heads)
    pool = budget - weights - RUNTIME_OVERHEAD
    rows = [
        DevicePlacement(
            g.name,
            bytes=weights + RUNTIME_OVERHEAD + max(0, pool),
            capacity=g.capacity,
            usable=budget,
            weights=weights,
            kv_cache=max(0, pool),
            overhead=RUNTIME_OVERHEAD,
        )
        for g in used
    ]
    if pool < 0:
        for row in rows:
            row.bytes = weights + RUNTIME_OVERHEAD  # over budget: fits is False
    return VllmFit(size, kv_dtype, rows, weights, pool, per_sequence, target)


def fit_vllm(
    facts: ModelFacts,
    gpus: Sequence[Device],
    *,
    context: int,
    concurrency: int,
    compute_capability: tuple[int, int] | None,
) -> VllmFit:
    """Return the vLLM layout to use (check ``runs``: False when none holds one sequence).

    The smallest tensor-parallel size whose KV pool holds every user at the full context
    with the model's own KV dtype; failing that the smallest with an FP8 KV cache (on FP8
    hardware); failing that the layout with the most room (vLLM then queues requests).
    """
    sizes = tensor_parallel_sizes(facts, len(gpus))
    dtypes = ["auto"]
    if compute_capability and compute_capability >= FP8_KV_MIN_COMPUTE_CAPABILITY:
        dtypes.append("fp8")
    layouts = [
        _layout(facts, gpus, size, dtype, context=context, concurrency=concurrency)
        for dtype in dtypes
        for size in sizes
    ]
    for layout in layouts:
        if layout.meets_target:
            return layout
    # Most room per sequence wins (negative pools rank by how far over budget they are).
    return max(
        layouts,
        key=lambda layout: (
            layout.kv_pool_per_gpu / max(1, layout.kv_per_sequence_per_gpu),
            -layout.tensor_parallel,
        ),
    )


def vllm_reason(fit: VllmFit, *, context: int, concurrency: int) -> str:
    """Return the sentence that explains the vLLM layout's numbers."""
    names = ", ".join(g.device for g in fit.gpus)
    if fit.kv_pool_per_gpu <= 0:
        return (
            f"tensor parallel {fit.tensor_parallel} over {names}: {gib(fit.weights_per_gpu)} of "
            f"bf16 weights per GPU plus {gib(RUNTIME_OVERHEAD)} of runtime overhead exceed the "
            f"{gib(fit.gpus[0].usable)} budget at --gpu-memory-utilization "
            f"{GPU_MEMORY_UTILIZATION:.2f}"
        )
    text = (
        f"tensor parallel {fit.tensor_parallel} over {names}: {gib(fit.weights_per_gpu)} of "
        f"weights per GPU leaves {gib(fit.kv_pool_per_gpu)} per GPU for KV pages at "
        f"--gpu-memory-utilization {GPU_MEMORY_UTILIZATION:.2f}, room for {fit.sequences} "
        f"sequences of {context:,} tokens"
    )
    if fit.kv_dtype == "fp8":
        text += "; FP8 KV cache (--kv-cache-dtype fp8) because a bf16 cache would not hold them"
    if fit.tensor_parallel > 1:
        text += (
            f"; a smaller tensor-parallel size cannot hold {concurrency} × {context:,} tokens "
            "next to the weights"
        )
    return text


def vllm_args(
    *, repo: str, fit: VllmFit, context: int, concurrency: int
) -> list[str]:
    """Return ``vllm``'s argv after the program name (``serve <repo> …``)."""
    args = [
        "serve", repo,
        "--tensor-parallel-size", str(fit.tensor_parallel),
        "--gpu-memory-utilization", f"{GPU_MEMORY_UTILIZATION:.2f}",
        "--max-model-len", str(context),
        "--max-num-seqs", str(concurrency),
    ]
    if fit.kv_dtype != "auto":
        args += ["--kv-cache-dtype", fit.kv_dtype]
    return args
