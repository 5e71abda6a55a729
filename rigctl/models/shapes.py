"""A GGUF's tensor sizes worked out from the model's shapes and ``llama-quantize``'s rules.

For a catalog model no file is at hand, yet a mixture-of-experts plan needs to know how many
bytes of each layer are routed experts (what ``--n-cpu-moe`` keeps in RAM) and how many are
attention and dense tensors (what stays on the GPU). This module computes every tensor of a
llama-style decoder from its ``config.json`` shapes and the type the pinned llama.cpp's
``llama_tensor_get_type`` (src/llama-quant.cpp) gives it for a file type:

* the output head (and a tied embedding) Q6_K for the k-quants, Q8_0 for Q8_0 and MXFP4_MOE;
* ``attn_v`` and ``ffn_down`` Q6_K in the ``use_more_bits`` layers of Q4_K_M and Q5_K_M (the
  first and last eighth, and every third layer between), for MoE layers by the layer in the
  tensor's name; ``attn_v``/``attn_k`` Q8_0 and ``attn_output`` Q5_K when a model has exactly 8
  experts (Mixtral's rule);
* MXFP4_MOE: the routed experts MXFP4, every other matrix Q8_0;
* a k-quant whose row width is not a multiple of 256 falls back to a 32-block type (Q4_K →
  Q5_0, Q5_K → Q5_1, Q6_K → Q8_0: ``tensor_type_fallback``); norms, biases, sinks and the
  router (``ffn_gate_inp``) are not quantized.

The catalog scales the result to the published file's size (which also holds the tokenizer,
and imatrix quants move a few tensors up or down a type); tests check that the two agree
within a few per cent, which is the check that the shapes and the cited size are right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rigctl.models.facts import WeightSplit

#: ggml block size and bytes per block of each type (ggml/src/ggml.c type traits).
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
    "MXFP4": (32, 17),
}

#: A 256-block type's 32-block stand-in when a row is not a multiple of 256 wide.
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}

#: Each file type's default tensor type (``llama_ftype_get_default_type``).
DEFAULT_TYPE = {
    "Q4_K_M": "Q4_K",
    "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K",
    "Q8_0": "Q8_0",
    "MXFP4": "Q8_0",
    "BF16": "BF16",
    "F16": "F16",
}

#: Norms, biases and router weights: stored as converted (F32 for 1-D tensors).
UNQUANTIZED_BYTES = 4


@dataclass(frozen=True)
class FfnShape:
    """The feed-forward part of a decoder and its extras, from ``config.json``.

    ``ffn`` is a dense layer's width (``intermediate_size``; Llama 4's ``intermediate_size_mlp``),
    ``expert_ffn`` one routed expert's (``moe_intermediate_size``, or ``intermediate_size`` where
    a MoE config has no separate key), ``shared_ffn`` the shared experts' total width.
    ``moe_step``: layer i is a MoE layer when ``(i + 1) % moe_step == 0`` (Llama 4's
    ``interleave_moe_layer_step``, Qwen3's ``decoder_sparse_step``); 1 means every layer.
    """

    ffn: int = 0
    expert_ffn: int = 0
    shared_ffn: int = 0
    moe_step: int = 1
    qk_norm: bool = False  # Qwen3: per-head RMS norms of q and k
    attn_bias: bool = False  # q/k/v (and gpt-oss's o) biases
    attn_sinks: bool = False  # gpt-oss: one learned sink per head
    expert_bias: bool = False  # gpt-oss: biases on every expert matrix and the router


def use_more_bits(layer: int, n_layers: int) -> bool:
    """llama-quantize's ``use_more_bits``: the first and last eighth and every third between."""
    eighth = n_layers // 8
    return layer < eighth or layer >= 7 * n_layers // 8 or (layer - eighth) % 3 == 2


def tensor_bytes(n_elements: int, row: int, ggml_type: str) -> int:
    """Bytes of a tensor of ``n_elements`` with rows ``row`` wide stored as ``ggml_type``,
    after llama-quantize's fallback for rows its blocks do not divide."""
    block, size = GGML_BLOCKS[ggml_type]
    if row % block:
        ggml_type = FALLBACK.get(ggml_type, "F16")
        block, size = GGML_BLOCKS[ggml_type]
        if row % block:
            block, size = GGML_BLOCKS["F16"]
    return n_elements // block * size


def tensor_type(
    quant: str, role: str, *, layer: int, n_layers: int, n_experts: int, routed: bool = False
) -> str:
    """The type llama-quantize gives one weight matrix of a ``quant`` file.

    ``role``: token_embd, output, attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up or
    ffn_down; ``routed`` marks a routed-expert tensor (``*_exps``: 3-D).
    """
    q = quant.upper()
    default = DEFAULT_TYPE[q]
    if q == "MXFP4":
        return "MXFP4" if routed else "Q8_0"
    if role == "output":
        return "Q8_0" if default == "Q8_0" else "Q6_K" if default.startswith("Q") else default
    if q not in ("Q4_K_M", "Q5_K_M"):
        if n_experts == 8 and role in ("attn_v", "attn_k") and default.startswith("Q"):
            return "Q8_0"
        return default
    if role in ("attn_v", "attn_k") and n_experts == 8:
        return "Q8_0"
    if role in ("attn_v", "ffn_down") and use_more_bits(layer, n_layers):
        return "Q6_K"
    if role == "attn_output" and n_experts == 8:
        return "Q5_K"
    return default


@dataclass(frozen=True)
class Shapes:
    """A decoder's shapes: the config's attention numbers and its :class:`FfnShape`."""

    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    expert_count: int
    ffn: FfnShape

    def is_moe_layer(self, layer: int) -> bool:
        return self.expert_count > 1 and (layer + 1) % max(1, self.ffn.moe_step) == 0


@dataclass(frozen=True)
class _Matrix:
    role: str
    elements: int
    row: int  # ne[0]: the input width
    routed: bool = False


def _layer_tensors(shapes: Shapes, i: int) -> tuple[list[_Matrix], int]:
    """Layer ``i``'s weight matrices, and how many unquantized elements it has besides."""
    s, f = shapes, shapes.ffn
    q_width, kv_width = s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim
    matrices = [
        _Matrix("attn_q", q_width * s.hidden, s.hidden),
        _Matrix("attn_k", kv_width * s.hidden, s.hidden),
        _Matrix("attn_v", kv_width * s.hidden, s.hidden),
        _Matrix("attn_output", s.hidden * q_width, q_width),
    ]
    small = 2 * s.hidden  # attention and FFN norms
    if f.qk_norm:
        small += 2 * s.head_dim
    if f.attn_bias:
        small += q_width + 2 * kv_width + s.hidden
    if f.attn_sinks:
        small += s.n_heads

    def ffn(width: int, count: int, routed: bool) -> list[_Matrix]:
        return [
            _Matrix("ffn_gate", count * width * s.hidden, s.hidden, routed),
            _Matrix("ffn_up", count * width * s.hidden, s.hidden, routed),
            _Matrix("ffn_down", count * s.hidden * width, width, routed),
        ]

    if s.is_moe_layer(i):
        matrices += ffn(f.expert_ffn, s.expert_count, True)
        small += s.expert_count * s.hidden  # the router, ffn_gate_inp
        if f.expert_bias:
            small += s.expert_count * (2 * f.expert_ffn + s.hidden) + s.expert_count
        if f.shared_ffn:
            matrices += ffn(f.shared_ffn, 1, False)
    elif f.ffn:
        matrices += ffn(f.ffn, 1, False)
    return matrices, small


def _layer(shapes: Shapes, quant: str, i: int) -> tuple[int, int]:
    """(all bytes, routed-expert bytes) of layer ``i`` in a ``quant`` file."""
    matrices, small = _layer_tensors(shapes, i)
    total = routed = 0
    for m in matrices:
        kind = tensor_type(quant, m.role, layer=i, n_layers=shapes.n_layers,
                           n_experts=shapes.expert_count, routed=m.routed)
        size = tensor_bytes(m.elements, m.row, kind)
        total += size
        routed += size if m.routed else 0
    return total + small * UNQUANTIZED_BYTES, routed


def weight_split_from_shapes(
    shapes: Shapes, quant: str, *, file_size: int | None = None
) -> WeightSplit:
    """Return the :class:`WeightSplit` of a ``quant`` GGUF of a model with ``shapes``.

    With ``file_size`` the layers are scaled (experts and the rest alike) so that the split
    adds up to the published file; the embedding and head keep their computed sizes.
    """
    s = shapes
    embed = s.vocab * s.hidden

    def whole(role: str) -> int:
        kind = tensor_type(quant, role, layer=0, n_layers=s.n_layers, n_experts=s.expert_count)
        return tensor_bytes(embed, s.hidden, kind)

    head = whole("output")
    token_embd = head if s.tied else whole("token_embd")
    output = head + s.hidden * UNQUANTIZED_BYTES  # and the final norm
    layers = [_layer(s, quant, i) for i in range(s.n_layers)]
    blocks = [total for total, _ in layers]
    experts = [routed for _, routed in layers]
    if file_size is not None:
        stored = token_embd + (0 if s.tied else head) + s.hidden * UNQUANTIZED_BYTES
        scale = max(0, file_size - stored) / max(1, sum(blocks))
        blocks = [math.ceil(b * scale) for b in blocks]
        experts = [math.floor(e * scale) for e in experts]
    return WeightSplit(
        token_embd_bytes=token_embd,
        block_bytes=tuple(blocks),
        output_bytes=output,
        expert_bytes=tuple(experts) if any(experts) else (),
    )


def parameters_of(shapes: Shapes, experts_used: int = 0) -> tuple[int, int]:
    """(parameters, active parameters per token) of the language model from its shapes:
    a token uses ``experts_used`` of each MoE layer's routed experts and everything else."""
    total = shapes.vocab * shapes.hidden * (1 if shapes.tied else 2) + shapes.hidden
    routed = 0
    for i in range(shapes.n_layers):
        matrices, small = _layer_tensors(shapes, i)
        total += small + sum(m.elements for m in matrices)
        routed += sum(m.elements for m in matrices if m.routed)
    if shapes.expert_count <= 1:
        return total, total
    return total, total - routed + routed * experts_used // shapes.expert_count


#: Bytes per weight of a Hugging Face checkpoint's linear layers by quantization: bf16; FP8
#: (e4m3, one byte, scales negligible); AWQ/GPTQ int4 with groups of 128 (4-bit weights, and
#: per group an fp16 scale and a 4-bit zero point); MXFP4 (blocks of 32 4-bit values and one
#: shared 8-bit exponent: 17 bytes per 32), which gpt-oss uses for its routed experts only.
LINEAR_BYTES = {"bf16": 2.0, "fp8": 1.0, "awq": 0.5 + (2 + 0.5) / 128, "mxfp4": 17 / 32}


def safetensors_bytes(shapes: Shapes, method: str) -> int:
    """The safetensors size of a checkpoint with ``shapes`` quantized by ``method`` (bf16,
    fp8, awq or mxfp4): quantized linear layers (for mxfp4 the routed experts only), the
    embedding, head, norms and router in bf16 — how AutoAWQ, llm-compressor's FP8 recipes
    and OpenAI's gpt-oss release store them."""
    per = LINEAR_BYTES[method]
    embed = shapes.vocab * shapes.hidden * (1 if shapes.tied else 2) + shapes.hidden
    total = embed * 2.0
    for i in range(shapes.n_layers):
        matrices, small = _layer_tensors(shapes, i)
        total += small * 2.0
        for m in matrices:
            quantized = m.routed if method == "mxfp4" else True
            total += m.elements * (per if quantized else 2.0)
    return math.ceil(total)
