"""``rigctl provision``: the whole pipeline per host, then a summary."""

from __future__ import annotations

import click
from rich.live import Live
from rich.table import Table
from rigctl.cli.options import limit_option
from rigctl.cli.render import (
    Markup,
    emit_json,
    err_console,
    error_line,
    esc,
    info,
    plain_block,
    status_style,
    table,
)

from rigctl.provision import ProvisionResult
from rigctl.provision import provision as run_provision


class Progress:
    """Live view of a run: one line per host (stage and detail) on a terminal; plain log lines
    otherwise (CI logs, pipes), so nothing is lost when there is no screen to redraw."""

    def __init__(self) -> None:
        self.live: Live | None = None
        self.rows: dict[str, tuple[str, str]] = {}
        self.fleet = ""

    def __enter__(self) -> Progress:
        if err_console.is_terminal:
            self.live = Live(self._render(), console=err_console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(None, None, None)

    def __call__(self, host: str | None, stage: str, detail: str) -> None:
        if self.live is None:
            info(Markup(f"[dim]{esc(host or 'all')}[/] {esc(stage)}: {esc(detail)}"))
            return
        if host is None:
            self.fleet = f"{stage}: {detail}"
        else:
            self.rows[host] = (stage, detail)
        self.live.update(self._render(), refresh=True)

    def _render(self) -> Table:
        grid = Table(title=esc(self.fleet or "provision"), title_justify="left", expand=False)
        grid.add_column("host")
        grid.add_column("stage")
        grid.add_column("detail", overflow="ellipsis", no_wrap=True, max_width=100)
        for host, (stage, detail) in sorted(self.rows.items()):
            grid.add_row(esc(host), esc(stage), esc(detail))
        return grid


def print_summary(result: ProvisionResult) -> None:
    rows = []
    for name, outcome in result.hosts.items():
        smoke = outcome.smoke
        rows.append(
            (
                name,
                status_style(outcome.result.status),
                outcome.plan.runtime if outcome.plan else "-",
                outcome.endpoint or "-",
                f"{smoke.ttft_ms:.0f} ms" if smoke and smoke.ttft_ms is not None else "-",
                f"{smoke.tokens_per_second:.1f}" if smoke and smoke.tokens_per_second else "-",
                len(outcome.result.changed_ops),
            )
        )
    table(
        "provision" + (" (dry run: nothing changed)" if result.dry else ""),
        ["host", "result", "runtime", "endpoint", "TTFT", "tok/s", "changes"],
        rows,
    )
    for name, outcome in result.hosts.items():
        if outcome.api_key_file and not outcome.result.failed:
            info(
                f"{name}: API key in {outcome.api_key_file} on the host (readable by root and the service user)"
            )
        if outcome.result.failed:
            error_line(f"host {name}: {outcome.result.error}")
            for op in outcome.result.failed_ops:
                for line in op.stderr_tail[-5:]:
                    info(f"    {line}")
            for line in outcome.journal[-10:]:
                info(f"    journal: {line}")
        elif result.dry and outcome.result.changed_ops:
            info(f"{name} would change: " + ", ".join(outcome.result.changed_ops))
            for diff in outcome.diffs.values():
                plain_block(diff)


@click.command()
@click.argument("inventory")
@limit_option
@click.option("--model", help="Serve this model on every host (overrides host data `model`).")
@click.option("--dry", is_flag=True, help="Show each plan and what would change; change nothing.")
@click.option(
    "--smoke", is_flag=True,
    help="The full smoke check (a generation per model) on every host, not only where "
    "something changed (there: health, the key required, one token of a loaded model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def provision(
    inventory: str, limit: list[str] | None, model: str | None, dry: bool, smoke: bool,
    as_json: bool,
) -> None:
    """Take every host from bare OS to a tuned, serving, smoke-checked endpoint."""
    with Progress() as progress:
        result = run_provision(
            inventory,
            limit=limit,
            dry=dry,
            model=model,
            report=progress,
            smoke=smoke,
        )
    if as_json:
        emit_json(result.to_json())
    else:
        print_summary(result)
    raise click.exceptions.Exit(result.exit_code)
