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
"""

from __future__ import annotations

import pytest
from test_plan import GiB, _linux, _rtx

from rigctl.errors import BadInput
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


def test_vllm_claims_its_share_of_the_gpu_and_the_others_get_the_rest() -> None:
    hardware = _linux("cuda", [_rtx(0, 24)])
    entries = [
        ModelEntry("chat", resolve_model("llama-3.1-8b-instruct"), concurrency=10, context=8192),
        ModelEntry("small", resolve_model("gemma-3-4b-it:q4_k_m"), context=8192),
    ]
    joint = plan_models(hardware, entries)
    chat, small = joint.plans["chat"], joint.plans["small"]
    assert chat.runtime == "vllm" and small.runtime == "llamacpp"
    assert joint.loaded[0] == "chat"  # vLLM is loaded with its unit, never swapped
    claimed = _footprint(chat, hardware)["cuda:0"]
    assert claimed >= int(24 * GiB * 0.9)
    # what is left beside vLLM's 90%: 2.4 GiB less a CUDA context and the margin
    assert _gpu_bytes(small) <= 24 * GiB - claimed - RESERVE - GPU_MARGIN
    assert int(_flag(small, "-ngl") or 0) < 35  # not all of Gemma's layers, as alone


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
    ],
)
def test_bad_models_host_data_names_the_host_and_the_field(data: dict, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        check_host_data("gpu1", data)
        host_spec("gpu1", data)
    assert str(caught.value).startswith("host gpu1: "), caught.value
    assert message in str(caught.value)


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
