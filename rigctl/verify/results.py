"""What ``rigctl verify`` found: per host, per check, passed / failed / skipped with a reason.

Shared by the pytest plugin (which writes one host's report) and the runner (which reads them);
no pyinfra, no testinfra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rigctl.fleet import FleetResult

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"

#: The checks of the shipped suite, in the order they are reported (each is ``test_<name>``).
CHECKS: tuple[str, ...] = (
    "runtime",
    "model",
    "service",
    "hardening",
    "listening",
    "api_key",
    "health",
    "auth",
    "models",
    "metrics",
)


class HostError(Exception):
    """Nothing on this host can be checked (unreachable, not provisioned): reported for the host,
    not as a failure of every check."""

    kind = "failed"


class HostUnreachable(HostError):
    kind = "unreachable"


@dataclass
class CheckResult:
    name: str
    status: str  # passed | failed | skipped
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message}


@dataclass
class HostVerify:
    """One host's outcome: its checks, or the one reason none could run."""

    name: str
    checks: dict[str, CheckResult] = field(default_factory=dict)
    error: str | None = None
    unreachable: bool = False

    @property
    def status(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.error or self.failed_checks:
            return FAILED
        return PASSED

    @property
    def failed(self) -> bool:
        return self.status != PASSED

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.status == FAILED]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "failed_checks": self.failed_checks,
            "checks": {name: check.to_json() for name, check in self.checks.items()},
        }

    @classmethod
    def from_report(cls, name: str, report: dict[str, Any]) -> HostVerify:
        """A host's outcome from the plugin's report (``plugin.write_report``)."""
        checks = {
            check: CheckResult(check, entry["status"], entry.get("message", ""))
            for check, entry in report.get("checks", {}).items()
        }
        ordered = {n: checks.pop(n) for n in CHECKS if n in checks}
        ordered.update(checks)  # checks a newer suite added keep their place at the end
        error = report.get("error")
        unreachable = report.get("error_kind") == "unreachable"
        if error:
            ordered = {}  # every check failed for the same reason: say it once
        return cls(name, ordered, error=error, unreachable=unreachable)


@dataclass
class VerifyResult(FleetResult[HostVerify]):
    lockfile: str | None = None  # the model lockfile the checks used, when there was one

    def extra_json(self) -> dict[str, Any]:
        return {"lockfile": self.lockfile}
