"""A tiny random Llama in Hugging Face layout, made here with no hub: for vLLM tests.

Two layers, hidden size 128, random float32 weights (``safetensors`` from NumPy) and a byte-level
BPE tokenizer trained locally with ``tokenizers`` on a few paragraphs, plus a chat template, so
vLLM's OpenAI server can load it and answer ``/v1/chat/completions`` (with random text). It is
the smallest thing that exercises the real serving path on a CPU in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HIDDEN = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 256
CONTEXT = 2048
VOCAB = 512

_CORPUS = """
rigctl turns bare machines into local inference servers. It detects the accelerator, plans the
runtime and its flags from the hardware and the model's real size, installs the runtime, fetches
the model with checksums and serves it under systemd as a dedicated user with an API key.
The quick brown fox jumps over the lazy dog. Hello, how are you today? I am fine, thank you.
What is the capital of France? Paris is the capital of France. Count from one to ten: one two
three four five six seven eight nine ten. A paged key-value cache lets many requests share memory.
""".strip()

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]


def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return tokenizer


def _weights(vocab: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    head_dim = HIDDEN // HEADS

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)

    tensors = {
        "model.embed_tokens.weight": matrix(vocab, HIDDEN),
        "model.norm.weight": np.ones(HIDDEN, dtype=np.float32),
        "lm_head.weight": matrix(vocab, HIDDEN),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors |= {
            p + "self_attn.q_proj.weight": matrix(HEADS * head_dim, HIDDEN),
            p + "self_attn.k_proj.weight": matrix(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.v_proj.weight": matrix(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.o_proj.weight": matrix(HIDDEN, HEADS * head_dim),
            p + "mlp.gate_proj.weight": matrix(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": matrix(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": matrix(HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": np.ones(HIDDEN, dtype=np.float32),
            p + "post_attention_layernorm.weight": np.ones(HIDDEN, dtype=np.float32),
        }
    return tensors


def make_tiny_llama(directory: Path, seed: int = 0) -> Path:
    """Write the model into ``directory`` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    vocab = tokenizer.get_vocab_size()
    tokenizer.save(str(directory / "tokenizer.json"))
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL}
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": CONTEXT,
        "vocab_size": vocab,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "generation_config.json").write_text(
        json.dumps({"bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"]}) + "\n"
    )
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": CONTEXT,
                "chat_template": CHAT_TEMPLATE,
            },
            indent=2,
        )
        + "\n"
    )
    save_file(
        _weights(vocab, seed), str(directory / "model.safetensors"), metadata={"format": "pt"}
    )
    return directory


if __name__ == "__main__":
    import sys

    print(make_tiny_llama(Path(sys.argv[1])))
