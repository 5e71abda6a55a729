"""A deployment manifest as llama.cpp's deploy writes it (one model): the base the offline
tests of what reads manifests (rollback's steps, `logs`, `remove`) change field by field."""

from __future__ import annotations

from typing import Any

from rigctl.manifest import Deployment


def llamacpp_deployment(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "runtime": "llamacpp",
        "unit": "rigctl-llama-server",
        "listen": "127.0.0.1",
        "port": 8080,
        "api_key_file": "/etc/rigctl/rigctl-llama-server/api-key",
        "user": "llama",
        "build": "b6000-cpu-0123abcd",
        "model_name": "gemma-3-270m",
        "model_quant": "Q4_K_M",
        "model_path": "/var/lib/rigctl/models/gemma-3-270m-Q4_K_M.gguf",
        "model_sha256": "",
        "config_files": ["/etc/systemd/system/rigctl-llama-server.service"],
    }
    fields.update(overrides)
    return Deployment(**fields)
