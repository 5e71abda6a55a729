"""``rigctl rollout``: batches, gates, rollback."""

from __future__ import annotations

import click
from rigctl.cli.options import limit_option
from rigctl.cli.render import Markup, emit_json, error_line, esc, info, table

from rigctl.rollback import rollback as run_rollback
from rigctl.rollout import LOST_HOST_WAIT
from rigctl.rollout import rollout as run_rollout


def _report(host: str | None, stage: str, detail: str) -> None:
    info(Markup(f"[dim]{esc(host or 'all')}[/] {esc(stage)}: {esc(detail)}"))


@click.command()
@click.argument("inventory")
@limit_option
@click.option("--batch", default="1", show_default=True, help="Hosts per batch after the canaries: N or P%.")
@click.option("--canary", type=int, default=1, show_default=True, help="Hosts in the first batch.")
@click.option("--max-fail", type=int, default=0, show_default=True, help="Failed hosts tolerated before halting.")
@click.option("--gate-tokps-drop", type=float, default=10.0, show_default=True,
              help="Roll a host back when its decode tok/s drops more than this percent.")
@click.option("--lost-host-wait", type=float, default=LOST_HOST_WAIT, show_default=True,
              help="Seconds a host lost during its update has to come back and be rolled back.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rollout(
    inventory: str,
    limit: list[str] | None,
    batch: str,
    canary: int,
    max_fail: int,
    gate_tokps_drop: float,
    lost_host_wait: float,
    as_json: bool,
) -> None:
    """Roll the inventory's desired state out in batches, gated on health and speed, with rollback."""
    result = run_rollout(
        inventory,
        batch=batch,
        canary=canary,
        max_fail=max_fail,
        gate_tokps_drop=gate_tokps_drop,
        lost_wait_s=lost_host_wait,
        limit=limit,
        report=_report,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        table(
            "rollout",
            ["host", "batch", "result", "tok/s before", "tok/s after", "why"],
            (
                (name, h.batch, h.status, f"{h.before_tps:.1f}" if h.before_tps else "-",
                 f"{h.after_tps:.1f}" if h.after_tps else "-", h.reason or "")
                for name, h in result.hosts.items()
            ),
        )
        if result.halted_after_batch is not None:
            error_line(f"rollout halted after batch {result.halted_after_batch}; later batches untouched")
    raise click.exceptions.Exit(result.exit_code)


@click.command()
@click.argument("inventory")
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rollback(inventory: str, limit: list[str] | None, as_json: bool) -> None:
    """Put hosts back to the version they served before the last rollout changed them."""
    result = run_rollback(
        inventory, limit=limit, report=_report
    )
    if as_json:
        emit_json(result.to_json())
    else:
        table(
            "rollback",
            ["host", "result", "snapshot taken", "unit", "build", "why"],
            (
                (name, h.status, h.taken or "-", h.unit or "-", h.build or "-", h.error or "")
                for name, h in result.hosts.items()
            ),
        )
    raise click.exceptions.Exit(result.exit_code)
