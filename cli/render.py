"""Output for every command: JSON for machines, Rich tables for people, one-line errors.

Colour only when stdout is a terminal (Rich decides; ``NO_COLOR`` is honoured).

Data is never markup and never terminal control. Model names come from the model file's own
metadata, errors and journal lines from hosts: a ``[/]`` in one would crash Rich, an ESC
sequence would drive the terminal. Every value printed here is passed through
:func:`safe_text` (control characters made visible) and, for Rich, ``rich.markup.escape``;
only :class:`Markup`, the markup rigctl writes itself (status colours), is printed as markup.
Errors and JSON documents are redacted (:mod:`rigctl.redact`) as well.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rigctl.redact import redact, redact_data

# Off a terminal (logs, pipes) Rich would assume 80 columns and fold every table; give it room.
# No emoji codes either: ``:smile:`` in a model name is text, not a picture.
console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)

#: Controls (ESC, CSI, BEL, backspace, CR, C1...), format characters (bidi overrides) and line
#: separators: shown as escapes instead of reaching the terminal.
_VISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class Markup(str):
    """Rich markup written by rigctl itself (``[green]ok[/]``): printed as markup. Data inside
    it must have gone through :func:`esc`."""


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(char: str) -> str:
    """A control character as the escape a reader recognises (``\\n``, ``\\x1b``, ``\\u202e``)."""
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text with every control character shown as an escape (``\\x1b``), so data
    can neither move the cursor, recolour, retitle or clear the terminal nor add lines.

    ``keep_newlines`` keeps ``\\n`` and tabs, for multi-line data such as diffs.
    """
    text = str(value)
    kept = "\n\t" if keep_newlines else ""
    return "".join(
        _visible(char)
        if unicodedata.category(char) in _VISIBLE_CATEGORIES and char not in kept
        else char
        for char in text
    )


def esc(value: object) -> str:
    """Data for a Rich markup string: :func:`safe_text`, then markup-escaped."""
    return escape(safe_text(value))


def _markup(value: object) -> str:
    """What Rich prints for ``value``: rigctl's own :class:`Markup` as is, anything else escaped."""
    return value if isinstance(value, Markup) else esc(value)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (and nothing else there), secrets redacted.

    The document is made plain JSON first (``default=str``), so strings that only appear once
    objects are converted are redacted too; JSON escapes control characters itself.
    """
    plain = json.loads(json.dumps(document, default=str))
    sys.stdout.write(json.dumps(redact_data(plain), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    whole: Sequence[int] = (),
) -> None:
    """A Rich table; every title, column and cell is data (escaped) unless it is :class:`Markup`.

    The columns numbered in ``whole`` (names people type) are never cut short: the others wrap.
    """
    grid = Table(title=None if title is None else _markup(title), title_justify="left", show_lines=False)
    rows = [list(row) for row in rows]
    for i, column in enumerate(columns):
        width = max((len(str(row[i])) for row in rows), default=0) if i in whole else None
        grid.add_column(_markup(column), min_width=width, no_wrap=i in whole)
    for row in rows:
        grid.add_row(*("" if cell is None else _markup(cell) for cell in row))
    console.print(grid)


def line(message: object, *, soft_wrap: bool = True) -> None:
    """One line for people on stdout: data escaped unless ``message`` is :class:`Markup`."""
    console.print(_markup(message), soft_wrap=soft_wrap)


def info(message: object) -> None:
    """A progress line for people, on stderr so that ``--json`` stdout stays clean (data
    escaped unless ``message`` is :class:`Markup`)."""
    err_console.print(_markup(message))


def plain_block(text: str) -> None:
    """Multi-line data (a diff) on stdout as it is, lines kept, no markup, controls visible."""
    console.print(safe_text(text, keep_newlines=True), markup=False, highlight=False, end="")


def error_line(message: object) -> None:
    """``rigctl: error: ...`` on stderr: redacted, and one line whatever the message holds."""
    click.echo(f"rigctl: error: {safe_text(redact(str(message)))}", err=True)


def status_style(status: str) -> str:
    """A run's status in its colour (rigctl's own markup); an unknown status is data."""
    styled = {
        "ok": "[green]ok[/]",
        "changed": "[yellow]changed[/]",
        "failed": "[red]failed[/]",
        "unreachable": "[red]unreachable[/]",
    }.get(status)
    return Markup(styled) if styled is not None else status
