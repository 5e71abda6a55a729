"""The 2026 catalog: its sizes cross-checked against what the publishers list, and the plans
users ask for (issue #17's hand-checked cases) pinned.

Tensor sizes of a catalog model come from its config.json shapes and llama-quantize's rules
(rigctl.models.shapes). The listed sizes below are what Hugging Face shows for the files (GB,
two decimals): the computation must land within 0.5% of each, which checks the shapes, the
rules and the citation at once.
"""

from __future__ import annotations

import json

import pytest
from test_plan import GiB, _flag, _linux, _rtx

from rigctl.errors import BadInput
from rigctl.hardware import Gpu
from rigctl.models.catalog import CATALOG, get_catalog_model
from rigctl.models.hf_model import facts_from_config, quantization_of
from rigctl.models.shapes import (
    FfnShape,
    Shapes,
    parameters_of,
    safetensors_bytes,
    weight_split_from_shapes,
)
from rigctl.plan import make_plan
from rigctl.plan.vllm import checkpoint_label, quant_blocker

#: (catalog entry, quant) → bytes listed by the publisher (GB, two decimals), with the page
LISTED_GGUF = {
    # bartowski/Qwen_Qwen3-8B-GGUF
    ("qwen3-8b", "Q6_K"): 6.73e9,
    ("qwen3-8b", "Q8_0"): 8.71e9,
    # bartowski/Qwen_Qwen3-32B-GGUF
    ("qwen3-32b", "Q4_K_M"): 19.76e9,
    ("qwen3-32b", "Q5_K_M"): 23.21e9,
    ("qwen3-32b", "Q6_K"): 26.88e9,
    ("qwen3-32b", "Q8_0"): 34.82e9,
    # bartowski/Qwen_Qwen3-30B-A3B-GGUF (the first 30B-A3B: the same shapes as 2507)
    ("qwen3-30b-a3b-instruct-2507", "Q5_K_M"): 21.74e9,
    ("qwen3-30b-a3b-instruct-2507", "Q6_K"): 25.10e9,
    ("qwen3-30b-a3b-instruct-2507", "Q8_0"): 32.48e9,
    # bartowski/mistralai_Mistral-Small-3.2-24B-Instruct-2506-GGUF
    ("mistral-small-3.2-24b-instruct-2506", "Q4_K_M"): 14.33e9,
    ("mistral-small-3.2-24b-instruct-2506", "Q5_K_M"): 16.76e9,
    ("mistral-small-3.2-24b-instruct-2506", "Q6_K"): 19.35e9,
    ("mistral-small-3.2-24b-instruct-2506", "Q8_0"): 25.05e9,
    # lmstudio-community/gpt-oss-20b-GGUF's MXFP4 file, in bytes
    ("gpt-oss-20b", "MXFP4"): 12_109_565_632,
}


@pytest.mark.parametrize(("name", "quant"), sorted(LISTED_GGUF))
def test_gguf_sizes_from_the_shapes_match_the_listed_files(name: str, quant: str) -> None:
    shapes = CATALOG[name].shapes
    assert shapes is not None
    computed = weight_split_from_shapes(shapes, quant).total
    assert abs(computed - LISTED_GGUF[name, quant]) / LISTED_GGUF[name, quant] < 0.005


def _dense(layers: int, hidden: int, heads: int, ffn: int, vocab: int, **extra: bool) -> Shapes:
    return Shapes(layers, hidden, heads, 8, 128, vocab, False, 0, FfnShape(ffn=ffn, **extra))


@pytest.mark.parametrize(
    ("shapes", "method", "listed"),
    [
        # hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4: 9 shards, 39.77 GB
        (_dense(80, 8192, 64, 28672, 128256), "awq", 39.77e9),
        # hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4: 4.68 + 1.05 GB
        (_dense(32, 4096, 32, 14336, 128256), "awq", 5.73e9),
        # neuralmagic/Meta-Llama-3.1-8B-FP8: 5 + 4.08 GB
        (_dense(32, 4096, 32, 14336, 128256), "fp8", 9.08e9),
        # Qwen/Qwen2.5-32B-Instruct-AWQ: 19.33 GB
        (_dense(64, 5120, 40, 27648, 152064, attn_bias=True), "awq", 19.33e9),
        # openai/gpt-oss-20b: 4.79 + 4.8 + 4.17 GB; gpt-oss-120b's original/: 65.2 GB
        (CATALOG["gpt-oss-20b"].shapes, "mxfp4", 13.76e9),
        (CATALOG["gpt-oss-120b"].shapes, "mxfp4", 65.2e9),
    ],
)
def test_safetensors_sizes_from_the_shapes_match_the_listed_checkpoints(
    shapes: Shapes | None, method: str, listed: float
) -> None:
    assert shapes is not None
    assert abs(safetensors_bytes(shapes, method) - listed) / listed < 0.005


