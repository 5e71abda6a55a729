"""llama.cpp's GPU backends compiled for real on lab hosts, through ``rigctl provision``.

Vulkan, compiled and served: a Debian trixie lab host whose only Vulkan device is Mesa's
lavapipe (a real Vulkan implementation computing on the CPU) and host data
``vulkan_cpu_devices: true`` is planned for Vulkan; rigctl installs the Vulkan SDK and Mesa's
drivers (the ``vulkan`` role), compiles llama.cpp with ``-DGGML_VULKAN=ON`` and serves the Gemma 3
270M model through the Vulkan backend. The journal must show the device is llvmpipe, every layer
offloaded and the model's buffers on ``Vulkan0``, so the test cannot pass on the CPU backend
(rigctl's own smoke stage checks the same: ``rigctl.health.offload_problem``).

Tens of minutes on 2 cores (the shaders): ``make test-gpu-builds`` runs this module, not
``make test``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import rigctl

from rigctl.lab import LAB_MODEL_FILE, Lab, LabHost
from rigctl.lab.model import place_model
from rigctl.paths import cache_dir
from rigctl.pyinfra_api import Session, load_inventory, run_command

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.gpu_build]

UNIT = "rigctl-llama-server"
SERVER = "/opt/rigctl/llamacpp/current/bin/llama-server"


@pytest.fixture(scope="module")
def vulkan_host(
    lab: Lab, trixie_host: LabHost, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """The trixie host given vulkaninfo and Mesa by rigctl's ``vulkan`` role (what a host with a
    GPU has from its driver), then provisioned with ``vulkan_cpu_devices``."""
    from rigctl.roles import vulkan

    path = place_model(lab.models_dir / LAB_MODEL_FILE)
    work = tmp_path_factory.mktemp("vulkan")
    cache = work / "rigctl-cache"
    cache.mkdir()
    if (cache_dir() / "sources").is_dir():
        shutil.copytree(cache_dir() / "sources", cache / "sources")
    data = dict(
        lab.host_data(trixie_host),
        runtime="llamacpp",
        vulkan_cpu_devices=True,
        model_mirrors=[str(path)],
    )
    inventory = work / "vulkan.py"
    inventory.write_text(f"hosts = [({trixie_host.name!r}, {data!r})]\n")
    with Session(load_inventory(str(inventory))) as session:
        session.prepare(vulkan.install)
        session.run()
        assert session.summary().exit_code == 0
    env = {"RIGCTL_CACHE_DIR": str(cache)}
    result = rigctl("provision", str(inventory), "--json", timeout=5400, env=env)
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    return {
        "host": trixie_host,
        "inventory": inventory,
        "env": env,
        "outcome": json.loads(result.stdout)["hosts"][trixie_host.name],
    }


def _journal(inventory: Path, name: str) -> str:
    with Session(load_inventory(str(inventory))) as session:
        ok, out, err = run_command(
            session.host(name), f"journalctl -u {UNIT}.service --no-pager -o cat"
        )
    assert ok, err
    return out


def test_vulkan_build_serves_on_lavapipe(vulkan_host: dict) -> None:
    outcome = vulkan_host["outcome"]
    assert outcome["status"] == "changed" and outcome["runtime"] == "llamacpp"
    assert "-vulkan-" in outcome["build"]
    assert outcome["smoke"]["ok"] and outcome["smoke"]["tokens_per_second"] > 0
    log = _journal(vulkan_host["inventory"], vulkan_host["host"].name)
    # llama.cpp's INFO line naming the device (its "ggml_vulkan: 0 = ..." list is DEBUG-level)
    assert re.search(r"using device Vulkan0 \(llvmpipe", log), log[-3000:]
    offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", log)
    assert offloaded and offloaded.group(1) == offloaded.group(2), log[-3000:]
    assert re.search(r"Vulkan0 model buffer size", log), log[-3000:]


def test_vulkan_host_benches_and_verifies(vulkan_host: dict) -> None:
    inventory, env = str(vulkan_host["inventory"]), vulkan_host["env"]
    bench = rigctl(
        # lavapipe processes prompts at a few tokens a second on 2 cores: a short prompt
        "bench", inventory, "--concurrency", "1", "--duration", "1", "--prompt-tokens", "32",
        "--max-tokens", "8", "--json", env=env, timeout=1200,
    )
    assert bench.returncode == 0, bench.stderr[-3000:]
    verify = rigctl("verify", inventory, "--json", env=env, timeout=900)
    assert verify.returncode == 0, verify.stderr[-3000:] + verify.stdout[-3000:]


def test_a_moe_model_keeps_the_planned_experts_on_the_cpu_and_the_rest_on_vulkan(
    vulkan_host: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The tiny real MoE (tests/tiny_moe.py) planned for a Vulkan GPU too small for all its
    experts: llama-server on lavapipe, run with exactly the plan's arguments, must put the routed
    experts of the first N layers (the plan's --n-cpu-moe N) in host memory and everything else
    on Vulkan0, as its own loader reports (``-v``: "tensor ... buffer type overridden to CPU"),
    with the Vulkan0 model buffer the size the plan put there."""
    import dataclasses

    from tiny_moe import write_tiny_moe

    from rigctl.detect_host import detect_host
    from rigctl.models.gguf_header import read_local_header
    from rigctl.plan import make_plan
    from rigctl.plan.memory import GPU_MARGIN, GPU_RUNTIME_RESERVE
    from rigctl.pyinfra_api import files

    (model,) = write_tiny_moe(tmp_path_factory.mktemp("vulkan-moe") / "tiny-qwen3moe.gguf")
    facts = read_local_header(model)
    split = facts.weight_split
    remote = "/var/lib/rigctl/models/tiny-qwen3moe.gguf"
    name = vulkan_host["host"].name
    with Session(load_inventory(str(vulkan_host["inventory"]))) as session:
        session.prepare(lambda: files.put(src=str(model), dest=remote, mode="0644"))
        session.run()
        assert session.summary().exit_code == 0
        hardware = detect_host(session.host(name))
    assert hardware.accelerator == "vulkan"
    roomy = make_plan(hardware, facts, context=2048, runtime="llamacpp")
    assert "--n-cpu-moe" not in roomy.args  # lavapipe's memory is the host's: everything fits
    # a GPU 2.5 layers' experts short of the whole model
    whole = roomy.memory.placement[0].bytes
    reserve = GPU_RUNTIME_RESERVE["vulkan"] + GPU_MARGIN
    small = whole + reserve - int(2.5 * split.expert_bytes[0])
    gpu = dataclasses.replace(hardware.gpus[0], memory_bytes=small)
    plan = make_plan(dataclasses.replace(hardware, gpus=[gpu]), facts, context=2048,
                     runtime="llamacpp")
    n = int(plan.args[plan.args.index("--n-cpu-moe") + 1])
    assert n == 3, plan.reasons
    args = list(plan.args)
    args[args.index("-m") + 1] = remote
    # the plan's environment too: it is what lets llama.cpp use lavapipe, a CPU-type device
    env = [f"{k}={v}" for k, v in plan.env.items()]
    argv = " ".join(shlex.quote(a) for a in ["env", *env, SERVER, *args, "-v", "--host",
                                              "127.0.0.1", "--port", "18182"])
    script = (
        f"{argv} > /tmp/moe.log 2>&1 & pid=$!; up=0; for i in $(seq 1 600); do "
        "curl -fs http://127.0.0.1:18182/health >/dev/null && { up=1; break; }; sleep 0.5; done; "
        "kill $pid; wait $pid 2>/dev/null; echo UP=$up; cat /tmp/moe.log"
    )
    with Session(load_inventory(str(vulkan_host["inventory"]))) as session:
        ok, out, err = run_command(session.host(name), script)
    assert ok and "UP=1" in out, (out + err)[-3000:]
    buffers = "\n".join(line for line in out.splitlines()
                        if "buffer size" in line or "overridden" in line)
    # host memory: the CPU's buffer types, or Vulkan's pinned host buffer (Vulkan_Host), which
    # the loader prefers for a CPU override when a Vulkan device is up
    overridden = [
        (int(m[1]), m[2], m[3])
        for m in re.finditer(r"tensor blk\.(\d+)\.(ffn_\w+_exps)\.weight \([^)]*\) buffer type "
                             r"overridden to (\S+)", out)
    ]
    assert all(buft.startswith("CPU") or buft.endswith("_Host") for _, _, buft in overridden), buffers
    assert {(layer, t) for layer, t, _ in overridden} == {
        (layer, t) for layer in range(n) for t in ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps")
    }, buffers
    vulkan = re.search(r"Vulkan0 model buffer size =\s+([0-9.]+) MiB", out)
    assert vulkan, buffers
    planned = plan.memory.placement[0].weights
    assert abs(float(vulkan[1]) * (1 << 20) - planned) / planned < 0.1, (buffers, planned)


