"""The CLI frame: every command's help, exit codes, JSON output."""

from __future__ import annotations

import json

import pytest
from conftest import rigctl

COMMANDS = ["provision", "detect", "plan", "bench", "status", "rollout", "verify", "models", "lab"]
LAB_COMMANDS = ["up", "down", "status", "inventory"]


def test_help_lists_every_command() -> None:
    result = rigctl("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize(
    "command", [*COMMANDS, "models list", *[f"lab {sub}" for sub in LAB_COMMANDS]]
)
def test_every_subcommand_has_help(command: str) -> None:
    result = rigctl(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: rigctl" in result.stdout


def test_usage_errors_exit_2_with_one_line() -> None:
    for argv in (["no-such-command"], ["lab", "up", "0"], ["detect"]):
        result = rigctl(*argv)
        assert result.returncode == 2, argv
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("rigctl: error: ")


def test_missing_inventory_file_exit_2() -> None:
    result = rigctl("detect", "inventories/no-such-file.py")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "rigctl: error: field inventory: inventory file not found: inventories/no-such-file.py"
    )


def test_detect_local_json_parses() -> None:
    result = rigctl("detect", "@local", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    local = document["hosts"]["@local"]
    assert local["accelerator"] in ("cuda", "rocm", "metal", "vulkan", "cpu")
    assert local["memory_bytes"] > 0
    assert local["cpu"]["cores"] >= 1
    assert local["os"]["system"] == "Linux"
    assert document["failed"] == {}


def test_lab_status_json_parses() -> None:
    result = rigctl("lab", "status", "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout)["hosts"], list)


RTX4090_HOST = {
    "accelerator": "cuda",
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 4090",
            "index": 0,
            "memory_bytes": 24564 * 1024 * 1024,
            "driver": "580.65.06",
            "compute_capability": "8.9",
        }
    ],
    "memory_bytes": 64 * 1024**3,
    "cpu": {"model": "AMD Ryzen 9 7950X", "cores": 16, "threads": 32, "flags": ["avx2", "avx512f"]},
    "os": {
        "system": "Linux",
        "distro": "ubuntu",
        "version": "24.04",
        "arch": "x86_64",
        "init": "systemd",
    },
    "disk_free_bytes": 500 * 1024**3,
    "cuda_driver_version": "13.0",
    "nvidia_kernel_driver": "580.65.06",
}


#: the least a hand-written --hardware entry holds (the README's list): no cpu.threads, no
#: cuda_driver_version, no warnings: what detection adds is defaulted
MINIMUM_HOST = {
    "accelerator": "cuda",
    "gpus": [{"vendor": "nvidia", "name": "NVIDIA GeForce RTX 4090", "memory_bytes": 24 << 30,
              "driver": "550.54.15", "compute_capability": "8.9", "index": 0}],
    "memory_bytes": 64 << 30,
    "cpu": {"model": "AMD Ryzen 9 7950X", "cores": 16, "flags": ["avx2", "avx512f"]},
    "os": {"system": "Linux", "distro": "debian", "version": "12", "arch": "x86_64",
           "init": "systemd"},
    "disk_free_bytes": 500 << 30,
}


