"""The nvidia-smi test double answers the commands the NVIDIA facts really run.

The double (tests/doubles/nvidia-smi) lets the lab exercise CUDA detection without a GPU; these
tests keep it honest: it is run through ``sh`` exactly as pyinfra would run each fact's command,
and what it prints is the same output the fact fixtures were checked against.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from rigctl.facts.nvidia import NvidiaCudaDriverVersion, NvidiaGpus

DOUBLES = Path(__file__).parent / "doubles"
FIXTURES = Path(__file__).parent / "facts"


def run_with_double(command: str) -> list[str]:
    env = {**os.environ, "PATH": f"{DOUBLES}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, check=True, timeout=10
    )
    return result.stdout.splitlines()


def fixture_output(fact_dir: str, case: str) -> list[str]:
    return json.loads((FIXTURES / fact_dir / f"{case}.json").read_text())["output"]


def test_double_is_an_executable_shell_script() -> None:
    double = DOUBLES / "nvidia-smi"
    assert os.access(double, os.X_OK)
    assert double.read_text().startswith("#!/bin/sh\n# TEST DOUBLE")


def test_gpu_query_gives_one_rtx_4090() -> None:
    output = run_with_double(NvidiaGpus().command())

    gpus = NvidiaGpus().process(output)

    assert gpus is not None and len(gpus) == 1
    gpu = gpus[0]
    assert gpu["name"] == "NVIDIA GeForce RTX 4090"
    assert gpu["memory_mib"] == 24564  # what nvidia-smi reports for a "24 GB" card
    assert gpu["compute_capability"] == "8.9"
    assert output == fixture_output("nvidia.NvidiaGpus", "rtx4090")


def test_plain_call_prints_the_table_with_the_cuda_version() -> None:
    output = run_with_double(NvidiaCudaDriverVersion().command())

    assert NvidiaCudaDriverVersion().process(output) == "12.4"
    assert output == fixture_output("nvidia.NvidiaCudaDriverVersion", "rtx4090_550")


def test_unknown_arguments_fail_like_nvidia_smi() -> None:
    result = subprocess.run(
        [str(DOUBLES / "nvidia-smi"), "--bogus"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode != 0
    assert result.stdout == ""


def test_detect_host_with_the_double_on_path_is_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path the lab relies on: pyinfra runs the facts, the double answers as a 4090."""
    from rigctl.detect_host import detect_host
    from rigctl.pyinfra_api import Session, load_inventory

    monkeypatch.setenv("PATH", f"{DOUBLES}{os.pathsep}{os.environ.get('PATH', '')}")
    with Session(load_inventory("@local")) as session:
        hardware = session.each_host(detect_host)["@local"]

    assert hardware.accelerator == "cuda"
    assert [(gpu.name, gpu.compute_capability) for gpu in hardware.gpus] == [
        ("NVIDIA GeForce RTX 4090", "8.9")
    ]
    assert hardware.gpus[0].memory_bytes == 24564 * 1024**2
    assert hardware.cuda_driver_version == "12.4"
