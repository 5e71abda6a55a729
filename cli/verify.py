"""``rigctl verify``: the shipped testinfra suite against each host; a table of checks per host."""

from __future__ import annotations

import click
from rigctl.cli.options import limit_option
from rigctl.cli.render import Markup, emit_json, error_line, esc, line, table

from rigctl.verify.results import CHECKS, FAILED, PASSED, SKIPPED, VerifyResult
from rigctl.verify.run import verify as run_verify

CELLS = {PASSED: Markup("[green]ok[/]"), FAILED: Markup("[red]FAIL[/]"), SKIPPED: Markup("[dim]skip[/]")}


def check_columns(result: VerifyResult) -> list[str]:
    """The suite's checks in their order, then any a host reported that this rigctl does not know."""
    extra = [name for host in result.hosts.values() for name in host.checks if name not in CHECKS]
    return [*CHECKS, *dict.fromkeys(extra)]


def summary_rows(result: VerifyResult) -> list[tuple[str, ...]]:
    """One row per host: each check's outcome, then the host's result."""
    columns = check_columns(result)
    rows = []
    for name, host in result.hosts.items():
        cells = [
            CELLS.get(host.checks[c].status, host.checks[c].status) if c in host.checks else "-"
            for c in columns
        ]
        outcome = {"passed": Markup("[green]passed[/]"), "failed": Markup("[red]failed[/]")}.get(
            host.status, Markup(f"[red]{esc(host.status)}[/]")
        )
        rows.append((name, *cells, outcome))
    return rows


def detail_rows(result: VerifyResult) -> list[tuple[str, str, str, str]]:
    """Why: each failed or skipped check, and each host that could not be checked at all."""
    rows = []
    for name, host in result.hosts.items():
        if host.error:
            rows.append((name, "(host)", Markup(f"[red]{esc(host.status)}[/]"), host.error))
        for check in host.checks.values():
            if check.status != PASSED:
                rows.append(
                    (name, check.name, CELLS.get(check.status, check.status), check.message)
                )
    return rows


def render(result: VerifyResult) -> None:
    table("verify", ["host", *check_columns(result), "result"], summary_rows(result))
    details = detail_rows(result)
    if details:
        table("not passed", ["host", "check", "result", "why"], details)
    if result.lockfile:
        line(f"model checksums from {result.lockfile}")


@click.command()
@click.argument("target")
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def verify(target: str, limit: list[str] | None, as_json: bool) -> None:
    """Check each host with rigctl's testinfra suite: runtime build, model sha256, service user,
    hardening, listening address, API key file, endpoint health and auth, metrics."""
    result = run_verify(
        target, limit
    )
    if as_json:
        emit_json(result.to_json())
    else:
        render(result)
        for name in result.failed:
            host = result.hosts[name]
            error_line(
                f"host {name}: " + (host.error or f"failed checks: {', '.join(host.failed_checks)}")
            )
    raise click.exceptions.Exit(result.exit_code)