def test_the_plan_counts_what_llama_server_allocates_on_vulkan(vulkan_host: dict) -> None:
    """benchmarks/plan_accuracy.py on the Vulkan host: the plan's weights, KV cache and compute
    buffers (on Vulkan0 and in host memory) against llama-server's own buffer report, each
    within 0.9-1.1. Lavapipe refuses tensors over its 128 MiB maxStorageBufferRange, so Gemma 3
    270M's tied 170 MiB head stays in host memory although -ngl offloads its layer: detection
    reads the limit (VulkanLimits) and the plan keeps the head there (memory.head_too_large)."""
    from conftest import plan_accuracy_module

    accuracy = plan_accuracy_module()
    with Session(load_inventory(str(vulkan_host["inventory"]))) as session:
        target = session.host(vulkan_host["host"].name)
        rows = accuracy.measure(target, [2048], [1, 4], 18184)
    table = "\n".join(
        f"{r.context} {r.slots} {r.part} {r.planned} {r.measured} {r.ratio:.3f} [{r.report}]" for r in rows
    )
    print(table)
    parts = [r for r in rows if r.part != "RSS"]
    assert len(parts) == 6 and all(r.measured > 0 for r in parts), table
    assert all(0.9 <= r.ratio <= 1.1 for r in parts), table


