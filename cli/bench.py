"""``rigctl bench``: streaming load at several concurrency levels, per host and fleet-wide."""

from __future__ import annotations

import click
from rigctl.cli.options import limit_option
from rigctl.cli.render import Markup, emit_json, error_line, esc, line, table

from rigctl.bench.run import BenchResult, parse_levels
from rigctl.bench.run import bench as run_bench


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _delta(value: float | None) -> str:
    return "" if value is None else f" ({value:+.1f}%)"


def print_result(result: BenchResult) -> None:
    for name, host in result.hosts.items():
        if host.error:
            error_line(f"host {name}: {host.error}")
            continue
        assert host.deployment is not None
        changes = host.change_vs_baseline()
        deployment = host.deployment
        line(
            Markup(
                f"[bold]{esc(name)}[/]: {esc(deployment.runtime)} {esc(host.to_json()['model'])}, "
                f"build {esc(deployment.build)}, "
                f"prompt {host.prompt_tokens} tokens"
            )
        )
        line(f"  config: {' '.join(deployment.args[1:])}")
        rows = []
        for level in host.levels:
            change = changes.get(level.concurrency, {})
            rows.append(
                (
                    level.concurrency,
                    level.requests,
                    level.errors,
                    f"{_fmt(level.ttft_p50_ms, ' ms')} / {_fmt(level.ttft_p95_ms, ' ms')}",
                    _fmt(level.decode_tps_per_request) + _delta(change.get("decode_tps_per_request")),
                    _fmt(level.aggregate_tps) + _delta(change.get("aggregate_tps")),
                    f"{_fmt(level.latency_p50_s, ' s')} / {_fmt(level.latency_p95_s, ' s')}",
                )
            )
        table(
            None,
            ["users", "requests", "errors", "TTFT p50 / p95", "tok/s per user", "aggregate tok/s", "latency p50 / p95"],
            rows,
        )
        if not host.baseline:
            line("  (saved as this host's baseline)")
    fleet = result.fleet()
    if len(result.hosts) > 1 and fleet:
        table("fleet", ["users per host", "aggregate tok/s (all hosts)"], [(c, f"{v:,.1f}") for c, v in fleet.items()])


@click.command()
@click.argument("target")
@limit_option
@click.option("--concurrency", default="1,4,10", show_default=True, help="Comma-separated levels.")
@click.option("--prompt-tokens", type=int, default=512, show_default=True, help="Prompt length (server-counted).")
@click.option("--max-tokens", type=int, default=128, show_default=True, help="Tokens generated per request.")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds per level (at least one request per user).")
@click.option("--save-baseline", is_flag=True, help="Make this run the baseline later runs compare with.")
@click.option("--alias", default=None, metavar="ALIAS",
              help="Of a host's several models, bench this one (default: each in turn).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench(
    target: str,
    limit: list[str] | None,
    concurrency: str,
    prompt_tokens: int,
    max_tokens: int,
    duration: float,
    save_baseline: bool,
    alias: str | None,
    as_json: bool,
) -> None:
    """Smoke-benchmark each endpoint: TTFT, tok/s per user, aggregate tok/s under load.

    Hosts are measured one after another; the first run of a host becomes its baseline and
    later runs show the change against it. A host serving several models is measured per
    model (``host/alias``), each loaded first.
    """
    result = run_bench(
        target,
        levels=parse_levels(concurrency),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        duration_s=duration,
        save_baseline=save_baseline,
        limit=limit,
        alias=alias,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        print_result(result)
    raise click.exceptions.Exit(result.exit_code)
