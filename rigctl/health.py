"""What a service's unit says about its health, read over the host's connection: the restart
counter and state (a crash loop is not worth waiting for) and the journal's last lines.

Used by ``provision``'s smoke check and by ``rollback``'s restore alike.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from rigctl.pyinfra_api import CONNECTION_LOST, Host, connection_lost, run_command

JOURNAL_LINES = 20


def _unit_state(host_obj: Host, unit: str) -> dict[str, str] | None:
    try:
        ok, out, _ = run_command(
            host_obj, f"systemctl show {shlex.quote(unit + '.service')} -p NRestarts -p ActiveState -p Result"
        )
    except Exception:  # the connection broke under the command
        return None
    if not ok:
        return None
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def crash_watch(host_obj: Host, unit: str) -> Callable[[], str | None]:
    """A ``give_up`` for :func:`wait_ready`: why waiting for the unit is pointless (it died
    twice more since this watch began, or systemd gave up on it), or None.

    The restart counter is taken when the watch begins: systemd keeps counting across a manual
    restart, so a unit that crash-looped before (a truncated model, a rollout's broken port)
    and was just repaired must not be judged by its old restarts.
    """
    start = _unit_state(host_obj, unit) or {}
    base = int(start.get("NRestarts", "0") or 0)

    def give_up() -> str | None:
        fields = _unit_state(host_obj, unit)
        if fields is None:
            # a host powered off or cut off while its server starts: no use waiting for it
            return CONNECTION_LOST if connection_lost(host_obj) else None
        restarts = int(fields.get("NRestarts", "0") or 0) - base
        if restarts >= 2 or fields.get("ActiveState") == "failed":
            return f"{unit} keeps failing ({fields.get('Result')}, {restarts} restarts)"
        return None

    return give_up


def journal(host_obj: Host, unit: str) -> list[str]:
    if connection_lost(host_obj):
        return []
    ok, out, _err = run_command(
        host_obj, f"journalctl -u {shlex.quote(unit + '.service')} -n {JOURNAL_LINES} --no-pager -o cat"
    )
    return out.splitlines()[-JOURNAL_LINES:] if ok else []
