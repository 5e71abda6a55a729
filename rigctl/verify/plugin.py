"""The pytest plugin of the verify suite (``-p rigctl.verify.plugin``): its options, and each
check's outcome as JSON.

``--rigctl-target PATH`` says which host to check (the suite's ``target`` fixture reads it).
``--rigctl-report PATH`` receives ``{"checks": {name: {status, message}}, "error": ...,
"error_kind": ...}``: a check is a test function ``test_<name>``; its message is the reason it
failed or was skipped, or what a passing check saw (``record_property("detail", ...)``). A
:class:`~rigctl.verify.results.HostError` while setting up (host unreachable, not provisioned)
becomes the host's ``error`` instead of nine identical failures.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from rigctl.verify.results import FAILED, PASSED, SKIPPED, HostError

#: Longest message kept per check (a failing assertion can print a lot).
MESSAGE_LIMIT = 600


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rigctl")
    group.addoption(
        "--rigctl-target",
        dest="rigctl_target",
        metavar="PATH",
        help="The host to check: JSON written by `rigctl verify` (rigctl.verify.target.Target).",
    )
    group.addoption(
        "--rigctl-report",
        dest="rigctl_report",
        metavar="PATH",
        help="Write each check's outcome here as JSON.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(
        Recorder(config.getoption("rigctl_report")), "rigctl-verify-recorder"
    )


def check_name(item: pytest.Item) -> str:
    name = getattr(item, "originalname", None) or item.name
    return name.removeprefix("test_")


def message_of(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """A failure in one line or a few: the check's own words, not a traceback."""
    error = excinfo.value
    if isinstance(error, pytest.fail.Exception | pytest.skip.Exception):
        text = str(error.msg or "")
    elif isinstance(error, HostError):
        text = str(error)
    elif isinstance(error, AssertionError):
        # the assertion's message; pytest appends its rewritten expression after a newline
        text = str(error).split("\nassert ", 1)[0]
    else:
        text = f"{type(error).__name__}: {error}"
    text = text.strip()
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


class Recorder:
    """Collects the outcome of each check while pytest runs; writes them when it ends."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.checks: dict[str, dict[str, str]] = {}
        self.error: str | None = None
        self.error_kind: str | None = None

    def _host_error(self, message: str, kind: str = FAILED) -> None:
        if self.error is None:  # the first cause; the rest are its consequences
            self.error, self.error_kind = message, kind

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        report = yield
        name = check_name(item)
        excinfo = call.excinfo
        if report.when == "setup" and excinfo is not None and excinfo.errisinstance(HostError):
            self._host_error(message_of(excinfo), getattr(excinfo.value, "kind", FAILED))
        elif report.skipped and report.when in ("setup", "call"):
            self.checks[name] = {
                "status": SKIPPED,
                "message": message_of(excinfo) if excinfo else "",
            }
        elif report.failed:
            message = message_of(excinfo) if excinfo is not None else str(report.longrepr)
            if report.when == "teardown" and name in self.checks:
                message = f"{self.checks[name]['message']}; teardown: {message}".strip("; ")
            self.checks[name] = {"status": FAILED, "message": message}
        elif report.when == "call" and report.passed:
            details = [str(value) for key, value in item.user_properties if key == "detail"]
            self.checks[name] = {"status": PASSED, "message": "; ".join(details)}
        return report

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            lines = str(report.longrepr).strip().splitlines()
            self._host_error(
                f"the verify suite could not be loaded: {lines[-1] if lines else report.nodeid}"
            )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.path:
            document = {"checks": self.checks, "error": self.error, "error_kind": self.error_kind}
            Path(self.path).write_text(json.dumps(document, indent=2) + "\n")