def test_parameter_counts_match_the_publishers() -> None:
    # Qwen: 30.5B total, 3.3B activated; OpenAI: 20.9B and 116.8B; Qwen3-8B: 8.2B
    assert round(CATALOG["qwen3-30b-a3b-instruct-2507"].parameters / 1e8) == 305
    assert round((CATALOG["qwen3-30b-a3b-instruct-2507"].active_parameters or 0) / 1e8) == 34
    assert round(CATALOG["gpt-oss-20b"].parameters / 1e8) == 209
    assert round(CATALOG["gpt-oss-120b"].parameters / 1e8) == 1168
    assert round(CATALOG["qwen3-8b"].parameters / 1e8) == 82
    for entry in CATALOG.values():
        facts = entry.facts(entry.quants[0])
        if entry.shapes is not None:  # the catalog's counts are the shapes' own
            assert parameters_of(entry.shapes, entry.expert_used_count) == (
                entry.parameters, entry.active_parameters or entry.parameters), entry.name
        if entry.is_moe:
            split = facts.weight_split
            # the experts are most of a MoE file, and the layers hold them
            assert split.experts_total > 0.8 * split.total, entry.name
            assert all(e < b for e, b in zip(split.expert_bytes, split.block_bytes, strict=True))
            assert facts.expert_ffn_length


def _gpu_host(gib: int) -> object:
    return _linux("cuda", [_rtx(0, gib=gib)])


def _minimal_expert_offload(plan: object, facts_name: str) -> int:
    """The plan keeps the experts of N layers in RAM, N > 0 and the least that fits."""
    entry = get_catalog_model(facts_name)
    split = entry.facts(entry.quants[0]).weight_split
    n = int(_flag(plan.args, "--n-cpu-moe"))  # type: ignore[attr-defined]
    gpu, host = plan.memory.placement  # type: ignore[attr-defined]
    assert 0 < n < entry.n_layers
    assert _flag(plan.args, "-ngl") == str(entry.n_layers + 1)  # type: ignore[attr-defined]
    assert host.weights == split.token_embd_bytes + sum(split.expert_bytes[:n])
    assert gpu.bytes <= gpu.usable and host.bytes <= host.usable
    # keeping one more layer's experts on the GPU would not fit
    assert gpu.bytes + split.expert_bytes[n - 1] > gpu.usable
    return n


def test_gpt_oss_120b_at_32k_on_24gib_keeps_experts_in_ram_and_fits_64gib() -> None:
    plan = make_plan(_gpu_host(24), get_catalog_model("gpt-oss-120b"), context=32_768)
    assert plan.ok and plan.runtime == "llamacpp", plan.errors
    n = _minimal_expert_offload(plan, "gpt-oss-120b")
    reason = next(r for r in plan.reasons if r.startswith("MoE expert offload"))
    assert f"--n-cpu-moe {n}" in reason and "128 experts, 4 used per token" in reason
    host = plan.memory.placement[1]
    assert host.bytes < 48 * GiB  # well inside 64 GiB of RAM
    assert plan.model.urls[0].endswith("gpt-oss-120b-mxfp4-00001-of-00003.gguf")
    assert len(plan.model.urls) == 3


def test_gpt_oss_20b_at_32k_on_16gib_is_all_on_the_gpu() -> None:
    plan = make_plan(_gpu_host(16), get_catalog_model("gpt-oss-20b"), context=32_768)
    assert plan.ok and plan.runtime == "llamacpp"
    assert "--n-cpu-moe" not in plan.args and _flag(plan.args, "-ngl") == "25"
    gpu = plan.memory.placement[0]
    assert gpu.layers == 24 and gpu.bytes <= gpu.usable


