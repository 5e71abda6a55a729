"""A tiny real mixture-of-experts GGUF, written with the ``gguf`` library: the ``qwen3moe``
architecture (Qwen3-30B-A3B's), random F32 weights, a byte-level vocabulary, a few MB.

Tensor names and shapes are the pinned llama.cpp's for ``LLM_ARCH_QWEN3MOE``
(src/llama-arch.cpp, src/llama-model.cpp): per layer the attention (with Q/K norms), the router
``ffn_gate_inp`` and the routed experts ``ffn_{gate,up,down}_exps``, stacked ``n_expert`` deep.
numpy shapes are ggml's ``ne`` reversed. ``split_max_tensors`` writes a split GGUF
(``<stem>-0000K-of-0000N.gguf``) as llama.cpp's ``gguf-split`` names its shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np


@dataclass(frozen=True)
class TinyMoe:
    layers: int = 4
    embd: int = 128
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    experts: int = 8
    experts_used: int = 2
    expert_ffn: int = 64
    vocab: int = 512
    context: int = 4096

    @property
    def expert_tensor_elements(self) -> int:
        """Elements of one layer's routed experts (gate, up, down)."""
        return 3 * self.experts * self.expert_ffn * self.embd


def write_tiny_moe(path: Path, shape: TinyMoe = TinyMoe(), split_max_tensors: int = 0) -> list[Path]:
    """Write the model to ``path`` (or its shards beside it); return the files, first first."""
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "qwen3moe", split_max_tensors=split_max_tensors)
    writer.add_name("rigctl tiny qwen3moe")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embd)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.expert_ffn * 4)
    writer.add_expert_feed_forward_length(shape.expert_ffn)
    writer.add_expert_count(shape.experts)
    writer.add_expert_used_count(shape.experts_used)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(0)  # all F32
    vocab = shape.vocab
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581w{i}" for i in range(vocab - len(tokens))]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 3 + [-1000.0] * 256 + [-float(i) for i in range(vocab - 259)])
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * (vocab - 259))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_chat_template(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    )

    def weight(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    embd, q, kv = shape.embd, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    writer.add_tensor("token_embd.weight", weight(vocab, embd))
    for i in range(shape.layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones(embd))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(q, embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv, embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv, embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(embd, q))
        writer.add_tensor(f"blk.{i}.attn_q_norm.weight", ones(shape.head_dim))
        writer.add_tensor(f"blk.{i}.attn_k_norm.weight", ones(shape.head_dim))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones(embd))
        writer.add_tensor(f"blk.{i}.ffn_gate_inp.weight", weight(shape.experts, embd))
        writer.add_tensor(
            f"blk.{i}.ffn_gate_exps.weight", weight(shape.experts, shape.expert_ffn, embd)
        )
        writer.add_tensor(
            f"blk.{i}.ffn_up_exps.weight", weight(shape.experts, shape.expert_ffn, embd)
        )
        writer.add_tensor(
            f"blk.{i}.ffn_down_exps.weight", weight(shape.experts, embd, shape.expert_ffn)
        )
    writer.add_tensor("output_norm.weight", ones(embd))
    writer.add_tensor("output.weight", weight(vocab, embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if not split_max_tensors:
        return [path]
    return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
