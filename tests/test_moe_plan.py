"""MoE placement: a mixture-of-experts model that does not fit on the GPU whole keeps every
layer, its attention and the KV cache there, and the routed experts of as few layers as needed
in RAM (llama.cpp's ``--n-cpu-moe N``), instead of a layer split.

The model is Qwen3-30B-A3B's shape (its ``config.json``: 48 layers, hidden 2048, 32 heads, 4 KV
heads of 128, 128 experts of width 768, 8 used per token, vocabulary 151,936) with a Q4_K_M
file's sizes worked out from those shapes: the experts' gate/up at Q4_K (4.5 bits) and down at
Q6_K (6.5625 bits) in about half the layers and Q4_K in the rest (llama-quantize's Q4_K_M rule
for ffn_down; their average here), attention and the router at Q4_K, the embedding Q4_K and the
head Q6_K.
"""

from __future__ import annotations

import math

import pytest
from test_plan import GiB, _flag, _linux, _rtx

from rigctl.models import ModelFacts
from rigctl.models.facts import WeightSplit
from rigctl.plan import make_plan
from rigctl.plan.memory import (
    GPU_MARGIN,
    GPU_RUNTIME_RESERVE,
    kv_cache_bytes,
    llamacpp_compute_bytes,
)

LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 48, 2048, 32, 4, 128
EXPERTS, USED, EXPERT_FFN, VOCAB = 128, 8, 768, 151_936


def _bytes(params: int, bits: float) -> int:
    return math.ceil(params * bits / 8)


EXPERT_BYTES = _bytes(2 * EXPERTS * EXPERT_FFN * HIDDEN, 4.5) + _bytes(
    EXPERTS * EXPERT_FFN * HIDDEN, (4.5 + 6.5625) / 2
)
ATTENTION = 2 * HIDDEN * HEADS * HEAD_DIM + 2 * HIDDEN * KV_HEADS * HEAD_DIM
DENSE_BYTES = _bytes(ATTENTION + EXPERTS * HIDDEN, 4.5) + 4 * (2 * HIDDEN + 2 * HEAD_DIM)
EMBEDDING = _bytes(VOCAB * HIDDEN, 4.5)
HEAD = _bytes(VOCAB * HIDDEN, 6.5625) + 4 * HIDDEN

SPLIT = WeightSplit(
    token_embd_bytes=EMBEDDING,
    block_bytes=(DENSE_BYTES + EXPERT_BYTES,) * LAYERS,
    output_bytes=HEAD,
    expert_bytes=(EXPERT_BYTES,) * LAYERS,
)

QWEN3_30B_A3B = ModelFacts(
    architecture="qwen3moe",
    n_layers=LAYERS,
    n_heads=HEADS,
    n_kv_heads=KV_HEADS,
    head_dim=HEAD_DIM,
    embedding_length=HIDDEN,
    context_length=262_144,
    file_size=SPLIT.total,
    name="Qwen3-30B-A3B-Instruct-2507",
    quant="Q4_K_M",
    vocab_size=VOCAB,
    weights=SPLIT,
    source="/models/Qwen3-30B-A3B-Instruct-2507-Q4_K_M.gguf",
    expert_count=EXPERTS,
    expert_used_count=USED,
    expert_ffn_length=EXPERT_FFN,
)


def _expected_cpu_moe_layers(gpu_gib: int, context: int) -> int:
    """The fewest layers whose experts must leave the GPU, by hand: the GPU holds every layer,
    the head, the KV cache and a compute buffer (with the attention mask of ``context``
    cells; an f16 cache, so no f16 copy), less the experts of N layers."""
    usable = gpu_gib * GiB - GPU_RUNTIME_RESERVE["cuda"] - GPU_MARGIN
    everything = (
        sum(SPLIT.block_bytes) + SPLIT.output_bytes
        + kv_cache_bytes(QWEN3_30B_A3B, context)
        + llamacpp_compute_bytes(QWEN3_30B_A3B, context_per_slot=context)
    )
    return max(0, math.ceil((everything - usable) / EXPERT_BYTES))


def test_the_model_is_the_size_of_the_real_file() -> None:
    # unsloth's and bartowski's Qwen3-30B-A3B-Instruct-2507-Q4_K_M.gguf: 18.6 GB listed
    assert 18.0e9 < SPLIT.total < 19.2e9


