"""``rigctl remove``: take rigctl's deployment off hosts, then a summary."""

from __future__ import annotations

import click
from rigctl.cli.options import limit_option
from rigctl.cli.render import Markup, emit_json, error_line, esc, info, status_style, table

from rigctl.remove import RemoveResult
from rigctl.remove import remove as run_remove


def _report(host: str | None, stage: str, detail: str) -> None:
    info(Markup(f"[dim]{esc(host or 'all')}[/] {esc(stage)}: {esc(detail)}"))


def print_summary(result: RemoveResult) -> None:
    table(
        "remove" + (" (dry run: nothing changed)" if result.dry else ""),
        ["host", "result", "runtime", "removed", "changes", "purged"],
        (
            (
                name,
                status_style(outcome.result.status),
                outcome.deployment.runtime if outcome.deployment else "-",
                len(outcome.removed),
                len(outcome.result.changed_ops),
                "yes" if outcome.purged else "no",
            )
            for name, outcome in result.hosts.items()
        ),
    )
    for name, outcome in result.hosts.items():
        if outcome.failed:
            error_line(f"host {name}: {outcome.result.error}")
            for op in outcome.result.failed_ops:
                for line in op.stderr_tail[-5:]:
                    info(f"    {line}")
        elif outcome.deployment is None:
            info(f"{name}: no rigctl deployment, nothing to remove")
        elif outcome.removed:
            verb = "would remove" if result.dry else "removed"
            info(f"{name} {verb}: " + ", ".join(outcome.removed))
    if result.lockfile:
        info(f"lockfile {result.lockfile}: the removed hosts' entries dropped")


@click.command()
@click.argument("inventory")
@limit_option
@click.option("--purge", is_flag=True,
              help="Also remove the models, the runtime's install and its state (caches).")
@click.option("--dry", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def remove(inventory: str, limit: list[str] | None, purge: bool, dry: bool, as_json: bool) -> None:
    """Take rigctl's deployment off each host, as its own manifest records it: units stopped
    and disabled, unit files, configuration, API key, rollback snapshot and manifest removed,
    the service user too when nothing else runs as it. Models and builds stay unless --purge."""
    result = run_remove(inventory, limit=limit, purge=purge, dry=dry, report=_report)
    if as_json:
        emit_json(result.to_json())
    else:
        print_summary(result)
    raise click.exceptions.Exit(result.exit_code)
