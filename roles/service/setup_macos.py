"""The service on macOS: a hidden system account and a LaunchDaemon, loaded with launchctl.

Written from Apple's documented tools (dscl, launchctl bootstrap/bootout/kickstart); rigctl's
tests render and validate the plist, but this file has not run on a Mac (see the README).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from io import StringIO
from typing import Any

from rigctl.operations.files import atomic_put, secret_file
from rigctl.pyinfra_api import files, host, server, server_facts

LAUNCH_DAEMONS = "/Library/LaunchDaemons"


def user(user_name: str) -> None:
    """A hidden system account (UID below 500, no shell), created with dscl when missing."""
    if host.get_fact(server_facts.Command, f"id -u {shlex.quote(user_name)} 2>/dev/null || true"):
        host.noop(f"user {user_name} exists")
        return
    name = shlex.quote(user_name)
    server.shell(
        name="service: macOS system user",
        commands=[
            # the next free id in macOS's range for system accounts (300-499)
            "uid=$(dscl . -list /Users UniqueID | awk '$2>=300 && $2<500 {print $2}' | sort -n | tail -1);"
            " uid=$(( ${uid:-299} + 1 ));"
            f" dscl . -create /Groups/{name} PrimaryGroupID $uid &&"
            f" dscl . -create /Users/{name} UniqueID $uid &&"
            f" dscl . -create /Users/{name} PrimaryGroupID $uid &&"
            f" dscl . -create /Users/{name} UserShell /usr/bin/false &&"
            f" dscl . -create /Users/{name} NFSHomeDirectory /var/empty &&"
            f" dscl . -create /Users/{name} IsHidden 1",
        ],
    )


def install(
    unit: str,
    label: str,
    plist_text: str,
    user_name: str,
    config_dir: str,
    directories: Sequence[str] = (),
    changed_inputs: Sequence[Any] = (),
) -> None:
    files.directory(name="service: config directory", path=config_dir, user="root", group=user_name, mode="0750")
    key = secret_file(name="service: API key", path=f"{config_dir}/api-key", user=user_name, group=user_name)
    for directory in directories:
        files.directory(name=f"service: {directory}", path=directory, user=user_name, group=user_name, mode="0750")
    path = f"{LAUNCH_DAEMONS}/{label}.plist"
    plist = atomic_put(name="service: launchd plist", src=StringIO(plist_text), dest=path, user="root", group="wheel")
    loaded = host.get_fact(server_facts.Command, f"launchctl print system/{label} >/dev/null 2>&1 && echo loaded || true")
    if loaded != "loaded" or any(op.will_change for op in (plist, key, *changed_inputs)):
        server.shell(
            name="service: launchd (re)load",
            commands=[
                f"launchctl bootout system/{label} 2>/dev/null || true",
                f"launchctl bootstrap system {path}",
                f"launchctl enable system/{label}",
                f"launchctl kickstart -k system/{label}",
            ],
        )
