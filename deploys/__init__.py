"""Deploys: a host's plan served by one runtime, composed from the roles.

``llamacpp.serve`` and ``ollama.serve`` take the same inputs (the host's spec, hardware, plan and
the files the controller fetched) and return a :class:`Served`; ``rigctl.provision`` picks one by
the plan's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