# --------------------------------------------------------------------------- CUDA

#: Two trixie hosts that detect as an RTX 4090 (the nvidia-smi TEST DOUBLE): the first compiles,
#: the second installs the first's build (same build key) with only the CUDA runtime libraries.
CUDA_INDEXES = (21, 22)
NVIDIA_SMI_DOUBLE = Path(__file__).parent / "doubles" / "nvidia-smi"


@pytest.fixture(scope="module")
def cuda_hosts(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from conftest import forget_known_hosts

    from rigctl.pyinfra_api import files

    hosts = [lab.up_host(index, release="trixie") for index in CUDA_INDEXES]
    forget_known_hosts()
    path = place_model(lab.models_dir / LAB_MODEL_FILE)
    work = tmp_path_factory.mktemp("cuda")
    cache = work / "rigctl-cache"
    cache.mkdir()
    if (cache_dir() / "sources").is_dir():
        shutil.copytree(cache_dir() / "sources", cache / "sources")
    entries = [
        (
            host.name,
            dict(
                lab.host_data(host),
                runtime="llamacpp",
                # a container shows no loaded NVIDIA module whatever nvidia-smi says
                nvidia_driver="assume-present",
                model_mirrors=[str(path)],
            ),
        )
        for host in hosts
    ]
    inventory = work / "cuda.py"
    inventory.write_text(f"hosts = {entries!r}\n")
    with Session(load_inventory(str(inventory))) as session:
        session.prepare(
            lambda: files.put(src=str(NVIDIA_SMI_DOUBLE), dest="/usr/local/bin/nvidia-smi", mode="0755")
        )
        session.run()
        assert session.summary().exit_code == 0
    env = {"RIGCTL_CACHE_DIR": str(cache)}
    result = rigctl("provision", str(inventory), "--json", timeout=5400, env=env)
    return {"hosts": hosts, "inventory": inventory, "env": env, "result": result}


def test_cuda_build_for_sm_89_is_compiled_kept_and_reused_then_fails_readiness(cuda_hosts: dict) -> None:
    result = cuda_hosts["result"]
    # no GPU here: the provision must fail, at the readiness stage, with the CUDA error
    assert result.returncode == 1, result.stderr[-4000:]
    outcome = json.loads(result.stdout)["hosts"]
    first, second = (outcome[host.name] for host in cuda_hosts["hosts"])
    assert "-cuda-" in first["build"] and first["build"] == second["build"]
    assert any(op.endswith("llama.cpp: build " + first["build"]) for op in first["changed_ops"])
    assert any("install prebuilt" in op for op in second["changed_ops"])
    assert not any("llama.cpp: build " in op for op in second["changed_ops"])
    for host in (first, second):
        assert host["status"] == "failed"
        said = host["error"] + "\n".join(host.get("journal", []))
        assert re.search(r"CUDA|libcuda", said), said[-3000:]
    # the binary carries device code for compute capability 8.9
    with Session(load_inventory(str(cuda_hosts["inventory"]))) as session:
        ok, out, err = run_command(
            session.host(cuda_hosts["hosts"][0].name),
            "cuobjdump --list-elf /opt/rigctl/llamacpp/current/bin/llama-server",
        )
    assert ok, err
    assert "sm_89" in out and "sm_80" not in out


# --------------------------------------------------------------------------- GPU toolkit roles

#: A trixie host of their own for the two SDK roles' scenarios (gigabytes from Debian's mirror).
TOOLKIT_ROLES_INDEX = 25


@pytest.mark.parametrize("role", ["cuda_toolkit", "rocm"])
def test_gpu_toolkit_role_converges_idempotent_and_passes_its_tests(
    role: str, lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The ``cuda_toolkit`` and ``rocm`` roles' Molecule scenarios, under plain pytest as
    tests/test_roles.py runs the others: Debian 13's own CUDA toolkit and ROCm installed by
    rigctl, again with no change, and each scenario's testinfra tests passing (nvcc writes
    sm_89 device code, hipcc gfx1100)."""
    from conftest import forget_known_hosts
    from role_scenarios import changed_ops, converge, instance_config, verify

    target = lab.up_host(TOOLKIT_ROLES_INDEX, release="trixie")
    forget_known_hosts()
    config = instance_config(lab, target, tmp_path_factory.mktemp(role) / "instances.yml")
    first = converge(role, config, timeout=3600)
    assert first["ok"], first
    second = converge(role, config)
    assert second["ok"] and changed_ops(second) == [], (
        f"{role} is not idempotent: {changed_ops(second)}"
    )
    result = verify(role, config)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
