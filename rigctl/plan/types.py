"""The planner's output: :class:`Plan` and the records inside it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rigctl.plan.gpu_software import GpuSoftware

RUNTIMES = ("ollama", "llamacpp", "vllm")
RUNTIME_CHOICES = ("auto", *RUNTIMES)
PREFER_CHOICES = ("simple", "control", "throughput")

# The program each runtime's `args` follow.
EXECUTABLES = {
    "llamacpp": "llama-server",
    "vllm": "python -m vllm.entrypoints.openai.api_server",
    "ollama": "ollama",
}


@dataclass
class PlannedModel:
    """Which model file(s) the runtime serves, and how the runtime names it."""

    name: str
    quant: str  # "Q4_K_M" for GGUF, "BF16" for safetensors
    format: str  # gguf | safetensors
    source: str  # as given: catalog hf://…, https://…, a local path, or an HF repo id
    urls: list[str]  # download URLs (https), first shard first; empty for a local file
    size_bytes: int  # download size, all shards
    size_exact: bool
    sha256: str | None
    runtime_ref: str  # what the runtime loads: a path on the host, an Ollama name, a repo id


@dataclass
class DevicePlacement:
    """What one device holds under this plan."""

    device: str  # cuda:0, rocm:1, metal:0, vulkan:0, cpu
    bytes: int  # weights + kv_cache + overhead
    capacity: int  # the device's memory (VRAM, GPU share of unified memory, or RAM)
    usable: int  # capacity less the runtime's own context and a safety margin
    weights: int = 0
    kv_cache: int = 0
    overhead: int = 0  # compute buffers / activations
    layers: int = 0  # repeating layers placed here (llama.cpp)

    @property
    def fits(self) -> bool:
        return self.bytes <= self.usable


@dataclass
class MemoryPlan:
    """The memory arithmetic behind a plan."""

    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    kv_cache_type: str  # K's: f16 | q8_0 | q4_0 (GGUF runtimes), auto | fp8 (vLLM)
    context_per_slot: int
    slots: int
    placement: list[DevicePlacement]
    gpu_layers: int | None = None  # llama.cpp -ngl; None for vLLM
    n_layers: int = 0
    v_cache_type: str | None = None  # V's type when the runtime sets it apart (llama.cpp -ctv)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def available_bytes(self) -> int:
        return sum(p.usable for p in self.placement)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_bytes"] = self.total_bytes
        data["available_bytes"] = self.available_bytes
        for entry, placement in zip(data["placement"], self.placement, strict=True):
            entry["fits"] = placement.fits
        return data


@dataclass
class Plan:
    """What to run on one host, with which flags, and why.

    ``args`` follow the program in ``executable`` (``llama-server``, vLLM's OpenAI server,
    ``ollama``); ``env`` is the service environment (Ollama's settings and vLLM's CPU KV
    space live there).
    ``errors`` non-empty means this host cannot run the plan.
    """

    runtime: str
    model: PlannedModel
    args: list[str]
    env: dict[str, str]
    memory: MemoryPlan
    concurrency: int
    context: int  # per request / per slot
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: the driver's handling and the toolkit a GPU build needs; None on CPU and Metal
    gpu_software: GpuSoftware | None = None

    @property
    def executable(self) -> str:
        return EXECUTABLES[self.runtime]

    @property
    def flags(self) -> list[str] | dict[str, str]:
        """Return the runtime's settings: argv for llama-server/vLLM, env for Ollama."""
        return dict(self.env) if self.runtime == "ollama" else list(self.args)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (what ``rigctl plan --json`` prints)."""
        return {
            "runtime": self.runtime,
            "executable": self.executable,
            "model": asdict(self.model),
            "args": list(self.args),
            "env": dict(self.env),
            "flags": self.flags,
            "memory": self.memory.to_json(),
            "concurrency": self.concurrency,
            "context": self.context,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "gpu_software": self.gpu_software.to_json() if self.gpu_software else None,
            "ok": self.ok,
        }
