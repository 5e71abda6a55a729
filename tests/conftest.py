"""Shared fixtures: the test lab (real systemd-nspawn hosts), brought up once per session.

The test lab runs beside any lab a developer has up (``make demo``): its own state directory,
its own loopback network (127.0.2.N) and name prefix (``rtest``). It shares the base image
cache with the user's lab, but builds it when missing, so a fresh machine works too.

Its hosts 1..TEST_LAB_SIZE run Debian bookworm; one Debian trixie host (``trixie_host``) joins
them at TRIXIE_INDEX when a test asks for it, and stays out of ``lab_inventory``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rigctl.lab import Lab, LabHost, default_lab_dir

# Two test sessions at once (two worktrees) each need their own lab: RIGCTL_TEST_LAB names it
# as NAME:NETWORK (``test-lab-b:127.0.5``); the hosts keep the ``rtest`` names.
TEST_LAB_NAME, _, _network = os.environ.get("RIGCTL_TEST_LAB", "test-lab:127.0.2").partition(":")
TEST_LAB_NETWORK = _network or "127.0.2"
TEST_LAB_PREFIX = "rtest"
TEST_LAB_SIZE = 6  # three for llama.cpp fleet tests, one for Ollama, one for vLLM, one for roles
# A spare index, well past TEST_LAB_SIZE: tests that pick bookworm hosts by index or position
# (``running_hosts()[0]``, index 4, the first three) never land on it.
TRIXIE_INDEX = 20
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


def session_hosts(lab: Lab) -> list[LabHost]:
    """The session lab's running bookworm hosts, 1..TEST_LAB_SIZE: not the trixie host, which
    is running too once a test has asked for it."""
    return [host for host in lab.running_hosts() if host.index <= TEST_LAB_SIZE]


def write_inventory(path: Path, lab: Lab, hosts: list[LabHost]) -> Path:
    """An inventory file listing ``hosts`` with the lab's data for each (as `rigctl lab
    inventory` prints it)."""
    path.write_text(f"lab = {[(host.name, lab.host_data(host)) for host in hosts]!r}\n")
    return path


@pytest.fixture(scope="session")
def lab_inventory(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory file listing the test lab's bookworm hosts."""
    return write_inventory(
        tmp_path_factory.mktemp("inventory") / "testlab.py", lab, session_hosts(lab)
    )


@pytest.fixture(scope="session")
def trixie_host(lab: Lab) -> LabHost:
    """The session lab's Debian trixie host, at TRIXIE_INDEX: started once (the first time
    builds the trixie image, ~40 s), shared by the tests, gone with the lab at the end."""
    host = lab.up_host(TRIXIE_INDEX, release="trixie")
    forget_known_hosts()
    return host


def plan_accuracy_module():  # type: ignore[no-untyped-def]
    """benchmarks/plan_accuracy.py, imported as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "plan_accuracy", Path(__file__).parent.parent / "benchmarks" / "plan_accuracy.py"
    )
    assert spec and spec.loader
    accuracy = importlib.util.module_from_spec(spec)
    sys.modules["plan_accuracy"] = accuracy  # its dataclasses look their module up
    spec.loader.exec_module(accuracy)
    return accuracy


def forget_known_hosts() -> None:
    """pyinfra reads each known_hosts file once per process (``get_host_keys`` is memoized by
    file name): a host pinned after this process's first SSH session would be refused as
    unknown until the cache is dropped. The CLI, one process per command, never sees this."""
    from pyinfra.connectors.sshuserclient.client import get_host_keys

    get_host_keys.cache.clear()


@pytest.fixture(scope="session")
def trixie_inventory(
    lab: Lab, trixie_host: LabHost, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An inventory file listing the trixie host alone."""
    return write_inventory(tmp_path_factory.mktemp("inventory") / "trixie.py", lab, [trixie_host])


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
