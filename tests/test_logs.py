"""`rigctl logs`: the --since check, the commands built (journalctl, launchd's tail), the
escaping of what hosts send, the prefixing, the JSON, and the run itself over ``@local``.

Over ``@local`` the host's manifest is stood in for (``read_deployment``, and the plist a
launchd host's manifest names), and the command really runs: a ``tail`` of a log file holding
hostile bytes, through pyinfra's connector and back, as from any host.
"""

from __future__ import annotations

import base64
import json
import plistlib
import shlex
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import rigctl
from deployments import llamacpp_deployment
from rigctl.cli.logs import render_lines
from rigctl.cli.main import main
from rigctl.deploys import llamacpp as llamacpp_deploy
from rigctl.templates import render

from rigctl import logs
from rigctl.logs import (
    MAX_LINE_BYTES,
    HostLogs,
    LogsResult,
    byte_safe,
    check_since,
    host_command,
    journal_command,
    plist_log_paths,
    split_lines,
    tail_command,
    unwrap,
)
from rigctl.manifest import Deployment

GOOD_SINCE = [
    "2026-12-01",
    "2026-12-01 09:30",
    "2026-12-01 09:30:15",
    "09:30",
    "23:59:59",
    "today",
    "yesterday",
    "-5min",
    "-2h",
    "-1d",
    "-30s",
    "-1w",
    "5 min ago",
    "2 hours ago",
    "1d ago",
]

HOSTILE_SINCE = [
    "; rm -rf /",
    "today; rm -rf /",
    "$(id)",
    "-5min$(id)",
    "`id`",
    "today`id`",
    "today\n",
    "today\nid",
    "09:30\n",
    "'today'",
    '"today"',
    "today'; id; '",
    "-5min | sh",
    "> /etc/passwd",
    "--help",
    "-u other",
    "",
    " ",
    "now",
    "tomorrow",
    "2026-13-01",  # no 13th month
    "2026-02-30",
    "25:00",
    "09:60",
    "5 min",
    "-5",
    "-5 min ago",
    "\u0665 min ago",  # an Arabic-Indic five: a digit to Python, not to journalctl
    "today\x00",
    "today\u202e",
]

#: what a hostile host puts in its log: a terminal title, a screen clear, colour, a carriage
#: return that would overwrite the prefix, NUL, a bidi override, a C1 CSI
HOSTILE_LINE = "ok \x1b]0;owned\x07 \x1b[2J\x1b[31mred\x1b[0m\rfake\x00 \u202eevil\u202c \x9b1m"


def _deployment(**overrides: Any) -> Deployment:
    return llamacpp_deployment(**{"build": "b1", "model_path": "/var/lib/rigctl/models/gemma.gguf",
                                  **overrides})

def _vllm_two_models() -> Deployment:
    entry = {"model_name": "tiny", "model_quant": "bf16", "model_sha256": ""}
    return _deployment(
        runtime="vllm",
        unit="rigctl-vllm-chat",
        user="vllm",
        models=[
            {**entry, "alias": "chat", "model_path": "/var/lib/a", "unit": "rigctl-vllm-chat", "port": 8080},
            {**entry, "alias": "code", "model_path": "/var/lib/b", "unit": "rigctl-vllm-code", "port": 8081},
        ],
    )


def _plist(log_path: str) -> bytes:
    """The LaunchDaemon rigctl renders for llama-server on macOS."""
    return render(
        "llama-server.plist.j2",
        label=llamacpp_deploy.LAUNCHD_LABEL,
        model_name="gemma-3-270m Q4_K_M",
        build_name="b1",
        user="llama",
        group="llama",
        argv=["/opt/rigctl/llama.cpp/current/bin/llama-server", "--port", "8080"],
        environment={},
        working_directory=f"/var/lib/{llamacpp_deploy.UNIT}",
        log_path=log_path,
    ).encode()


LAUNCHD_PLIST = f"/Library/LaunchDaemons/{llamacpp_deploy.LAUNCHD_LABEL}.plist"


def _launchd() -> Deployment:
    return _deployment(config_files=[LAUNCHD_PLIST])


# -- --since


@pytest.mark.parametrize("value", GOOD_SINCE)
def test_since_accepts_journalctls_safe_forms(value: str) -> None:
    assert check_since(value) == value


