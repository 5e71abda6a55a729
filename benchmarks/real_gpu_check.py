"""The real-GPU check: rigctl's CUDA path on a machine with an NVIDIA GPU, in one run, one report.

On this machine (the controller is the GPU host: ``@local``), in order:

1. ``detect``: rigctl's detection facts read here, the Hardware record;
2. ``plan``: the plan for a fully offloaded model with llama.cpp, and its GPU software section
   (the driver check, the toolkit: ``cuda_toolkit: present``, the one this machine has);
3. ``toolkit``: ``nvcc --version`` against the plan's toolkit and the pre-flight tables;
4. ``build``: llama.cpp (the pinned source) configured with exactly the arguments rigctl's build
   spec gives this GPU and compiled; ``cuobjdump --list-elf`` shows the planned ``sm_XX``;
5. ``serve``: llama-server with the plan's flags, the model fully offloaded (its log shows
   ``CUDA0`` buffers and every layer offloaded), answering with the API key;
6. ``bench``: rigctl's load generator at 1 and 8 users;
7. ``vllm``: vLLM on CUDA with the PyTorch and vLLM this machine already has (versions recorded)
   serving a tiny random Llama, one completion; skipped (recorded) where vLLM is not installed.

Writes one JSON report (``--report``). The model is the Gemma 3 270M GGUF when ``--model`` names
it, else a small Llama GGUF this script writes (no internet needed). Budget: 10 minutes on a
warm machine with nvcc.

``--dry`` runs on any machine (``make test`` does, so this script cannot rot): detection and
planning for real, the tiny GGUF written and read back, and for steps 3-7 the exact commands and
arguments for a recorded H200 host instead of running them.

Usage: python benchmarks/real_gpu_check.py [--dry] [--report PATH] [--source TARBALL]
       [--model GGUF] [--work DIR] [--jobs N]
"""

from __future__ import annotations

from rigctl import _gevent

_gevent.patch()  # before ssl/requests load (pyinfra runs on gevent)

# ruff: noqa: E402
import argparse
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from rigctl.deploys.llamacpp import build_spec_for, server_argv
from rigctl.roles.llamacpp.backends import BACKENDS, TARGETS

from rigctl.bench.load import Client, calibrate_prompt, run_level
from rigctl.detect_host import detect_host
from rigctl.fetch.llamacpp_source import DEFAULT_COMMIT
from rigctl.hardware import Cpu, Gpu, Hardware, OsInfo
from rigctl.hostspec import host_spec
from rigctl.models.resolve import resolve_model
from rigctl.paths import cache_dir
from rigctl.plan import Plan, make_plan
from rigctl.plan.gpu_software import GpuSoftwareWanted
from rigctl.plan.gpu_tables import parse
from rigctl.pyinfra_api import Session, load_inventory

REPO = Path(__file__).resolve().parent.parent
GiB = 1024**3

#: What --dry plans the GPU steps for: an H200 as nvidia-smi reports one (driver 570, CUDA 12.8,
#: toolkit 12.8 installed), so the CUDA arguments are computed by the same code as on a real one.
RECORDED_H200 = Hardware(
    accelerator="cuda",
    gpus=[Gpu("nvidia", "NVIDIA H200", 0, 143771 * 1024**2, "570.124.06", "9.0")],
    memory_bytes=2015 * GiB,
    cpu=Cpu("Intel(R) Xeon(R) Platinum 8480C", 16, 16, ["avx2", "avx512f"]),
    os=OsInfo("Linux", "ubuntu", "22.04", "x86_64", "systemd"),
    disk_free_bytes=64 * GiB,
    cuda_driver_version="12.8",
    cuda_toolkit_version="12.8",
    nvidia_kernel_driver="570.124.06",
)


# --------------------------------------------------------------------------- the model


