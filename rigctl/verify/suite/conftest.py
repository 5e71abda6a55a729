"""Fixtures of the verify suite: the host over SSH, and what it should be.

``host`` replaces testinfra's fixture of the same name: it connects with the inventory's SSH
settings and pinned host keys (``rigctl.verify.connection``). Session-scoped fixtures that cannot
work (host unreachable, nothing deployed) raise a :class:`HostError`, which the runner reports
once for the host instead of once per check.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import testinfra.host

from rigctl.manifest import MANIFEST, Deployment, parse_deployment
from rigctl.verify import hardening
from rigctl.verify.connection import connect
from rigctl.verify.parse import systemctl_show
from rigctl.verify.results import CHECKS, HostError
from rigctl.verify.target import Target

#: What the checks read from ``systemctl show``: state, identity, and every hardening property.
UNIT_PROPERTIES = [
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "User",
    "MainPID",
    "ControlGroup",
    "NeedDaemonReload",
    *sorted(
        set(hardening.expected("llamacpp", "cpu", ["/"], []))
        | set(hardening.expected("llamacpp", "cuda", ["/"], []))
        | set(hardening.expected("ollama", None, [], ["/"]))
        | set(hardening.expected("vllm", "cpu", ["/"], []))
    ),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the checks in the order they are reported: what is installed, then the service, then
    requests to the endpoint last (a request can change what the others would see: a server
    whose model was cut under it crashes on its next completion)."""

    def rank(item: pytest.Item) -> int:
        name = item.name.removeprefix("test_")
        return CHECKS.index(name) if name in CHECKS else len(CHECKS)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    path = pytestconfig.getoption("rigctl_target")
    if not path:
        raise pytest.UsageError(
            "--rigctl-target is required (-p rigctl.verify.plugin; rigctl verify writes it)"
        )
    return Target.read(path)


@pytest.fixture(scope="session")
def host(target: Target) -> testinfra.host.Host:
    """The host, over SSH (raises HostUnreachable with the cause)."""
    return connect(target.ssh)


@pytest.fixture(scope="session")
def deployment(host: testinfra.host.Host) -> Deployment:
    """What rigctl deployed on the host, from the host's own manifest."""
    manifest = host.file(MANIFEST)
    if not manifest.exists:
        raise HostError(f"no rigctl deployment ({MANIFEST} missing): run `rigctl provision` first")
    try:
        return parse_deployment(manifest.content_string)
    except (ValueError, TypeError) as e:
        raise HostError(f"{MANIFEST} is not a rigctl manifest: {e}") from None


@pytest.fixture(scope="session")
def systemd(host: testinfra.host.Host) -> None:
    """Checks that read systemd skip on hosts without it (macOS serves with launchd)."""
    if not host.file("/run/systemd/system").is_directory:
        pytest.skip("not a systemd host: launchd services are not checked yet")


@pytest.fixture(scope="session")
def unit(host: testinfra.host.Host, deployment: Deployment, systemd: None) -> dict[str, str]:
    """``systemctl show`` of the deployment's unit: state, user, hardening."""
    args = " ".join(f"-p {name}" for name in UNIT_PROPERTIES)
    shown = host.run(f"systemctl show {args} -- %s", f"{deployment.unit}.service")
    if shown.rc != 0:
        pytest.fail(f"systemctl show {deployment.unit}: {shown.stderr.strip() or shown.rc}")
    return systemctl_show(shown.stdout)


@pytest.fixture
def detail(record_property: Callable[[str, object], None]) -> Callable[[str], None]:
    """Say what a passing check saw (shown in ``rigctl verify --json``)."""
    return lambda text: record_property("detail", text)
