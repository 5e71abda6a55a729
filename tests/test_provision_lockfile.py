"""The lockfile `provision` writes: none when no host serves; each model's own endpoint."""

from __future__ import annotations

from pathlib import Path

from rigctl.deploys import Served

from rigctl.provision import HostProvision, ProvisionResult, _write_lockfile
from rigctl.pyinfra_api import HostResult


def test_no_lockfile_is_written_when_no_host_serves(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.py"
    inventory.write_text("hosts = []\n")
    failed = HostResult("a")
    failed.fail("plan: does not fit")
    result = ProvisionResult({"a": HostProvision("a", failed), "b": HostProvision("b", HostResult("b"))})
    assert _write_lockfile(str(inventory), result) is None
    assert not inventory.with_suffix(".lock.json").exists()


def test_each_model_with_a_server_of_its_own_is_recorded_at_its_endpoint() -> None:
    served = Served(unit="rigctl-vllm-chat", endpoint="http://10.0.0.5:8000", api_key_file="k",
                    build="b", model_path="/m", port=8000,
                    servers={"chat": ("rigctl-vllm-chat", 8000), "long": ("rigctl-vllm-long", 9000)})
    assert served.endpoint_of("long") == "http://10.0.0.5:9000"
    assert served.endpoint_of("chat") == "http://10.0.0.5:8000"
    router = Served(unit="u", endpoint="http://[::1]:8080", api_key_file="k", build="b",
                    model_path="/m", aliases=("a", "b"), router=True)
    assert router.endpoint_of("b") == "http://[::1]:8080"  # behind the one endpoint