@pytest.mark.parametrize("value", HOSTILE_SINCE)
def test_since_refuses_anything_else(value: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        check_since(value)
    with pytest.raises(ValueError):  # and no command is built with it
        journal_command(["rigctl-llama-server"], value, 200, False)


@pytest.mark.parametrize("value", ["; rm -rf /", "$(id)", "today\nid", "`id`"])
def test_a_hostile_since_is_bad_input_exit_2_in_one_line(value: str) -> None:
    result = rigctl("logs", "@local", "--since", value)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("rigctl: error: Invalid value for '--since': not a time")


def test_bad_lines_and_json_with_follow_are_usage_errors() -> None:
    for argv in (["--lines", "0"], ["--lines", "100001"], ["--lines", "x"], ["--follow", "--json"]):
        result = rigctl("logs", "@local", *argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_logs_is_a_command_with_help() -> None:
    assert "  logs " in rigctl("--help").stdout
    result = rigctl("logs", "--help")
    assert result.returncode == 0 and "Usage: rigctl logs" in result.stdout


# -- the commands built


def test_journal_command_one_unit() -> None:
    command = journal_command(["rigctl-llama-server"], None, 200, False)
    assert command == (
        "journalctl -u rigctl-llama-server.service -o short-iso --no-pager -n 200"
    )


def test_journal_command_several_units_since_and_follow() -> None:
    command = journal_command(_vllm_two_models().units, "2026-12-01 09:30", 20, True)
    assert shlex.split(command) == [
        "journalctl",
        "-u", "rigctl-vllm-chat.service",
        "-u", "rigctl-vllm-code.service",
        "-o", "short-iso", "--no-pager", "-n", "20",
        "--since", "2026-12-01 09:30",
        "-f",
    ]
    assert "'2026-12-01 09:30'" in command  # quoted, one argument


def test_journal_command_quotes_every_unit() -> None:
    """Units come from the host's manifest (checked when it is read): quoted here anyway."""
    command = journal_command(["x; rm -rf /", "$(id)", "a'b"], "-5min", 5, False)
    assert shlex.split(command)[:7] == [
        "journalctl", "-u", "x; rm -rf /.service", "-u", "$(id).service", "-u", "a'b.service",
    ]


@pytest.mark.parametrize("lines", [0, -1, 100_001, True])
def test_journal_command_refuses_lines_out_of_range(lines: int) -> None:
    with pytest.raises(ValueError, match="lines"):
        journal_command(["u"], None, lines, False)


def test_every_unit_of_the_deployment_is_read() -> None:
    command = host_command(_vllm_two_models(), since="-1h", lines=50, follow=False, read=_no_read)
    argv = shlex.split(command)
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "-u"] == [
        "rigctl-vllm-chat.service", "rigctl-vllm-code.service",
    ]


def _no_read(path: str) -> bytes:
    raise AssertionError(f"a systemd host's command read {path}")


# -- launchd


def test_the_plist_names_the_log_file_the_deploy_writes() -> None:
    path = f"/var/log/rigctl/{llamacpp_deploy.UNIT}.log"
    assert plist_log_paths(_plist(path)) == [path]


def test_launchd_branch_tails_the_plists_log_file() -> None:
    read: list[str] = []

    def from_host(path: str) -> bytes:
        read.append(path)
        return _plist("/var/log/rigctl/rigctl-llama-server.log")

    command = host_command(_launchd(), since=None, lines=20, follow=False, read=from_host)
    assert command == "tail -n 20 /var/log/rigctl/rigctl-llama-server.log"
    assert read == [LAUNCHD_PLIST]
    followed = host_command(_launchd(), since=None, lines=20, follow=True, read=from_host)
    assert shlex.split(followed) == ["tail", "-n", "20", "-F", "/var/log/rigctl/rigctl-llama-server.log"]


def test_launchd_with_two_log_files_tails_both_without_headers() -> None:
    raw = plistlib.dumps({"StandardOutPath": "/var/log/a.log", "StandardErrorPath": "/var/log/b.log"})
    assert plist_log_paths(raw) == ["/var/log/a.log", "/var/log/b.log"]
    assert tail_command(plist_log_paths(raw), 5, False) == "tail -n 5 -q /var/log/a.log /var/log/b.log"


def test_launchd_has_no_since() -> None:
    with pytest.raises(ValueError, match="--since"):
        host_command(_launchd(), since="today", lines=20, follow=False, read=lambda _: _plist("/var/log/x.log"))


@pytest.mark.parametrize(
    "raw",
    [
        plistlib.dumps({"StandardOutPath": "/var/log/x.log; rm -rf /"}),
        plistlib.dumps({"StandardOutPath": "/var/log/$(id).log"}),
        plistlib.dumps({"StandardOutPath": "relative.log"}),
        plistlib.dumps({"StandardOutPath": "/var/log/../../etc/shadow"}),
        plistlib.dumps({"StandardOutPath": "/var/log/x\n.log"}),
        plistlib.dumps({"StandardOutPath": ["/var/log/x.log"]}),
        plistlib.dumps({"Label": "no log file"}),
        plistlib.dumps(["not", "a", "dict"]),
        b"not a plist",
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa">]><plist><string>&a;</string></plist>',
    ],
)
def test_a_hostile_plist_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        host_command(_launchd(), since=None, lines=20, follow=False, read=lambda _: raw)


# -- escaping and prefixing


def _shown(text: str) -> bool:
    """Nothing in ``text`` a terminal would obey."""
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def test_hostile_output_is_shown_not_obeyed() -> None:
    [line] = render_lines("gpu1", HOSTILE_LINE)
    assert _shown(line)
    assert line == (
        "gpu1 | ok \\x1b]0;owned\\x07 \\x1b[2J\\x1b[31mred\\x1b[0m\\rfake\\x00 \\u202eevil\\u202c \\x9b1m"
    )


def test_every_line_is_prefixed_and_only_newlines_split() -> None:
    assert render_lines("gpu1", "first\nsecond\rstill second\n") == [
        "gpu1 | first",
        "gpu1 | second\\rstill second",
    ]
    assert render_lines("gpu1", ["a", "", "b"]) == ["gpu1 | a", "gpu1 | ", "gpu1 | b"]
    assert render_lines("gpu1", "") == []
    # a line break that is not a newline cannot start a line of its own
    assert render_lines("h", "a\u2028b\x85c\x0bd") == ["h | a\\u2028b\\x85c\\x0bd"]


def test_a_hostile_host_name_is_escaped_too() -> None:
    assert render_lines("evil\x1b[2J", "x") == ["evil\\x1b[2J | x"]


def test_secrets_in_a_log_are_redacted() -> None:
    [line] = render_lines("h", "GET / Authorization: Bearer abcdefghijklmnop")
    assert "abcdefghijklmnop" not in line


# -- streams


def test_split_lines_joins_chunks_and_keeps_carriage_returns() -> None:
    chunks = [b"one\ntw", b"o\r", b"\n", "thr\u00e9".encode()[:4], "thr\u00e9".encode()[4:], b"\n\xfflast"]
    assert list(split_lines(chunks)) == ["one", "two\r", "thr\u00e9", "\ufffdlast"]


def test_split_lines_cuts_a_line_without_end() -> None:
    parts = list(split_lines([b"x" * (MAX_LINE_BYTES * 2 + 10)]))
    assert [len(p) for p in parts] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]


