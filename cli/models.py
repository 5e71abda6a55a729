"""``rigctl models``: the built-in model catalog (what plans can use without any download)."""

from __future__ import annotations

import dataclasses

import click
from rigctl.cli.render import emit_json, table

from rigctl.models import CATALOG

GB = 1e9


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
        rows.append(
            (
                name,
                entry.architecture,
                entry.n_layers,
                f"{entry.n_heads}/{entry.n_kv_heads}",
                f"{entry.context_length:,}",
                quants,
                entry.hf_repo,
            )
        )
    table(
        "catalog (use as NAME or NAME:QUANT; ~ marks a listed, not exact, size)",
        ["name", "arch", "layers", "heads/kv", "context", "gguf quants", "safetensors (vLLM)"],
        rows,
    )
