"""Every fleet command's result has one shape: hosts, failed (in inventory order), ok, exit."""

from __future__ import annotations

import pytest

from rigctl.bench.run import BenchResult, HostBench
from rigctl.fleet import FleetResult
from rigctl.provision import HostProvision, ProvisionResult
from rigctl.pyinfra_api import HostResult
from rigctl.rollback import HostRollback, RollbackResult
from rigctl.rollout import HostRollout, RolloutResult
from rigctl.status import HostStatus, StatusResult
from rigctl.verify.results import HostVerify, VerifyResult


def _failed_provision(name: str) -> HostProvision:
    outcome = HostProvision(name, HostResult(name))
    outcome.result.fail("boom")
    return outcome


CASES = {
    "provision": (ProvisionResult, lambda n: HostProvision(n, HostResult(n)), _failed_provision),
    "rollout": (
        RolloutResult,
        lambda n: HostRollout(n, 1, status="updated"),
        lambda n: HostRollout(n, 1, status="lost"),
    ),
    "rollback": (
        RollbackResult,
        lambda n: HostRollback(n, status="rolled-back"),
        lambda n: HostRollback(n, status="unreachable"),
    ),
    "bench": (BenchResult, lambda n: HostBench(n), lambda n: HostBench(n, error="down")),
    "status": (
        StatusResult,
        lambda n: HostStatus(n, unit_state="active", healthy=True),
        lambda n: HostStatus(n, unit_state="failed"),
    ),
    "verify": (VerifyResult, lambda n: HostVerify(n), lambda n: HostVerify(n, error="no ssh")),
}


@pytest.mark.parametrize("command", sorted(CASES))
def test_one_shape_for_every_fleet_result(command: str) -> None:
    result_type, good, bad = CASES[command]
    assert issubclass(result_type, FleetResult)
    result = result_type()
    for name, make in (("c", bad), ("a", good), ("b", bad)):
        result.hosts[name] = make(name)
    assert result.failed == ["c", "b"]  # inventory order, not sorted
    assert result.exit_code == 1
    document = result.to_json()
    assert list(document["hosts"]) == ["c", "a", "b"]
    assert document["failed"] == ["c", "b"] and document["ok"] is False
    del result.hosts["c"], result.hosts["b"]
    assert result.exit_code == 0 and result.to_json()["ok"] is True
