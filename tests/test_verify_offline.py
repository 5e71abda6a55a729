"""`rigctl verify` without a lab: parsing what hosts print, the hardening profile against the
templates it mirrors, the pytest plugin's report, results and their rendering, bad input."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, rigctl
from rigctl.cli.verify import detail_rows, summary_rows

from rigctl.verify import hardening
from rigctl.verify.parse import (
    BuildName,
    Listener,
    is_loopback,
    proc_uids,
    prometheus_samples,
    same_address,
    ss_listeners,
    systemctl_show,
)
from rigctl.verify.results import CHECKS, CheckResult, HostVerify, VerifyResult

CAPTURED = Path(__file__).parent / "verify"
GOLDEN = Path(__file__).parent / "golden"
SUITE = REPO / "rigctl" / "verify" / "suite"


# --- parsing --------------------------------------------------------------------------------


def test_ss_listeners_from_a_lab_host() -> None:
    """Captured on a lab host: the network namespace is shared, so other hosts' sockets show
    without a process; only the host's own processes are named."""
    listeners = ss_listeners((CAPTURED / "ss-Htlnp-lab.txt").read_text())
    assert len(listeners) == 14
    server = [listener for listener in listeners if "llama-server" in listener.processes]
    assert server == [Listener("127.0.7.1", 8080, (2857,), ("llama-server",))]
    assert str(server[0]) == "127.0.7.1:8080" and server[0].loopback and not server[0].wildcard
    wildcard = next(listener for listener in listeners if listener.port == 2024)
    assert wildcard.wildcard and not wildcard.loopback and wildcard.pids == ()


def test_ss_listeners_address_forms() -> None:
    text = "\n".join(
        [
            'LISTEN 0 4096 [::]:8080 [::]:* users:(("ollama",pid=10,fd=3),("ollama",pid=11,fd=3))',
            "LISTEN 0 4096 *:22 *:*",
            "LISTEN 0 4096 [::ffff:127.0.0.1]:9000 *:*",
            "LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*",
            "LISTEN 0 4096 [fe80::1%eth0]:7000 [::]:*",
            "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process",
            "garbage",
        ]
    )
    listeners = ss_listeners(text)
    assert [(listener.address, listener.port) for listener in listeners] == [
        ("::", 8080),
        ("*", 22),
        ("::ffff:127.0.0.1", 9000),
        ("127.0.0.53", 53),
        ("fe80::1", 7000),
    ]
    assert (
        listeners[0].pids == (10, 11) and listeners[0].wildcard and str(listeners[0]) == "[::]:8080"
    )
    assert listeners[1].wildcard
    assert listeners[2].loopback and listeners[3].loopback and not listeners[4].loopback


