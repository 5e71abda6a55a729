"""``rigctl status``: the fleet table."""

from __future__ import annotations

import click
from rigctl.cli.options import limit_option
from rigctl.cli.render import emit_json, error_line, table

from rigctl.status import HostStatus, fleet_status

# Shown when present: llama-server's and vLLM's names (vLLM labels each series with its engine
# and model: the series of one name are summed). Other metrics stay in --json.
METRICS = {
    "requests": (
        "llamacpp:requests_processing",
        "llamacpp:n_requests_processing",
        "vllm:num_requests_running",
    ),
    "tokens out": ("llamacpp:tokens_predicted_total", "vllm:generation_tokens_total"),
    "kv use": ("llamacpp:kv_cache_usage_ratio", "vllm:kv_cache_usage_perc"),
}


def _metric(status: HostStatus, names: tuple[str, ...]) -> str:
    for name in names:
        values = [v for key, v in status.metrics.items() if key.split("{", 1)[0] == name]
        if values:
            value = sum(values)
            return f"{value:.0%}" if name.endswith(("ratio", "perc")) else f"{value:,.0f}"
    return "-"


def _model(status: HostStatus) -> str:
    """The model served (its sha256's start), or each alias with the router's state of it."""
    d = status.deployment
    if d is None:
        return "-"
    if d.models:
        return ", ".join(
            f"{entry['alias']} ({status.models.get(entry['alias'], 'unknown')})" for entry in d.models
        )
    return f"{d.model_name} {d.model_quant} ({d.model_sha256[:12]})"


def _last_bench(status: HostStatus) -> str:
    levels = (status.last_bench or {}).get("levels") or []
    if not levels:
        return "-"
    first = levels[0]
    return f"{first.get('decode_tps_per_request') or 0:.1f} tok/s, TTFT {first.get('ttft_p50_ms') or 0:.0f} ms"


@click.command()
@click.argument("target")
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status(target: str, limit: list[str] | None, as_json: bool) -> None:
    """Fleet table: runtime, build, model, unit state, health, metrics, last bench."""
    result = fleet_status(target, limit)
    statuses = result.hosts
    if as_json:
        emit_json(result.to_json())
    else:
        rows = []
        for name, s in statuses.items():
            d = s.deployment
            rows.append(
                (
                    name,
                    d.runtime if d else "-",
                    d.build if d else "-",
                    _model(s),
                    s.unit_state or "-",
                    "healthy" if s.healthy else (s.health_detail or "-"),
                    *[_metric(s, names) for names in METRICS.values()],
                    _last_bench(s),
                )
            )
        table(
            "fleet",
            [
                "host",
                "runtime",
                "build",
                "model",
                "unit",
                "endpoint",
                *METRICS,
                "last bench (1 user)",
            ],
            rows,
        )
        for name, s in statuses.items():
            if s.error:
                error_line(f"host {name}: {s.error}")
            if s.unproven_since:
                error_line(
                    f"host {name}: serves a change a rollout never proved (its snapshot of "
                    f"{s.unproven_since} is kept: `rigctl rollback {target} --limit {name}` "
                    "goes back to it)"
                )
    raise click.exceptions.Exit(result.exit_code)
