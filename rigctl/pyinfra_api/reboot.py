"""Reboot a host and wait until it has booted again: pyinfra's ``server.reboot``, with a test of
"booted again" that also holds in a container.

pyinfra's ``server.reboot`` takes the host as rebooted when ``/proc/uptime`` went down. A
container (systemd-nspawn, LXC) reboots without its kernel, so its uptime never goes down and
the wait runs to its timeout, then fails. Here a boot is named by the kernel's boot id (new on
every kernel boot) and PID 1's start time (new on every boot of a container's init), and the
host has rebooted once that pair is not the one read before.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from pyinfra.api import FunctionCommand, OperationError, StringCommand, operation
from pyinfra.connectors.util import clear_askpass_cache, remove_any_sudo_askpass_file

#: What names one boot: the kernel's boot id, and PID 1's start time (field 22 of its stat, in
#: clock ticks since the kernel booted). PID 1's name has no spaces ("systemd", "init").
BOOT_IDENTITY = "cat /proc/sys/kernel/random/boot_id && cut -d' ' -f22 /proc/1/stat"


def boot_identity(host_obj: Any) -> str | None:
    """The current boot's name on ``host_obj`` (None when it cannot be read now)."""
    try:
        ok, output = host_obj.run_shell_command(StringCommand(BOOT_IDENTITY))
    except Exception:  # a connection dropping mid-reboot  # noqa: BLE001
        return None
    lines = [line.strip() for line in output.stdout_lines if line.strip()] if ok else []
    return " ".join(lines) if len(lines) == 2 else None


@operation(is_idempotent=False)
def reboot(
    delay: int = 10, interval: int = 2, reboot_timeout: int = 900
) -> Generator[object, None, None]:
    """Reboot the host, then reconnect until it has booted again (or fail after
    ``reboot_timeout`` seconds).

    + delay: seconds to wait before the first reconnect
    + interval: seconds between reconnects
    + reboot_timeout: seconds to wait in all
    """
    before: list[str] = []

    # pyinfra passes (state, host) to a FunctionCommand's function by these parameter names
    def read_boot_identity(state: Any, host: Any) -> None:  # noqa: ARG001
        host_obj = host
        # sudo's askpass file lives in a temporary directory the reboot clears
        remove_any_sudo_askpass_file(host_obj)
        identity = boot_identity(host_obj)
        if identity is None:
            raise OperationError("reboot: could not read the host's boot id before rebooting")
        before.append(identity)

    def wait_for_next_boot(state: Any, host: Any) -> None:  # noqa: ARG001
        host_obj = host
        time.sleep(delay)
        clear_askpass_cache(host_obj)
        host_obj.disconnect()
        deadline = time.monotonic() + reboot_timeout
        while True:
            host_obj.connect(show_errors=False)
            if host_obj.connected:
                identity = boot_identity(host_obj)
                if identity is not None and identity != before[0]:
                    clear_askpass_cache(host_obj)
                    return
                # reachable, not rebooted yet (the reboot is still stopping services)
                host_obj.disconnect()
            if time.monotonic() > deadline:
                raise OperationError(
                    f"reboot: the host did not boot again within {reboot_timeout}s"
                )
            time.sleep(interval)

    yield FunctionCommand(read_boot_identity, (), {})
    # detached, so the SSH channel closes at once (pyinfra #1708)
    yield StringCommand("( sleep 1 && reboot ) </dev/null >/dev/null 2>&1 &")
    yield FunctionCommand(wait_for_next_boot, (), {})