def test_qwen3_30b_a3b_from_the_catalog_offloads_experts_at_32k_on_12gib() -> None:
    plan = make_plan(
        _gpu_host(12), get_catalog_model("qwen3-30b-a3b-instruct-2507:q4_k_m"), context=32_768
    )
    assert plan.ok and plan.runtime == "llamacpp"
    _minimal_expert_offload(plan, "qwen3-30b-a3b-instruct-2507:q4_k_m")
    roomy = make_plan(
        _gpu_host(24), get_catalog_model("qwen3-30b-a3b-instruct-2507:q4_k_m"), context=8192
    )
    assert "--n-cpu-moe" not in roomy.args and _flag(roomy.args, "-ngl") == "49"


def test_qwen25_32b_for_10_users_on_two_24gib_gpus_is_vllm_awq_tensor_parallel_2() -> None:
    plan = make_plan(
        _linux("cuda", [_rtx(0), _rtx(1)]),
        get_catalog_model("qwen2.5-32b-instruct"),
        concurrency=10,
        context=8192,
    )
    assert plan.ok and plan.runtime == "vllm", plan.errors
    assert _flag(plan.args, "--model").endswith("Qwen--Qwen2.5-32B-Instruct-AWQ@main")
    assert _flag(plan.args, "--tensor-parallel-size") == "2"
    assert plan.model.quant == "AWQ" and plan.model.size_bytes == 19_330_000_000
    # by hand: budget floor(0.9 · 24 GiB) = 23,192,823,398; weights 19.33 GB / 2 = 9,665,000,000;
    # reservation: 2,048 batched tokens · 2 · (3 · 27,648 / 2 + 6 · 5,120) = 295,698,432 (more
    # than the sampler's 38.5 · 10 · 152,064), + 600 MiB non-torch + 662 MiB of graphs =
    # 1,559,232,512 → 11,968,590,886 for KV pages ≥ 10 · 8,192 · 131,072 (4 of 8 KV heads)
    gpu = plan.memory.placement[0]
    assert gpu.weights == 9_665_000_000 and gpu.overhead == 1_559_232_512
    assert gpu.kv_cache == 11_968_590_886
    assert any("not Qwen/Qwen2.5-32B-Instruct (bf16)" in r for r in plan.reasons)


def test_llama_70b_for_10_users_on_one_h200_is_vllm_fp8() -> None:
    h200 = _linux(
        "cuda", [Gpu("nvidia", "NVIDIA H200", 0, 143_771 * (1 << 20), compute_capability="9.0")]
    )
    plan = make_plan(h200, get_catalog_model("llama-3.1-70b-instruct"), concurrency=10,
                     context=8192)
    assert plan.ok and plan.runtime == "vllm", plan.errors
    assert "FP8" in _flag(plan.args, "--model") and plan.model.quant == "FP8"
    assert _flag(plan.args, "--tensor-parallel-size") == "1"
    # a 141 GB GPU batches 8,192 tokens: 8,192 · 2 · (3 · 28,672 + 6 · 8,192) = 2,214,592,512
    gpu = plan.memory.placement[0]
    assert gpu.overhead == 2_214_592_512 + 150 * (1 << 20) + 662 * (1 << 20)
    assert any("FP8 (compressed-tensors)" in r for r in plan.reasons)


def test_a_gpu_too_old_for_a_checkpoints_kernels_passes_it_over() -> None:
    # a 16 GiB T4 (Turing, 7.5): the bf16 8B does not fit, FP8's kernels need Ampere (8.0), so
    # AWQ (from 7.5), and the plan says why not the others
    t4 = _linux("cuda", [Gpu("nvidia", "Tesla T4", 0, 15_360 * (1 << 20),
                             compute_capability="7.5")])
    plan = make_plan(t4, get_catalog_model("llama-3.1-8b-instruct"), concurrency=10,
                     context=4096)
    assert plan.ok and plan.runtime == "vllm", plan.errors
    assert plan.model.quant == "AWQ" and "AWQ-INT4" in _flag(plan.args, "--model")
    why = next(r for r in plan.reasons if r.startswith("checkpoint "))
    assert "compute capability 8.0 or newer (this GPU: 7.5)" in why
    assert "meta-llama/Llama-3.1-8B-Instruct (bf16)" in why
    awq = CATALOG["qwen2.5-32b-instruct"].vllm_facts(
        CATALOG["qwen2.5-32b-instruct"].facts("q4_k_m"))[1]
    assert quant_blocker(awq, (7, 0)) is not None and quant_blocker(awq, (8, 6)) is None


