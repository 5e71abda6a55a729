"""Output for every command: JSON for machines, Rich tables for people, one-line errors.

Colour only when stdout is a terminal (Rich decides; ``NO_COLOR`` is honoured).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

# Off a terminal (logs, pipes) Rich would assume 80 columns and fold every table; give it room.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (and nothing else there)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(grid)


def info(message: str) -> None:
    """A progress line for people, on stderr so that ``--json`` stdout stays clean."""
    err_console.print(message)


def error_line(message: str) -> None:
    click.echo(f"rigctl: error: {message}", err=True)


def status_style(status: str) -> str:
    return {
        "ok": "[green]ok[/]",
        "changed": "[yellow]changed[/]",
        "failed": "[red]failed[/]",
        "unreachable": "[red]unreachable[/]",
    }.get(status, status)