def test_plan_offline_from_a_minimum_hand_written_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hardware = tmp_path / "rig.json"
    hardware.write_text(json.dumps(MINIMUM_HOST))
    result = rigctl("plan", "--hardware", str(hardware), "--model", "llama-3.1-8b-instruct", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["hosts"]["rig"]
    assert plan["ok"] and plan["args"][plan["args"].index("-t") + 1] == "16"  # threads: the cores
    missing = {**MINIMUM_HOST, "cpu": {"model": "x", "flags": []}}  # no cores: refused, said so
    hardware.write_text(json.dumps(missing))
    refused = rigctl("plan", "--hardware", str(hardware), "--model", "llama-3.1-8b-instruct")
    assert refused.returncode == 2 and "cores" in refused.stderr


def test_plan_offline_from_detect_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hardware = tmp_path / "hosts.json"
    hardware.write_text(json.dumps({"hosts": {"rig-4090": RTX4090_HOST}}))
    result = rigctl(
        "plan", "--hardware", str(hardware), "--model", "llama-3.1-70b-instruct:q4_k_m", "--json"
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["hosts"]["rig-4090"]
    assert plan["runtime"] == "llamacpp"
    ngl = int(plan["args"][plan["args"].index("-ngl") + 1])
    assert 0 < ngl < 80  # a partial offload, never -ngl 999
    assert plan["reasons"] and plan["memory"]["placement"]

    result = rigctl(
        "plan",
        "--hardware",
        str(hardware),
        "--model",
        "llama-3.1-8b-instruct",
        "--concurrency",
        "10",
        "--json",
    )
    assert json.loads(result.stdout)["hosts"]["rig-4090"]["runtime"] == "vllm"


def test_plan_grows_the_context_up_to_context_max(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hardware = tmp_path / "hosts.json"
    hardware.write_text(json.dumps({"hosts": {"rig-4090": RTX4090_HOST}}))
    base = ["plan", "--hardware", str(hardware), "--model", "llama-3.1-8b-instruct:q4_k_m"]

    def planned(*argv: str) -> dict:  # type: ignore[type-arg]
        result = rigctl(*base, *argv, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["hosts"]["rig-4090"]  # type: ignore[no-any-return]

    def context(plan: dict) -> int:  # type: ignore[type-arg]
        return int(plan["args"][plan["args"].index("-c") + 1])

    assert context(planned()) == 32_768  # the default cap
    # 128k: 16 GiB of f16 KV next to 4.6 GiB of weights fits a 24 GiB card, so it grows that far
    wide = planned("--context-max", "131072")
    assert context(wide) == 131_072 and "-ctk" not in wide["args"]
    assert context(planned("--context-max", "131072", "--context", "4096")) == 4096
    assert context(planned("--context-max", "16384")) == 16_384


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "no-such-model"], "field model: unknown model 'no-such-model'"),
        (["--model", "gemma-3-270m", "--context", "-5"], "field context:"),
        (["--model", "gemma-3-270m", "--concurrency", "0"], "field concurrency:"),
        (["--model", "gemma-3-270m", "--context-max", "12"], "field context_max:"),
        (
            ["--model", "gemma-3-270m", "--runtime", "vllm"],
            "field runtime: vLLM's CPU build needs avx2",
        ),
    ],
)
def test_plan_bad_input_is_one_line_exit_2(tmp_path, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    hardware = tmp_path / "cpu.json"
    cpu_host = dict(RTX4090_HOST, accelerator="cpu", gpus=[], cuda_driver_version=None, nvidia_kernel_driver=None)
    # An old x86 CPU without AVX2: not even vLLM's CPU build runs there.
    cpu_host["cpu"] = dict(cpu_host["cpu"], flags=["sse4_2"])
    hardware.write_text(json.dumps({"hosts": {"box": cpu_host}}))
    result = rigctl("plan", "--hardware", str(hardware), *argv)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("rigctl: error: host box: ") and message in lines[0]
    ), lines


def test_models_list_json() -> None:
    result = rigctl("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    catalog = json.loads(result.stdout)["models"]
    assert "llama-3.1-70b-instruct" in catalog and "gemma-3-270m" in catalog
    exact = catalog["gemma-3-270m"]["gguf"][0]
    assert exact["size_bytes"] == 253_113_024 and exact["sha256"].startswith("a5fd3b62")
    assert catalog["llama-3.1-8b-instruct"]["parameters"] == 8_030_261_248
    assert catalog["llama-3.1-8b-instruct"]["expert_count"] == 0
    listed = rigctl("models", "list", env={"COLUMNS": "250"})
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if "llama-3.1-70b-instruct" in line)
    assert "dense" in row and "70.6B" in row


def test_bench_bad_levels_exit_2() -> None:
    result = rigctl("bench", "@local", "--concurrency", "0,x")
    assert result.returncode == 2
    assert result.stderr.startswith("rigctl: error: field concurrency:")


def test_prometheus_parsing() -> None:
    from rigctl.status import parse_prometheus

    text = "# HELP llamacpp:tokens_predicted_total x\n# TYPE c counter\nllamacpp:tokens_predicted_total 128\nllamacpp:kv_cache_usage_ratio 0.25\nbad line\n"
    assert parse_prometheus(text) == {
        "llamacpp:tokens_predicted_total": 128.0,
        "llamacpp:kv_cache_usage_ratio": 0.25,
    }


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts_and_completions(shell: str) -> None:
    """Click's completion, as the README documents it: the script for each shell, and the
    commands and options it completes."""
    script = rigctl(env={"_RIGCTL_COMPLETE": f"{shell}_source"})
    assert script.returncode == 0 and "_rigctl_completion" in script.stdout
    words = rigctl(env={"_RIGCTL_COMPLETE": "bash_complete", "COMP_WORDS": "rigctl r",
                        "COMP_CWORD": "1"})
    assert {"plain,remove", "plain,rollback", "plain,rollout"} <= set(words.stdout.split())
    options = rigctl(env={"_RIGCTL_COMPLETE": "bash_complete", "COMP_WORDS": "rigctl logs --l",
                          "COMP_CWORD": "2"})
    assert {"plain,--limit", "plain,--lines"} <= set(options.stdout.split())
