"""``rigctl detect``: what each host is (accelerator, GPUs, CPU, memory, disk, OS)."""

from __future__ import annotations

import click
from rigctl.cli.render import emit_json, error_line, line, table

from rigctl.detect import detect as run_detect
from rigctl.hardware import Hardware

GiB = 1024**3


def _gib(value: int) -> str:
    return f"{value / GiB:.1f} GiB"


def _print_host(name: str, hw: Hardware) -> None:
    rows = [
        ("accelerator", hw.accelerator),
        ("cpu", f"{hw.cpu.model} ({hw.cpu.cores} cores, {hw.cpu.threads} threads)"),
        ("cpu flags", " ".join(hw.cpu.flags) or "-"),
        ("memory", _gib(hw.memory_bytes)),
        ("disk free", _gib(hw.disk_free_bytes)),
        ("os", f"{hw.os.distro} {hw.os.version} ({hw.os.system} {hw.os.arch}, {hw.os.init})"),
    ]
    if hw.cuda_driver_version or hw.cuda_toolkit_version:
        rows.append(
            (
                "cuda",
                f"driver supports {hw.cuda_driver_version or '?'}, toolkit {hw.cuda_toolkit_version or 'none'}",
            )
        )
    if hw.rocm_version:
        rows.append(("rocm", hw.rocm_version))
    for gpu in hw.gpus:
        arch = gpu.compute_capability or gpu.gfx_target or ""
        rows.append(
            (
                f"gpu {gpu.index}",
                f"{gpu.vendor} {gpu.name} {_gib(gpu.memory_bytes)} {arch} {gpu.driver or ''}".strip(),
            )
        )
    for warning in hw.warnings:
        rows.append(("warning", warning))
    table(name, ["", ""], rows)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help='Print {"hosts": {NAME: {...}}} as JSON.')
def detect(target: str, as_json: bool) -> None:
    """Detect each host's accelerator, GPUs, CPU, memory, disk and OS."""
    result = run_detect(target)
    if as_json:
        emit_json(result.to_json())
    else:
        for name, hw in result.hardware.items():
            _print_host(name, hw)
        for name, host_result in result.summary.hosts.items():
            if host_result.failed:
                error_line(f"host {name}: {host_result.status}: {host_result.error}")
        if not result.hardware and not result.summary.failed_hosts:
            line("no hosts")
    raise click.exceptions.Exit(result.exit_code)
