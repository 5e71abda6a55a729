"""What a service's unit says about its health, read over the host's connection: the restart
counter and state (a crash loop is not worth waiting for), the journal's last lines, and whether
the server runs on the device its plan put it on.

Used by ``provision``'s smoke check and by ``rollback``'s restore alike.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

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


def invocation_journal(host_obj: Host, unit: str) -> list[str]:
    """The journal of the unit's current run only (its invocation id): what this start said,
    not what an earlier one did."""
    name = shlex.quote(unit + ".service")
    ok, out, _err = run_command(
        host_obj,
        f"id=$(systemctl show -p InvocationID --value {name}) && [ -n \"$id\" ] && "
        f"journalctl _SYSTEMD_INVOCATION_ID=\"$id\" --no-pager -o cat",
    )
    return out.splitlines() if ok else []


@dataclass(frozen=True)
class Offload:
    """Where a plan put a llama.cpp model: the ggml device (``CUDA0``, ``ROCm0``, ``Vulkan0``)
    and how many layers (llama-server's ``-ngl``, capped at the model's count when it says)."""

    device: str
    layers: int


#: What llama.cpp prints when its GPU backend could not start and it carries on on the CPU.
_BACKEND_FAILED = re.compile(
    r"(ggml_\w+_init: failed.*|.*no usable GPU found.*|ggml_vulkan: No devices found.*"
    r"|.*CUDA error.*|.*no CUDA-capable device.*)"
)
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


def offload_problem(lines: list[str], offload: Offload) -> str | None:
    """Why a llama-server's log shows it is not running as planned on ``offload.device``, or
    None: llama.cpp falls back to the CPU when its GPU backend fails, and would otherwise be
    counted as serving."""
    text = "\n".join(lines)
    failed = _BACKEND_FAILED.search(text)
    if failed:
        return failed.group(0).strip()
    offloaded = _OFFLOADED.search(text)
    if offloaded is None:
        return f"the log shows no layers offloaded (planned: {offload.layers} on {offload.device})"
    done, total = int(offloaded.group(1)), int(offloaded.group(2))
    if done < min(offload.layers, total):
        return f"{done}/{total} layers offloaded, planned {min(offload.layers, total)}"
    if not re.search(rf"\b{re.escape(offload.device)} model buffer size", text):
        return f"no model buffer on {offload.device}"
    return None
