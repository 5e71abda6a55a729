"""Running a role's scenario on a test lab host, as Molecule does, without Molecule.

The same pieces as the Molecule scenarios (``roles/<role>/molecule/default``): an instance
config for the host, ``python -m rigctl.roletest converge ROLE`` (rigctl's JSON summary), and
the role's testinfra files under pytest with ``-p rigctl.roletest.plugin``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import REPO
from doubles.ollama_archive import double_archive

from rigctl.lab import Lab, LabHost
from rigctl.roletest.instances import Instance, write_instances
from rigctl.roletest.scenarios import ARCHIVES_ENV, HOST_PACKAGES_ENV


def role_tests(role: str) -> Path:
    return REPO / "roles" / role / "molecule" / "default" / "tests"


def instance_config(lab: Lab, host: LabHost, path: Path) -> Path:
    """Molecule's instance config for a lab host, as the scenarios' create.yml writes it."""
    data = lab.host_data(host)
    write_instances(
        path,
        [
            Instance(
                instance=host.name,
                address=host.address,
                user=data["ssh_user"],
                port=data["ssh_port"],
                identity_file=data["ssh_key"],
                known_hosts_file=data["ssh_known_hosts_file"],
            )
        ],
    )
    return path


def converge(
    role: str, config: Path, env: dict[str, str] | None = None, timeout: float = 1800
) -> dict[str, Any]:
    """Molecule's converge step: the role applied with rigctl; its summary (exit 0 expected).

    The ollama role gets upstream's archive layout holding the TEST DOUBLE of the binary, served
    from 127.0.0.1 (the real archive cannot be fetched here), and python3 on the host for it.
    """
    env = {**(env or {}), **_scenario_env(role, config)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rigctl.roletest",
            "converge",
            role,
            "--instance-config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, (
        f"converge {role}: {result.stderr[-3000:]}{result.stdout[-3000:]}"
    )
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def changed_ops(summary: dict[str, Any]) -> list[str]:
    return [op for host in summary["hosts"].values() for op in host["changed_ops"]]


def _scenario_env(role: str, config: Path) -> dict[str, str]:
    if role != "ollama":
        return {}
    archives = double_archive(config.parent / "ollama-archives")
    return {ARCHIVES_ENV: str(archives), HOST_PACKAGES_ENV: "python3"}


def verify(role: str, config: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Molecule's verify step: the role's testinfra files against the instances."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "rigctl.roletest.plugin",
            "--rigctl-instances",
            str(config),
            "-p",
            "no:cacheprovider",
            "-q",
            str(role_tests(role)),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **_scenario_env(role, config)},
    )
