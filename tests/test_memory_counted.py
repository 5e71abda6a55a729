"""Memory used fully and counted fully: the context grown into what the weights leave, K and V
cached in separate types where the backend runs that, the attention mask and CUDA's f16 copy of a
quantized cache counted, and reasons that say what was given up. Hand-checked cases."""

from __future__ import annotations

import pytest
from test_plan import GiB, _flag, _linux, _rtx

from rigctl.hardware import Hardware
from rigctl.models import get_catalog_model
from rigctl.plan import make_plan
from rigctl.plan.llamacpp import mixed_kv_supported
from rigctl.plan.memory import Device

GEMMA_27B = "gemma-3-27b-it:q4_k_m"
LLAMA_8B = "llama-3.1-8b-instruct:q4_k_m"

# Gemma 3 27B Q4_K_M at 131,072 tokens, everything on one 24 GiB card (usable 24,159,191,040):
#   repeating layers 15,393,662,746 + output head 1,156,337,280 (tied to token_embd: llama.cpp
#   loads a copy of it for the GPU)
#   KV q8_0: 10 global layers · 131,072 · 16 KV heads · 128 · (1.0625 + 1.0625) = 5,704,253,440
#            + 52 sliding layers · (1,024 window + 512 ubatch) · 4,352 = 347,602,944
#            = 6,051,856,384
#   compute 512 · 4 · (3 · 18,816 + 4 · 5,376) = 159,645,696 (the FFN phase; the catalog has no
#            FFN width: 3.5 · n_embd)
#   mask (131,072 + 1,536) · 512 · 2 = 135,790,592
#   f16 copy of one layer's K and V (CUDA's flash attention, a quantized cache):
#            131,072 · 16 · 128 · 2 · 2 = 1,073,741,824
WEIGHTS_27B = 15_393_662_746 + 1_156_337_280
COMPUTE_27B = 159_645_696 + 135_790_592
Q8_0_WITHOUT_COPY = WEIGHTS_27B + 6_051_856_384 + COMPUTE_27B
F16_COPY = 1_073_741_824
USABLE_24GIB = 24_159_191_040


def test_gemma_3_27b_at_128k_with_q8_0_fits_24gib_with_the_mask_and_the_f16_copy() -> None:
    assert Q8_0_WITHOUT_COPY + F16_COPY == 23_971_034_522 <= USABLE_24GIB
    plan = make_plan(_linux("cuda", [_rtx(0)]), get_catalog_model(GEMMA_27B), context=131_072)
    assert plan.ok and plan.runtime == "llamacpp"
    assert _flag(plan.args, "-ngl") == "63"
    assert (_flag(plan.args, "-ctk"), _flag(plan.args, "-ctv")) == ("q8_0", "q8_0")
    gpu = plan.memory.placement[0]
    assert gpu.bytes == Q8_0_WITHOUT_COPY + F16_COPY
    reason = next(r for r in plan.reasons if r.startswith("KV cache q8_0"))
    assert "counted: the f16 copy of one layer's K and V" in reason


def test_where_the_f16_copy_tips_q8_0_over_the_plan_says_what_it_gave_up() -> None:
    # a 24 GiB card with 1 GiB already taken (a desktop on it): 23 GiB, usable 23,085,449,216,
    # which q8_0 without the copy (22,897,292,698) would seem to fit: the plan that would OOM
    small = _linux("cuda", [_rtx(0, gib=23)])
    assert Q8_0_WITHOUT_COPY <= 23_085_449_216 < Q8_0_WITHOUT_COPY + F16_COPY
    plan = make_plan(small, get_catalog_model(GEMMA_27B), context=131_072)
    assert plan.ok and _flag(plan.args, "-ngl") == "63"
    # q8_0 with a q4_0 V would be next, but CUDA's pinned build has no kernel for the pair:
    # q4_0 for both. KV q4_0: 10 · 131,072 · 2,304 + 52 · 1,536 · 2,304 = 3,203,923,968.
    assert (_flag(plan.args, "-ctk"), _flag(plan.args, "-ctv")) == ("q4_0", "q4_0")
    gpu = plan.memory.placement[0]
    assert gpu.kv_cache == 3_203_923_968
    assert gpu.bytes == WEIGHTS_27B + 3_203_923_968 + COMPUTE_27B + F16_COPY == 21_123_102_106
    reason = next(r for r in plan.reasons if r.startswith("KV cache q4_0"))
    assert "given up: q8_0 would need 22.3 GiB on cuda:0" in reason  # 23,971,034,522 bytes
    assert "counted: the f16 copy of one layer's K and V" in reason


def test_the_same_card_on_vulkan_keeps_q8_0_there_is_no_f16_copy() -> None:
    plan = make_plan(_linux("vulkan", [_rtx(0)]), get_catalog_model(GEMMA_27B), context=131_072)
    assert plan.ok
    assert (_flag(plan.args, "-ctk"), _flag(plan.args, "-ctv")) == ("q8_0", "q8_0")
    gpu = plan.memory.placement[0]
    assert gpu.bytes == Q8_0_WITHOUT_COPY <= gpu.usable
    assert not any("f16 copy" in r for r in plan.reasons)


