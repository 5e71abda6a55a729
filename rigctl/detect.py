"""Detect every host of an inventory in parallel: facts -> one Hardware record per host."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rigctl.detect_host import detect_host
from rigctl.hardware import Hardware
from rigctl.pyinfra_api import Inventory, RunSummary, Session, load_inventory


@dataclass
class Detection:
    hardware: dict[str, Hardware] = field(default_factory=dict)
    summary: RunSummary = field(default_factory=RunSummary)

    @property
    def exit_code(self) -> int:
        return self.summary.exit_code

    def to_json(self) -> dict[str, Any]:
        """``{"hosts": {NAME: hardware}, "failed": {NAME: {status, error}}}``."""
        return {
            "hosts": {name: hw.to_json() for name, hw in self.hardware.items()},
            "failed": {
                name: {"status": result.status, "error": result.error}
                for name, result in self.summary.hosts.items()
                if result.failed
            },
        }


def detect(target: str) -> Detection:
    """Connect to every host of ``target`` (an inventory or host spec) and read its hardware.

    Hosts that cannot be reached or whose facts fail are reported in the summary; the others
    are detected all the same.
    """
    return detect_inventory(load_inventory(target))


def detect_inventory(inventory: Inventory) -> Detection:
    with Session(inventory) as session:
        hardware = session.each_host(detect_host)
        summary = session.summary()
    return Detection(hardware=hardware, summary=summary)
