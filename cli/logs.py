"""``rigctl logs``: each host's runtime log, every line prefixed by its host.

A host's log is its data, not the terminal's: every line goes through
:func:`rigctl.cli.render.safe_text` (control characters, ANSI escapes, bidi overrides shown as
escapes) and :func:`rigctl.redact.redact` before it is printed.
"""

from __future__ import annotations

from collections.abc import Iterable

import click
from rigctl.cli.options import limit_option
from rigctl.cli.render import emit_json, error_line, safe_text

from rigctl.logs import DEFAULT_LINES, MAX_LINES, SINCE_FORMS, check_since, fleet_logs, follow_logs
from rigctl.redact import redact


def render_lines(host: str, raw: str | Iterable[str]) -> list[str]:
    """``raw`` (a host's text, or its lines) as terminal lines, each ``HOST | line``, made safe
    to show. Text is split on newlines only: a ``\\r`` is shown, never obeyed."""
    if isinstance(raw, str):
        raw = raw.split("\n")
        if raw[-1] == "":
            raw.pop()
    prefix = safe_text(host)
    return [f"{prefix} | {safe_text(redact(text))}" for text in raw]


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_since(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def _print_line(host: str, text: str) -> None:
    click.echo(render_lines(host, [text])[0])


def _print_error(host: str, why: str) -> None:
    error_line(f"host {host}: {why}")


@click.command()
@click.argument("target")
@limit_option
@click.option(
    "--since", metavar="TIME", callback=_since, default=None,
    help=f"Only lines from this time on (journalctl's --since: {SINCE_FORMS}).",
)
@click.option(
    "--lines", "-n", type=click.IntRange(1, MAX_LINES), default=DEFAULT_LINES,
    show_default=True, help="How many of the last lines of each host.",
)
@click.option("--follow", "-f", is_flag=True, help="Go on printing new lines, from every host, until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (not with --follow).")
def logs(
    target: str, limit: list[str] | None, since: str | None, lines: int, follow: bool,
    as_json: bool,
) -> None:
    """The runtime's log of each host (its units' journal, or launchd's log file), each line
    prefixed by the host's name."""
    if follow and as_json:
        raise click.UsageError("--json cannot be combined with --follow (a stream has no end)")
    if follow:
        result = follow_logs(
            target, limit, since=since, lines=lines, on_line=_print_line, on_error=_print_error
        )
        raise click.exceptions.Exit(result.exit_code)
    result = fleet_logs(target, limit, since=since, lines=lines)
    if as_json:
        emit_json(result.to_json())
    else:
        for name, outcome in result.hosts.items():
            if outcome.lines:
                click.echo("\n".join(render_lines(name, outcome.lines)))
        for name, outcome in result.hosts.items():
            if outcome.error:
                _print_error(name, outcome.error)
    raise click.exceptions.Exit(result.exit_code)
