"""benchmarks/real_gpu_check.py in its dry mode, so the script that runs on a real GPU cannot rot:
detection and planning for real on this machine, the tiny GGUF written and read back, and the
CUDA steps' exact commands computed for a recorded H200."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_real_gpu_check_dry_run_writes_a_complete_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "real_gpu_check.py"), "--dry",
         "--report", str(report), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["dry"] is True and data["ok"] is True
    steps = data["steps"]
    assert sorted(steps) == sorted(["model", "detect", "plan", "toolkit", "build", "serve", "bench", "vllm"])
    assert steps["model"]["layers"] == 4
    # planned for the recorded H200: CUDA, compute capability 9.0, the toolkit it has
    build = steps["build"]
    assert build["cuda_architectures"] == "90"
    assert "-DGGML_CUDA=ON" in build["configure"] and "native" not in build["configure"]
    assert steps["toolkit"] == {**steps["toolkit"], "nvcc": "12.8", "planned": "12.8"}
    plan = steps["plan"]["plan"]
    assert plan["gpu_software"]["toolkit"]["source"] == "present"
    ngl = steps["serve"]["command"].split(" -ngl ")[1].split()[0]
    assert int(ngl) == 5  # every layer and the output: fully offloaded
    # detection ran here, for real
    assert steps["detect"]["hardware"]["cpu"]["threads"] >= 1