# Llama 3.1 8B Q4_K_M at 131,072 tokens on a 14 GiB CPU box: usable 15,032,385,536 − 10% =
# 13,529,146,983; file 4,920,000,000; compute 121,634,816 + mask 131,072 · 512 · 2 = 255,852,544.
#   q8_0/q8_0: 131,072 · 32 · 1,024 · (1.0625 + 1.0625) = 9,126,805,504 → 14,302,658,048: no
#   q8_0/q4_0: 131,072 · 32 · 1,024 · (1.0625 + 0.5625) = 6,979,321,856 → 12,155,174,400: fits
#   q4_0/q4_0: 131,072 · 32 · 1,024 · (0.5625 + 0.5625) = 4,831,838,208 → 10,007,690,752
def _cpu_box() -> Hardware:
    return _linux("cpu", [], memory=14 * GiB)


def test_cpu_keeps_k_at_q8_0_and_only_v_at_q4_0() -> None:
    plan = make_plan(_cpu_box(), get_catalog_model(LLAMA_8B), context=131_072)
    assert plan.ok and plan.runtime == "llamacpp"
    assert (_flag(plan.args, "-ctk"), _flag(plan.args, "-ctv")) == ("q8_0", "q4_0")
    (host,) = plan.memory.placement
    assert host.kv_cache == 6_979_321_856 and host.bytes == 12_155_174_400
    assert host.usable == 13_529_146_983
    assert plan.memory.kv_cache_type == "q8_0" and plan.memory.v_cache_type == "q4_0"
    reason = next(r for r in plan.reasons if r.startswith("KV cache K q8_0, V q4_0"))
    assert "given up: q8_0 would need 13.3 GiB of RAM" in reason  # 14,302,658,048


def test_ollama_has_one_cache_type_for_both_and_says_so() -> None:
    plan = make_plan(
        _cpu_box(), get_catalog_model(LLAMA_8B), context=131_072, runtime="ollama"
    )
    assert plan.ok and plan.runtime == "ollama"
    assert plan.env["OLLAMA_KV_CACHE_TYPE"] == "q4_0"
    (host,) = plan.memory.placement
    assert host.kv_cache == 4_831_838_208 and host.bytes == 10_007_690_752
    assert any(
        "Ollama caches K and V in one type" in w and "K q8_0, V q4_0" in w for w in plan.warnings
    )
    simple = make_plan(
        _cpu_box(), get_catalog_model(LLAMA_8B), context=131_072, prefer="simple"
    )
    assert simple.runtime == "llamacpp"
    assert simple.reasons[0] == (
        "llama.cpp rather than Ollama: this plan needs K and V cached in different types "
        "(-ctk/-ctv; Ollama has one type for both)"
    )


def test_what_ollama_does_is_not_a_reason_against_it() -> None:
    # a quantized cache of one type (OLLAMA_KV_CACHE_TYPE) and a pinned quant: Ollama does both
    plan = make_plan(
        _linux("cuda", [_rtx(0, gib=12, cc="8.6")]),
        get_catalog_model(LLAMA_8B),
        context=65_536,
        prefer="simple",
    )
    assert plan.runtime == "ollama" and plan.env["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    assert plan.model.quant == "Q4_K_M"  # the pinned quant, imported as that very file
    text = " ".join(plan.reasons + plan.warnings)
    assert "quantized KV cache" not in text and "pinned" not in text
    assert not any(r.startswith("partial offload") for r in plan.reasons)


@pytest.mark.parametrize(
    ("accelerator", "mixed"),
    [("cpu", True), ("vulkan", True), ("cuda", False), ("rocm", False), ("metal", False)],
)
def test_mixed_cache_types_only_where_the_backend_runs_them(accelerator: str, mixed: bool) -> None:
    gpu = Device(f"{accelerator}:0", 24 * GiB, GiB)
    assert mixed_kv_supported(accelerator, [gpu]) is mixed
    assert mixed_kv_supported(accelerator, []) is True  # no GPU planned: the CPU backend


def test_a_grown_context_never_moves_a_weight_off_the_gpu() -> None:
    box = _linux("cuda", [_rtx(0)])
    model = get_catalog_model("llama-3.1-70b-instruct:q4_k_m")
    at_8k = make_plan(box, model, context=8192)
    grown = make_plan(box, model)
    assert grown.ok and grown.context > 8192
    assert _flag(grown.args, "-ngl") == _flag(at_8k.args, "-ngl") == "43"
    assert grown.memory.placement[0].weights == at_8k.memory.placement[0].weights
    assert grown.memory.placement[0].bytes <= grown.memory.placement[0].usable
    # one step (256 tokens) more would not fit next to the same 43 layers
    more = make_plan(box, model, context=grown.context + 256)
    assert _flag(more.args, "-ngl") != "43" or not more.ok or (
        more.memory.placement[0].bytes > more.memory.placement[0].usable
    )
    assert any(
        r.startswith(f"context: {grown.context:,} tokens per user, grown from 8,192")
        and "at most what fits next to the weights on cuda:0" in r
        for r in grown.reasons
    )


def test_8b_on_24gib_grows_to_128k_when_context_max_lets_it() -> None:
    # KV 131,072 · 131,072 = 17,179,869,184 + weights 4,624,498,176 + compute 121,634,816
    # + mask 67,108,864 · 2 = 134,217,728 → 22,060,219,904 ≤ 24,159,191,040: f16, no quantizing
    plan = make_plan(_linux("cuda", [_rtx(0)]), get_catalog_model(LLAMA_8B), context_max=131_072)
    assert plan.context == 131_072 and "-ctk" not in plan.args
    assert plan.memory.placement[0].bytes == 22_060_219_904
    assert any("(none given; at most context_max, 131,072)" in r for r in plan.reasons)