def tiny_llama_gguf(path: Path, layers: int = 4, embd: int = 256, vocab: int = 512) -> Path:
    """A small real Llama GGUF (random F32 weights, a byte-level SentencePiece-style vocabulary)
    that llama.cpp loads and runs: what the check serves when the Gemma file is not at hand."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    heads, kv_heads, ffn = 8, 4, embd * 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("rigctl real-gpu check tiny llama")
    writer.add_context_length(2048)
    writer.add_embedding_length(embd)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(embd // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)  # all F32
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

    def weight(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(vocab, embd))
    writer.add_tensor("output_norm.weight", np.ones(embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(vocab, embd))
    head_dim = embd // heads
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(embd, embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv_heads * head_dim, embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv_heads * head_dim, embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(embd, embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ffn, embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(ffn, embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(embd, ffn))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --------------------------------------------------------------------------- steps


class Report:
    """Each step's outcome, time and details; written as one JSON document."""

    def __init__(self, dry: bool) -> None:
        self.data: dict[str, Any] = {
            "script": "benchmarks/real_gpu_check.py",
            "dry": dry,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"node": platform.node(), "python": platform.python_version()},
            "steps": {},
        }

    def step(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.monotonic()
        try:
            detail = run()
            outcome = {"ok": bool(detail.pop("ok", True)), **detail}
        except Exception as e:  # noqa: BLE001  (a failed step is recorded; the next ones still run)
            outcome = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]}
        outcome["seconds"] = round(time.monotonic() - start, 1)
        self.data["steps"][name] = outcome
        print(f"[{name}] {'ok' if outcome['ok'] else 'FAILED'} ({outcome['seconds']} s)", flush=True)
        return outcome

    def write(self, path: Path) -> None:
        steps = self.data["steps"].values()
        self.data["ok"] = all(step["ok"] for step in steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")


def detect() -> Hardware:
    with Session(load_inventory("@local")) as session:
        return detect_host(session.active_hosts[0])


def plan_for(hardware: Hardware, model: Path) -> Plan:
    wanted = GpuSoftwareWanted(nvidia_driver="check", cuda_toolkit="present")
    return make_plan(hardware, resolve_model(str(model)), runtime="llamacpp",
                     model_dir=str(model.parent), gpu_software=wanted)


def nvcc_version() -> str | None:
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not Path(nvcc).exists():
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else None


def configure_command(hardware: Hardware, plan: Plan, tree: Path, build: Path) -> tuple[list[str], dict[str, str]]:
    spec = build_spec_for(hardware, plan, DEFAULT_COMMIT, [])
    env = {}
    for name, fragment in BACKENDS[spec.backend].env.items():
        env[name] = subprocess.run(["sh", "-c", f"echo {fragment}"], capture_output=True,
                                   text=True, check=False).stdout.strip()
    return ["cmake", "-S", str(tree), "-B", str(build), *spec.cmake_args], env


def unpack_source(tarball: Path, work: Path) -> Path:
    target = work / "src"
    if not (target / "CMakeLists.txt").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(target, filter="data")
        roots = [p for p in target.iterdir() if p.is_dir()]
        if len(roots) == 1 and (roots[0] / "CMakeLists.txt").exists():
            return roots[0]
    return target


def wait_health(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url}/health did not answer in {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="plan and print, compile and run nothing")
    parser.add_argument("--report", type=Path, default=Path(os.environ.get("OUT", ".")) / "real_gpu_report.json")
    parser.add_argument("--source", type=Path, default=cache_dir() / "sources" / f"llama.cpp-{DEFAULT_COMMIT}.tar.gz")
    parser.add_argument("--model", type=Path, help="a GGUF to serve (default: a tiny one written here)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rigctl-real-gpu"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 4)
    options = parser.parse_args()
    report = Report(options.dry)
    work: Path = options.work
    work.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}

    def model_step() -> dict[str, Any]:
        model = options.model or tiny_llama_gguf(work / "tiny-llama.gguf")
        state["model"] = model
        facts = resolve_model(str(model))
        return {"path": str(model), "layers": getattr(facts, "n_layers", None),
                "bytes": model.stat().st_size}

    def detect_step() -> dict[str, Any]:
        hardware = detect()
        state["detected"] = hardware
        state["hardware"] = RECORDED_H200 if options.dry else hardware
        return {"hardware": hardware.to_json(), "planned_for": "recorded H200" if options.dry else "this machine",
                "ok": options.dry or hardware.accelerator == "cuda"}

    def plan_step() -> dict[str, Any]:
        plan = plan_for(state["hardware"], state["model"])
        state["plan"] = plan
        return {"plan": plan.to_json(), "ok": plan.ok and bool(plan.memory.gpu_layers)}

    report.step("model", model_step)
    report.step("detect", detect_step)
    if "hardware" not in state or report.step("plan", plan_step)["ok"] is False:
        report.write(options.report)
        return 1
    hardware, plan = state["hardware"], state["plan"]

    def toolkit_step() -> dict[str, Any]:
        planned = plan.gpu_software.toolkit.version if plan.gpu_software and plan.gpu_software.toolkit else None
        found = hardware.cuda_toolkit_version if options.dry else nvcc_version()
        return {"nvcc": found, "planned": planned, "ok": found is not None and parse(found) == parse(planned)}

    build_dir = work / "build"

    def build_step() -> dict[str, Any]:
        tree = work / "src" if options.dry else unpack_source(options.source, work)
        command, env = configure_command(hardware, plan, tree, build_dir)
        compile_command = ["cmake", "--build", str(build_dir), "--config", "Release", "-j", str(options.jobs),
                           "--target", *TARGETS]
        detail: dict[str, Any] = {"configure": shlex.join(command), "env": env, "compile": shlex.join(compile_command)}
        arch = next((a.split("=", 1)[1] for a in command if a.startswith("-DCMAKE_CUDA_ARCHITECTURES=")), None)
        detail["cuda_architectures"] = arch
        if options.dry:
            return {**detail, "ok": arch is not None}
        started = time.monotonic()
        subprocess.run(command, check=True, env={**os.environ, **env}, capture_output=True)
        subprocess.run(compile_command, check=True, capture_output=True)
        detail["compile_seconds"] = round(time.monotonic() - started, 1)
        server = build_dir / "bin" / "llama-server"
        elf = subprocess.run(["cuobjdump", "--list-elf", str(server)], capture_output=True, text=True, check=False)
        detail["cuobjdump"] = elf.stdout.splitlines()[:20]
        detail["ok"] = bool(arch) and all(f"sm_{a}" in elf.stdout for a in arch.split(";"))
        return detail

    port = 18080
    key_file = work / "api-key"
    key_file.write_text(secrets.token_hex(16) + "\n")
    key = key_file.read_text().strip()
    url = f"http://127.0.0.1:{port}"

    def serve_command() -> list[str]:
        spec = host_spec("local", {"model": str(state["model"]), "listen": "127.0.0.1", "port": port})
        argv = server_argv(plan, spec, str(key_file), prefix=str(work))
        argv[0] = str(build_dir / "bin" / "llama-server")
        argv[argv.index("-m") + 1] = str(state["model"])  # the file itself, whatever its name
        return argv

    def serve_and_bench() -> None:
        argv = serve_command()
        if options.dry:
            report.step("serve", lambda: {"command": shlex.join(argv), "ok": "-ngl" in argv})
            report.step("bench", lambda: {"levels": [1, 8], "ok": True})
            return
        log_path = work / "llama-server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            def serve() -> dict[str, Any]:
                wait_health(url, process, 120)
                text = log_path.read_text(errors="replace")
                offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", text)
                answer = requests.post(f"{url}/v1/chat/completions", timeout=60,
                                       headers={"Authorization": f"Bearer {key}"},
                                       json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8})
                refused = requests.post(f"{url}/v1/chat/completions", timeout=60, json={"messages": []})
                return {"command": shlex.join(argv),
                        "offloaded": offloaded.group(0) if offloaded else None,
                        "cuda_buffers": re.findall(r"CUDA0 \w+ buffer size =\s+[\d.]+ MiB", text)[:4],
                        "answered": answer.status_code, "refused_without_key": refused.status_code,
                        "ok": bool(offloaded and offloaded.group(1) == offloaded.group(2))
                        and answer.status_code == 200 and refused.status_code == 401}

            def bench() -> dict[str, Any]:
                client = Client(url, key)
                prompt, tokens = calibrate_prompt(client, 256)
                levels = [run_level(client, prompt, concurrency=n, max_tokens=64, duration_s=10).__dict__
                          for n in (1, 8)]
                return {"prompt_tokens": tokens, "levels": levels,
                        "ok": all(level["errors"] == 0 and level["aggregate_tps"] > 0 for level in levels)}

            if report.step("serve", serve)["ok"]:
                report.step("bench", bench)
        finally:
            process.terminate()
            process.wait(timeout=30)

    def vllm_step() -> dict[str, Any]:
        probe = subprocess.run(
            [sys.executable, "-c", "import torch, vllm; print(torch.__version__, vllm.__version__, torch.cuda.is_available())"],
            capture_output=True, text=True, check=False,
        )
        if probe.returncode != 0:
            return {"skipped": "vLLM is not installed here", "ok": options.dry}
        torch_version, vllm_version, cuda = probe.stdout.split()
        detail: dict[str, Any] = {"torch": torch_version, "vllm": vllm_version, "torch_cuda": cuda == "True"}
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_llama import make_tiny_llama

        model_dir = make_tiny_llama(work / "tiny-hf")
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                   "--host", "127.0.0.1", "--port", "18081", "--api-key", key, "--max-model-len", "1024",
                   "--gpu-memory-utilization", "0.2"]
        detail["command"] = shlex.join(command).replace(key, "<key>")
        if options.dry:
            return detail
        log_path = work / "vllm.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_health("http://127.0.0.1:18081", process, 300)
            answer = requests.post("http://127.0.0.1:18081/v1/chat/completions", timeout=60,
                                   headers={"Authorization": f"Bearer {key}"},
                                   json={"model": str(model_dir), "max_tokens": 8,
                                         "messages": [{"role": "user", "content": "Hello"}]})
            detail["answered"] = answer.status_code
            detail["ok"] = answer.status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=60)
        return detail

    report.step("toolkit", toolkit_step)
    if report.step("build", build_step)["ok"]:
        serve_and_bench()
    report.step("vllm", vllm_step)
    report.write(options.report)
    print(f"report: {options.report}")
    return 0 if report.data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