def test_addresses() -> None:
    assert is_loopback("127.0.7.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("*")
    assert same_address("::ffff:127.0.0.1", "127.0.0.1") and same_address("*", "0.0.0.0")
    assert same_address("[::1]", "::1") and not same_address("127.0.0.1", "127.0.0.2")


def test_systemctl_show_parsing() -> None:
    shown = systemctl_show((CAPTURED / "systemctl-show-llama-server.txt").read_text())
    assert (
        shown["User"] == "llama" and shown["ActiveState"] == "active" and shown["MainPID"] == "2857"
    )
    assert shown["CapabilityBoundingSet"] == "" and shown["ReadWritePaths"] == ""
    assert shown["SystemCallFilter"].startswith("_llseek ")
    assert systemctl_show("Environment=A=1 B=2\nnot a property\n=x\n") == {"Environment": "A=1 B=2"}


def test_proc_uids_and_build_names() -> None:
    status = "Name:\tllama-server\nUid:\t999\t999\t999\t999\nGid:\t997\t997\t997\t997\n"
    assert proc_uids(status) == (999, 999, 999, 999)
    with pytest.raises(ValueError):
        proc_uids("Name:\tx\n")
    name = BuildName.parse("0c1e57098-cpu-21cebfdfe4d3")
    assert (name.version, name.backend, name.key) == ("0c1e57098", "cpu", "21cebfdfe4d3")
    assert BuildName.parse("b1-2-cuda-0123456789ab").version == "b1-2"
    for bad in ("ollama-21cebfdfe4d3", "0c1e57098-cpu-xyz", "plain"):
        with pytest.raises(ValueError):
            BuildName.parse(bad)


def test_prometheus_samples() -> None:
    text = '# HELP x y\n# TYPE x counter\nllamacpp:tokens_predicted_total 128\nx{a="b"} 0.5\nbad line\n\n'
    assert prometheus_samples(text) == {"llamacpp:tokens_predicted_total": 128.0, 'x{a="b"}': 0.5}
    assert prometheus_samples("<html>not metrics</html>") == {}


# --- hardening ------------------------------------------------------------------------------


def test_hardening_holds_on_a_real_unit_and_names_what_is_weakened() -> None:
    shown = systemctl_show((CAPTURED / "systemctl-show-llama-server.txt").read_text())
    profile = hardening.expected(
        "llamacpp", "cpu", ["/var/lib/rigctl/models", "/etc/rigctl/rigctl-llama-server"], []
    )
    assert hardening.problems(profile, shown) == []
    weakened = dict(
        shown,
        NoNewPrivileges="no",
        CapabilityBoundingSet="cap_net_admin",
        RestrictAddressFamilies="AF_INET AF_INET6 AF_UNIX AF_PACKET",
        SystemCallErrorNumber="EPERM",  # newer systemd prints the name: still fine
        SystemCallFilter=shown["SystemCallFilter"] + " mount",
        ReadOnlyPaths="/opt/rigctl/llamacpp",
    )
    del weakened["ProtectProc"]
    assert hardening.problems(profile, weakened) == [
        "NoNewPrivileges=no, expected yes",
        "CapabilityBoundingSet=cap_net_admin, expected (empty)",
        "ProtectProc not reported by systemctl",
        "SystemCallFilter allows mount",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_PACKET, expected AF_INET AF_INET6 AF_UNIX",
        "ReadOnlyPaths lacks /var/lib/rigctl/models /etc/rigctl/rigctl-llama-server",
    ]
    denylist = dict(shown, SystemCallFilter="~mount reboot")
    assert hardening.problems(profile, denylist) == ["SystemCallFilter is not an allow-list"]


def _hardening_directives(path: Path) -> dict[str, str]:
    """``Name=value`` lines of a rendered unit from its hardening comment on (last one wins)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Hardening"))
    directives = {}
    for line in lines[start:]:
        if line.startswith("[") and line != "[Service]":
            break
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            directives[name] = value
    return directives


# Directives of the templates the profile does not check one by one: the device nodes a GPU
# unit may open, and Ollama's CPU-only settings PrivateDevices, PrivateUsers and
# MemoryDenyWriteExecute (its manifest does not say whether it was given GPUs; its device
# confinement is checked as DevicePolicy=closed, which PrivateDevices implies).
NOT_CHECKED = {
    "llamacpp": {"DeviceAllow"},
    "vllm": {"DeviceAllow"},
    "ollama": {"DeviceAllow", "PrivateDevices", "PrivateUsers", "MemoryDenyWriteExecute"},
}


@pytest.mark.parametrize(
    ("golden", "runtime", "backend"),
    [
        ("llama-server-cpu.service", "llamacpp", "cpu"),
        ("llama-server-cuda.service", "llamacpp", "cuda"),
        ("llama-server-rocm.service", "llamacpp", "rocm"),
        ("vllm-cpu.service", "vllm", "cpu"),
        ("vllm-cuda.service", "vllm", "cuda"),
        ("ollama-dropin-cpu.conf", "ollama", None),
        ("ollama-dropin-cuda.conf", "ollama", None),
    ],
)
def test_every_hardening_directive_of_the_templates_is_checked(
    golden: str, runtime: str, backend: str | None
) -> None:
    """The profile mirrors the rendered units (golden files): a directive added to a template
    and not to rigctl.verify.hardening fails here."""
    written = _hardening_directives(GOLDEN / golden)
    profile = hardening.expected(
        runtime, backend, ["/var/lib/rigctl/models"], ["/var/lib/rigctl/ollama/models"]
    )
    unchecked = set(written) - set(profile) - NOT_CHECKED[runtime]
    assert unchecked == set(), (
        f"{golden}: hardening directives verify does not check: {sorted(unchecked)}"
    )
    for name, want in profile.items():
        if want.kind == "exact" and name in written:
            assert written[name] == want.value, (
                f"{golden}: {name}={written[name]}, verify expects {want.value}"
            )


def test_no_profile_for_unknown_runtimes() -> None:
    assert hardening.expected("tgi", None, [], []) == {}


# --- the suite and its plugin --------------------------------------------------------------


def test_suite_tests_are_the_reported_checks() -> None:
    tests = []
    for path in sorted(SUITE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        tests += [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        ]
    assert sorted(name.removeprefix("test_") for name in tests) == sorted(CHECKS)


def test_suite_runs_without_pyinfra() -> None:
    """The suite's process never loads pyinfra (nor gevent's patching that comes with it)."""
    modules = ["rigctl.verify.plugin"] + [
        f"rigctl.verify.suite.{path.stem}" for path in sorted(SUITE.glob("*.py"))
    ]
    code = f"import sys; import {', '.join(modules)}; print(sorted({{'pyinfra', 'gevent'}} & set(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert run.stdout.strip() == "[]"


def test_plugin_reports_each_outcome(tmp_path: Path) -> None:
    """The plugin on a throwaway suite: passed with its detail, failed with the assertion's own
    words, skipped with the reason, and a HostError in a fixture reported once for the host."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(
        "import pytest\n"
        "from rigctl.verify.results import HostUnreachable\n"
        "@pytest.fixture(scope='session')\n"
        "def gone():\n"
        "    raise HostUnreachable('could not connect to 192.0.2.1:22: timed out')\n"
    )
    (suite / "test_things.py").write_text(
        "import pytest\n"
        "def test_good(record_property):\n"
        "    record_property('detail', 'all fine')\n"
        "def test_bad():\n"
        "    problems = ['mode 0644, expected 0600']\n"
        "    assert not problems, '; '.join(problems)\n"
        "def test_crash():\n"
        "    raise OSError('disk on fire')\n"
        "def test_skipped():\n"
        "    pytest.skip('no API key on loopback')\n"
    )
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            "-p",
            "rigctl.verify.plugin",
            "-p",
            "no:cacheprovider",
            "--rigctl-report",
            str(report),
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    document = json.loads(report.read_text())
    assert document == {
        "checks": {
            "good": {"status": "passed", "message": "all fine"},
            "bad": {"status": "failed", "message": "mode 0644, expected 0600"},
            "crash": {"status": "failed", "message": "OSError: disk on fire"},
            "skipped": {"status": "skipped", "message": "no API key on loopback"},
        },
        "error": None,
        "error_kind": None,
    }
    (suite / "test_things.py").write_text(
        "def test_one(gone):\n    pass\ndef test_two(gone):\n    pass\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            "-p",
            "rigctl.verify.plugin",
            "-p",
            "no:cacheprovider",
            "--rigctl-report",
            str(report),
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    document = json.loads(report.read_text())
    assert document == {
        "checks": {},
        "error": "could not connect to 192.0.2.1:22: timed out",
        "error_kind": "unreachable",
    }
    host = HostVerify.from_report("ghost", document)
    assert host.status == "unreachable" and host.failed and host.checks == {}


# --- results and rendering -----------------------------------------------------------------


def _result() -> VerifyResult:
    good = HostVerify("gpu-a", {name: CheckResult(name, "passed", "fine") for name in CHECKS})
    report = {
        "checks": {
            "metrics": {"status": "skipped", "message": "no metrics endpoint"},
            "api_key": {"status": "failed", "message": "mode 0644, expected 0600"},
            "runtime": {"status": "passed", "message": ""},
        }
    }
    bad = HostVerify.from_report("gpu-b", report)
    gone = HostVerify(
        "gpu-c", error="could not connect to 192.0.2.3:22: timed out", unreachable=True
    )
    return VerifyResult({"gpu-a": good, "gpu-b": bad, "gpu-c": gone}, lockfile="inv.lock.json")


def test_results_order_status_and_json() -> None:
    result = _result()
    assert list(result.hosts["gpu-b"].checks) == [
        "runtime",
        "api_key",
        "metrics",
    ]  # the suite's order
    assert result.failed == ["gpu-b", "gpu-c"] and result.exit_code == 1
    document = json.loads(json.dumps(result.to_json()))
    assert document["ok"] is False and document["failed"] == ["gpu-b", "gpu-c"]
    assert document["hosts"]["gpu-a"]["status"] == "passed"
    assert document["hosts"]["gpu-b"]["failed_checks"] == ["api_key"]
    assert document["hosts"]["gpu-b"]["checks"]["api_key"] == {
        "status": "failed",
        "message": "mode 0644, expected 0600",
    }
    assert document["hosts"]["gpu-c"] == {
        "status": "unreachable",
        "error": "could not connect to 192.0.2.3:22: timed out",
        "failed_checks": [],
        "checks": {},
    }
    assert VerifyResult({"gpu-a": result.hosts["gpu-a"]}).exit_code == 0


def test_table_rows_name_each_failure() -> None:
    result = _result()
    rows = summary_rows(result)
    assert rows[0] == ("gpu-a", *["[green]ok[/]"] * len(CHECKS), "[green]passed[/]")
    b = dict(zip(["host", *CHECKS, "result"], rows[1], strict=True))
    assert b["api_key"] == "[red]FAIL[/]" and b["metrics"] == "[dim]skip[/]" and b["model"] == "-"
    assert b["result"] == "[red]failed[/]"
    assert rows[2][-1] == "[red]unreachable[/]"
    assert detail_rows(result) == [
        ("gpu-b", "api_key", "[red]FAIL[/]", "mode 0644, expected 0600"),
        ("gpu-b", "metrics", "[dim]skip[/]", "no metrics endpoint"),
        ("gpu-c", "(host)", "[red]unreachable[/]", "could not connect to 192.0.2.3:22: timed out"),
    ]


# --- the command -----------------------------------------------------------------------------


def test_verify_non_ssh_host_fails_alone() -> None:
    result = rigctl("verify", "@local", "--json")
    assert result.returncode == 1, result.stderr
    host = json.loads(result.stdout)["hosts"]["@local"]
    assert host["status"] == "failed" and "over SSH" in host["error"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inventories/no-such-file.py"], "field inventory: inventory file not found"),
        (["@local", "--limit", "nosuch"], "field limit: no host or group named nosuch"),
    ],
)
def test_verify_bad_input_is_one_line_exit_2(argv: list[str], message: str) -> None:
    result = rigctl("verify", *argv)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith(f"rigctl: error: {message}"), lines


