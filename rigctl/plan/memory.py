"""Memory arithmetic: weights, KV cache, compute buffers, and what each device can hold.

Every constant says where it comes from. All sizes are bytes.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from rigctl.hardware import Hardware
from rigctl.models.facts import ModelFacts
from rigctl.plan.types import DevicePlacement

MiB = 1 << 20
GiB = 1 << 30

# A context the user did not choose: long enough for chat with documents, short enough that
# its KV cache stays a fraction of the weights. Capped by the model's native context. The plan
# starts there and grows it into the memory the placed weights leave (grow_context), up to
# DEFAULT_CONTEXT_MAX or the host data's context_max.
DEFAULT_CONTEXT = 8192
DEFAULT_CONTEXT_MAX = 32768

# llama.cpp pads a KV cache to 256 cells (llama_kv_cache::get_n_kv: n_pad at least 256); a
# grown context is a multiple of it.
CONTEXT_STEP = 256

# llama-server's defaults for -b (logical batch) and -ub (physical micro-batch); the compute
# buffers are sized by -ub (common/arg.cpp).
LLAMACPP_BATCH = 2048
LLAMACPP_UBATCH = 512

# Bytes per cached K or V element. ggml blocks: q8_0 is 34 bytes per 32 values, q4_0 18
# bytes per 32 (ggml-common.h). vLLM's fp8 is one byte.
KV_BYTES_PER_ELEMENT: dict[str, float] = {
    "f16": 2.0,
    "bf16": 2.0,
    "auto": 2.0,  # vLLM "auto" = the model's dtype, bf16 for every catalog model
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "fp8": 1.0,
}

# VRAM a GPU runtime takes before any model byte: the CUDA/HIP context with cuBLAS/hipBLAS
# workspaces shows as 300-500 MiB used in nvidia-smi/rocm-smi for an idle process; Vulkan
# drivers allocate similar pools. Apple's GPU share (recommendedMaxWorkingSetSize) is
# already net of the system.
GPU_RUNTIME_RESERVE: dict[str, int] = {"cuda": 512 * MiB, "rocm": 512 * MiB, "vulkan": 512 * MiB,
                                       "metal": 0}

# Headroom left free on every GPU: llama.cpp's own `--fit` aims to leave 1 GiB per device
# (fragmentation, a display server, a second process).
GPU_MARGIN = 1 * GiB

# RAM kept for the OS, page cache and the rest of the host: 10%, at least 1 GiB.
HOST_RESERVE_FRACTION = 0.10
HOST_RESERVE_MIN = 1 * GiB

_VENDOR_BY_ACCELERATOR = {"cuda": "nvidia", "rocm": "amd", "metal": "apple"}


def gib(n: float) -> str:
    """Return ``n`` bytes as "12.3 GiB" for reasons and warnings."""
    return f"{n / GiB:.1f} GiB"


def kv_bytes_per_layer(
    facts: ModelFacts,
    context: int,
    *,
    slots: int = 1,
    kv_type: str = "f16",
    v_type: str | None = None,
    swa_extra_tokens: int = 0,
    kv_heads: int | None = None,
) -> list[int]:
    """Return the K+V cache bytes of each layer for ``slots`` sequences of ``context`` tokens.

    Per layer: kv_heads · head_dim · tokens · (bytes per K element + bytes per V element);
    ``kv_type`` is K's type (llama.cpp's ``-ctk``), ``v_type`` V's (``-ctv``; None: the same). A
    sliding-window layer keeps only ``min(context, window + swa_extra_tokens)`` tokens per
    sequence: llama.cpp sizes its SWA cache as window + n_ubatch (llama-kv-cache-iswa.cpp),
    vLLM as the window. ``kv_heads`` overrides the model's (vLLM's per-GPU share).
    """
    bytes_per_element = KV_BYTES_PER_ELEMENT[kv_type] + KV_BYTES_PER_ELEMENT[v_type or kv_type]
    heads = kv_heads if kv_heads is not None else facts.n_kv_heads
    per_token = heads * facts.head_dim * bytes_per_element
    sliding = set(facts.sliding_layers) if facts.sliding_window else set()
    window_tokens = min(context, (facts.sliding_window or 0) + swa_extra_tokens)
    return [
        math.ceil(per_token * (window_tokens if layer in sliding else context) * slots)
        for layer in range(facts.n_layers)
    ]


def kv_cache_bytes(
    facts: ModelFacts,
    context: int,
    *,
    slots: int = 1,
    kv_type: str = "f16",
    v_type: str | None = None,
    swa_extra_tokens: int = 0,
    kv_heads: int | None = None,
) -> int:
    """Return the whole KV cache in bytes (see :func:`kv_bytes_per_layer`)."""
    return sum(
        kv_bytes_per_layer(
            facts, context, slots=slots, kv_type=kv_type, v_type=v_type,
            swa_extra_tokens=swa_extra_tokens, kv_heads=kv_heads,
        )
    )


#: Backends whose flash-attention kernels for a prompt's batch read K and V as f16 only: the
#: pinned ggml-cuda (which ggml-hip compiles too) converts a quantized cache to f16 for the MMA
#: and tile kernels, in an extra buffer the FA op allocates with its output
#: (ggml_cuda_flash_attn_ext_get_alloc_size, fattn.cu), so in the compute buffer. Vulkan, Metal
#: and the CPU dequantize as they read.
F16_COPY_BACKENDS = ("cuda", "rocm")


def attention_mask_bytes(facts: ModelFacts, context_per_slot: int, ubatch: int,
                         swa_tokens_per_slot: int = 0) -> int:
    """The KQ mask of one micro-batch: ``n_kv × n_ubatch`` f16 values (f16 with flash
    attention, llama-graph.cpp build_attn_inp_kq_mask), for the full cache and, on a model with
    sliding-window layers, for the SWA cache too (llama.cpp's iSWA keeps a mask per cache).
    ``n_kv`` is one stream's cells: with ``-np N`` and no ``--kv-unified`` (rigctl never sets
    it) every slot is a stream of its own, so the mask covers one slot's context
    (ne = [n_kv, n_tokens/n_stream, 1, n_stream])."""
    tokens = context_per_slot + (swa_tokens_per_slot if facts.sliding_window else 0)
    return tokens * ubatch * 2


def f16_kv_copy_bytes(facts: ModelFacts, context_total: int, kv_type: str,
                      v_type: str | None = None) -> int:
    """The f16 copy of one full-attention layer's K and V that CUDA's flash attention makes of
    a quantized cache during prompt processing (:data:`F16_COPY_BACKENDS`): n_kv · kv_heads ·
    head_dim · 2 bytes for K when K is quantized, the same for V. About 1 GiB for Gemma 3 27B
    at 128k tokens (16 KV heads · 128 · 131,072 · 2 · 2)."""
    per = context_total * facts.n_kv_heads * facts.head_dim * 2
    quantized = [t for t in (kv_type, v_type or kv_type) if t not in ("f16", "bf16")]
    return per * len(quantized)


def ffn_width(facts: ModelFacts) -> int:
    """The feed-forward width one token's activations span: a MoE layer's used experts, a dense
    layer's FFN, or Llama's 3.5 · n_embd when the model does not say."""
    if facts.is_moe and facts.expert_ffn_length:
        return max(1, facts.expert_used_count) * facts.expert_ffn_length
    return facts.feed_forward_length or math.ceil(3.5 * facts.embedding_length)


def llamacpp_compute_bytes(
    facts: ModelFacts,
    ubatch: int = LLAMACPP_UBATCH,
    *,
    context_per_slot: int = 0,
    slots: int = 1,
    swa_tokens_per_slot: int = 0,
    f16_copy: bool = False,
    kv_type: str = "f16",
    v_type: str | None = None,
) -> int:
    """Return the compute buffer llama.cpp reserves per device, with flash attention.

    The worst-case graph's peak (llama_context's sched_reserve) is the larger of two phases:
    the feed-forward one, ubatch · 4 bytes · (3 · the FFN width a token uses + 4 · n_embd) (gate,
    up and their product beside the hidden states), and the output one, the f32 logits of
    ``slots`` rows (the pinned llama-server reserves one output per sequence:
    server_output_limits → n_outputs_max = n_parallel, not a whole micro-batch) plus a
    micro-batch of hidden states. Measured on the pinned build's CPU backend (``-ub 512``,
    "CPU compute buffer size"): 58.01 MiB for n_embd 1024 / FFN 8192 and 54.01 for 512 / 8192
    (this gives both exactly), 22.01 for 2048 / 2048 and 18.01 for 1024 / 2048 (this gives 30
    and 22: over, the safe side), Gemma 3 270M 20.77 (this gives 20.0). The FFN width is the
    header's ``feed_forward_length``, a MoE model's experts used × expert width, or 3.5 · n_embd
    when unknown. Without flash attention the KQ matrix (ubatch · context · heads · 4) would add
    to it; llama-server's default `-fa auto` turns flash attention on where the backend has it.
    Plus what grows with the cache: the attention mask of one slot's context
    (:func:`attention_mask_bytes`) and, with ``f16_copy`` (a CUDA or ROCm device) and a
    quantized K or V, the f16 copy of one layer's cache for every slot
    (:func:`f16_kv_copy_bytes`): the worst-case graph llama.cpp reserves holds a token of every
    sequence (llama_context's graph_reserve with n_seqs = n_seq_max), so its K/V view spans
    all the streams.
    """
    feed_forward = ubatch * 4 * (3 * ffn_width(facts) + 4 * facts.embedding_length)
    output = 4 * (max(1, slots) * facts.vocab_size + ubatch * facts.embedding_length)
    base = max(feed_forward, output)
    mask = attention_mask_bytes(facts, context_per_slot, ubatch, swa_tokens_per_slot)
    copy = (
        f16_kv_copy_bytes(facts, context_per_slot * slots, kv_type, v_type) if f16_copy else 0
    )
    return base + mask + copy


@dataclass(frozen=True)
class Device:
    """A memory pool the plan can use: one GPU or the host's RAM."""

    name: str  # cuda:0 | rocm:0 | vulkan:0 | metal:0 | cpu
    capacity: int
    reserved: int  # not for the model: runtime context and margin (GPU) or the OS (host)
    model: str = ""  # the GPU's product name, as detection read it
    #: Vulkan: the largest tensor the backend takes here (Gpu.max_tensor_bytes); None: no limit
    max_tensor_bytes: int | None = None

    @property
    def usable(self) -> int:
        return max(0, self.capacity - self.reserved)


def gpu_devices(hardware: Hardware, accelerator: str) -> list[Device]:
    """Return the GPUs that ``accelerator`` drives, with their runtime reserve and margin; a
    GPU that reports no memory is left out (:func:`memoryless_gpus`)."""
    if accelerator == "cpu":
        return []
    vendor = _VENDOR_BY_ACCELERATOR.get(accelerator)
    reserve = GPU_RUNTIME_RESERVE.get(accelerator, 512 * MiB) + GPU_MARGIN
    return [
        Device(f"{accelerator}:{gpu.index}", gpu.memory_bytes, reserve, gpu.name,
               gpu.max_tensor_bytes)
        for gpu in hardware.gpus
        if (vendor is None or gpu.vendor == vendor) and (gpu.memory_bytes or 0) > 0
    ]


def memoryless_gpus(hardware: Hardware, accelerator: str) -> list[str]:
    """The accelerator's GPUs that report no memory (a tool printing 0 or N/A): never planned
    for, each named ``index (name)``."""
    vendor = _VENDOR_BY_ACCELERATOR.get(accelerator)
    return [
        f"{gpu.index} ({gpu.name})"
        for gpu in hardware.gpus
        if (vendor is None or gpu.vendor == vendor) and not (gpu.memory_bytes or 0) > 0
    ]


def host_reserve(hardware: Hardware) -> int:
    """Return the RAM left to the OS and everything else on the host."""
    return max(HOST_RESERVE_MIN, int(hardware.memory_bytes * HOST_RESERVE_FRACTION))


def host_device(hardware: Hardware, gpu_bytes: int = 0) -> Device:
    """Return the host's RAM as a device; on unified memory the GPU's bytes come out of it."""
    reserved = host_reserve(hardware) + (gpu_bytes if hardware.unified_memory else 0)
    return Device("cpu", hardware.memory_bytes, reserved)


def tensor_split_weights(gpus: Sequence[Device]) -> tuple[int, ...]:
    """Return ``--tensor-split`` weights proportional to VRAM, in whole GiB (at least 1)."""
    return tuple(max(1, round(g.capacity / GiB)) for g in gpus)


@dataclass
class LayerPlacement:
    """Where llama.cpp puts each part of the model for one ``-ngl`` value."""

    gpu_layers: int  # the -ngl value: n_layers + 1 puts the output head on a GPU too
    n_layers: int
    kv_type: str  # K's cache type (-ctk)
    gpus: list[DevicePlacement]
    host: DevicePlacement
    tensor_split: tuple[int, ...] | None
    #: ``--n-cpu-moe N``: the routed experts of layers 0..N-1 stay in host memory
    cpu_moe_layers: int = 0
    #: bytes of those experts (in ``host.weights``)
    cpu_moe_bytes: int = 0
    #: V's cache type (-ctv); None: the same as K's
    v_type: str | None = None
    #: tokens of context per slot and slots: what the KV cache holds
    context_per_slot: int = 0
    slots: int = 1

    @property
    def v_cache_type(self) -> str:
        return self.v_type or self.kv_type

    @property
    def kv_quantized(self) -> bool:
        return self.kv_type != "f16" or self.v_cache_type != "f16"

    @property
    def kv_mixed(self) -> bool:
        """K and V cached in different types (-ctk ≠ -ctv)."""
        return self.v_cache_type != self.kv_type

    @property
    def kv_label(self) -> str:
        """``q8_0``, or ``K q8_0, V q4_0`` when the two differ."""
        if not self.kv_mixed:
            return self.kv_type
        return f"K {self.kv_type}, V {self.v_cache_type}"

    @property
    def shape(self) -> tuple[int, int, str, str]:
        """What a grown context must keep: GPU layers, experts in RAM, cache types."""
        return (self.gpu_layers, self.cpu_moe_layers, self.kv_type, self.v_cache_type)

    @property
    def full_offload(self) -> bool:
        return bool(self.gpus) and self.gpu_layers >= self.n_layers + 1

    @property
    def gpus_fit(self) -> bool:
        return all(g.fits for g in self.gpus)

    @property
    def fits(self) -> bool:
        return self.gpus_fit and self.host.fits

    @property
    def gpus_used(self) -> int:
        return sum(1 for g in self.gpus if g.layers or g.weights)

    @property
    def placement(self) -> list[DevicePlacement]:
        return [*self.gpus, self.host]


#: the batch ggml-vulkan's support check multiplies a weight by (llama-model-loader.cpp's
#: weight_buft_supported: a 512-token f32 batch)
_SUPPORT_CHECK_TOKENS = 512


def head_too_large(facts: ModelFacts, device: Device) -> bool:
    """Whether the output head stays in host memory although its layer is offloaded: a device
    with a tensor limit (Vulkan's maxStorageBufferRange, lavapipe's 128 MiB) refuses a weight,
    or its product over the 512-token check batch, larger than that (ggml-vulkan supports_op),
    so llama.cpp's loader falls back to the CPU's buffer (Gemma 3 270M's 170 MiB tied head, whose
    product is 262,144 × 512 × 4 bytes = 512 MiB, on lavapipe)."""
    limit = device.max_tensor_bytes
    if not limit:
        return False
    result = facts.vocab_size * _SUPPORT_CHECK_TOKENS * 4
    return facts.weight_split.output_bytes > limit or result > limit


def place_layers(
    facts: ModelFacts,
    hardware: Hardware,
    gpus: Sequence[Device],
    *,
    gpu_layers: int,
    context_per_slot: int,
    slots: int,
    kv_type: str,
    v_type: str | None = None,
    ubatch: int = LLAMACPP_UBATCH,
    cpu_moe_layers: int = 0,
) -> LayerPlacement:
    """Return llama.cpp's placement for ``-ngl gpu_layers`` (layer split mode).

    Mirrors llama_model::load_tensors: the last ``gpu_layers`` repeating layers go to the
    GPUs (index n_layers is the output head), spread by ``--tensor-split`` with
    upper_bound over the cumulative split; token embeddings stay on the CPU; each layer's
    KV cache lives with the layer. ``cpu_moe_layers`` is ``--n-cpu-moe N``: the routed
    experts of layers 0..N-1 (common/common.h's ``blk.<i>`` overrides) stay in host memory
    wherever their layer is, and the CPU then computes them (a compute buffer of its own).
    """
    n = facts.n_layers
    weights = facts.weight_split
    kv = kv_bytes_per_layer(
        facts, context_per_slot, slots=slots, kv_type=kv_type, v_type=v_type,
        swa_extra_tokens=ubatch,
    )
    swa_tokens = min(context_per_slot, (facts.sliding_window or 0) + ubatch)
    backend = gpus[0].name.split(":", 1)[0] if gpus else "cpu"
    compute = llamacpp_compute_bytes(
        facts, ubatch, context_per_slot=context_per_slot, slots=slots,
        swa_tokens_per_slot=swa_tokens, f16_copy=backend in F16_COPY_BACKENDS,
        kv_type=kv_type, v_type=v_type,
    )
    host_compute = llamacpp_compute_bytes(
        facts, ubatch, context_per_slot=context_per_slot, slots=slots,
        swa_tokens_per_slot=swa_tokens,
    )
    split = tensor_split_weights(gpus) if gpus else ()
    total_split = sum(split)
    cumulative = [sum(split[: i + 1]) / total_split for i in range(len(split))]
    active = min(gpu_layers, n + 1) if gpus else 0
    start = max(n - gpu_layers, 0)

    rows = [DevicePlacement(g.name, 0, g.capacity, g.usable) for g in gpus]
    host_row = DevicePlacement("cpu", 0, hardware.memory_bytes, 0,
                               weights=weights.token_embd_bytes)
    moved = 0
    layers_on_host = head_on_host = False
    for layer in range(n + 1):
        on_gpu = active > 0 and start <= layer < start + active
        if on_gpu:
            index = min(bisect_right(cumulative, (layer - start) / active), len(rows) - 1)
            row = rows[index]
            if layer == n and head_too_large(facts, gpus[index]):
                row = host_row
        else:
            row = host_row
        if row is host_row:
            layers_on_host = layers_on_host or layer < n
            head_on_host = head_on_host or layer == n
        if layer < n:
            experts = (
                weights.expert_bytes[layer]
                if layer < cpu_moe_layers and layer < len(weights.expert_bytes)
                else 0
            )
            row.weights += weights.block_bytes[layer] - experts
            host_row.weights += experts
            moved += experts if row is not host_row else 0
            row.kv_cache += kv[layer]
            row.layers += 1
        elif row is host_row and facts.tied_embeddings:
            # A tied head on the CPU reads the mmapped embedding itself: no second copy.
            row.weights += max(0, weights.output_bytes - weights.token_embd_bytes)
        else:
            row.weights += weights.output_bytes
    for row in rows:
        if row.weights:
            row.overhead = compute
    if layers_on_host or moved:
        host_row.overhead = host_compute  # the CPU runs layers or experts
    elif gpus:
        # the graph's inputs live in host memory (ggml's scheduler puts them on the CPU): the
        # token embeddings the CPU gathers (and a scaled copy) and the attention masks; with the
        # output head there, the CPU also runs it: one row of logits beside a micro-batch of
        # hidden states (measured: Gemma 3 270M on lavapipe, head in host memory, "Vulkan_Host
        # compute buffer size = 5.52 MiB" at 2,048 tokens with 1 slot and with 4; this gives 5.50)
        mask = attention_mask_bytes(facts, context_per_slot, ubatch, swa_tokens)
        inputs = 2 * ubatch * facts.embedding_length * 4
        head = 4 * (facts.vocab_size + ubatch * facts.embedding_length)
        host_row.overhead = mask + (max(inputs, head) if head_on_host else inputs)
    for row in rows:
        row.bytes = row.weights + row.kv_cache + row.overhead
    host_row.bytes = host_row.weights + host_row.kv_cache + host_row.overhead
    host = host_device(hardware, sum(r.bytes for r in rows))
    host_row.usable = host.usable
    return LayerPlacement(
        gpu_layers=gpu_layers if gpus else 0,
        n_layers=n,
        kv_type=kv_type,
        gpus=rows,
        host=host_row,
        tensor_split=split if len(gpus) > 1 else None,
        cpu_moe_layers=cpu_moe_layers if moved else 0,
        cpu_moe_bytes=moved,
        v_type=v_type if v_type and v_type != kv_type else None,
        context_per_slot=context_per_slot,
        slots=slots,
    )


def fit_experts(
    facts: ModelFacts,
    hardware: Hardware,
    gpus: Sequence[Device],
    *,
    context_per_slot: int,
    slots: int,
    kv_type: str,
    v_type: str | None = None,
    ubatch: int = LLAMACPP_UBATCH,
) -> LayerPlacement | None:
    """Every layer on the GPUs (``-ngl n_layers+1``) with the routed experts of as few layers
    as possible in host memory (``--n-cpu-moe N``, N from 1 up to every layer): the first
    placement whose GPUs stay within budget, or None (a dense model, no GPU, or the model's
    non-expert part with its KV cache does not fit even with every expert on the CPU)."""
    if not gpus or not facts.is_moe or not facts.weight_split.expert_bytes:
        return None
    for layers in range(1, facts.n_layers + 1):
        placement = place_layers(
            facts, hardware, gpus, gpu_layers=facts.n_layers + 1,
            context_per_slot=context_per_slot, slots=slots, kv_type=kv_type, v_type=v_type,
            ubatch=ubatch, cpu_moe_layers=layers,
        )
        if placement.gpus_fit:
            return placement
    return None


def fit_layers(
    facts: ModelFacts,
    hardware: Hardware,
    gpus: Sequence[Device],
    *,
    context_per_slot: int,
    slots: int,
    kv_type: str,
    v_type: str | None = None,
    ubatch: int = LLAMACPP_UBATCH,
) -> LayerPlacement:
    """Return the placement with the most GPU layers whose every GPU stays within budget.

    Tries ``-ngl n_layers+1`` (everything) down to 0; with no GPU, the CPU placement.
    """
    for gpu_layers in range(facts.n_layers + 1 if gpus else 0, -1, -1):
        placement = place_layers(
            facts, hardware, gpus, gpu_layers=gpu_layers, context_per_slot=context_per_slot,
            slots=slots, kv_type=kv_type, v_type=v_type, ubatch=ubatch,
        )
        if placement.gpus_fit:
            return placement
    return placement


def grow_context(
    facts: ModelFacts,
    hardware: Hardware,
    gpus: Sequence[Device],
    placement: LayerPlacement,
    *,
    cap: int,
    ubatch: int = LLAMACPP_UBATCH,
) -> LayerPlacement:
    """The same placement with the longest context per slot, up to ``cap``, that still fits.

    Only the KV cache and what grows with it (the mask, the f16 copy) get the room: every
    layer, expert and cache type stays where ``placement`` put it (its :attr:`shape`), so no
    weight leaves a GPU for context. A multiple of :data:`CONTEXT_STEP` (``cap`` itself when it
    fits); ``placement`` unchanged when it does not fit to begin with or has no room to grow.
    """
    start = placement.context_per_slot
    if cap <= start or not placement.fits:
        return placement

    def at(context: int) -> LayerPlacement:
        return place_layers(
            facts, hardware, gpus, gpu_layers=placement.gpu_layers, context_per_slot=context,
            slots=placement.slots, kv_type=placement.kv_type, v_type=placement.v_type,
            ubatch=ubatch, cpu_moe_layers=placement.cpu_moe_layers,
        )

    top = at(cap)
    if top.fits:
        return top
    low, high = start // CONTEXT_STEP, cap // CONTEXT_STEP  # low fits (or is start), high fails
    best = placement
    while high - low > 1:
        middle = (low + high) // 2
        if middle * CONTEXT_STEP <= start:
            low = middle
            continue
        candidate = at(middle * CONTEXT_STEP)
        if candidate.fits:
            best, low = candidate, middle
        else:
            high = middle
    return best
