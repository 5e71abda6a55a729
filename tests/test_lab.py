"""The foundation on real hosts: lab hosts boot systemd and sshd, the adapter reaches them in
parallel over SSH (paramiko, pinned host keys), a role converges and is idempotent, failures
stay per host, and the lab comes down leaving nothing behind."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    TEST_LAB_NAME,
    TEST_LAB_NETWORK,
    TEST_LAB_SIZE,
    TRIXIE_INDEX,
    make_test_lab,
    rigctl,
    session_hosts,
)
from rigctl.roles import toolchain

from rigctl.errors import LabError
from rigctl.lab import RELEASES, Lab, LabHost
from rigctl.lab import hosts as lab_hosts
from rigctl.lab.hosts import processes_in_namespace
from rigctl.pyinfra_api import Session, load_inventory, server_facts

pytestmark = pytest.mark.lab


def test_hosts_run_systemd_and_sshd_on_their_own_address(lab: Lab, lab_inventory: Path) -> None:
    with Session(load_inventory(str(lab_inventory))) as session:
        pid1 = session.fact(server_facts.Command, "cat /proc/1/comm")
        system = session.fact(server_facts.Command, "systemctl is-system-running --wait || true")
        listeners = session.fact(server_facts.Command, "ss -Hltn 'sport = :22'")
    names = [host.name for host in session_hosts(lab)]
    assert sorted(pid1) == sorted(names)
    assert set(pid1.values()) == {"systemd"}
    assert set(system.values()) <= {"running", "degraded"}, system
    for host in session_hosts(lab):
        # sshd listens on the host's own loopback address, nowhere else
        assert f"{host.address}:22" in listeners[host.name]
        assert "0.0.0.0:22" not in listeners[host.name]


def test_a_trixie_host_runs_systemd_and_sshd(
    lab: Lab, trixie_host: LabHost, trixie_inventory: Path
) -> None:
    """The same boot and sshd setup serves Debian 13, beside the bookworm hosts, over SSH."""
    with Session(load_inventory(str(trixie_inventory))) as session:
        codename = session.fact(server_facts.Command, ". /etc/os-release; echo $VERSION_CODENAME")
        system = session.fact(server_facts.Command, "systemctl is-system-running --wait || true")
        listeners = session.fact(server_facts.Command, "ss -Hltn 'sport = :22'")
        summary = session.summary()
    name = trixie_host.name
    assert summary.hosts[name].status == "ok", summary.hosts[name].error
    assert (trixie_host.index, trixie_host.release) == (TRIXIE_INDEX, "trixie")
    assert codename == {name: "trixie"}
    assert system[name] in ("running", "degraded"), system
    assert f"{trixie_host.address}:22" in listeners[name]
    assert "0.0.0.0:22" not in listeners[name]
    releases = {status.name: status.release for status in lab.status()}
    assert releases[name] == "trixie"
    assert {releases[host.name] for host in session_hosts(lab)} == {"bookworm"}


def test_each_host_keeps_the_release_it_was_created_with() -> None:
    """`lab up --release` applies to the hosts it creates: a running host of another release is
    left alone (said, not fatal), and a stopped one restarts with its saved release."""
    network = "127.2." + TEST_LAB_NETWORK.rsplit(".", 1)[1]  # a lab of its own, like lab down's
    the_lab = make_test_lab(f"{TEST_LAB_NAME}-release", network=network, prefix="rrel")
    env = {
        "RIGCTL_LAB_DIR": str(the_lab.state_dir),
        "RIGCTL_LAB_IMAGES": str(the_lab.images_dir),
        "RIGCTL_LAB_NETWORK": network,
        "RIGCTL_LAB_PREFIX": "rrel",
    }
    the_lab.down()  # left over from an interrupted run
    try:
        first = the_lab.up_host(1, release="trixie")
        result = rigctl("lab", "up", "2", "--json", env=env)  # bookworm, the default
        assert result.returncode == 0, result.stderr
        assert "kept as created, not bookworm: rrel1 (trixie)" in result.stderr
        hosts = {h["name"]: (h["release"], h["ssh"]) for h in json.loads(result.stdout)["hosts"]}
        assert hosts == {"rrel1": ("trixie", True), "rrel2": ("bookworm", True)}
        assert the_lab.hosts()[0].pid == first.pid  # left running, not rebooted

        lab_hosts.stop(first)  # stopped, its disk kept
        result = rigctl("lab", "up", "2", "--release", "bookworm", env=env)
        assert result.returncode == 0, result.stderr
        restarted = the_lab.hosts()[0]
        assert restarted.release == "trixie" and restarted.process_alive()
        assert "VERSION_CODENAME=trixie" in (Path(restarted.root) / "etc/os-release").read_text()
        table = rigctl("lab", "status", env=env).stdout
        assert re.search(r"rrel1\W+\S+\W+trixie\W+running\W+yes", table), table
        assert re.search(r"rrel2\W+\S+\W+bookworm\W+running\W+yes", table), table
    finally:
        the_lab.down()


def test_an_unknown_release_is_refused_in_one_line(tmp_path: Path) -> None:
    the_lab = Lab(tmp_path / "lab")
    one_line = r"^lab release must be one of bookworm, trixie, got 'sid'$"
    for attempt in (
        lambda: the_lab.up(1, release="sid"),
        lambda: the_lab.up_host(7, release="sid"),
        lambda: the_lab.image_cached("sid"),
    ):
        with pytest.raises(LabError, match=one_line):
            attempt()
    assert not (tmp_path / "lab").exists()  # refused before anything was made
    result = rigctl("lab", "up", "--release", "sid")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert all(f"'{release}'" in line for release in RELEASES), line


def test_a_host_saved_before_releases_loads_as_bookworm(tmp_path: Path) -> None:
    the_lab = Lab(tmp_path / "lab")
    host_dir = the_lab.hosts_dir / "lab1"
    host_dir.mkdir(parents=True)
    old = {
        "name": "lab1",
        "index": 1,
        "address": "127.0.1.1",
        "root": str(host_dir / "root"),
        "pid": None,
        "pid_namespace": None,
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9Ap1rTvWf5KCqNQxlF4ziYQpbsNJgrAJlGd1ZlySrf",
    }
    (host_dir / "host.json").write_text(json.dumps(old))
    host = LabHost.load(host_dir)
    assert host is not None and host.release == "bookworm"
    assert [status.to_json()["release"] for status in the_lab.status()] == ["bookworm"]


def test_host_keys_are_pinned_not_accepted_blindly(lab: Lab, tmp_path: Path) -> None:
    host = lab.running_hosts()[0]
    data = lab.host_data(host)
    data["ssh_known_hosts_file"] = str(tmp_path / "empty_known_hosts")
    (tmp_path / "empty_known_hosts").write_text("")
    inventory = tmp_path / "inv.py"
    inventory.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
    with Session(load_inventory(str(inventory))) as session:
        summary = session.summary()
    assert summary.hosts[host.name].status == "unreachable"
    assert "known_hosts" in (summary.hosts[host.name].error or "")


def test_hosts_are_prepared_in_parallel(lab_inventory: Path) -> None:
    # Each host sleeps 2 s while being prepared; serial preparation would take 6 s or more.
    with Session(load_inventory(str(lab_inventory))) as session:
        start = time.monotonic()
        values = session.fact(server_facts.Command, "sleep 2; hostname")
        elapsed = time.monotonic() - start
    assert len(values) == TEST_LAB_SIZE
    assert elapsed < 3.5, f"{len(values)} hosts took {elapsed:.1f}s: not parallel"


def test_role_converges_then_reports_no_changes(lab_inventory: Path) -> None:
    inventory = str(lab_inventory)
    with Session(load_inventory(inventory)) as session:
        session.prepare(toolchain.install)
        session.run()
        first = session.summary()
    assert first.exit_code == 0, first.to_json()
    # "changed" on fresh hosts; "ok" if an earlier test of the session installed it already
    assert all(result.status in ("changed", "ok") for result in first.hosts.values()), (
        first.to_json()
    )

    with Session(load_inventory(inventory)) as session:
        session.prepare(toolchain.install)
        session.run()
        second = session.summary()
    assert second.exit_code == 0, second.to_json()
    for result in second.hosts.values():
        assert result.changed_ops == [], f"{result.name} changed again: {result.changed_ops}"
        assert result.status == "ok"

    with Session(load_inventory(inventory)) as session:
        versions = session.fact(server_facts.Command, "cmake --version | head -1; gcc -dumpversion")
    assert all(value.startswith("cmake version 3.") for value in versions.values())


def test_unreachable_host_fails_alone_with_exit_1(lab: Lab, tmp_path: Path) -> None:
    host = lab.running_hosts()[0]
    ghost = dict(lab.host_data(host), ssh_hostname="127.0.2.250", ssh_connect_retries=0)
    inventory = tmp_path / "mixed.py"
    inventory.write_text(
        f"hosts = [({host.name!r}, {lab.host_data(host)!r}), ('ghost', {ghost!r})]\n"
    )
    result = rigctl("detect", str(inventory), "--json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert list(document["hosts"]) == [host.name]
    assert document["hosts"][host.name]["os"]["distro"] == "debian"
    assert document["failed"]["ghost"]["status"] == "unreachable"
    assert document["failed"]["ghost"]["error"]


def test_operation_failure_on_one_host_does_not_stop_the_other(lab_inventory: Path) -> None:
    from rigctl.pyinfra_api import server

    def deploy() -> None:
        # Fails on the first host only, after a change both hosts make.
        server.shell(name="touch marker", commands=["touch /tmp/rigctl-marker"])
        server.shell(
            name="fail on one host",
            commands=[f'test "$(hostname)" != {first_name} || (echo boom >&2; exit 3)'],
        )
        server.shell(name="after", commands=["touch /tmp/rigctl-after"])

    with Session(load_inventory(str(lab_inventory))) as session:
        first_name = session.active_hosts[0].name
        session.prepare(deploy)
        session.run()
        summary = session.summary()
    failed = summary.hosts[first_name]
    assert failed.status == "failed"
    assert failed.failed_ops[0].name == "fail on one host"
    assert failed.failed_ops[0].stderr_tail == ["boom"]
    others = [r for n, r in summary.hosts.items() if n != first_name]
    assert others and all(r.status == "changed" and "after" in r.changed_ops for r in others)
    assert summary.exit_code == 1


def test_malformed_inventory_is_one_line_exit_2(tmp_path: Path) -> None:
    cases = {
        "syntax.py": "hosts = [('a', {'ssh_hostname': '127.0.0.1'}\n",
        "broken_import.py": "import rigctl_no_such_module\nhosts = ['127.0.0.1']\n",
        "raises.py": "raise ValueError('bad data')\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = rigctl("detect", str(path))
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith(f"rigctl: error: field inventory: {path}"), lines[0]


def test_lab_up_twice_is_safe(lab: Lab) -> None:
    before = {host.name: host.pid for host in lab.running_hosts()}
    lab.up(TEST_LAB_SIZE)
    after = {host.name: host.pid for host in lab.running_hosts()}
    assert after == before


def test_lab_down_leaves_nothing_behind() -> None:
    # A lab of its own (127.1.X.N beside the session's 127.0.X.N), so the session's lab keeps
    # running for the other tests.
    network = "127.1." + TEST_LAB_NETWORK.rsplit(".", 1)[1]
    the_lab = make_test_lab(f"{TEST_LAB_NAME}-down", network=network, prefix="rdown")
    the_lab.down()  # left over from an interrupted run
    hosts = the_lab.up(1)
    root = Path(hosts[0].root)
    namespace = hosts[0].pid_namespace
    assert namespace and len(processes_in_namespace(namespace)) > 3  # systemd, journald, sshd...
    assert _mounted(root)
    assert _answers(hosts[0].address)

    assert the_lab.down() == [hosts[0].name]

    assert processes_in_namespace(namespace) == []
    assert not any(f"--directory={root}" in _cmdline(pid) for pid in _all_pids())
    assert not _mounted(root)
    assert not _answers(hosts[0].address)
    assert not root.parent.exists()
    assert the_lab.status() == []
    assert the_lab.known_hosts_path.read_text() == ""


def test_a_host_that_reboots_boots_again_and_still_comes_down_clean() -> None:
    """``reboot`` inside a host (what ``nvidia_driver: install`` does): systemd-nspawn exits
    with 133, the host's supervisor boots it again in a new PID namespace, and ``lab down``
    still leaves nothing of either boot behind."""
    network = "127.1." + TEST_LAB_NETWORK.rsplit(".", 1)[1]
    the_lab = make_test_lab(f"{TEST_LAB_NAME}-reboot", network=network, prefix="rboot")
    the_lab.down()  # left over from an interrupted run
    try:
        (host,) = the_lab.up(1)
        first = host.pid_namespace
        # a new boot is a new init process on the host; its PID namespace's inode number alone
        # does not tell (the kernel reuses a freed namespace's number: a reboot once came back
        # with the same one)
        first_init = lab_hosts.container_init(host.pid)
        assert first_init is not None
        ssh = [
            "ssh", "-i", str(the_lab.key_path), "-o", f"UserKnownHostsFile={the_lab.known_hosts_path}",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host.address}",
        ]
        # a reboot asked for while the first boot is still starting units waits behind them
        # (and on 2 busy cores that can take minutes): reboot a host that has finished booting
        subprocess.run([*ssh, "systemctl is-system-running --wait"], capture_output=True,
                       timeout=180, check=False)
        asked = subprocess.run([*ssh, "systemctl reboot"], capture_output=True, text=True,
                               timeout=60, check=False)
        assert asked.returncode in (0, 255), asked  # 255: the connection went with the host
        deadline = time.monotonic() + 300
        second = None
        while time.monotonic() < deadline:
            second = lab_hosts.container_init(host.pid)
            if second not in (None, first_init) and host.ssh_ready():
                break
            time.sleep(0.5)
        console = (host.dir / "console.log").read_text(errors="replace")
        assert second not in (None, first_init), (
            f"the host did not boot again (init {first_init} -> {second}; the supervisor "
            f"{'saw' if 'the host rebooted' in console else 'did not see'} a reboot; reboot "
            f"answered {asked.returncode} {asked.stderr[-300:]!r}): {console[-3000:]}"
        )
        assert not Path(f"/proc/{first_init}").exists()  # the first boot's init is gone
        assert host.process_alive()  # the same supervisor
        booted = subprocess.run([*ssh, "systemctl is-system-running --wait"], capture_output=True,
                                text=True, timeout=120, check=False)
        assert booted.stdout.strip() in ("running", "degraded"), booted
        if lab_hosts._container_pid_namespace(host.pid) != first:  # (its number not reused)
            assert processes_in_namespace(first) == []
        assert "the host rebooted" in (host.dir / "console.log").read_text(errors="replace")
        assert the_lab.down() == [host.name]
        assert processes_in_namespace(second) == []
        assert not any(f"--directory={host.root}" in _cmdline(pid) for pid in _all_pids())
        assert not _mounted(Path(host.root))
    finally:
        the_lab.down()


def test_lab_refuses_clearly_when_a_tool_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "debootstrap" else real_which(name)
    )
    with pytest.raises(LabError, match=r"^the lab needs debootstrap: apt-get install debootstrap$"):
        Lab.check_requirements()


def test_lab_network_must_be_loopback() -> None:
    with pytest.raises(LabError, match="loopback only"):
        Lab(network="192.168.1")


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _mounted(path: Path) -> bool:
    target = str(path.resolve())
    return any(
        line.split()[1] == target for line in Path("/proc/self/mounts").read_text().splitlines()
    )


def _answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1):
            return True
    except OSError:
        return False


def test_lab_host_with_nvidia_smi_double_is_detected_as_cuda(lab: Lab, tmp_path: Path) -> None:
    """A lab host given the nvidia-smi TEST DOUBLE (tests/doubles/, a captured real output of an
    RTX 4090) is detected as CUDA over SSH, with the right VRAM and compute capability."""
    from rigctl.pyinfra_api import files

    host = lab.running_hosts()[1]
    inventory = tmp_path / "one.py"
    inventory.write_text(f"hosts = [({host.name!r}, {lab.host_data(host)!r})]\n")
    double = Path(__file__).parent / "doubles" / "nvidia-smi"

    def place(present: bool) -> None:
        with Session(load_inventory(str(inventory))) as session:
            if present:
                session.prepare(
                    lambda: files.put(
                        src=str(double), dest="/usr/local/bin/nvidia-smi", mode="0755"
                    )
                )
            else:
                session.prepare(lambda: files.file(path="/usr/local/bin/nvidia-smi", present=False))
            session.run()
            assert session.summary().exit_code == 0

    place(True)
    try:
        result = rigctl("detect", str(inventory), "--json")
    finally:
        place(False)
    assert result.returncode == 0, result.stderr
    hardware = json.loads(result.stdout)["hosts"][host.name]
    assert hardware["accelerator"] == "cuda"
    assert hardware["cuda_driver_version"] == "12.4"
    [gpu] = hardware["gpus"]
    assert gpu["vendor"] == "nvidia"
    assert gpu["name"] == "NVIDIA GeForce RTX 4090"
    assert gpu["memory_bytes"] == 24564 * 1024 * 1024
    assert gpu["compute_capability"] == "8.9"


def test_endpoint_tunnel_through_ssh(lab: Lab, lab_inventory: Path) -> None:
    """A port only the host can reach is forwarded through the SSH connection (as ssh -L)."""
    import socket as socket_module
    from urllib.parse import urlsplit

    from rigctl.pyinfra_api import endpoint_from_controller

    host = lab.running_hosts()[0]
    with Session(load_inventory(str(lab_inventory))) as session:
        target = session.host(host.name)
        with endpoint_from_controller(target, host.address, 22) as direct:
            assert direct == f"http://{host.address}:22"
        with endpoint_from_controller(target, host.address, 22, tunnel=True) as tunnelled:
            local = urlsplit(tunnelled)
            assert local.hostname == "127.0.0.1" and local.port != 22
            for _ in range(2):  # two connections through one tunnel
                with socket_module.create_connection(
                    (local.hostname, local.port), timeout=5
                ) as conn:
                    assert conn.recv(4) == b"SSH-"


def test_unknown_host_keys_are_refused_unless_the_inventory_allows(
    lab: Lab, tmp_path: Path
) -> None:
    """pyinfra would accept a new host key silently; rigctl refuses unless the data says so."""
    host = lab.running_hosts()[0]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    data = dict(lab.host_data(host), ssh_known_hosts_file=str(known_hosts))
    del data["ssh_strict_host_key_checking"]
    inventory = tmp_path / "unpinned.py"
    inventory.write_text(f"hosts = [({host.name!r}, {data!r})]\n")
    with Session(load_inventory(str(inventory))) as session:
        refused = session.summary().hosts[host.name]
    assert refused.status == "unreachable"
    assert "No host key" in (refused.error or "") and "ssh-keyscan" in (refused.error or "")
    assert known_hosts.read_text() == ""

    allowed = tmp_path / "accept_new.py"
    allowed.write_text(
        f"hosts = [({host.name!r}, {dict(data, ssh_strict_host_key_checking='accept-new')!r})]\n"
    )
    with Session(load_inventory(str(allowed))) as session:
        assert session.summary().hosts[host.name].status == "ok"
    assert host.address in known_hosts.read_text()
