"""What the suite needs from the controller about one host, passed as a JSON file.

The host itself says what it runs (its deployment manifest); the controller adds how to reach it
(the inventory's SSH settings), what the model lockfile pinned for it, and the role variables
that say where things were installed (host data can move them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rigctl.paths import write_private


@dataclass(frozen=True)
class Target:
    name: str
    #: :class:`rigctl.pyinfra_api.SSHSettings` as a dict
    ssh: dict[str, Any]
    #: this host's entry of ``<inventory>.lock.json`` (sha256, size_bytes, build...), if any
    lock: dict[str, Any] | None = None
    lockfile: str | None = None
    llamacpp_prefix: str = "/opt/rigctl/llamacpp"
    ollama_install_dir: str = "/usr/local"
    vllm_prefix: str = "/opt/rigctl/vllm"
    ollama_paths: list[str] = field(default_factory=list)  # Ollama's writable paths (models, home)

    def write(self, path: Path) -> None:
        # may hold an SSH password: 0600 from the start, and whole or not at all
        write_private(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> Target:
        data = json.loads(Path(path).read_text())
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})
