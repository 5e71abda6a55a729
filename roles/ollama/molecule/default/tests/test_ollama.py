"""The ``ollama`` role on a converged host: what its README promises. The binary is a TEST
DOUBLE (tests/doubles/ollama): everything the role writes around it is real.

Run by Molecule's verifier and by ``tests/test_roles.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key; ``instance``: its address).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import testinfra.host
from rigctl.roles.ollama import DROPIN, defaults

from rigctl.roletest.instances import Instance
from rigctl.roletest.scenarios import (
    ARCHIVES_ENV,
    OLLAMA_ARCHIVE,
    OLLAMA_MODEL,
    OLLAMA_PORT,
    ollama_base_unit,
    ollama_dropin,
    ollama_environment,
    ollama_modelfile,
    served_archive,
)

INSTALL = defaults.OLLAMA_INSTALL_DIR
USER = defaults.OLLAMA_USER


def _show(host: testinfra.host.Host, *properties: str) -> dict[str, str]:
    args = " ".join(f"-p {p}" for p in properties)
    out = host.check_output(f"systemctl show {args} ollama.service")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_archive_unpacked_as_upstream_and_recorded(
    host: testinfra.host.Host,
) -> None:
    binary = host.file(f"{INSTALL}/bin/ollama")
    assert binary.is_file and binary.mode == 0o755
    assert host.file(f"{INSTALL}/lib/ollama/README").is_file
    # the marker holds the installed archive's sha256: the same archive is never unpacked twice
    marker = host.file(f"{INSTALL}/lib/ollama/.rigctl-archive").content_string.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", marker)
    if os.environ.get(ARCHIVES_ENV):  # the scenario fetched this very archive
        archive = served_archive(Path(os.environ[ARCHIVES_ENV]))
        assert marker == hashlib.sha256(archive.read_bytes()).hexdigest()
    # the staged copy of the archive is removed; zstd, which unpacked it, is installed
    assert not host.file(f"/var/cache/rigctl/{OLLAMA_ARCHIVE}").exists
    if OLLAMA_ARCHIVE.endswith(".tar.zst"):
        assert host.package("zstd").is_installed
    assert host.run("%s/bin/ollama --version", INSTALL).rc == 0


def test_ollama_system_user_as_upstream(host: testinfra.host.Host) -> None:
    user = host.user(USER)
    assert user.exists and user.uid < 1000 and user.group == USER
    assert user.home == defaults.OLLAMA_HOME and host.file(defaults.OLLAMA_HOME).is_directory
    assert user.shell == "/bin/false"
    # in the GPU groups the host has (upstream's installer adds them)
    for group in ("render", "video"):
        if host.group(group).exists:
            assert group in user.groups, f"{USER} is not in {group}"


def test_upstream_unit_untouched(host: testinfra.host.Host) -> None:
    unit = host.file("/etc/systemd/system/ollama.service")
    assert unit.content_string == ollama_base_unit()


def test_rigctl_settings_in_the_dropin(host: testinfra.host.Host, instance: Instance) -> None:
    dropin = host.file(DROPIN)
    assert (dropin.user, dropin.mode) == ("root", 0o644)
    assert dropin.content_string == ollama_dropin(instance.address)
    shown = _show(host, "DropInPaths", "Environment", "NoNewPrivileges", "ProtectSystem")
    assert DROPIN in shown["DropInPaths"].split()
    for name, value in ollama_environment(instance.address).items():
        assert f"{name}={value}" in shown["Environment"].split(), name
    assert (shown["NoNewPrivileges"], shown["ProtectSystem"]) == ("yes", "strict")


def test_models_directory_owned_by_ollama(host: testinfra.host.Host) -> None:
    models = host.file(defaults.OLLAMA_MODELS_DIR)
    assert models.is_directory
    assert (models.user, models.group, models.mode) == (USER, USER, 0o750)


def test_service_running_as_ollama_on_the_planned_address(
    host: testinfra.host.Host, instance: Instance
) -> None:
    service = host.service("ollama")
    assert service.is_enabled and service.is_running
    shown = _show(host, "User", "NeedDaemonReload")
    assert shown == {"User": USER, "NeedDaemonReload": "no"}
    listening = host.socket(f"tcp://{instance.address}:{OLLAMA_PORT}")
    assert listening.is_listening
    assert not host.socket(f"tcp://0.0.0.0:{OLLAMA_PORT}").is_listening


def test_model_imported(host: testinfra.host.Host, instance: Instance) -> None:
    listed = host.check_output(
        "OLLAMA_HOST=%s %s/bin/ollama list", f"{instance.address}:{OLLAMA_PORT}", INSTALL
    )
    assert OLLAMA_MODEL in [line.split()[0] for line in listed.splitlines()[1:]], listed


def test_modelfile_recorded(host: testinfra.host.Host) -> None:
    # what was imported, so the model is imported again only when the Modelfile changes
    name = OLLAMA_MODEL.replace("/", "_").replace(":", "_")
    recorded = host.file(f"/var/lib/rigctl/ollama/{name}.Modelfile").content_string
    assert recorded == ollama_modelfile()