def test_quantization_config_is_read_and_checked() -> None:
    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}
    assert quantization_of({"quantization_config": awq}, "x") == ("awq", 4, False)
    fp8 = {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 8, "type": "float"}}}}
    assert quantization_of({"quantization_config": fp8}, "x") == ("compressed-tensors", 8, True)
    assert quantization_of({}, "x") == (None, None, False)
    for hostile in ("$(reboot)", 7, "awq; rm -rf /"):
        with pytest.raises(BadInput) as e:
            quantization_of({"quantization_config": {"quant_method": hostile}}, "hf://a/b")
        assert e.value.field == "model" and "rm -rf" not in str(e.value)[:0]
    config = {
        "num_hidden_layers": 64, "num_attention_heads": 40, "num_key_value_heads": 8,
        "hidden_size": 5120, "intermediate_size": 27648, "vocab_size": 152064,
        "max_position_embeddings": 32768, "torch_dtype": "float16", "quantization_config": awq,
    }
    facts = facts_from_config(config, weights_bytes=19_330_000_000, name="q", source="hf://q/a",
                              hf_repo="q/a", revision=None, local_dir=None)
    assert (facts.hf_quant, facts.hf_quant_bits, facts.feed_forward_length) == ("awq", 4, 27648)
    assert checkpoint_label(facts) == "AWQ 4-bit"


def test_models_list_shows_moe_and_active_parameters() -> None:
    from click.testing import CliRunner
    from rigctl.cli.main import cli

    out = CliRunner().invoke(cli, ["models", "list"]).output
    line = next(x for x in out.splitlines() if "qwen3-30b-a3b-instru" in x)
    assert "MoE, 8 of 128 experts" in line and "30.5B" in line and "3.4B" in line
    dense = next(x for x in out.splitlines() if "qwen3-32b " in x)
    assert "dense" in dense and "32.8B" in dense
    listed = json.loads(CliRunner().invoke(cli, ["models", "list", "--json"]).output)
    qwen = listed["models"]["qwen2.5-32b-instruct"]
    assert qwen["vllm_checkpoints"][0]["repo"] == "Qwen/Qwen2.5-32B-Instruct-AWQ"
    assert listed["models"]["gpt-oss-120b"]["expert_count"] == 128


def test_vllm_grows_max_model_len_while_every_user_still_fits() -> None:
    """With no context, --max-model-len grows as far as the KV pool holds every user at that
    length (a multiple of 256), up to context_max; a given context is kept as it is."""
    h200 = _linux(
        "cuda", [Gpu("nvidia", "NVIDIA H200", 0, 143_771 * (1 << 20), compute_capability="9.0")]
    )
    model = get_catalog_model("llama-3.1-70b-instruct")
    grown = make_plan(h200, model, concurrency=10)
    pool = grown.memory.placement[0].kv_cache
    per_token = 80 * 2 * 8 * 128 * 2  # layers · K and V · KV heads · head_dim · bf16: 320 KiB
    expected = pool // (10 * per_token) // 256 * 256  # 55.8 GiB of pages → 18,176 tokens
    assert _flag(grown.args, "--max-model-len") == str(expected) and grown.context == expected
    assert 8192 < expected < 32768
    assert any(r.startswith(f"context: --max-model-len {expected:,}, grown from 8,192") and
               "what the KV pool holds for every user" in r for r in grown.reasons)
    # the 8B's pool on the same GPU holds far more: context_max (default 32,768) stops it
    small = make_plan(h200, get_catalog_model("llama-3.1-8b-instruct"), concurrency=10)
    assert _flag(small.args, "--max-model-len") == "32768"
    assert any("context_max's default, 32,768" in r for r in small.reasons)
    wider = make_plan(h200, get_catalog_model("llama-3.1-8b-instruct"), concurrency=10,
                      context_max=131072)
    assert int(_flag(wider.args, "--max-model-len")) > 32768
    kept = make_plan(h200, model, concurrency=10, context=8192)
    assert _flag(kept.args, "--max-model-len") == "8192"