# -- the result and its JSON


def test_json_shape_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from rigctl.cli.render import emit_json

    result = LogsResult({
        "gpu1": HostLogs("gpu1", lines=[HOSTILE_LINE, "second"]),
        "gpu2": HostLogs("gpu2", error="no rigctl deployment on gpu2"),
    })
    assert result.exit_code == 1
    emit_json(result.to_json())
    out = capsys.readouterr().out
    assert _shown(out.replace("\n", ""))  # JSON escapes what the host sent
    assert json.loads(out) == {
        "hosts": {
            "gpu1": {"lines": [HOSTILE_LINE, "second"], "error": None},
            "gpu2": {"lines": [], "error": "no rigctl deployment on gpu2"},
        },
        "failed": ["gpu2"],
        "ok": False,
    }
    assert LogsResult({"gpu1": HostLogs("gpu1", lines=["x"])}).exit_code == 0


# -- the run, over @local


@pytest.fixture
def launchd_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``@local`` as a launchd host whose plist sends llama-server's output to a file here."""
    log = tmp_path / "rigctl-llama-server.log"
    monkeypatch.setattr(logs, "read_deployment", lambda host: _launchd())
    monkeypatch.setattr(logs, "read_file", lambda host, path: _plist(str(log)))
    return log


def test_a_host_without_a_deployment_is_its_error() -> None:
    result = rigctl("logs", "@local", "--json")
    if result.returncode == 0:
        pytest.skip("this machine has a rigctl deployment")
    assert result.returncode == 1, result.stderr
    host = json.loads(result.stdout)["hosts"]["@local"]
    assert host["lines"] == []
    assert host["error"].startswith("no rigctl deployment on @local")
    text = rigctl("logs", "@local")
    assert text.returncode == 1 and text.stdout == ""
    assert text.stderr.strip().splitlines() == [f"rigctl: error: host @local: {host['error']}"]


