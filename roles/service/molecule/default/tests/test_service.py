"""The ``service`` role on a converged host: what its README promises.

Run by Molecule's verifier and by ``tests/test_roles.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key).
"""

from __future__ import annotations

import re

import testinfra.host
from rigctl.roles.service import api_key_path, defaults

from rigctl.roletest.scenarios import SERVICE_UNIT, SERVICE_USER, service_unit_text
from rigctl.verify.connection import read_secret

CONFIG_DIR = f"{defaults.SERVICE_CONFIG_ROOT}/{SERVICE_UNIT}"
UNIT_FILE = f"{defaults.SERVICE_SYSTEMD_UNIT_DIR}/{SERVICE_UNIT}.service"


def _show(host: testinfra.host.Host, *properties: str) -> dict[str, str]:
    args = " ".join(f"-p {p}" for p in properties)
    out = host.check_output(f"systemctl show {args} -- %s", f"{SERVICE_UNIT}.service")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_dedicated_system_user_without_login(host: testinfra.host.Host) -> None:
    user = host.user(SERVICE_USER)
    assert user.exists
    assert user.group == SERVICE_USER
    assert user.uid < 1000, f"{SERVICE_USER} is not a system user (uid {user.uid})"
    assert user.shell == defaults.SERVICE_USER_SHELL
    assert user.home == "/nonexistent"
    assert not host.file("/nonexistent").exists
    # no password to log in with
    assert user.password in ("!", "*", "!*") or user.password.startswith("!"), user.password


def test_config_directory_root_owned_group_of_user(host: testinfra.host.Host) -> None:
    directory = host.file(CONFIG_DIR)
    assert directory.is_directory
    assert (directory.user, directory.group, directory.mode) == ("root", SERVICE_USER, 0o750)


def test_api_key_generated_on_host_0600_owned_by_user(host: testinfra.host.Host) -> None:
    path = api_key_path(SERVICE_UNIT)
    key = host.file(path)
    assert key.is_file
    assert (key.user, key.group, key.mode) == (SERVICE_USER, SERVICE_USER, 0o600)
    # read over SFTP, never through a command's output: 32 random bytes, hex
    assert re.fullmatch(r"[0-9a-f]{64}", read_secret(host, path))
    # the temporary file it was made in was renamed, not left beside it; beside the key only
    # the stamp of the last restart rigctl made (a restart owed by a killed run is made later)
    assert sorted(host.file(CONFIG_DIR).listdir()) == ["api-key", "restarted"]


def test_unit_written_whole_and_atomically(host: testinfra.host.Host) -> None:
    unit = host.file(UNIT_FILE)
    assert (unit.user, unit.group, unit.mode) == ("root", "root", 0o644)
    assert unit.content_string == service_unit_text()
    leftovers = host.run("ls -A %s | grep -F %s", defaults.SERVICE_SYSTEMD_UNIT_DIR, f"{SERVICE_UNIT}.")
    assert leftovers.stdout.split() == [f"{SERVICE_UNIT}.service"]


def test_unit_enabled_running_as_the_user(host: testinfra.host.Host) -> None:
    service = host.service(SERVICE_UNIT)
    assert service.is_enabled and service.is_running
    shown = _show(host, "User", "MainPID", "NeedDaemonReload", "ActiveState", "SubState")
    assert shown["User"] == SERVICE_USER
    assert shown["NeedDaemonReload"] == "no", "the unit changed without a daemon-reload"
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running")
    # the process itself runs as the user (the unit started only because the user could
    # read its key: test -r in ExecStart)
    status = host.file(f"/proc/{shown['MainPID']}/status").content_string
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {str(host.user(SERVICE_USER).uid)}
    assert host.process.get(pid=int(shown["MainPID"])).comm == "sleep"
