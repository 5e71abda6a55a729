"""Several models on one host: the `models:` host data and the joint memory plan
(rigctl.plan.multi), hand-checked.

The three models of the issue's cases, each Q4_K_M, 8k context, one user, on one RTX 4090
(24 GiB) and on a 12 GiB card. Alone, each is planned fully on the GPU with an f16 KV cache:
Llama 3.1 8B 5.43 GiB, Qwen2.5 7B 4.62 GiB, Gemma 3 4B 2.73 GiB on the GPU (weights, KV cache,
compute buffers), each process with its own 0.5 GiB CUDA context; the GPU keeps a 1 GiB margin.

- 24 GiB: 5.93 + 5.12 + 3.23 = 14.3 GiB of 23 usable: all three resident, each as alone.
- 12 GiB (11 usable): the 8B and the 7B together take 5.93 + 5.12 = 11.05 GiB, just over, so
  with models_max 2 the largest model's KV cache goes to q8_0 (-0.44 GiB) and then any two fit;
  with no models_max, only models planned as alone are combined: one at a time.

vLLM models (each its own server): on a GPU another model uses, each claims the
--gpu-memory-utilization its plan needs (rounded up to 0.01), on one of its own vLLM's 0.90;
`gpus` puts a model on some GPUs, and a vLLM model on fewer than the host's is pinned to them.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_plan import GiB, _linux, _rtx

from rigctl.errors import BadInput
from rigctl.hardware import Gpu, Hardware
from rigctl.hostdata import check_host_data
from rigctl.hostspec import default_alias, host_spec
from rigctl.models import resolve_model
from rigctl.plan import make_plan
from rigctl.plan.memory import GPU_MARGIN, GPU_RUNTIME_RESERVE
from rigctl.plan.multi import ModelEntry, _footprint, plan_models

NAMES = ("llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "gemma-3-4b-it")
RESERVE = GPU_RUNTIME_RESERVE["cuda"]


def _entries(**keep: bool) -> list[ModelEntry]:
    return [
        ModelEntry(name, resolve_model(f"{name}:q4_k_m"), context=8192,
                   keep_loaded=keep.get(name.split("-")[0], False))
        for name in NAMES
    ]


def _gpu_bytes(plan) -> int:  # type: ignore[no-untyped-def]
    return sum(r.bytes for r in plan.memory.placement if r.device != "cpu")


def _flag(plan, name: str) -> str | None:  # type: ignore[no-untyped-def]
    return plan.args[plan.args.index(name) + 1] if name in plan.args else None


def test_three_models_on_24_gib_are_all_resident_each_as_it_is_alone() -> None:
    hardware = _linux("cuda", [_rtx(0, 24)])
    joint = plan_models(hardware, _entries())
    assert joint.ok and joint.mode == "resident", joint.reasons
    assert joint.models_max == 3 and joint.loaded == list(NAMES)
    for entry in _entries():
        alone = make_plan(hardware, entry.model, context=8192)
        shared = joint.plans[entry.alias]
        assert shared.args == alone.args  # the same flags: -ngl, KV types, context, slots
    gpu = sum(_gpu_bytes(p) + RESERVE for p in joint.plans.values())
    assert joint.peak["cuda:0"] == gpu
    assert 14 * GiB < gpu < 15 * GiB  # 5.93 + 5.12 + 3.23
    assert gpu <= 24 * GiB - GPU_MARGIN
    # the reason's figure is the plan's own
    assert f"{gpu / GiB:.1f} GiB of cuda:0" in joint.reasons[0]


def test_on_12_gib_with_models_max_2_any_two_fit_the_largest_with_a_q8_0_cache() -> None:
    hardware = _linux("cuda", [_rtx(0, 12)])
    joint = plan_models(hardware, _entries(), models_max=2)
    assert joint.ok and joint.mode == "swap", joint.reasons
    assert joint.models_max == 2
    assert joint.loaded == ["llama-3.1-8b-instruct", "qwen2.5-7b-instruct"]
    # alone, the two largest would not fit together: 11.05 GiB of the 11 usable
    alone = {e.alias: make_plan(hardware, e.model, context=8192) for e in _entries()}
    both = sum(_gpu_bytes(alone[a]) + RESERVE for a in NAMES[:2])
    assert both > 12 * GiB - GPU_MARGIN
    llama = joint.plans["llama-3.1-8b-instruct"]
    assert _flag(alone["llama-3.1-8b-instruct"], "-ctk") is None  # f16 alone
    assert _flag(llama, "-ctk") == "q8_0" and _flag(llama, "-ngl") == "33"
    assert any("q8_0/q8_0 KV cache instead of f16/f16" in r for r in llama.reasons)
    for alias in NAMES[1:]:
        assert joint.plans[alias].args == alone[alias].args
    # whichever two the server loads, they fit on the GPU
    footprints = sorted((_footprint(p, hardware)["cuda:0"] for p in joint.plans.values()), reverse=True)
    assert footprints[0] + footprints[1] == joint.peak["cuda:0"] <= 12 * GiB - GPU_MARGIN
    assert "at most 2 loaded at once" in joint.reasons[1]


def test_on_12_gib_with_no_models_max_one_at_a_time_each_as_alone() -> None:
    hardware = _linux("cuda", [_rtx(0, 12)])
    joint = plan_models(hardware, _entries())
    assert joint.ok and joint.mode == "swap" and joint.models_max == 1
    assert joint.loaded == ["llama-3.1-8b-instruct"]
    for entry in _entries():
        assert joint.plans[entry.alias].args == make_plan(hardware, entry.model, context=8192).args
    assert "qwen2.5-7b-instruct does not fit beside the models before it" in joint.reasons[0]


def test_keep_loaded_models_stay_and_the_others_are_planned_beside_them() -> None:
    hardware = _linux("cuda", [_rtx(0, 12)])
    joint = plan_models(hardware, _entries(gemma=True), models_max=2)
    assert joint.ok and joint.mode == "swap" and joint.keep_loaded == ["gemma-3-4b-it"]
    assert joint.loaded == ["gemma-3-4b-it", "llama-3.1-8b-instruct"]
    gemma = _footprint(joint.plans["gemma-3-4b-it"], hardware)["cuda:0"]
    for alias in NAMES[:2]:
        assert gemma + _footprint(joint.plans[alias], hardware)["cuda:0"] <= 12 * GiB - GPU_MARGIN
    assert "loaded at all times: gemma-3-4b-it" in joint.reasons


def test_more_keep_loaded_models_than_models_max_is_an_error() -> None:
    joint = plan_models(_linux("cuda", [_rtx(0, 24)]), _entries(gemma=True, llama=True),
                        models_max=1)
    assert not joint.ok
    assert joint.errors == ["models_max 1 is fewer than the 2 keep_loaded models "
                            "(llama-3.1-8b-instruct, gemma-3-4b-it)"]


def test_a_model_that_does_not_fit_even_alone_is_an_error_naming_it() -> None:
    hardware = _linux("cuda", [_rtx(0, 12)], memory=16 * GiB)
    entries = [*_entries()[:1], ModelEntry("big", resolve_model("llama-3.1-70b-instruct:q4_k_m"),
                                           context=8192)]
    joint = plan_models(hardware, entries)
    assert not joint.ok
    assert len(joint.errors) == 1 and joint.errors[0].startswith("big: does not fit on this host even alone")


def test_models_max_above_what_fits_is_lowered_and_says_so() -> None:
    # three copies of the 8B, 5.93 GiB each, on 11 usable GiB of GPU and 5 of RAM: three at
    # once do not fit even with layers moved to RAM; models_max 3 is more than can be kept
    hardware = _linux("cuda", [_rtx(0, 12)], memory=6 * GiB)
    model = resolve_model("llama-3.1-8b-instruct:q4_k_m")
    entries = [ModelEntry(f"m{i}", model, context=8192) for i in range(3)]
    joint = plan_models(hardware, entries, models_max=3, prefer="control")
    assert joint.ok
    assert joint.mode == "swap" and joint.models_max == 2
    assert any(r.startswith(f"models_max 3 lowered to {joint.models_max}") for r in joint.reasons)


def test_vllm_claims_what_it_needs_of_a_gpu_it_shares_and_the_others_get_the_rest() -> None:
    """Llama 3.1 8B for 10 users at 8k beside Gemma 3 4B (llama.cpp) on one RTX 4090.

    Alone at 0.90 (test_plan's numbers): budget floor(0.90 · 25,769,803,776); at tensor
    parallel 1 the bf16 cache falls short, an FP8 one holds 10 · 8,192 · 65,536 =
    5,368,709,120. What that plan needs: 16,060,522,496 of weights + 5,368,709,120 of KV +
    1,128,267,776 of reservation (2,048 batched tokens) = 22,557,499,392, 0.87535 of the card →
    0.88: a budget of floor(0.88 · 25,769,803,776) = 22,677,427,322, and its CUDA context
    (536,870,912) beside it: 23,214,298,234. Gemma is planned in the 2,555,505,542 left, less
    its own context and the 1 GiB margin: 944,892,806 for its GPU layers.
    """
    hardware = _linux("cuda", [_rtx(0, 24)])
    entries = [
        ModelEntry("chat", resolve_model("llama-3.1-8b-instruct"), concurrency=10, context=8192),
        ModelEntry("small", resolve_model("gemma-3-4b-it:q4_k_m"), context=8192),
    ]
    joint = plan_models(hardware, entries)
    chat, small = joint.plans["chat"], joint.plans["small"]
    assert joint.ok and chat.runtime == "vllm" and small.runtime == "llamacpp"
    assert joint.loaded[0] == "chat"  # vLLM is loaded with its unit, never swapped
    assert _flag(chat, "--gpu-memory-utilization") == "0.88"
    assert _flag(chat, "--kv-cache-dtype") == "fp8" and _flag(chat, "--tensor-parallel-size") == "1"
    assert chat.memory.placement[0].usable == 22_677_427_322  # its budget
    assert _footprint(chat, hardware)["cuda:0"] == 23_214_298_234
    assert small.memory.placement[0].capacity == 2_555_505_542
    assert _gpu_bytes(small) <= 944_892_806
    assert int(_flag(small, "-ngl") or 0) < 35  # not all of Gemma's layers, as alone
    assert any(r.startswith("--gpu-memory-utilization 0.88 of cuda:0: shares it with small")
               for r in chat.reasons)
    # alone on the card it keeps vLLM's 0.90 (single-model plans are unchanged)
    alone = make_plan(hardware, entries[0].model, concurrency=10, context=8192)
    assert _flag(alone, "--gpu-memory-utilization") == "0.90"


H100_BYTES = 80 * GiB  # 85,899,345,920


def _h100(index: int) -> Gpu:
    return Gpu("nvidia", "NVIDIA H100 80GB HBM3", index, H100_BYTES, driver="580.65.06",
               compute_capability="9.0")


def test_two_vllm_models_on_one_gpu_each_claim_their_own_fraction() -> None:
    """Llama 3.1 8B (10 users) and Qwen2.5 7B (4 users), 8k each, bf16, on one 80 GiB H100.

    An 80 GiB card that is not an A100 batches 8,192 tokens, so each reservation is the
    forward pass (it beats the sampler's 38.5 · users · vocabulary) + 150 MiB non-torch +
    662 MiB of CUDA graphs (157,286,400 + 694,157,312 = 851,443,712):
    - chat: 8,192 · 2 · (3 · 14,336 + 6 · 4,096) = 1,107,296,256 → 1,958,739,968; KV 10 ·
      8,192 · 131,072 (32 layers · 8 KV heads · 128 · K and V · 2 bytes) = 10,737,418,240;
      needs 16,060,522,496 + 10,737,418,240 + 1,958,739,968 = 28,756,680,704 = 0.33477 of
      85,899,345,920 → 0.34: budget floor(0.34 · 85,899,345,920) = 29,205,777,612.
    - code: 8,192 · 2 · (3 · 12,544 (its FFN width as the planner reads it) + 6 · 3,584) =
      968,884,224 → 1,820,327,936; KV 4 · 8,192 · 57,344 (28 · 4 · 128 · 2 · 2) =
      1,879,048,192; needs 15,231,233,024 + 1,879,048,192 + 1,820,327,936 = 18,930,609,152 =
      0.22038 → 0.23: budget floor(0.23 · 85,899,345,920) = 19,756,849,561.
    Together 0.57 of the card, plus a CUDA context (536,870,912) each: 29,742,648,524 +
    20,293,720,473 = 50,036,368,997 of the 84,825,604,096 usable (80 GiB less the 1 GiB margin).
    """
    hardware = _linux("cuda", [_h100(0)])
    entries = [
        ModelEntry("chat", resolve_model("llama-3.1-8b-instruct"), concurrency=10, context=8192,
                   runtime="vllm"),
        ModelEntry("code", resolve_model("qwen2.5-7b-instruct"), concurrency=4, context=8192,
                   runtime="vllm"),
    ]
    joint = plan_models(hardware, entries)
    assert joint.ok and joint.mode == "resident", joint.errors
    chat, code = joint.plans["chat"], joint.plans["code"]
    assert _flag(chat, "--gpu-memory-utilization") == "0.34"
    assert _flag(code, "--gpu-memory-utilization") == "0.23"
    assert [p.memory.placement[0].overhead for p in (chat, code)] == [1_958_739_968, 1_820_327_936]
    assert [p.memory.placement[0].usable for p in (chat, code)] == [29_205_777_612, 19_756_849_561]
    # the budget holds every user: no KV dtype, checkpoint or tensor parallel change
    assert chat.memory.placement[0].kv_cache == 29_205_777_612 - 16_060_522_496 - 1_958_739_968
    assert chat.memory.placement[0].kv_cache >= 10_737_418_240
    assert "--kv-cache-dtype" not in chat.args + code.args
    assert _flag(chat, "--tensor-parallel-size") == _flag(code, "--tensor-parallel-size") == "1"
    assert chat.model.quant == code.model.quant == "BF16"
    shares = [float(_flag(p, "--gpu-memory-utilization") or 1) for p in (chat, code)]
    assert sum(shares) * H100_BYTES + 2 * RESERVE <= H100_BYTES - GPU_MARGIN
    assert joint.peak == {"cuda:0": 50_036_368_997}
    assert joint.peak["cuda:0"] <= H100_BYTES - GPU_MARGIN
    assert any(r.startswith("--gpu-memory-utilization 0.34 of cuda:0: shares it with code")
               for r in chat.reasons)
    assert any("at --gpu-memory-utilization 0.23, room for" in r for r in code.reasons)
    # one GPU, the host's only one: nothing to pin
    assert "CUDA_VISIBLE_DEVICES" not in chat.env and chat.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_the_memory_fraction_is_a_make_plan_parameter() -> None:
    """--gpu-memory-utilization 0.50 of an 80 GiB H100: a budget of 42,949,672,960, less the
    8B's 16,060,522,496 of weights and 1,958,739,968 of reservation (see above): 24,930,410,496
    of KV pages, in the args and the reason."""
    plan = make_plan(_linux("cuda", [_h100(0)]), resolve_model("llama-3.1-8b-instruct"),
                     concurrency=10, context=8192, runtime="vllm", gpu_memory_utilization=0.5)
    assert _flag(plan, "--gpu-memory-utilization") == "0.50"
    assert plan.memory.placement[0].usable == 42_949_672_960
    assert plan.memory.placement[0].kv_cache == 24_930_410_496
    assert any("at --gpu-memory-utilization 0.50, room for" in r for r in plan.reasons)


def _two_on_two(**gpus: tuple[int, ...]) -> list[ModelEntry]:
    return [
        ModelEntry("chat", resolve_model("llama-3.1-8b-instruct"), concurrency=10, context=8192,
                   runtime="vllm", gpus=gpus.get("chat")),
        ModelEntry("code", resolve_model("qwen2.5-7b-instruct"), concurrency=4, context=8192,
                   runtime="vllm", gpus=gpus.get("code")),
    ]


def test_vllm_models_on_their_own_gpus_keep_0_90_and_are_pinned_to_them() -> None:
    """Two RTX 4090s, `gpus: [0]` and `gpus: [1]`: each model alone on its card, so vLLM's
    0.90 (budget floor(0.90 · 25,769,803,776) = 23,192,823,398, with its context 23,729,694,310
    per card), each pinned to its card by its physical index, tensor parallel 1."""
    hardware = _linux("cuda", [_rtx(0), _rtx(1)])
    joint = plan_models(hardware, _two_on_two(chat=(0,), code=(1,)))
    assert joint.ok and joint.mode == "resident", joint.errors
    assert joint.peak == {"cuda:0": 23_729_694_310, "cuda:1": 23_729_694_310}
    for alias, index in (("chat", "0"), ("code", "1")):
        plan = joint.plans[alias]
        assert _flag(plan, "--gpu-memory-utilization") == "0.90"
        assert _flag(plan, "--tensor-parallel-size") == "1"
        assert [r.device for r in plan.memory.placement] == [f"cuda:{index}"]
        assert plan.env["CUDA_VISIBLE_DEVICES"] == index
        assert plan.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert f"CUDA_VISIBLE_DEVICES={index}: the GPU its tensor parallel 1 runs on" in " ".join(
            plan.reasons)
        assert f"--gpu-memory-utilization 0.90 of cuda:{index}: vLLM's default" in " ".join(
            plan.reasons)


def test_on_rocm_the_pin_is_hip_visible_devices() -> None:
    from test_plan import _mi300x

    joint = plan_models(_mi300x(2), _two_on_two(chat=(1,), code=(0,)), vllm_rocm_source=True)
    assert joint.ok, joint.errors
    assert joint.plans["chat"].env["HIP_VISIBLE_DEVICES"] == "1"
    assert joint.plans["code"].env["HIP_VISIBLE_DEVICES"] == "0"
    assert not any(k.startswith("CUDA_") for p in joint.plans.values() for k in p.env)


def test_a_vllm_model_on_some_of_the_hosts_gpus_is_pinned_to_those_it_uses() -> None:
    """Four H100s: `gpus: [2, 3]`, and Llama 3.1 8B needs one (tensor parallel 1, the first of
    its two): CUDA_VISIBLE_DEVICES=2, the count its --tensor-parallel-size says."""
    hardware = _linux("cuda", [_h100(i) for i in range(4)])
    entries = [ModelEntry("chat", resolve_model("llama-3.1-8b-instruct"), concurrency=10,
                          context=8192, runtime="vllm", gpus=(2, 3)),
               ModelEntry("small", resolve_model("gemma-3-4b-it:q4_k_m"), context=8192, gpus=(0,))]
    joint = plan_models(hardware, entries)
    assert joint.ok, joint.errors
    chat, small = joint.plans["chat"], joint.plans["small"]
    assert chat.env["CUDA_VISIBLE_DEVICES"] == "2" and _flag(chat, "--tensor-parallel-size") == "1"
    assert _flag(chat, "--gpu-memory-utilization") == "0.90"  # cuda:2 is its own
    # llama.cpp planned on cuda:0 only, and pinned there
    assert [r.device for r in small.memory.placement if r.device != "cpu"] == ["cuda:0"]
    assert small.env["CUDA_VISIBLE_DEVICES"] == "0"


def test_vllm_models_without_gpus_share_the_first_gpus_and_say_how_to_move_them() -> None:
    """Two RTX 4090s and no `gpus`: Llama 3.1 8B for 10 users takes tensor parallel 2 alone
    (bf16 over both: the smallest size with a bf16 cache that holds them, test_plan), so Qwen2.5
    7B shares cuda:0 with it; each claims what it needs, and together they are more than the
    card: vLLM models are never swapped, so the joint plan fails, naming the device."""
    hardware = _linux("cuda", [_rtx(0), _rtx(1)])
    joint = plan_models(hardware, _two_on_two())
    assert not joint.ok
    assert joint.errors[0].startswith("code does not fit beside chat (loaded at all times): cuda:0:")
    assert "`gpus` on its entry puts it on others" in joint.errors[0]
    assert _flag(joint.plans["chat"], "--tensor-parallel-size") == "2"
    assert float(_flag(joint.plans["chat"], "--gpu-memory-utilization") or 1) < 0.90


def test_a_gpu_the_host_does_not_have_is_an_error_naming_the_alias_and_the_index() -> None:
    hardware = _linux("cuda", [_rtx(0), _rtx(1)])
    joint = plan_models(hardware, _two_on_two(code=(1, 2)))
    assert not joint.ok
    assert joint.errors == ["code: gpus: the host has no GPU 2 (its GPUs: 0, 1)"]
    assert joint.errors[0] in joint.plans["code"].errors and joint.plans["chat"].ok
    cpu = plan_models(_linux("cpu", []), [ModelEntry("a", resolve_model("gemma-3-4b-it:q4_k_m"),
                                                     context=8192, gpus=(0,))])
    assert cpu.errors == ["a: gpus: the host has no GPU 0 (it has none)"]


def _bf16_cpu(memory: int) -> Hardware:
    hardware = _linux("cpu", [], memory=memory)
    return dataclasses.replace(
        hardware, cpu=dataclasses.replace(hardware.cpu, flags=["avx2", "avx512f", "avx512_bf16"]))


def test_two_vllm_models_on_a_cpu_host_are_planned_together_in_ram() -> None:
    """vLLM's CPU build, bf16 (the CPU has avx512_bf16): Llama 3.1 8B for 4 users at 4k and for
    2 at 8k. Each: 16,060,522,496 of weights, 2 GiB of runtime (CPU_RUNTIME_OVERHEAD) and
    VLLM_CPU_KVCACHE_SPACE=2 (4 · 4,096 and 2 · 8,192 tokens · 131,072 bytes = 2 GiB):
    20,355,489,792 each, 40,710,979,584 together (37.9 GiB). 48 GiB of RAM: 43.2 GiB usable
    (less the OS's 10%): both fit. 32 GiB: 28.8 usable, not both; vLLM is never swapped, so
    the plan fails."""
    model = resolve_model("llama-3.1-8b-instruct")
    entries = [ModelEntry("chat", model, concurrency=4, context=4096, runtime="vllm"),
               ModelEntry("long", model, concurrency=2, context=8192, runtime="vllm")]
    hardware = _bf16_cpu(48 * GiB)
    joint = plan_models(hardware, entries)
    assert joint.ok and joint.mode == "resident", joint.errors
    assert joint.peak == {"cpu": 2 * 20_355_489_792}
    for plan in joint.plans.values():
        assert plan.env == {"VLLM_CPU_KVCACHE_SPACE": "2"}
        assert _flag(plan, "--dtype") == "bfloat16" and "--gpu-memory-utilization" not in plan.args
        assert _footprint(plan, hardware) == {"cpu": 20_355_489_792}
    small = plan_models(_bf16_cpu(32 * GiB), entries)
    assert not small.ok
    assert small.errors[0].startswith("long does not fit beside chat (loaded at all times)")


# -- host data ------------------------------------------------------------------------------


def test_models_host_data_is_read_with_defaults_and_aliases() -> None:
    spec = host_spec("gpu1", {
        "models": [{"model": "gemma-3-4b-it:q8_0", "keep_loaded": True},
                   {"model": "hf://Qwen/Qwen2.5-7B-Instruct-GGUF/qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf",
                    "context": 4096, "concurrency": 2}],
        "models_max": 1,
        "context": 16384,
    })
    assert [m.alias for m in spec.models] == ["gemma-3-4b-it", "qwen2.5-7b-instruct-q4_k_m"]
    assert spec.models[0].keep_loaded and spec.models[0].context == 16384
    assert (spec.models[1].context, spec.models[1].concurrency) == (4096, 2)
    assert spec.models_max == 1 and spec.multi_model
    assert spec.model == "gemma-3-4b-it:q8_0"  # the first is the host's `model`
    single = host_spec("gpu1", {"model": "/srv/models/My Model.gguf"})
    assert [m.alias for m in single.models] == ["My-Model"] and not single.multi_model


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": [{"model": "a.gguf", "alias": "x"}, {"model": "b.gguf", "alias": "X"}]},
         "field models: entry 1: alias 'X' is already entry 0's"),
        ({"models": [{"model": "gemma-3-4b-it:q4_k_m"}, {"model": "gemma-3-4b-it:q8_0"}]},
         "field models: entry 1: alias 'gemma-3-4b-it' is already entry 0's (set `alias`"),
        ({"models": [{"model": "a.gguf", "alias": "a/../b"}]}, "field models: entry 0: alias: must be"),
        ({"models": [{"model": "a.gguf", "alias": "chat\n"}]}, "field models: entry 0: alias: must be"),
        ({"models": [{"alias": "x"}]}, "field models: entry 0: model: required"),
        ({"models": [{"model": "a.gguf", "colour": "red"}]}, "field models: entry 0: unknown field 'colour'"),
        ({"models": [{"model": "a.gguf", "context": "lots"}]}, "field models: entry 0: context:"),
        ({"models": []}, "field models: must list at least one entry"),
        ({"models": "a.gguf"}, "field models: must be a list"),
        ({"model": "a.gguf", "models": [{"model": "b.gguf"}]}, "field model: both `model` and `models`"),
        ({"models": [{"model": "a.gguf"}], "models_max": 0}, "field models_max: must be from 1"),
        ({"models": [{"model": "a.gguf", "gpus": []}]},
         "field models: entry 0: gpus: must list at least one entry"),
        ({"models": [{"model": "a.gguf", "gpus": [-1]}]},
         "field models: entry 0: gpus: entry 0: must be from 0 to 63, got -1"),
        ({"models": [{"model": "a.gguf", "gpus": [64]}]}, "field models: entry 0: gpus: entry 0:"),
        ({"models": [{"model": "a.gguf", "gpus": [1, 0, 1]}]},
         "field models: entry 0: gpus: GPU 1 is listed twice"),
        ({"models": [{"model": "a.gguf", "gpus": "0"}]}, "field models: entry 0: gpus: must be a list"),
        ({"models": [{"model": "a.gguf", "port": 0}]},
         "field models: entry 0: port: must be from 1 to 65,535, got 0"),
        ({"models": [{"model": "a.gguf", "port": 70000}]}, "field models: entry 0: port: must be"),
        ({"models": [{"model": "a.gguf", "port": 9000}, {"model": "b.gguf", "port": 9000}]},
         "field models: entry 1: b cannot listen on port 9000, a's (entry 0; set another `port`"),
        ({"models": [{"model": "a.gguf"}, {"model": "b.gguf", "port": 8080}]},
         "field models: entry 1: b cannot listen on port 8080, the host's `port`"),
        ({"models": [{"model": "a.gguf", "port": 9001}], "port": 9001},
         "field models: entry 0: a cannot listen on port 9001, the host's `port`"),
        ({"models": [{"model": "a.gguf", "port": 2222}], "ssh_port": 2222},
         "field models: entry 0: a cannot listen on port 2222, the host's SSH port"),
    ],
)
def test_bad_models_host_data_names_the_host_and_the_field(data: dict, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        check_host_data("gpu1", data)
        host_spec("gpu1", data)
    assert str(caught.value).startswith("host gpu1: "), caught.value
    assert message in str(caught.value)


def test_an_entrys_gpus_and_port_reach_its_spec_and_its_plan() -> None:
    from rigctl.host_plans import host_plan_for, resolve_models

    spec = host_spec("rig", {
        "models": [{"model": "llama-3.1-8b-instruct", "alias": "chat", "runtime": "vllm",
                    "concurrency": 10, "context": 8192, "gpus": [1], "port": "8001"},
                   {"model": "qwen2.5-7b-instruct", "alias": "code", "runtime": "vllm",
                    "concurrency": 4, "context": 8192, "gpus": [0]}],
        "port": 8000,
    })
    assert [(m.gpus, m.port) for m in spec.models] == [((1,), 8001), ((0,), None)]
    single = host_spec("rig", {"model": "gemma-3-4b-it:q4_k_m"})
    assert (single.models[0].gpus, single.models[0].port) == (None, None)
    joint = host_plan_for(spec, _linux("cuda", [_rtx(0), _rtx(1)]), resolve_models(spec)).models
    assert joint is not None and joint.ok, joint and joint.errors
    assert joint.plans["chat"].env["CUDA_VISIBLE_DEVICES"] == "1"
    assert joint.plans["code"].env["CUDA_VISIBLE_DEVICES"] == "0"


def test_one_entry_with_gpus_is_planned_on_them_and_pinned() -> None:
    from rigctl.host_plans import host_plan_for, resolve_models

    hardware = _linux("cuda", [_rtx(0), _rtx(1)])
    data = {"models": [{"model": "llama-3.1-8b-instruct", "runtime": "vllm", "concurrency": 10,
                        "gpus": [1]}]}
    spec = host_spec("rig", data)
    host = host_plan_for(spec, hardware, resolve_models(spec))
    assert host.models is None and host.ok  # one model: its own plan, not a joint one
    assert [r.device for r in host.plan.memory.placement] == ["cuda:1"]
    assert host.plan.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert _flag(host.plan, "--tensor-parallel-size") == "1"
    data["models"][0]["gpus"] = [3]  # type: ignore[index]
    spec = host_spec("rig", data)
    host = host_plan_for(spec, hardware, resolve_models(spec))
    assert not host.ok
    assert "llama-3.1-8b-instruct: gpus: the host has no GPU 3 (its GPUs: 0, 1)" in host.plan.errors


@pytest.mark.parametrize(
    ("model", "alias"),
    [("llama-3.1-8b-instruct:q4_k_m", "llama-3.1-8b-instruct"),
     ("hf://org/repo/Model-Q4_K_M.gguf@main", "Model-Q4_K_M"),
     ("https://example.com/m/x%20y.gguf", "x-20y"),
     ("/srv/models/gpt-oss-20b-mxfp4-00001-of-00003.gguf", "gpt-oss-20b-mxfp4"),
     ("hf://Qwen/Qwen2.5-7B-Instruct-AWQ@0123abc", "Qwen2.5-7B-Instruct-AWQ"),
     ("/srv/models/ü.gguf", None)],
)
def test_default_aliases_are_url_safe(model: str, alias: str | None) -> None:
    assert default_alias(model) == alias


# -- the CLI ----------------------------------------------------------------------------------


def test_plan_offline_with_several_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from conftest import rigctl
    from test_cli import RTX4090_HOST

    hardware = tmp_path / "hosts.json"
    hardware.write_text(json.dumps({"hosts": {"rig": RTX4090_HOST}}))
    argv = ["plan", "--hardware", str(hardware), "--context", "8192"]
    for name in NAMES:
        argv += ["--model", f"{name}:q4_k_m"]
    result = rigctl(*argv, "--json")
    assert result.returncode == 0, result.stderr
    joint = json.loads(result.stdout)["hosts"]["rig"]["models"]
    assert joint["mode"] == "resident" and list(joint["models"]) == list(NAMES)
    assert all(m["ok"] for m in joint["models"].values())
    swap = rigctl(*argv, "--models-max", "1")
    assert swap.returncode == 0, swap.stderr
    assert "3 models, swap, at most 1 loaded at once" in swap.stdout
    assert "on demand" in swap.stdout and "rig / gemma-3-4b-it: llamacpp" in swap.stdout


def test_provision_checks_every_model_before_connecting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every entry of ``models`` is resolved and checked before any host is contacted: the
    second's context beyond its trained length is exit 2 naming the host, the field and the
    alias (port 1 on loopback: a connection attempt would fail differently)."""
    from conftest import rigctl

    inventory = tmp_path / "inv.py"
    data = {"ssh_hostname": "127.0.0.1", "ssh_port": 1,
            "models": [{"model": "gemma-3-4b-it:q4_k_m"},
                       {"model": "qwen2.5-7b-instruct:q4_k_m", "alias": "qwen", "context": 1048576}]}
    inventory.write_text(f"hosts = [('gpu1', {data!r})]\n")
    result = rigctl("provision", str(inventory))
    assert result.returncode == 2, result.stderr
    assert "rigctl: error: host gpu1: field models: qwen: " in result.stderr
    assert "unreachable" not in result.stderr + result.stdout