def test_verify_bad_lockfile_exit_2(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.py"
    inventory.write_text("hosts = [('gpu-a', {'ssh_hostname': '192.0.2.1'})]\n")
    (tmp_path / "fleet.lock.json").write_text("{not json")
    result = rigctl("verify", str(inventory))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"rigctl: error: field lockfile: {tmp_path / 'fleet.lock.json'}: not a rigctl model lockfile"
    )
    assert len(result.stderr.strip().splitlines()) == 1


class _ClosingChannel:
    """Stands in for a paramiko channel whose close() drops what it has not been read yet,
    as a channel does: the server's whole answer is already buffered."""

    def __init__(self, answer: bytes) -> None:
        self.buffer = answer
        self.sent = b""
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, size: int) -> bytes:
        if self.closed:
            return b""
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk

    def settimeout(self, timeout: float | None) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        self.buffer = b""


def test_a_chunked_answer_with_connection_close_is_read_whole_through_the_channel() -> None:
    """http.client closes its connection right after the headers of a ``Connection: close``
    answer and reads the body from the file it made of the socket: the channel must stay open
    until that file is done (llama-server's router answers proxied requests so), then close."""
    import http.client

    from rigctl.verify.connection import _ChannelSocket

    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in [b"llamacpp:a 1\n" * 40] * 3)
    channel = _ClosingChannel(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body + b"0\r\n\r\n"
    )
    connection = http.client.HTTPConnection("127.0.0.1", 8080)
    connection.sock = _ChannelSocket(channel)  # type: ignore[assignment]
    connection.request("GET", "/metrics?model=chat")
    response = connection.getresponse()
    assert not channel.closed  # http.client has closed its side: the body is still there
    assert response.read() == b"llamacpp:a 1\n" * 120
    response.close()
    connection.close()
    assert channel.closed and channel.sent.startswith(b"GET /metrics?model=chat HTTP/1.1\r\n")
