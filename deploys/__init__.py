"""Deploys: a host's plan served by one runtime, composed from the roles.

``llamacpp.serve``, ``ollama.serve`` and ``vllm.serve`` take the same inputs (the host's spec, hardware, plan and
the files the controller fetched) and return a :class:`Served`; ``rigctl.provision`` picks one by
the plan's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Where every runtime's model files live on a host.
MODEL_DIR = "/var/lib/rigctl/models"

#: Device nodes a GPU backend needs inside a unit's closed device policy (DeviceAllow=).
GPU_DEVICES: dict[str, list[str]] = {
    "cuda": [
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "char-nvidia*",
    ],
    "rocm": ["/dev/kfd", "/dev/dri", "char-drm"],
    "vulkan": ["/dev/dri", "char-drm"],
}

#: Groups that own GPU device nodes on Debian/Ubuntu (upstream installers add their users too).
GPU_GROUPS: dict[str, list[str]] = {
    "cuda": [],
    "rocm": ["render", "video"],
    "vulkan": ["render", "video"],
}


@dataclass(frozen=True)
class Served:
    """What was set up, for the summary and the smoke check."""

    unit: str
    endpoint: str
    api_key_file: str
    build: str
    model_path: str
    #: files rendered for this host, path -> content (``provision --dry`` diffs them)
    rendered: dict[str, str] = field(default_factory=dict)
    #: the model name clients send (Ollama needs it; llama-server serves any name)
    served_model: str = "default"
    #: the path that answers 200 once the server is ready
    health_path: str = "/health"
    #: seconds the smoke check waits for it (vLLM loads and compiles for minutes)
    ready_timeout: float = 180.0
