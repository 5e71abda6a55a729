"""A lab host's supervisor: runs its ``systemd-nspawn`` and boots it again when it reboots.

``systemd-nspawn -b`` exits with status 133 when the container reboots (``reboot`` inside it,
or pyinfra's ``server.reboot``); systemd's own ``systemd-nspawn@.service`` restarts it for that
status (``RestartForceExitStatus=133``). The lab has no systemd to do that (PID 1 here may be
anything), so each host's process is this small loop instead::

    python -m rigctl.lab.supervise systemd-nspawn --register=no ... --directory=ROOT

It starts the command, and when it exits with 133 starts it again; any other status ends the
supervisor with that status. SIGTERM and SIGINT are passed to the running nspawn (which turns
them into a clean poweroff) and end the loop, so ``rigctl lab down`` stops a host as before.
Its command line holds the nspawn command, which is how the lab recognises a live host.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

#: systemd-nspawn's exit status when the container asked for a reboot.
REBOOT_STATUS = 133
#: A host that reboots more often than this many times a minute is looping: stop it.
MAX_REBOOTS_PER_MINUTE = 10


def supervise(command: list[str]) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    reboots: list[float] = []
    while not stopping:
        child = subprocess.Popen(command)
        status = child.wait()
        if stopping or status != REBOOT_STATUS:
            return status
        now = time.monotonic()
        reboots = [t for t in reboots if now - t < 60] + [now]
        if len(reboots) > MAX_REBOOTS_PER_MINUTE:
            print(f"rigctl lab: rebooted {len(reboots)} times in a minute: stopped", flush=True)
            return status
        print("rigctl lab: the host rebooted: booting it again", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m rigctl.lab.supervise COMMAND [ARG ...]", file=sys.stderr)
        return 2
    return supervise(args)


if __name__ == "__main__":
    sys.exit(main())
