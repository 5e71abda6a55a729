"""The planner, pinned by hand-checked arithmetic.

Shared numbers (bytes) used below:

- 1 GiB = 1,073,741,824. A GPU keeps 512 MiB for the CUDA context and 1 GiB margin, so a
  24 GiB card has 25,769,803,776 − 536,870,912 − 1,073,741,824 = 24,159,191,040 usable.
- Host RAM keeps max(1 GiB, 10%) for the OS.
- Llama 3.1 8B Q4_K_M (4,920,000,000 bytes, 32 layers, 8 KV heads × 128, vocab 128,256,
  hidden 4,096): embeddings 128,256 × 4,096 = 525,336,576 weights; token_embd (Q4_K, 4.5
  bits) = 295,501,824 stays on the CPU; output head (Q6_K, 6.5625 bits) = 430,940,160;
  blocks = 4,920,000,000 − 295,501,824 − 430,940,160 = 4,193,558,016 (131,048,688 each).
  KV f16 per token = 2 · 32 layers · 8 heads · 128 · 2 bytes = 131,072.
  Compute buffer = -ub 512 · 4 · (3 · 14,336 + 4 · 4,096) = 121,634,816 (the FFN phase).
- Llama 3.1 70B Q4_K_M (42,520,000,000 bytes, 80 layers, hidden 8,192): token_embd
  1,050,673,152 · 4.5/8 = 591,003,648; head · 6.5625/8 = 861,880,320; blocks
  (42,520,000,000 − 591,003,648 − 861,880,320) / 80 = 513,338,950.4 → 513,338,951 each.
  KV f16 per layer at 8,192 tokens = 2 · 8 · 128 · 8,192 · 2 = 33,554,432.
  Compute buffer = 512 · 4 · (128,256 + 4 · 8,192) = 329,777,152.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rigctl.errors import BadInput
from rigctl.hardware import Cpu, Gpu, Hardware, OsInfo
from rigctl.models import ModelFacts, get_catalog_model
from rigctl.models.resolve import resolve_model
from rigctl.plan import make_plan, validate_inputs
from rigctl.plan.memory import kv_cache_bytes
from rigctl.plan.preflight import port_conflict
from rigctl.plan.runtime import Situation, choose_runtime

GiB = 1 << 30
USABLE_24GIB = 24_159_191_040


def _linux(
    accelerator: str,
    gpus: list[Gpu],
    *,
    memory: int = 64 * GiB,
    cores: int = 16,
    threads: int = 32,
    disk: int = 500 * GiB,
    driver: str | None = "13.0",
) -> Hardware:
    return Hardware(
        accelerator=accelerator,
        gpus=gpus,
        memory_bytes=memory,
        cpu=Cpu("AMD Ryzen 9 7950X", cores, threads, ["avx2", "avx512f"]),
        os=OsInfo("Linux", "ubuntu", "24.04", "x86_64", "systemd"),
        disk_free_bytes=disk,
        cuda_driver_version=driver if accelerator == "cuda" else None,
        nvidia_kernel_driver="580.65.06" if accelerator == "cuda" else None,
    )


def _rtx(index: int, gib: int = 24, cc: str = "8.9") -> Gpu:
    return Gpu(
        "nvidia",
        "NVIDIA GeForce RTX 4090",
        index,
        gib * GiB,
        driver="580.65.06",
        compute_capability=cc,
    )


def _m2_max() -> Hardware:
    # 64 GB unified memory; Metal's recommendedMaxWorkingSetSize is about 75% of it.
    return Hardware(
        accelerator="metal",
        gpus=[Gpu("apple", "Apple M2 Max", 0, 48 * GiB, cores=38)],
        memory_bytes=64 * GiB,
        cpu=Cpu("Apple M2 Max", 12, 12, ["neon"]),
        os=OsInfo("Darwin", "macos", "14.5", "arm64", "launchd"),
        disk_free_bytes=500 * GiB,
        unified_memory=True,
    )


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --- the hand-checked cases -----------------------------------------------------------------


def test_8b_q4_k_m_on_one_24gib_gpu_is_a_full_offload() -> None:
    plan = make_plan(_linux("cuda", [_rtx(0)]), get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert plan.runtime == "llamacpp" and plan.ok
    gpu = plan.memory.placement[0]
    # No context given: it grows from 8,192 into what the weights leave, up to context_max's
    # default 32,768 (the model's trained length is 131,072).
    # GPU = blocks 4,193,558,016 + head 430,940,160 + KV 32,768 · 131,072 = 4,294,967,296
    #       + compute 512 · 4 · (3 · 14,336 + 4 · 4,096) = 121,634,816 (the FFN phase; the
    #       output phase, one row of logits and a micro-batch of hidden states, is 8,901,632)
    #       + mask 32,768 · 512 · 2 = 33,554,432
    #       = 9,074,654,720 ≤ 24,159,191,040 usable → all 32 + head.
    assert gpu.bytes == 9_074_654_720 and gpu.usable == USABLE_24GIB
    assert _flag(plan.args, "-ngl") == "33"
    assert _flag(plan.args, "-c") == "32768" and _flag(plan.args, "-np") == "1"
    assert _flag(plan.args, "-t") == "16"  # physical cores, not the 32 threads
    assert "-ctk" not in plan.args and "--tensor-split" not in plan.args
    assert plan.memory.kv_cache_bytes == 4_294_967_296
    assert (
        "context: 32,768 tokens per user, grown from 8,192 into the memory the placed weights "
        "leave on cuda:0 (none given; at most context_max's default, 32,768)"
    ) in plan.reasons
    assert not any("partial offload" in r for r in plan.reasons)
    assert plan.model.urls == [
        "https://huggingface.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF/resolve/main/"
        "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    ]
    assert _flag(plan.args, "-m") == "/var/lib/rigctl/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"


def test_threads_from_host_data_override_the_cores() -> None:
    box = _linux("cpu", [], memory=64 * GiB)
    model = get_catalog_model("llama-3.1-8b-instruct:q4_k_m")
    plan = make_plan(box, model, threads=4)
    assert _flag(plan.args, "-t") == "4" and plan.ok
    assert "threads: -t 4, from the host data (planned: 16, the physical cores)" in plan.reasons
    assert plan.warnings == []
    too_many = make_plan(box, model, threads=48)
    assert any("more than the host's 32 hardware threads" in w for w in too_many.warnings)
    ollama = make_plan(box, model, threads=4, runtime="ollama")
    assert "-t" not in ollama.args
    assert any("threads: 4 in the host data is ignored: ollama" in w for w in ollama.warnings)


def test_70b_q4_k_m_on_one_24gib_gpu_is_a_partial_offload() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0)]), get_catalog_model("llama-3.1-70b-instruct:q4_k_m"), context=8192
    )
    assert plan.runtime == "llamacpp" and plan.ok
    # Each GPU layer costs 513,338,951 weights + 33,554,432 KV = 546,893,383.
    # Compute = 512 · 4 · (3 · 28,672 + 4 · 8,192) = 243,269,632 + the mask 8,192 · 512 · 2
    # = 251,658,240. (24,159,191,040 usable − 251,658,240) / 546,893,383 = 43.71 → 43 layers;
    # 43 · 546,893,383 + 251,658,240 = 23,768,073,709 fits, 44 layers would be 24,314,967,092.
    # The output head stays on the CPU, so -ngl is 43, not 81 (and never 999).
    assert _flag(plan.args, "-ngl") == "43"
    assert int(_flag(plan.args, "-ngl")) < 80
    assert "999" not in plan.args
    gpu, host = plan.memory.placement
    assert gpu.layers == 43 and gpu.bytes == 23_768_073_709
    # CPU: 37 layers · 546,893,383 + token_embd 591,003,648 + head 861,880,320 + compute.
    assert host.layers == 37
    assert host.bytes == 37 * 546_893_383 + 591_003_648 + 861_880_320 + 251_658_240
    assert any("partial offload" in r and "43 of 80 layers" in r for r in plan.reasons)


def test_70b_q4_k_m_on_two_24gib_gpus_fits_with_a_tensor_split() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0), _rtx(1)]),
        get_catalog_model("llama-3.1-70b-instruct:q4_k_m"),
        context=8192,
    )
    assert plan.runtime == "llamacpp" and plan.ok
    assert _flag(plan.args, "-ngl") == "81"  # 80 layers + the output head
    assert _flag(plan.args, "--tensor-split") == "24,24"
    gpu0, gpu1, host = plan.memory.placement
    # llama.cpp assigns layer il to GPU upper_bound([0.5, 1.0], il/81): il 0..40 → GPU 0
    # (41 layers), il 41..79 and the head (il 80) → GPU 1 (39 layers).
    # GPU 0: 41 · 546,893,383 + 251,658,240 (compute and mask) = 22,674,286,943 ≤ 24,159,191,040.
    # GPU 1: 39 · 546,893,383 + 861,880,320 + 251,658,240 = 22,442,380,497.
    assert (gpu0.layers, gpu1.layers) == (41, 39)
    assert gpu0.bytes == 22_674_286_943 and gpu1.bytes == 22_442_380_497
    assert host.weights == 591_003_648  # only token_embd stays on the CPU
    assert any("--tensor-split" in r for r in plan.reasons)


def test_ten_users_on_cuda_get_vllm_with_tensor_parallel() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0), _rtx(1)]),
        get_catalog_model("llama-3.1-8b-instruct"),
        concurrency=10,
    )
    assert plan.runtime == "vllm" and plan.ok and plan.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    # Budget per GPU = floor(0.90 · 25,769,803,776) = 23,192,823,398.
    # Reservation (vllm.reservation): a 24 GiB card batches 2,048 tokens; the forward pass
    #   2,048 · 2 · (3 · 14,336 / TP + 6 · 4,096) beats the sampler's 38.5 · 10 · 128,256 =
    #   49,378,560; plus non-torch (150 MiB at TP 1, 600 MiB at TP 2) and 662 MiB of graphs.
    # TP 1: 276,824,064 + 157,286,400 + 694,157,312 = 1,128,267,776 → KV pool =
    #   23,192,823,398 − 16,060,522,496 bf16 − 1,128,267,776 = 6,004,033,126, short of
    #   10 users · 8,192 tokens · 131,072 = 10,737,418,240.
    # TP 2: 188,743,680 + 629,145,600 + 694,157,312 = 1,512,046,592; weights 8,030,261,248 per
    #   GPU → pool 13,650,515,558 ≥ 10 · 8,192 · 65,536 (4 of 8 KV heads per GPU) =
    #   5,368,709,120 → TP 2. No context given: --max-model-len grows while 10 users still fit,
    #   13,650,515,558 // (10 · 65,536) = 20,829 → 20,736 (a multiple of 256).
    assert (
        _flag(plan.args, "--model")
        == "/var/lib/rigctl/models/meta-llama--Llama-3.1-8B-Instruct@main"
    )
    assert _flag(plan.args, "--served-model-name") == "meta-llama/Llama-3.1-8B-Instruct"
    assert "--enable-prefix-caching" in plan.args and "--api-key" not in plan.args
    assert plan.executable == "python -m vllm.entrypoints.openai.api_server"
    assert _flag(plan.args, "--tensor-parallel-size") == "2"
    assert _flag(plan.args, "--max-num-seqs") == "10"
    assert _flag(plan.args, "--max-model-len") == "20736" and plan.context == 20736
    assert _flag(plan.args, "--gpu-memory-utilization") == "0.90"
    assert "--kv-cache-dtype" not in plan.args
    assert [p.kv_cache for p in plan.memory.placement] == [13_650_515_558] * 2
    assert [p.overhead for p in plan.memory.placement] == [1_512_046_592] * 2
    assert plan.reasons[0].startswith("vLLM: 10 concurrent users on CUDA compute 8.9")
    assert plan.reasons[1].startswith("context: --max-model-len 20,736, grown from 8,192")
    assert "room for 10 sequences of 20,736 tokens" in plan.reasons[2]
    assert plan.model.format == "safetensors" and plan.model.size_bytes == 16_060_522_496


def test_ten_users_on_an_m2_max_get_llamacpp_slots_not_vllm() -> None:
    plan = make_plan(
        _m2_max(), get_catalog_model("llama-3.1-8b-instruct:q4_k_m"), concurrency=10, context=8192
    )
    assert plan.runtime == "llamacpp" and plan.ok
    # -c is the total: 10 slots · 8,192 = 81,920. KV = 81,920 · 131,072 = 10,737,418,240.
    # Compute = 121,634,816 (the FFN phase beats 10 rows of logits) + the mask of one slot's
    # 8,192 cells · 512 · 2 = 130,023,424.
    # GPU = 4,193,558,016 + 430,940,160 + 10,737,418,240 + 130,023,424 = 15,491,939,840
    # ≤ 48 GiB − 1 GiB margin (Metal has no CUDA context) = 50,465,865,728.
    assert _flag(plan.args, "-np") == "10" and _flag(plan.args, "-c") == "81920"
    assert _flag(plan.args, "-ngl") == "33" and _flag(plan.args, "-t") == "12"
    gpu = plan.memory.placement[0]
    assert gpu.device == "metal:0" and gpu.bytes == 15_491_939_840
    assert gpu.usable == 50_465_865_728
    assert "vllm" not in " ".join(plan.args)
    assert "not vLLM" in plan.reasons[0]


def test_cpu_only_runs_llamacpp_on_physical_cores() -> None:
    plan = make_plan(
        _linux("cpu", []), get_catalog_model("llama-3.1-8b-instruct:q4_k_m"), context=8192
    )
    assert plan.runtime == "llamacpp" and plan.ok
    assert _flag(plan.args, "-ngl") == "0" and _flag(plan.args, "-t") == "16"
    (host,) = plan.memory.placement
    # RAM = file 4,920,000,000 + KV 1,073,741,824 + compute 121,634,816 + mask 8,388,608
    # = 6,123,765,248 ≤ 64 GiB − 6.4 GiB reserve = 61,847,529,063.
    assert host.bytes == 6_123_765_248 and host.usable == 61_847_529_063


def test_context_that_only_fits_with_a_quantized_kv_cache() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0, gib=12, cc="8.6")]),
        get_catalog_model("llama-3.1-8b-instruct:q4_k_m"),
        context=65_536,
    )
    assert plan.runtime == "llamacpp" and plan.ok
    # Usable 12 GiB − 1.5 GiB = 11,274,289,152; weights + head = 4,624,498,176, compute
    # 121,634,816 + mask 65,536 · 512 · 2 = 67,108,864.
    # f16 KV: 65,536 · 131,072 = 8,589,934,592 → 13,403,176,448 total: too much.
    # q8_0 KV: 8,589,934,592 · 1.0625 / 2 = 4,563,402,752, and CUDA's flash attention copies
    # one layer's quantized K and V to f16 for a prompt: 65,536 · 8 · 128 · 2 · 2 = 268,435,456
    # → 4,624,498,176 + 4,563,402,752 + 457,179,136 = 9,645,080,064: fits, all layers.
    assert _flag(plan.args, "-ctk") == "q8_0" and _flag(plan.args, "-ctv") == "q8_0"
    assert _flag(plan.args, "-fa") == "on"
    assert _flag(plan.args, "-ngl") == "33"
    assert plan.memory.kv_cache_type == "q8_0"
    assert plan.memory.placement[0].bytes == 9_645_080_064
    assert any(r.startswith("KV cache q8_0") and "does not fit" in r for r in plan.reasons)


def test_cpu_only_quantizes_the_kv_cache_before_running_out_of_ram() -> None:
    box = _linux("cpu", [], memory=16 * GiB)
    plan = make_plan(box, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"), context=131_072)
    # Usable RAM = 17,179,869,184 − 1,717,986,918 (10%) = 15,461,882,266.
    # f16 KV: 131,072 · 131,072 = 17,179,869,184 alone exceeds it.
    # q8_0 KV: · 1.0625 / 2 = 9,126,805,504; + 4,920,000,000 + compute 121,634,816 + mask
    # 131,072 · 512 · 2 = 134,217,728 → 14,302,658,048 (the CPU reads q8_0 as it is: no copy).
    assert plan.ok and _flag(plan.args, "-ctk") == "q8_0" and _flag(plan.args, "-ngl") == "0"
    (host,) = plan.memory.placement
    assert host.bytes == 14_302_658_048 and host.usable == 15_461_882_266
    assert any(r.startswith("KV cache q8_0") for r in plan.reasons)


def test_explicit_vllm_on_metal_is_refused() -> None:
    with pytest.raises(BadInput) as err:
        make_plan(
            _m2_max(), get_catalog_model("llama-3.1-8b-instruct"), runtime="vllm", concurrency=10
        )
    assert err.value.field == "runtime"


def test_gemma_3_270m_on_this_two_core_cpu_box() -> None:
    # This development machine: 2 cores (1 thread each), 24 GiB RAM, no GPU.
    box = _linux("cpu", [], memory=24 * GiB, cores=2, threads=2, disk=78 * GiB)
    plan = make_plan(box, get_catalog_model("gemma-3-270m:q4_k_m"))
    assert plan.runtime == "llamacpp" and plan.ok and not plan.warnings
    assert _flag(plan.args, "-ngl") == "0" and _flag(plan.args, "-t") == "2"
    # No context given: grown from 8,192 to the model's trained 32,768 (context_max's default).
    assert _flag(plan.args, "-c") == "32768"
    # KV per token per layer = 2 · 1 KV head · 256 · 2 bytes = 1,024. Globals (5, 11, 17):
    # 3 · 32,768 · 1,024 = 100,663,296; 15 sliding layers keep window 512 + -ub 512 tokens:
    # 15 · 1,024 · 1,024 = 15,728,640; KV = 116,391,936.
    # Compute = 512 · 4 · (3 · 2,240 + 4 · 640) = 19,005,440 (the catalog has no FFN width:
    # 3.5 · n_embd; the output phase, one row of 262,144 logits and the hidden states, is
    # 2,359,296), + the masks of both caches (32,768 + 1,024) · 512 · 2 = 34,603,008
    # → 53,608,448. RAM = 253,113,024 + 116,391,936 + 53,608,448 = 423,113,408.
    (host,) = plan.memory.placement
    assert plan.memory.kv_cache_bytes == 116_391_936
    assert host.bytes == 423_113_408
    assert plan.model.size_exact and plan.model.sha256 is not None


# --- runtime choice and quant choice --------------------------------------------------------


def test_prefer_simple_single_user_gets_ollama_env() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0)]), get_catalog_model("llama-3.1-8b-instruct"), prefer="simple"
    )
    assert plan.runtime == "ollama" and plan.args == ["serve"]
    assert plan.flags == plan.env
    assert plan.env["OLLAMA_CONTEXT_LENGTH"] == "32768"  # grown: no context was given
    assert plan.env["OLLAMA_NUM_PARALLEL"] == "1"
    assert plan.env["OLLAMA_KV_CACHE_TYPE"] == "f16"
    assert plan.env["OLLAMA_FLASH_ATTENTION"] == "1"
    assert plan.env["OLLAMA_MAX_LOADED_MODELS"] == "1"
    assert plan.env["OLLAMA_KEEP_ALIVE"] == "-1"
    assert plan.model.runtime_ref == "hf.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:Q8_0"


def test_ollama_with_a_quantized_kv_cache() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0, gib=12, cc="8.6")]),
        get_catalog_model("llama-3.1-8b-instruct:q4_k_m"),
        context=65_536,
        runtime="ollama",
    )
    assert plan.env["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    assert plan.env["OLLAMA_FLASH_ATTENTION"] == "1"


def test_prefer_simple_still_needs_llamacpp_for_a_partial_offload() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0)]), get_catalog_model("llama-3.1-70b-instruct"), prefer="simple"
    )
    assert plan.runtime == "llamacpp"
    assert "rather than Ollama" in plan.reasons[0] and "partial offload" in plan.reasons[0]


def test_quant_choice_is_the_best_that_fits_the_gpu() -> None:
    # 8 GiB card: usable 8,589,934,592 − 1,610,612,736 = 6,979,321,856.
    # Q6_K: 6,600,000,000 − token_embd 430,940,160 (Q6_K) + KV 1 GiB + compute > usable.
    # Q5_K_M: 5,730,000,000 − 361,168,896 (Q5_K) + 1,073,741,824 + compute 121,634,816
    #         + mask 8,388,608 = 6,572,596,352 ≤ usable → Q5_K_M, at 8,192 tokens.
    # Then the context grows into what is left, in steps of 256 tokens (32 MiB of KV and
    # 256 KiB of mask each: 33,816,576): 406,725,504 left → 12 steps, 11,264 tokens,
    # 6,978,395,264 in all; 11,520 would be 7,012,211,840 > usable.
    plan = make_plan(
        _linux("cuda", [_rtx(0, gib=8, cc="8.6")]), get_catalog_model("llama-3.1-8b-instruct")
    )
    assert plan.model.quant == "Q5_K_M"
    assert plan.memory.placement[0].bytes == 6_978_395_264 and plan.context == 11264
    assert (
        "context: 11,264 tokens per user, grown from 8,192 into the memory the placed weights "
        "leave on cuda:0 (none given; at most what fits next to the weights on cuda:0)"
    ) in plan.reasons
    assert any(r.startswith("quant Q5_K_M") and "Q6_K does not" in r for r in plan.reasons)
    # On a CPU the q4_k_m file is the fast one.
    assert make_plan(_linux("cpu", []), get_catalog_model("qwen2.5-7b-instruct")).model.quant == (
        "Q4_K_M"
    )


def test_old_gpu_cannot_take_vllm() -> None:
    pascal = _linux("cuda", [_rtx(0, cc="6.1")])
    plan = make_plan(pascal, get_catalog_model("llama-3.1-8b-instruct"), concurrency=10)
    assert plan.runtime == "llamacpp" and "compute capability 7.5" in plan.reasons[0]
    with pytest.raises(BadInput) as err:
        make_plan(pascal, get_catalog_model("llama-3.1-8b-instruct"), runtime="vllm")
    assert err.value.field == "runtime"


def test_vllm_refused_on_arm_cpu_and_unsupported_rocm_and_for_bare_gguf() -> None:
    arm = _linux("cpu", [])
    arm = dataclasses.replace(arm, os=dataclasses.replace(arm.os, arch="aarch64"))
    with pytest.raises(BadInput, match="x86_64 Linux; this host is Linux aarch64"):
        make_plan(arm, get_catalog_model("gemma-3-4b-it"), runtime="vllm")
    old_x86 = _linux("cpu", [])
    old_x86 = dataclasses.replace(old_x86, cpu=dataclasses.replace(old_x86.cpu, flags=["sse4_2"]))
    with pytest.raises(BadInput, match="needs avx2"):
        make_plan(old_x86, get_catalog_model("gemma-3-4b-it"), runtime="vllm")
    rdna2 = _linux("rocm", [Gpu("amd", "Radeon RX 6800", 0, 16 * GiB, gfx_target="gfx1030")])
    with pytest.raises(BadInput, match="gfx1030"):
        make_plan(rdna2, get_catalog_model("gemma-3-4b-it"), runtime="vllm")
    bare = get_catalog_model("llama-3.1-8b-instruct:q4_k_m").facts()
    bare = ModelFacts(**{**bare.__dict__, "hf_repo": None, "hf_weights_bytes": None})
    with pytest.raises(BadInput, match="safetensors"):
        make_plan(_linux("cuda", [_rtx(0)]), bare, runtime="vllm")
    # In auto mode the same GGUF falls back to llama.cpp, saying why.
    plan = make_plan(_linux("cuda", [_rtx(0)]), bare, concurrency=8)
    assert plan.runtime == "llamacpp" and "safetensors" in plan.reasons[0]


def test_explicit_runtimes_are_respected_with_warnings() -> None:
    gpu = _linux("cuda", [_rtx(0)])
    plan = make_plan(gpu, get_catalog_model("llama-3.1-8b-instruct"), runtime="vllm")
    assert plan.runtime == "vllm" and any("pays off under concurrency" in w for w in plan.warnings)
    plan = make_plan(
        gpu, get_catalog_model("llama-3.1-8b-instruct"), runtime="llamacpp", concurrency=10
    )
    assert plan.runtime == "llamacpp" and any("vLLM" in w for w in plan.warnings)
    # vLLM cannot hold 70B bf16 (131.4 GiB) on one 24 GiB GPU: a plan with errors, no crash.
    plan = make_plan(gpu, get_catalog_model("llama-3.1-70b-instruct"), runtime="vllm")
    assert not plan.ok and "vLLM cannot load" in plan.errors[0]


def test_decision_tree_table() -> None:
    def situation(**changes: object) -> Situation:
        values: dict[str, object] = dict(
            accelerator="cuda",
            concurrency=1,
            prefer="control",
            compute_capability=(8, 9),
            vllm_blocker=None,
            vllm_fits=True,
            partial_offload=False,
            kv_mixed=False,
            multi_gpu=False,
        )
        values.update(changes)
        return Situation(**values)  # type: ignore[arg-type]

    assert choose_runtime(situation(concurrency=3))[0] == "vllm"
    assert choose_runtime(situation(concurrency=2))[0] == "llamacpp"
    assert choose_runtime(situation(concurrency=2, prefer="throughput"))[0] == "vllm"
    assert choose_runtime(situation(concurrency=3, vllm_fits=False))[0] == "llamacpp"
    assert choose_runtime(situation(accelerator="metal", concurrency=10))[0] == "llamacpp"
    assert choose_runtime(situation(accelerator="metal", prefer="simple"))[0] == "ollama"
    assert choose_runtime(situation(prefer="simple"))[0] == "ollama"
    assert choose_runtime(situation(prefer="simple", kv_mixed=True))[0] == "llamacpp"
    assert choose_runtime(situation(prefer="simple", moe_offload=True))[0] == "llamacpp"
    assert choose_runtime(situation(prefer="simple", partial_offload=True))[0] == "llamacpp"
    assert choose_runtime(situation(prefer="simple", multi_gpu=True))[0] == "llamacpp"
    assert choose_runtime(situation(prefer="simple", concurrency=2))[0] == "llamacpp"
    assert choose_runtime(situation(accelerator="cpu", vllm_blocker="cpu"))[0] == "llamacpp"


# --- memory, pre-flight, validation, JSON ---------------------------------------------------


def test_kv_cache_formula() -> None:
    facts = get_catalog_model("llama-3.1-8b-instruct:q4_k_m").facts()
    # 2 · 32 · 8 · 128 · 4,096 tokens · 2 bytes = 536,870,912; q4_0 is 18/32 bytes per value.
    assert kv_cache_bytes(facts, 4096) == 536_870_912
    assert kv_cache_bytes(facts, 4096, kv_type="q4_0") == 536_870_912 * 18 // 64
    assert kv_cache_bytes(facts, 4096, slots=3) == 3 * 536_870_912
    gemma = get_catalog_model("gemma-3-27b-it:q4_k_m").facts()
    # 10 global layers at 32,768 tokens + 52 sliding at the 1,024 window; 16 KV heads · 128.
    per_token_layer = 2 * 16 * 128 * 2
    assert kv_cache_bytes(gemma, 32_768) == per_token_layer * (10 * 32_768 + 52 * 1_024)


def test_preflight_driver_disk_and_ram() -> None:
    old_driver = _linux("cuda", [_rtx(0)], driver="11.8")
    plan = make_plan(old_driver, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert plan.runtime == "llamacpp" and any("CUDA 11.8" in e for e in plan.errors)
    # The pinned vLLM is a CUDA 13 build: a 12.x driver gets llama.cpp, saying why, and an
    # explicit vLLM is refused before anything is installed.
    cuda12 = _linux("cuda", [_rtx(0), _rtx(1)], driver="12.8")
    plan = make_plan(cuda12, get_catalog_model("llama-3.1-8b-instruct"), concurrency=10)
    assert plan.runtime == "llamacpp" and plan.ok
    assert (
        "not vLLM: the pinned vLLM is a CUDA 13 build; this NVIDIA driver supports CUDA 12.8"
        in plan.reasons[0]
    )
    with pytest.raises(BadInput, match="driver R580") as err:
        make_plan(cuda12, get_catalog_model("llama-3.1-8b-instruct"), runtime="vllm")
    assert err.value.field == "runtime"
    small_disk = _linux("cuda", [_rtx(0)], disk=3 * GiB)
    plan = make_plan(small_disk, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert any(e.startswith("disk:") for e in plan.errors)
    tight_disk = _linux("cuda", [_rtx(0)], disk=5 * GiB)  # 4.58 GiB file + < 1 GiB margin
    plan = make_plan(tight_disk, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert plan.ok and any(w.startswith("disk:") for w in plan.warnings)
    small_ram = _linux("cpu", [], memory=8 * GiB)
    plan = make_plan(small_ram, get_catalog_model("llama-3.1-70b-instruct:q4_k_m"))
    assert not plan.ok and any(e.startswith("RAM:") for e in plan.errors)
    no_avx2 = _linux("cpu", [])
    no_avx2.cpu.flags = ["sse4_2"]
    plan = make_plan(no_avx2, get_catalog_model("gemma-3-270m-it:q4_k_m"))
    assert any("AVX2" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1025}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": "4"}, "concurrency"),
        ({"context": 255}, "context"),
        ({"context": 131_073}, "context"),  # past Llama 3.1's native 131,072
        ({"prefer": "fast"}, "prefer"),
        ({"runtime": "tgi"}, "runtime"),
    ],
)
def test_bad_inputs_name_their_field(kwargs: dict[str, object], field: str) -> None:
    model = get_catalog_model("llama-3.1-8b-instruct")
    with pytest.raises(BadInput) as err:
        make_plan(_linux("cpu", []), model, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concurrency", 0),
        ("concurrency", 1025),
        ("concurrency", True),
        ("context", 255),
        ("context", 1_048_577),
        ("context", "many"),
    ],
)
def test_host_data_and_planner_refuse_alike(field: str, value: object) -> None:
    """One definition of the bounds (rigctl.plan.limits): the host-data schema, when an
    inventory loads, and the planner say the same thing."""
    from rigctl import hostdata

    with pytest.raises(BadInput) as from_host_data:
        hostdata.check_host_data("h", {field: value})
    model = ModelFacts("llama", 1, 1, 1, 1, 1, context_length=0, file_size=1)  # native: unknown
    inputs: dict[str, object] = {"concurrency": 1, "context": None, field: value}
    with pytest.raises(BadInput) as from_planner:
        validate_inputs(model, runtime="auto", prefer="control", **inputs)  # type: ignore[arg-type]
    assert from_planner.value.field == from_host_data.value.field == field
    assert from_planner.value.detail == from_host_data.value.detail
    assert str(from_host_data.value).startswith(f"host h: field {field}: must be an integer from ")


def test_the_bounds_are_the_limits_modules() -> None:
    from rigctl import hostdata
    from rigctl.plan import limits

    for field, low, high in (
        ("concurrency", limits.MIN_CONCURRENCY, limits.MAX_CONCURRENCY),
        ("context", limits.MIN_CONTEXT, limits.MAX_CONTEXT),
    ):
        check = hostdata.SCHEMA[field].check
        assert check(low, field) == low and check(high, field) == high
        assert check(str(high), field) == high  # host data may spell it as ASCII digits
        for outside in (low - 1, high + 1):
            with pytest.raises(ValueError, match=f"from {low:,} to {high:,}"):
                check(outside, field)
    assert limits.check_context(32_768, native=32_768) == 32_768
    with pytest.raises(ValueError, match=r"to 32,768 \(the model's native context\)"):
        limits.check_context(32_769, native=32_768)


def test_context_limit_follows_the_model() -> None:
    qwen = get_catalog_model("qwen2.5-7b-instruct:q4_k_m")  # native 32,768
    with pytest.raises(BadInput, match="32,768"):
        make_plan(_linux("cpu", []), qwen, context=65_536)
    assert make_plan(_linux("cpu", []), qwen, context=32_768).context == 32_768
    gemma = get_catalog_model("gemma-3-270m-it:q8_0")  # trained on 32,768
    assert make_plan(_linux("cpu", []), gemma).context == 32_768  # grown, none given
    assert make_plan(_linux("cpu", []), gemma, context_max=4096).context == 4096
    assert make_plan(_linux("cpu", []), gemma, context_max=12_000).context == 12_000
    with pytest.raises(BadInput) as err:
        make_plan(_linux("cpu", []), gemma, context_max=100)
    assert err.value.field == "context_max"


def test_plan_to_json_round_trips() -> None:
    plan = make_plan(_linux("cuda", [_rtx(0)]), get_catalog_model("llama-3.1-70b-instruct:q4_k_m"))
    data = json.loads(json.dumps(plan.to_json()))
    assert data["runtime"] == "llamacpp" and data["executable"] == "llama-server"
    assert data["flags"] == plan.args and data["ok"] is True
    memory = data["memory"]
    assert memory["gpu_layers"] == 43 and memory["n_layers"] == 80
    assert memory["total_bytes"] == (
        memory["weights_bytes"] + memory["kv_cache_bytes"] + memory["overhead_bytes"]
    )
    assert [p["device"] for p in memory["placement"]] == ["cuda:0", "cpu"]
    assert all(p["fits"] for p in memory["placement"])


def test_explicit_vllm_on_an_x86_cpu_gets_the_cpu_build_with_kv_space() -> None:
    hardware = _linux("cpu", [], memory=32 * GiB)
    plan = make_plan(
        hardware, get_catalog_model("gemma-3-4b-it"), runtime="vllm", concurrency=4, context=4096
    )
    assert plan.runtime == "vllm" and plan.ok, plan.errors
    # AVX2/AVX-512 without bf16 instructions: float32, twice the bf16 checkpoint's bytes.
    assert _flag(plan.args, "--dtype") == "float32" and "--enforce-eager" in plan.args
    assert "--tensor-parallel-size" not in plan.args and "--gpu-memory-utilization" not in plan.args
    catalog = get_catalog_model("gemma-3-4b-it")
    facts = catalog.facts(catalog.quants[0])
    per_sequence = kv_cache_bytes(facts, 4096) * 2  # float32 KV
    assert plan.env == {"VLLM_CPU_KVCACHE_SPACE": str(-(-per_sequence * 4 // GiB))}
    assert plan.memory.weights_bytes == facts.hf_weights_bytes * 2
    assert plan.model.quant == "F32" and "no native bf16" in plan.reasons[1]
    # The decision tree never picks vLLM on a CPU by itself.
    auto = make_plan(hardware, get_catalog_model("gemma-3-4b-it"), concurrency=4, context=4096)
    assert auto.runtime == "llamacpp"
    amx = dataclasses.replace(
        hardware, cpu=dataclasses.replace(hardware.cpu, flags=["avx2", "amx_bf16"])
    )
    assert (
        _flag(make_plan(amx, get_catalog_model("gemma-3-4b-it"), runtime="vllm").args, "--dtype")
        == "bfloat16"
    )


def test_vllm_on_cpu_too_small_is_a_plan_error() -> None:
    plan = make_plan(
        _linux("cpu", [], memory=8 * GiB),
        get_catalog_model("llama-3.1-8b-instruct"),
        runtime="vllm",
    )
    assert not plan.ok and "vLLM cannot load" in plan.errors[0] and "float32" in plan.errors[0]


def _hf_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-llama"
    directory.mkdir()
    (directory / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "hidden_size": 128,
                "max_position_embeddings": 2048,
                "vocab_size": 512,
                "torch_dtype": "float32",
            }
        )
    )
    (directory / "model.safetensors").write_bytes(b"\0" * 1_000_000)
    return directory


def test_a_safetensors_directory_is_served_by_vllm_only(tmp_path: Path) -> None:
    model = resolve_model(str(_hf_dir(tmp_path)))
    assert model.format == "safetensors" and model.n_kv_heads == 2 and model.head_dim == 32
    plan = make_plan(_linux("cpu", []), model, context=1024, concurrency=2)
    assert plan.runtime == "vllm" and "only vLLM serves" in plan.reasons[0]
    assert _flag(plan.args, "--model") == "/var/lib/rigctl/models/tiny-llama"
    assert _flag(plan.args, "--served-model-name") == "tiny-llama"
    assert plan.model.source == str(tmp_path / "tiny-llama") and plan.model.size_bytes == 1_000_000
    # 250,000 fp32 parameters; 2 · 2 heads · 32 · 1,024 tokens · 4 bytes · 2 layers per sequence.
    assert plan.memory.weights_bytes == 1_000_000
    with pytest.raises(BadInput, match="only vLLM serves") as err:
        make_plan(_linux("cpu", []), model, runtime="llamacpp")
    assert err.value.field == "runtime"
    with pytest.raises(BadInput, match="Metal"):
        make_plan(_m2_max(), model)


def test_not_a_model_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BadInput, match="no \\*.safetensors"):
        resolve_model(str(tmp_path))


def test_port_conflicts_with_other_programs_only() -> None:
    own = {"rigctl-llama-server.service"}
    sshd = {"address": "0.0.0.0", "port": 22, "pid": 612, "process": "sshd", "unit": "ssh.service"}
    ours = {
        "address": "127.0.0.1",
        "port": 8080,
        "pid": 77,
        "process": "llama-server",
        "unit": "rigctl-llama-server.service",
    }
    nginx = {"address": "10.0.0.5", "port": 8081, "pid": 90, "process": "nginx", "unit": None}
    hidden = {"address": "::", "port": 9000, "pid": None, "process": None, "unit": None}
    sockets = [sshd, ours, nginx, hidden]
    assert port_conflict("127.0.0.1", 8080, sockets, own) is None  # rigctl's server: replaced
    assert port_conflict("127.0.0.1", 8081, sockets, own) is None  # nginx holds another address
    assert port_conflict("0.0.0.0", 8081, sockets, own) == (
        "10.0.0.5:8081 is already in use by nginx (pid 90)"
    )
    assert port_conflict("192.168.1.2", 22, sockets, own) == (
        "0.0.0.0:22 is already in use by sshd (pid 612, ssh.service)"
    )
    assert "does not show" in (port_conflict("127.0.0.1", 9000, sockets, own) or "")
    assert port_conflict("127.0.0.1", 8080, sockets, set()) is not None  # not ours: a conflict


def test_cuda_units_number_gpus_in_pci_order_like_nvidia_smi() -> None:
    """A 4090 and a 3090: nvidia-smi (and so the plan's split) lists them in PCI order, CUDA
    by default fastest first; every CUDA plan sets CUDA_DEVICE_ORDER=PCI_BUS_ID."""
    mixed = [_rtx(0), dataclasses.replace(_rtx(1), name="NVIDIA GeForce RTX 3090", compute_capability="8.6")]
    for runtime in ("llamacpp", "ollama"):
        plan = make_plan(_linux("cuda", mixed), get_catalog_model("llama-3.1-70b-instruct:q4_k_m"),
                         runtime=runtime)
        assert plan.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID", runtime
        assert any(r.startswith("CUDA_DEVICE_ORDER=PCI_BUS_ID") for r in plan.reasons)
    cpu = make_plan(_linux("cpu", []), get_catalog_model("gemma-3-270m"))
    assert "CUDA_DEVICE_ORDER" not in cpu.env


def test_a_gpu_reporting_no_memory_is_left_out_and_the_others_pinned() -> None:
    """nvidia-smi printing 0 MiB (a MIG parent, a vGPU, a driver fault) for one of two GPUs:
    that GPU is not planned for (no -ngl 0 --tensor-split 1,1), the other is, and the unit
    sees only it; one such GPU alone gives a CPU plan that says why."""
    blank = dataclasses.replace(_rtx(0), memory_bytes=0)
    plan = make_plan(_linux("cuda", [blank, _rtx(1)]),
                     get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert plan.ok and "--tensor-split" not in plan.args and _flag(plan.args, "-ngl") == "33"
    assert [p.device for p in plan.memory.placement] == ["cuda:1", "cpu"]
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert any("GPU 0 (NVIDIA GeForce RTX 4090) reports no memory" in w for w in plan.warnings)
    alone = make_plan(_linux("cuda", [blank]), get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert _flag(alone.args, "-ngl") == "0" and "--tensor-split" not in alone.args
    assert any("reports no memory" in w for w in alone.warnings)
    assert any("planning for CPU" in w for w in alone.warnings)
    both = make_plan(_linux("cuda", [_rtx(0), _rtx(1)]),
                     get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    assert "CUDA_VISIBLE_DEVICES" not in both.env


def _mi300x(count: int = 1) -> Hardware:
    return _linux(
        "rocm",
        [Gpu("amd", "AMD Instinct MI300X", i, 192 * GiB, gfx_target="gfx942") for i in range(count)],
    )


def test_vllm_on_rocm_when_the_host_data_names_a_source_for_it() -> None:
    model = get_catalog_model("llama-3.1-8b-instruct")
    plan = make_plan(_mi300x(), model, concurrency=10, vllm_rocm_source=True)
    assert plan.runtime == "vllm" and plan.ok
    assert plan.reasons[0] == (
        "vLLM: 10 concurrent users on ROCm; continuous batching and a paged KV cache serve "
        "them together"
    )
    assert any("vLLM on ROCm" in w for w in plan.warnings)
    assert "CUDA_DEVICE_ORDER" not in plan.env
    # vLLM's ROCm build is not on PyPI: without an index or a wheelhouse, llama.cpp, saying why
    without = make_plan(_mi300x(), model, concurrency=10)
    assert without.runtime == "llamacpp"
    assert "not vLLM: its ROCm build is not on PyPI (set vllm_index_url or vllm_wheelhouse" in (
        without.reasons[0]
    )
    # a card vLLM's ROCm build does not support never gets it, source or not
    rdna2 = _linux("rocm", [Gpu("amd", "Radeon RX 6800", 0, 16 * GiB, gfx_target="gfx1030")])
    plan = make_plan(rdna2, model, concurrency=10, vllm_rocm_source=True)
    assert plan.runtime == "llamacpp" and "gfx1030" in plan.reasons[0]
    # and an explicit llama.cpp where vLLM would serve is warned about
    forced = make_plan(_mi300x(), model, concurrency=10, vllm_rocm_source=True, runtime="llamacpp")
    assert any("on ROCm: vLLM's continuous batching" in w for w in forced.warnings)


def test_the_host_data_that_names_a_rocm_vllm_source() -> None:
    from rigctl.hostspec import host_spec

    assert not host_spec("h", {"model": "gemma-3-270m"}).vllm_rocm_source
    assert host_spec("h", {"model": "gemma-3-270m", "vllm_wheelhouse": "/w"}).vllm_rocm_source
    assert host_spec(
        "h", {"model": "gemma-3-270m", "vllm_index_url": "https://repo.radeon.com/x"}
    ).vllm_rocm_source
