"""What a run did, per host and per operation: the shape of ``--json`` summaries.

Plain data, no pyinfra: :class:`rigctl.pyinfra_api.session.Session` fills them in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# How many trailing stderr lines a failure keeps: enough to see the error, not a whole build log.
STDERR_TAIL_LINES = 20


@dataclass
class OpResult:
    """One operation on one host, after the run."""

    name: str
    changed: bool
    success: bool
    stderr_tail: list[str] = field(default_factory=list)


@dataclass
class HostResult:
    """What happened on one host: the shape of ``--json`` summaries."""

    name: str
    status: str = "ok"  # ok | changed | failed | unreachable
    changed_ops: list[str] = field(default_factory=list)
    failed_ops: list[OpResult] = field(default_factory=list)
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable")

    def fail(self, error: str, status: str = "failed") -> None:
        # The first cause is the one worth reporting; later ones are consequences.
        if not self.failed:
            self.status = status
            self.error = error

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def outcome_json(self) -> dict[str, Any]:
        """What a command's per-host JSON says of the run: status, error, the operations that
        changed something and those that failed (name and stderr's tail)."""
        return {
            "status": self.status,
            "error": self.error,
            "changed_ops": self.changed_ops,
            "failed_ops": [{"name": op.name, "stderr_tail": op.stderr_tail} for op in self.failed_ops],
        }


@dataclass
class RunSummary:
    hosts: dict[str, HostResult] = field(default_factory=dict)

    @property
    def failed_hosts(self) -> list[str]:
        return [name for name, result in self.hosts.items() if result.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_hosts else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {name: result.to_json() for name, result in self.hosts.items()},
            "failed": self.failed_hosts,
            "ok": not self.failed_hosts,
        }
