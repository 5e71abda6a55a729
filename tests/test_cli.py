"""The CLI frame: every command's help, honest "not built yet", exit codes, JSON output."""

from __future__ import annotations

import json

import pytest
from conftest import rigctl

COMMANDS = ["provision", "detect", "plan", "bench", "status", "rollout", "verify", "lab"]
LAB_COMMANDS = ["up", "down", "status", "inventory"]


def test_help_lists_every_command() -> None:
    result = rigctl("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize("command", COMMANDS + [f"lab {sub}" for sub in LAB_COMMANDS])
def test_every_subcommand_has_help(command: str) -> None:
    result = rigctl(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: rigctl" in result.stdout


@pytest.mark.parametrize(
    ("argv", "issue"),
    [
        (["provision", "inv.py"], 4),
        (["plan", "inv.py"], 3),
        (["bench", "inv.py"], 5),
        (["status", "inv.py"], 5),
        (["rollout", "inv.py"], 5),
        (["verify", "inv.py"], 7),
    ],
)
def test_unbuilt_commands_say_so_and_fail(argv: list[str], issue: int) -> None:
    result = rigctl(*argv)
    assert result.returncode == 3
    assert result.stderr.strip() == f"rigctl: error: `rigctl {argv[0]}` is not built yet (tracked in issue #{issue})"


def test_usage_errors_exit_2_with_one_line() -> None:
    for argv in (["no-such-command"], ["lab", "up", "0"], ["detect"]):
        result = rigctl(*argv)
        assert result.returncode == 2, argv
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("rigctl: error: ")


def test_missing_inventory_file_exit_2() -> None:
    result = rigctl("detect", "inventories/no-such-file.py")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "rigctl: error: field inventory: inventory file not found: inventories/no-such-file.py"
    )


def test_detect_local_json_parses() -> None:
    result = rigctl("detect", "@local", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    local = document["hosts"]["@local"]
    assert local["accelerator"] in ("cuda", "rocm", "metal", "vulkan", "cpu")
    assert local["memory_bytes"] > 0
    assert local["cpu"]["cores"] >= 1
    assert local["os"]["system"] == "Linux"
    assert document["failed"] == {}


def test_lab_status_json_parses() -> None:
    result = rigctl("lab", "status", "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout)["hosts"], list)
