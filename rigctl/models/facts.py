"""What the planner needs to know about one model file: :class:`ModelFacts`.

A GGUF header (:mod:`rigctl.models.gguf_header`) and a catalog entry
(:mod:`rigctl.models.catalog`) both produce this record, so the planner never cares where
the numbers came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from rigctl.redact import shown_url

# llama.cpp's `set_swa_pattern(n)` per architecture: in each run of n layers the first n-1
# use a sliding window and the last one attends globally (src/llama-model.cpp). GGUF files
# of these architectures carry the window size but usually not the pattern.
SWA_PATTERN_BY_ARCH: dict[str, int] = {
    "gemma2": 2,
    "gemma3": 6,
    "cohere2": 4,
    "gpt-oss": 2,
    "llama4": 4,  # chunked attention (LLAMA_SWA_TYPE_CHUNKED), sized like a window
}

# Bits per weight of the token embedding and of the output head that `llama-quantize`
# writes for each file type (src/llama-quant.cpp: the output head becomes Q6_K for the
# k-quants, token_embd keeps the file's base type; a tied embedding is treated as the
# output head). Block sizes from ggml: Q4_K 144 B/256, Q5_K 176 B/256, Q6_K 210 B/256,
# Q8_0 34 B/32, Q4_0 18 B/32.
EMBEDDING_BITS_BY_QUANT: dict[str, tuple[float, float]] = {
    # quant: (token_embd bits, output head bits)
    "Q4_0": (4.5, 6.5625),
    "Q4_K_S": (4.5, 6.5625),
    "Q4_K_M": (4.5, 6.5625),
    "Q5_K_S": (5.5, 6.5625),
    "Q5_K_M": (5.5, 6.5625),
    "Q6_K": (6.5625, 6.5625),
    "Q8_0": (8.5, 8.5),
    "F16": (16.0, 16.0),
    "BF16": (16.0, 16.0),
    "F32": (32.0, 32.0),
}


def swa_layers_for(architecture: str, n_layers: int, pattern: int | None = None) -> tuple[int, ...]:
    """Return the indices of sliding-window layers for ``architecture``.

    ``pattern`` overrides the built-in table (a GGUF may carry it); 0 or an unknown
    architecture means no sliding layers.
    """
    period = pattern if pattern is not None else SWA_PATTERN_BY_ARCH.get(architecture, 0)
    if period <= 1:
        return ()
    return tuple(i for i in range(n_layers) if i % period < period - 1)


#: The tensors llama.cpp's ``--cpu-moe`` and ``--n-cpu-moe N`` keep in host memory: a MoE
#: layer's routed experts (``blk.N.ffn_{up,down,gate,gate_up}_exps.*``, ``_chexps`` too), not its
#: shared experts (``_shexp``) nor its router (``ffn_gate_inp``). The pinned llama.cpp's
#: ``LLM_FFN_EXPS_REGEX`` (common/common.h), searched in each tensor's name.
EXPERT_TENSOR = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")


@dataclass(frozen=True)
class WeightSplit:
    """Where a GGUF's bytes live, as llama.cpp places them.

    ``token_embd_bytes`` stay in host memory (llama.cpp keeps the input layer on the CPU);
    ``block_bytes`` are the repeating layers that ``-ngl`` moves; ``output_bytes`` (final
    norm and head, or the copy of a tied embedding) go to the GPU only with
    ``-ngl n_layers + 1``. ``expert_bytes`` (a MoE model's) are the part of each layer's
    ``block_bytes`` that is routed experts (:data:`EXPERT_TENSOR`): what ``--n-cpu-moe`` keeps
    in host memory; empty for a dense model.
    """

    token_embd_bytes: int
    block_bytes: tuple[int, ...]
    output_bytes: int
    expert_bytes: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return self.token_embd_bytes + sum(self.block_bytes) + self.output_bytes

    @property
    def experts_total(self) -> int:
        return sum(self.expert_bytes)


def estimate_weight_split(
    *,
    file_size: int,
    n_layers: int,
    vocab_size: int,
    embedding_length: int,
    quant: str | None,
    tied_embeddings: bool,
) -> WeightSplit:
    """Return an estimated :class:`WeightSplit` when the tensor table is not at hand.

    The embedding and head sizes follow from ``vocab × hidden`` at the bits
    ``llama-quantize`` uses for them; the repeating layers share the rest evenly.
    """
    embed_params = vocab_size * embedding_length
    default_bits = 8.0 * file_size / max(1, embed_params) if embed_params else 0.0
    embd_bits, head_bits = EMBEDDING_BITS_BY_QUANT.get(
        (quant or "").upper(), (default_bits, default_bits)
    )
    if tied_embeddings:
        # One tensor stored once, quantized like the head; llama.cpp also puts a copy on
        # the output device (TENSOR_DUPLICATED), so it counts on both sides.
        token_embd = math.ceil(embed_params * head_bits / 8)
        output = token_embd
        stored = token_embd
    else:
        token_embd = math.ceil(embed_params * embd_bits / 8)
        output = math.ceil(embed_params * head_bits / 8)
        stored = token_embd + output
    blocks_total = max(0, file_size - stored)
    per_block = math.ceil(blocks_total / n_layers) if n_layers else 0
    return WeightSplit(token_embd, (per_block,) * n_layers, output)


@dataclass(frozen=True)
class ModelFacts:
    """One model file's shape and size: everything memory arithmetic needs.

    Numbers are GGUF metadata names: ``n_layers`` is ``{arch}.block_count``, ``head_dim``
    ``{arch}.attention.key_length``. ``file_size`` sums all shards of a split GGUF.
    """

    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    embedding_length: int
    context_length: int
    file_size: int
    name: str = ""
    quant: str | None = None  # GGUF file type name, e.g. "Q4_K_M"
    vocab_size: int = 0
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()  # indices of layers that use the window
    tied_embeddings: bool = False
    weights: WeightSplit | None = None  # None: estimated from the sizes above
    source: str | None = None  # where the first (or only) file comes from
    sources: tuple[str, ...] = ()  # every shard, first first
    sha256: str | None = None
    size_exact: bool = False  # file_size is the real byte count, not a rounded listing
    hf_repo: str | None = None  # safetensors repo for vLLM, when known
    hf_weights_bytes: int | None = None  # safetensors bytes of hf_repo (bf16 unless hf_dtype)
    format: str = "gguf"  # gguf | safetensors (a Hugging Face model: vLLM only)
    hf_revision: str | None = None  # safetensors: the revision (a commit once resolved)
    hf_dir: str | None = None  # safetensors: a model directory on the controller
    hf_dtype: str | None = None  # safetensors: the stored dtype (config torch_dtype)
    # safetensors: a quantized checkpoint's quantization_config (quant_method, weight bits):
    # its weights load as stored, hf_weights_bytes of them
    hf_quant: str | None = None
    hf_quant_bits: int | None = None
    hf_quant_float: bool = False  # floating-point weights (FP8), not integers
    # Mixture of experts ({arch}.expert_count, .expert_used_count, .expert_feed_forward_length,
    # .expert_shared_count): 0 experts for a dense model
    expert_count: int = 0
    expert_used_count: int = 0
    expert_ffn_length: int | None = None
    feed_forward_length: int | None = None  # a dense layer's FFN width ({arch}.feed_forward_length)
    expert_shared_count: int = 0
    # parameters, from the tensor table (or the catalog's source); active: what one token uses
    # (the dense part, plus expert_used_count of expert_count routed experts)
    parameters: int | None = None
    active_parameters: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        """Keep credentials out of ``source``/``sources``: they are shown in plans (``plan
        --json``), progress lines and lockfiles. A URL with userinfo or a signed-URL token is
        stored in its masked form; the real one stays with :func:`rigctl.redact.real_url`,
        which only the fetching code asks (:func:`rigctl.fetch.model.fetch_model`)."""
        if self.source:
            object.__setattr__(self, "source", shown_url(self.source))
        if self.sources:
            object.__setattr__(self, "sources", tuple(shown_url(s) for s in self.sources))

    @property
    def weight_split(self) -> WeightSplit:
        """Return the measured split when the header gave one, else the estimate."""
        if self.weights is not None:
            return self.weights
        return estimate_weight_split(
            file_size=self.file_size,
            n_layers=self.n_layers,
            vocab_size=self.vocab_size,
            embedding_length=self.embedding_length,
            quant=self.quant,
            tied_embeddings=self.tied_embeddings,
        )

    @property
    def is_moe(self) -> bool:
        """A mixture-of-experts model: more than one routed expert per MoE layer."""
        return self.expert_count > 1

    @property
    def display_name(self) -> str:
        """Return a short human label: name and quant."""
        label = self.name or self.architecture
        return f"{label} {self.quant}" if self.quant else label

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of every field."""
        return asdict(self)
