"""``rigctl models``: the built-in model catalog (what plans can use without any download)."""

from __future__ import annotations

import dataclasses

import click
from rigctl.cli.render import emit_json, table

from rigctl.models import CATALOG

GB = 1e9


def _billions(count: int) -> str:
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M" if count else "?"


@click.group()
def models() -> None:
    """The built-in model catalog."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def list_models(as_json: bool) -> None:
    """List catalog models: architecture numbers, GGUF quants with sizes, and sources."""
    if as_json:
        emit_json({"models": {name: dataclasses.asdict(entry) for name, entry in CATALOG.items()}})
        return
    rows = []
    for name, entry in CATALOG.items():
        quants = ", ".join(
            f"{f.quant} {f.size_bytes / GB:.2f} GB{'' if f.exact else '~'}" for f in entry.gguf
        )
        kind = (
            f"MoE, {entry.expert_used_count} of {entry.expert_count} experts"
            if entry.is_moe
            else "dense"
        )
        rows.append(
            (
                name,
                entry.architecture,
                kind,
                _billions(entry.parameters),
                _billions(entry.active_parameters or entry.parameters),
                entry.n_layers,
                f"{entry.n_heads}/{entry.n_kv_heads}",
                f"{entry.context_length:,}",
                quants,
                entry.hf_repo,
                ", ".join(
                    "FP8" if c.floating or c.method == "fp8" else f"{c.method.split('-')[0].upper()} {c.bits}-bit"
                    for c in entry.vllm_checkpoints
                ),
            )
        )
    table(
        "catalog (use as NAME or NAME:QUANT; ~ marks a listed, not exact, size)",
        [
            "name", "arch", "type", "params", "active", "layers", "heads/kv", "context",
            "gguf quants", "safetensors (vLLM)", "quantized (--json: repos)",
        ],
        rows,
        whole=(0, 2),
    )