def test_logs_of_a_host_read_for_real(launchd_local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    launchd_local.write_bytes(("".join(f"line {i}\n" for i in range(10)) + HOSTILE_LINE + "\n").encode())
    assert main(["logs", "@local", "--lines", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "@local | line 8",
        "@local | line 9",
        render_lines("@local", HOSTILE_LINE)[0],
    ]
    assert _shown(out.replace("\n", ""))
    assert main(["logs", "@local", "--lines", "2", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["hosts"]["@local"] == {"lines": ["line 9", HOSTILE_LINE], "error": None}


def test_a_missing_log_file_is_the_hosts_error(launchd_local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "@local", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["hosts"]["@local"]["error"]
    assert "No such file" in error


def test_a_log_that_is_not_utf8_still_comes_back_whole(launchd_local: Path) -> None:
    """pyinfra decodes output as strict UTF-8 and stops reading at the first byte that is not
    (silently: the command still "succeeds"): the read goes through base64 on the host."""
    launchd_local.write_bytes(b"before\n\xff\xfe bad\x00\r\nafter")
    result = logs.fleet_logs("@local")
    assert result.hosts["@local"] == HostLogs("@local", lines=["before", "\ufffd\ufffd bad\x00\r", "after"])


def test_the_read_keeps_its_exit_status() -> None:
    def answer(raw: bytes) -> str:
        return base64.encodebytes(raw).decode()  # wrapped at 76 columns, as GNU base64 does

    assert unwrap(answer(b"a\n" * 100 + b"\nrigctl-exit:0\n")) == (0, ["a"] * 100)
    assert unwrap(answer(b"no newline at the end\nrigctl-exit:1\n")) == (1, ["no newline at the end"])
    for bad in ("not base64!", answer(b"no status"), answer(b"\nrigctl-exit:x\n")):
        with pytest.raises(ValueError):
            unwrap(bad)
    assert byte_safe("tail -n 5 /var/log/x.log") == (
        "{ tail -n 5 /var/log/x.log 2>&1; printf '\\nrigctl-exit:%s\\n' \"$?\"; } | base64"
    )


def test_follow_relays_each_hosts_lines_as_they_come(
    launchd_local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[str] = []

    def stream(host: object, command: str) -> Iterator[bytes]:
        commands.append(command)
        yield b"first\nsec"
        yield b"ond \x1b[2J\n"

    monkeypatch.setattr(logs, "stream_command", stream)
    seen: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
    result = logs.follow_logs(
        "@local", lines=5, on_line=lambda h, t: seen.append((h, t)),
        on_error=lambda h, t: errors.append((h, t)),
    )
    assert commands == [f"tail -n 5 -F {launchd_local}"]
    assert seen == [("@local", "first"), ("@local", "second \x1b[2J")]
    assert errors == [("@local", "the log stream ended")]  # a stream that ends is a failure
    assert result.exit_code == 1


def test_follow_over_a_connection_that_cannot_stream_is_the_hosts_error(launchd_local: Path) -> None:
    errors: list[tuple[str, str]] = []
    result = logs.follow_logs(
        "@local", on_line=lambda h, t: None, on_error=lambda h, t: errors.append((h, t))
    )
    assert errors == [("@local", "streaming needs an SSH connection")]
    assert result.hosts["@local"].error == "streaming needs an SSH connection"
