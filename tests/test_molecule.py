"""Molecule itself, so its path cannot rot: ``molecule test -s service`` (the fastest role
scenario: create -> converge -> idempotence -> verify -> destroy on a lab host of its own) passes,
and fails at the idempotence step, naming the operations, when the role is made non-idempotent
(the scenario's unit records when it was converged: a real pyinfra operation that changes on
every run). The other scenarios run under plain pytest (tests/test_roles.py).

The scenario's lab lives beside the session's: ``<test lab>-molecule`` in the cache, network
``127.3.X`` for the session's ``127.0.X`` (``RIGCTL_TEST_MOLECULE_NETWORK`` overrides), and it
boots the session lab's base image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TEST_LAB_NAME, TEST_LAB_NETWORK, lab_available

from rigctl.lab import default_lab_dir

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SCENARIO = "service"
NETWORK = (
    os.environ.get("RIGCTL_TEST_MOLECULE_NETWORK") or "127.3." + TEST_LAB_NETWORK.rsplit(".", 1)[1]
)
LABS = default_lab_dir().parent / f"{TEST_LAB_NAME}-molecule"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", autouse=True)
def _lab_can_run() -> None:
    reason = lab_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the lab must run in CI: {reason}")
        pytest.skip(reason)


def molecule(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("molecule", path=str(BIN))
    assert exe, f"molecule is not installed in {BIN} (the test extra)"
    env = {
        **os.environ,
        # Molecule runs ansible-playbook and pytest from the same virtualenv
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "PY_COLORS": "0",
        "RIGCTL_MOLECULE_LABS": str(LABS),
        "RIGCTL_MOLECULE_NETWORK": NETWORK,
        "RIGCTL_LAB_IMAGES": str(default_lab_dir() / "images"),
    }
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=900, cwd=REPO, env=env
    )


def lab_hosts() -> list[str]:
    hosts = LABS / SCENARIO / "hosts"
    return sorted(p.name for p in hosts.iterdir()) if hosts.is_dir() else []


def test_molecule_test_passes() -> None:
    result = molecule("test", "-s", SCENARIO)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # converge changed the host, the second converge (idempotence) changed nothing, and the
    # role's testinfra tests ran against it
    assert "TASK [rigctl changed: rigctl service user | service: group;" in output
    assert "TASK [rigctl changed: nothing]" in output
    assert f"{SCENARIO} > idempotence] Executed: Successful" in output
    assert re.search(r"^=+ \d+ passed in [\d.]+s =+$", output, re.MULTILINE), output[-3000:]
    # destroy brought the lab down
    assert lab_hosts() == []


def test_molecule_idempotence_fails_naming_the_operation() -> None:
    extra = json.dumps({"rigctl_role_vars": {"stamp_unit": True}})
    result = molecule("test", "-s", SCENARIO, "--", "-e", extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-6000:]
    failure = output[output.index("Idempotence test failed") :].splitlines()
    # Molecule's list of changed tasks: rigctl's task named after the pyinfra operations
    named = [line for line in failure[1:4] if "rigctl changed:" in line]
    assert (
        named and "service: unit file" in named[0] and "service: restart on change" in named[0]
    ), failure[:4]
    assert "Executing Testinfra tests" not in output  # it stopped at idempotence
    assert lab_hosts() == []
