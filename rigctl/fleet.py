"""The one shape of every fleet command's result: per host, what happened; which failed; exit.

``provision``, ``rollout``, ``rollback``, ``bench``, ``status`` and ``verify`` each return a
:class:`FleetResult` of their own per-host records (anything with ``failed`` and ``to_json``),
so the CLI renders them, and scripts read their ``--json``, the same way:
``{"hosts": {NAME: ...}, "failed": [NAME...], "ok": bool, ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class HostOutcome(Protocol):
    """A per-host record: whether the host failed, and its JSON."""

    @property
    def failed(self) -> bool: ...

    def to_json(self) -> dict[str, Any]: ...


H = TypeVar("H", bound=HostOutcome)


@dataclass
class FleetResult(Generic[H]):
    """Per host (in inventory order), the command's record of it."""

    hosts: dict[str, H] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        """The hosts that failed, in inventory order."""
        return [name for name, outcome in self.hosts.items() if outcome.failed]

    @property
    def exit_code(self) -> int:
        """0 when every host did what was asked, 1 otherwise."""
        return 1 if self.failed else 0

    def extra_json(self) -> dict[str, Any]:
        """What a command adds to the common document (its own fleet-wide fields)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {name: outcome.to_json() for name, outcome in self.hosts.items()},
            "failed": self.failed,
            **self.extra_json(),
            "ok": self.exit_code == 0,
        }
