"""Commands the toolkit will have but that are not built yet: they say so and exit 3.

Each keeps its real name and options so ``rigctl --help`` shows the whole toolkit; when one is
built it moves to its own module.
"""

from __future__ import annotations

import click
from rigctl.cli.render import error_line

EXIT_NOT_BUILT = 3


def _not_built(command: str, issue: int) -> None:
    error_line(f"`rigctl {command}` is not built yet (tracked in issue #{issue})")
    raise click.exceptions.Exit(EXIT_NOT_BUILT)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def verify(target: str, as_json: bool) -> None:
    """Check each host with rigctl's testinfra suite. [not built yet]"""
    _not_built("verify", 7)
