"""Shared fixtures: the test lab (real systemd-nspawn hosts), brought up once per session.

The test lab runs beside any lab a developer has up (``make demo``): its own state directory,
its own loopback network (127.0.2.N) and name prefix (``rtest``). It shares the base image
cache with the user's lab, but builds it when missing, so a fresh machine works too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rigctl.lab import Lab, default_lab_dir

# Two test sessions at once (two worktrees) each need their own lab: RIGCTL_TEST_LAB names it
# as NAME:NETWORK (``test-lab-b:127.0.5``); the hosts keep the ``rtest`` names.
TEST_LAB_NAME, _, _network = os.environ.get("RIGCTL_TEST_LAB", "test-lab:127.0.2").partition(":")
TEST_LAB_NETWORK = _network or "127.0.2"
TEST_LAB_PREFIX = "rtest"
TEST_LAB_SIZE = 6  # three for llama.cpp fleet tests, one for Ollama, one for vLLM, one for roles
REPO = Path(__file__).resolve().parent.parent


def lab_available() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    try:
        Lab.check_requirements()
    except Exception as e:
        return str(e)
    return None


def make_test_lab(
    name: str = TEST_LAB_NAME, network: str = TEST_LAB_NETWORK, prefix: str = TEST_LAB_PREFIX
) -> Lab:
    cache = default_lab_dir()
    return Lab(cache.parent / name, images_dir=cache / "images", network=network, prefix=prefix)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = lab_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the lab must run in CI: {reason}")
        pytest.skip(reason)
    the_lab = make_test_lab()
    the_lab.down()  # hosts left by an interrupted earlier run
    the_lab.up(TEST_LAB_SIZE)
    yield the_lab
    the_lab.down()


@pytest.fixture(scope="session")
def lab_inventory(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory file listing the test lab's hosts (as `rigctl lab inventory` prints it)."""
    path = tmp_path_factory.mktemp("inventory") / "testlab.py"
    path.write_text(f"lab = {lab.inventory()!r}\n")
    return path


def rigctl(
    *args: str, check: bool = False, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real console script, as a user would (``env`` adds to this process's environment)."""
    exe = shutil.which("rigctl", path=str(Path(sys.executable).parent)) or "rigctl"
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
