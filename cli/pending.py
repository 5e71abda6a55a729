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
@click.option("--concurrency", default="1,4,10", show_default=True)
@click.option("--prompt-tokens", type=int, default=512, show_default=True)
@click.option("--max-tokens", type=int, default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench(target: str, **_: object) -> None:
    """Smoke-benchmark each endpoint: TTFT, tokens/s, throughput under load. [not built yet]"""
    _not_built("bench", 5)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status(target: str, as_json: bool) -> None:
    """Fleet table: runtime, build, model, unit state, health, last bench. [not built yet]"""
    _not_built("status", 5)


@click.command()
@click.argument("inventory")
@click.option("--batch", default="1", show_default=True, help="Hosts per batch: N or P%.")
@click.option("--canary", type=int, default=1, show_default=True)
@click.option("--max-fail", type=int, default=0, show_default=True)
@click.option("--gate-tokps-drop", type=float, default=10.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rollout(inventory: str, **_: object) -> None:
    """Roll a change out in batches, gated on health and benchmarks, with rollback. [not built yet]"""
    _not_built("rollout", 5)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def verify(target: str, as_json: bool) -> None:
    """Check each host with rigctl's testinfra suite. [not built yet]"""
    _not_built("verify", 7)