def test_30b_a3b_at_32k_on_12gib_keeps_the_experts_of_some_layers_in_ram() -> None:
    plan = make_plan(_linux("cuda", [_rtx(0, gib=12)]), QWEN3_30B_A3B, context=32_768)
    assert plan.ok, plan.errors
    assert plan.runtime == "llamacpp"
    expected = _expected_cpu_moe_layers(12, 32_768)
    assert 0 < expected < LAYERS
    assert _flag(plan.args, "--n-cpu-moe") == str(expected)
    assert _flag(plan.args, "-ngl") == str(LAYERS + 1)  # every layer on the GPU
    assert "-ctk" not in plan.args  # the f16 cache fits next to the dense part
    gpu, host = plan.memory.placement
    assert gpu.bytes <= gpu.usable and host.bytes <= host.usable
    # the experts of exactly those layers are in RAM, beside the embedding
    assert host.weights == EMBEDDING + expected * EXPERT_BYTES
    # one fewer would not fit: N is the least
    assert gpu.bytes + EXPERT_BYTES > gpu.usable
    reason = next(r for r in plan.reasons if r.startswith("MoE expert offload"))
    assert f"--n-cpu-moe {expected}" in reason and "128 experts, 8 used per token" in reason
    assert f"first {expected} of {LAYERS} layers" in reason
    per_token_mib = expected * EXPERT_BYTES * USED // EXPERTS / (1 << 20)
    assert f"about {per_token_mib:,.0f} MiB" in reason
    assert not any("a few tokens per second" in r for r in plan.reasons)
    assert _flag(plan.args, "-t") == "16"  # the CPU computes the experts it holds


def test_30b_a3b_at_8k_on_24gib_is_all_on_the_gpu() -> None:
    plan = make_plan(_linux("cuda", [_rtx(0, gib=24)]), QWEN3_30B_A3B, context=8192)
    assert plan.ok and plan.runtime == "llamacpp"
    assert "--n-cpu-moe" not in plan.args and _flag(plan.args, "-ngl") == str(LAYERS + 1)
    assert plan.reasons[-1].startswith("full offload") or any(
        r.startswith("full offload") for r in plan.reasons
    )


def test_expert_offload_is_checked_against_ram() -> None:
    # 8 GiB of RAM cannot hold the experts that leave a 12 GiB GPU (about 10 GiB)
    plan = make_plan(
        _linux("cuda", [_rtx(0, gib=12)], memory=8 * GiB), QWEN3_30B_A3B, context=32_768
    )
    assert not plan.ok
    assert any("RAM" in e or "memory" in e for e in plan.errors), plan.errors


def test_ollama_has_no_expert_offload_and_says_so() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0, gib=12)]), QWEN3_30B_A3B, context=32_768, runtime="ollama"
    )
    assert plan.runtime == "ollama"
    assert any("--n-cpu-moe" in w and "llamacpp" in w for w in plan.warnings), plan.warnings
    assert not any(r.startswith("MoE expert offload") for r in plan.reasons)


@pytest.mark.parametrize("gpu_gib", [8, 10, 12, 16])
def test_expert_layers_follow_the_arithmetic(gpu_gib: int) -> None:
    # GPUs the weights alone overflow: no KV cache type makes the whole model fit
    plan = make_plan(_linux("cuda", [_rtx(0, gib=gpu_gib)]), QWEN3_30B_A3B, context=32_768)
    expected = _expected_cpu_moe_layers(gpu_gib, 32_768)
    assert 0 < expected <= LAYERS
    assert _flag(plan.args, "--n-cpu-moe") == str(expected) and "-ctk" not in plan.args


def test_a_q8_0_cache_comes_before_expert_offload_and_a_q4_0_cache_after() -> None:
    """With an f16 cache the experts of a layer or two would leave the GPU: a q8_0 cache (half
    the bytes, near-lossless) that makes everything fit comes first; where it does not, a few
    layers' experts in RAM (cheap: a token reads 8 of their 128 experts) come before a q4_0
    cache."""
    fits_q8 = make_plan(_linux("cuda", [_rtx(0, gib=21)]), QWEN3_30B_A3B, context=32_768)
    assert _expected_cpu_moe_layers(21, 32_768) > 0
    assert "--n-cpu-moe" not in fits_q8.args and _flag(fits_q8.args, "-ctk") == "q8_0"
    needs_more = make_plan(_linux("cuda", [_rtx(0, gib=20)]), QWEN3_30B_A3B, context=32_768)
    assert _flag(needs_more.args, "--n-cpu-moe") == str(_expected_cpu_moe_layers(20, 32_768))
    assert "-ctk" not in needs_more.args
