"""Faults on real lab hosts, with the real CLI.

Crash consistency: ``rigctl provision`` is SIGKILLed (its whole process group) at a dozen points
of a run, each point found from the CLI's own progress lines on stderr (one line per stage and
per operation started) and, where it matters, confirmed on the host or the controller before the
kill. After each kill the same command runs again and must converge: exit 0, the model's sha256
right on the host, one complete build marked ``current``, a valid unit, and the service active,
running exactly the deployed command line, and answering with its API key (and refusing without).

Host faults: a host stopped before the run, one stopped during it, one whose sshd refuses, one
whose model volume is too small, one whose server crashes at start. Each fails alone with its
cause in the JSON summary (exit 1) while the other host finishes, and converges once recovered.

Rollout faults: a canary slowed past the speed gate (by a CPU quota the test puts on its new
server), lost during its update (back in time, or for good), killed mid-change. Each leaves both
hosts serving what they did before.

Each test starts from a host state of its own (``own_host_state``): both hosts booted and
reachable, nothing mounted over the model volume, no rollback snapshot, no CPU quota, no
background run from the test before; those that need hosts serving get them serving the rig's
config, re-provisioned only when a failed test left them drifted. One failure cannot cascade.

`make test` runs one fault of each kind; the exhaustive matrix (every kill point, each variant)
is marked ``exhaustive`` and runs in `make test-slow`.

Hosts: rtest2 and rtest3 only. rtest1 must stay bare for the llama.cpp end-to-end test, and the
fleet tests re-provision rtest2 and rtest3 expecting them bare too, so both are reset to bare at
the end of this module (the toolchain packages stay).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cpu_quota
import pytest
import requests
from conftest import REPO
from cpu_quota import CpuQuota
from fileserver import FileServer
from rigctl.deploys import MODEL_DIR
from rigctl.deploys.llamacpp import UNIT
from rigctl.roles.llamacpp.defaults import LLAMACPP_BUILD_ROOT, LLAMACPP_PREFIX

from rigctl.lab import LAB_MODEL_FILE, Lab, LabHost
from rigctl.lab import hosts as lab_hosts
from rigctl.lab.model import SHA256, place_model
from rigctl.manifest import MANIFEST
from rigctl.paths import cache_dir
from rigctl.rollback import ROLLBACK_DIR

pytestmark = [pytest.mark.lab, pytest.mark.slow]

RIGCTL = str(Path(sys.executable).parent / "rigctl")
MODEL_PATH = f"{MODEL_DIR}/{LAB_MODEL_FILE}"
MODEL_SIZE = 253_113_024
UNIT_FILE = f"/etc/systemd/system/{UNIT}.service"
KEY_FILE = f"/etc/rigctl/{UNIT}/api-key"
CONTEXTS = (8192, 4096)  # a "config change" flips between the two

# Everything rigctl put on a host, removed to make it bare again (the shared ccache, bind-mounted
# at /var/cache/rigctl/ccache, and the toolchain packages stay).
UNINSTALL = (
    f"systemctl disable --now {UNIT}.service >/dev/null 2>&1; "
    f"rm -rf {LLAMACPP_PREFIX} /etc/rigctl /var/lib/rigctl {LLAMACPP_BUILD_ROOT} {UNIT_FILE} "
    "/var/cache/rigctl/*.tar.gz; "
    f"systemctl daemon-reload; systemctl reset-failed {UNIT}.service >/dev/null 2>&1; true"
)


# --------------------------------------------------------------------------- helpers


class Remote:
    """Shell commands on a lab host over OpenSSH, multiplexed (polling must be cheap)."""

    def __init__(self, lab: Lab, host: LabHost, control_dir: Path) -> None:
        self.host = host
        self.argv = [
            "ssh",
            "-i", str(lab.key_path),
            "-o", f"UserKnownHostsFile={lab.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control_dir}/{host.name}",
            "-o", "ControlPersist=60",
            f"root@{host.address}",
        ]  # fmt: skip

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, command], capture_output=True, text=True, timeout=timeout, check=False
        )

    def out(self, command: str) -> str:
        result = self.run(command)
        assert result.returncode == 0, f"{self.host.name}: {command[:200]}: {result.stderr[-500:]}"
        return result.stdout

    def ok(self, command: str) -> bool:
        return self.run(command).returncode == 0

    def forget(self) -> None:
        """End the multiplexing master: one to a host that has since powered off is a dead
        connection, and the next command through it would fail (``Broken pipe``) though the
        host is back."""
        subprocess.run([*self.argv[:-1], "-O", "exit", self.argv[-1]], capture_output=True,
                       timeout=30, check=False)


@dataclass
class Run:
    returncode: int
    document: dict[str, Any]
    stderr: str

    def host(self, name: str) -> dict[str, Any]:
        return self.document["hosts"][name]


def provision(inventory: Path, env: dict[str, str], *argv: str, timeout: float = 900) -> Run:
    return command("provision", inventory, env, *argv, timeout=timeout)


def command(
    name: str, inventory: Path, env: dict[str, str], *argv: str, timeout: float = 900
) -> Run:
    """``rigctl NAME INVENTORY --json ARGV``, its JSON document parsed."""
    result = subprocess.run(
        [RIGCTL, name, str(inventory), "--json", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )
    try:
        document = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON (exit {result.returncode}): {result.stderr[-3000:]}")
    return Run(result.returncode, document, result.stderr)


#: The background runs started by the current test.
RUNS: list[Provision] = []


class Provision:
    """``rigctl provision --json`` (or ``rollout``) in the background, its progress lines
    (stderr) watched as they come: the CLI prints one per stage and one per operation started
    on each host."""

    def __init__(
        self, inventory: Path, env: dict[str, str], *argv: str, name: str = "provision"
    ) -> None:
        self.process = subprocess.Popen(
            [RIGCTL, name, str(inventory), "--json", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, **env},
            start_new_session=True,  # its own process group: the kill takes everything it started
        )
        RUNS.append(self)  # killed, if still running, once its test ends (see ``own_host_state``)
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self.readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self.stdout.extend(self.process.stdout)

    def wait_for(
        self, pattern: str, until: Callable[[], bool] | None = None, timeout: float = 600
    ) -> None:
        """Until a progress line matches ``pattern`` and then ``until()`` holds. Fails the test
        when the run ends first: a fault point that is never reached proves nothing."""
        deadline = time.monotonic() + timeout
        while not any(re.search(pattern, line) for line in list(self.lines)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"never reached {pattern!r}:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.02)
        while until is not None and not until():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"{pattern!r} passed before the condition held:\n" + "\n".join(self.lines[-30:])
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for reader in self.readers:
            reader.join(5)

    def finish(self, timeout: float = 900) -> Run:
        self.process.wait(timeout)
        for reader in self.readers:
            reader.join(5)
        try:
            document = json.loads("".join(self.stdout))
        except ValueError:
            pytest.fail(
                f"no JSON (exit {self.process.returncode}):\n" + "\n".join(self.lines[-40:])
            )
        return Run(self.process.returncode, document, "\n".join(self.lines))


def host_state(remote: Remote) -> dict[str, Any]:
    """What is on the host and what its service runs, in one round trip."""
    script = f"""
pid=$(systemctl show -p MainPID --value {UNIT})
echo "== pid"; echo $pid
echo "== active"; systemctl is-active {UNIT}
echo "== needs-reload"; systemctl show -p NeedDaemonReload --value {UNIT}
echo "== verify"; systemd-analyze verify {UNIT_FILE} 2>&1 && echo VALID
echo "== model"; sha256sum {MODEL_PATH} 2>&1 | cut -c1-64
echo "== current"; readlink {LLAMACPP_PREFIX}/current
echo "== binary"; readlink -f {LLAMACPP_PREFIX}/current/bin/llama-server
echo "== builds"; for b in {LLAMACPP_PREFIX}/builds/*; do echo "$b $([ -f "$b/BUILD_INFO.json" ] && echo complete || echo incomplete)"; done
echo "== exe"; readlink /proc/$pid/exe
echo "== stale-maps"; grep '(deleted)' /proc/$pid/maps | grep -e /opt/rigctl -e /var/lib/rigctl | awk '{{print $6}}' | sort -u
echo "== cmdline"; tr '\\0' '\\n' < /proc/$pid/cmdline
echo "== leftovers"; find /etc/rigctl /etc/systemd/system /var/lib/rigctl {LLAMACPP_PREFIX} \\( -name '*.rigctl-new' -o -name '*.part' -o -name '*.partial' \\) 2>/dev/null
echo "== manifest"; cat {MANIFEST} 2>/dev/null
echo "== key"; cat {KEY_FILE} 2>/dev/null
true
"""
    sections: dict[str, list[str]] = {}
    name = ""
    for line in remote.out(script).splitlines():
        if line.startswith("== "):
            name = line[3:]
            sections[name] = []
        elif name:
            sections[name].append(line)
    return {
        "pid": "".join(sections["pid"]),
        "active": "".join(sections["active"]),
        "needs_reload": "".join(sections["needs-reload"]),
        "verify": sections["verify"],
        "model_sha256": "".join(sections["model"]),
        "current": "".join(sections["current"]),
        "binary": "".join(sections["binary"]),
        "builds": dict(line.rsplit(" ", 1) for line in sections["builds"]),
        "exe": "".join(sections["exe"]),
        "stale_maps": sections["stale-maps"],
        "cmdline": sections["cmdline"],
        "leftovers": sections["leftovers"],
        "manifest": json.loads("\n".join(sections["manifest"]) or "null"),
        "key": "".join(sections["key"]),
    }


def assert_converged(run: Run, remote: Remote, context: int) -> dict[str, Any]:
    """The re-run succeeded and the host is exactly what it claims to serve."""
    name = remote.host.name
    outcome = run.host(name)
    assert run.returncode == 0, (outcome["error"], outcome["failed_ops"], run.stderr[-2000:])
    assert outcome["smoke"] and outcome["smoke"]["ok"], outcome
    state = host_state(remote)
    manifest = state["manifest"]
    assert manifest and manifest["model_sha256"] == SHA256 and manifest["build"] == outcome["build"]
    assert state["model_sha256"] == SHA256, "model on the host is not the verified one"
    # one build marked current, complete; no half-made build dir anywhere
    assert state["current"] == f"{LLAMACPP_PREFIX}/builds/{manifest['build']}", state["current"]
    assert state["builds"].get(state["current"]) == "complete", state["builds"]
    assert set(state["builds"].values()) == {"complete"}, state["builds"]
    assert state["verify"][-1:] == ["VALID"], state["verify"]
    assert state["active"] == "active" and state["needs_reload"] == "no", state
    # the running process is the deployed one: its binary, its command line, no replaced file
    assert state["exe"] == state["binary"], (state["exe"], state["binary"])
    assert state["cmdline"] == manifest["args"], (state["cmdline"], manifest["args"])
    assert state["cmdline"][state["cmdline"].index("-c") + 1] == str(context)
    assert state["stale_maps"] == [], f"the server still maps replaced files: {state['stale_maps']}"
    assert state["leftovers"] == [], f"temporary files left behind: {state['leftovers']}"
    # answering with the key on disk, refusing without
    url = f"http://{remote.host.address}:{manifest['port']}/v1/chat/completions"
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    answered = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {state['key']}"}, timeout=120
    )
    assert answered.status_code == 200, answered.text[:300]
    assert requests.post(url, json=body, timeout=30).status_code == 401
    # the lockfile records what the host serves
    lock = json.loads(Path(run.document["lockfile"]).read_text())["hosts"][name]
    assert lock["sha256"] == SHA256 and lock["build"] == manifest["build"]
    return state


def copy_cache(template: Path, dest: Path, *, model: bool = True, build: bool = True) -> Path:
    """A controller cache made of hard links to ``template`` (the model is 241 MiB): downloads
    write a ``.part`` and rename it, so the template's files are never modified."""
    shutil.rmtree(dest, ignore_errors=True)

    def keep(directory: str, names: list[str]) -> list[str]:
        skip = {"models"} if not model else set()
        if not build:
            skip.add("builds")
        return [n for n in names if n in skip and Path(directory) == template]

    shutil.copytree(template, dest, copy_function=os.link, ignore=keep)
    return dest


# --------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    lab: Lab
    server: FileServer
    directory: Path
    template: Path
    hosts: dict[str, LabHost]
    remotes: dict[str, Remote]
    context: int = CONTEXTS[0]  # what rtest2 serves now
    counter: int = 0
    # what each host served when last seen converged on the rig's config (see ``serving``)
    proven: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def inventory(self, names: list[str], **per_host: dict[str, Any]) -> Path:
        self.counter += 1
        entries = []
        for name in names:
            data = dict(
                self.lab.host_data(self.hosts[name]),
                model_mirrors=[f"{self.server.url}/{LAB_MODEL_FILE}"],
                context=self.context,
            )
            data.update(per_host.get(name, {}))
            entries.append((name, data))
        path = self.directory / f"inventory{self.counter}.py"
        path.write_text(f"hosts = {entries!r}\n")
        return path

    def env(self, cache: Path | None = None) -> dict[str, str]:
        return {
            "RIGCTL_CACHE_DIR": str(cache or self.template),
            "RIGCTL_STATE_DIR": str(self.directory / "state"),
        }

    def start(self, name: str) -> None:
        """Boot a stopped lab host again (its disk is kept); commands reach the new boot."""
        self.hosts[name] = self.lab.up_host(self.hosts[name].index)
        self.remotes[name].forget()

    # -- each test's own host state

    def clean(self) -> None:
        """What a test may have left undone, undone (cheap: one command per host): both hosts
        running and reachable over SSH, no tmpfs over the model volume, no rollback snapshot, the
        mirror at full speed. CPU quotas and background runs end with the test that made them."""
        self.server.faults.bytes_per_second = None
        for name in self.hosts:
            if not any(h.name == name for h in self.lab.running_hosts()):
                self.start(name)
            inside(
                self.hosts[name],
                "systemctl start ssh.service; "
                "! mountpoint -q /var/lib/rigctl || umount /var/lib/rigctl; "
                f"rm -rf {ROLLBACK_DIR}",
            )

    def record(self, name: str) -> dict[str, Any]:
        """``name`` has just converged on the rig's config: what it serves is the baseline."""
        state = serving_state(self.remotes[name])
        self.proven[name] = _signature(state)
        return state

    def serving(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """``names`` serving the rig's config, healthy, as they last converged on it; a host that
        drifted (a test failed before putting it back) is provisioned again. Their states."""
        states = {name: serving_state(self.remotes[name]) for name in names}
        drifted = [name for name in names if not self._at_baseline(name, states[name])]
        if drifted:
            run = provision(self.inventory(drifted), self.env())
            for name in drifted:
                assert_converged(run, self.remotes[name], self.context)
                states[name] = self.record(name)
        return states

    def _at_baseline(self, name: str, state: dict[str, Any]) -> bool:
        manifest = state["manifest"]
        return bool(
            manifest
            and state["active"] == "active"
            and state["needs_reload"] == "no"
            and state["cmdline"] == manifest["args"]
            and state["cmdline"][state["cmdline"].index("-c") + 1] == str(self.context)
            and state["exe"] == state["binary"]
            and state["model_sha256"] == SHA256
            and state["key"]
            and state["leftovers"] == []
            and self.proven.get(name) == _signature(state)
        )


def _signature(state: dict[str, Any]) -> tuple[str, ...]:
    return (state["unit_sha256"], json.dumps(state["manifest"], sort_keys=True), state["current"])


@pytest.fixture(scope="module")
def rig(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    directory = tmp_path_factory.mktemp("faults")
    template = directory / "cache"
    template.mkdir()
    if (cache_dir() / "sources").is_dir():  # the packed llama.cpp source, when this machine has it
        shutil.copytree(cache_dir() / "sources", template / "sources")
    hosts = {h.name: h for h in lab.running_hosts() if h.index in (2, 3)}
    assert sorted(hosts) == ["rtest2", "rtest3"], sorted(hosts)
    control = Path(tmp_path_factory.mktemp("ssh"))
    remotes = {name: Remote(lab, host, control) for name, host in hosts.items()}
    cpu_quota.release_all()  # left by an earlier session that was killed mid-test
    for remote in remotes.values():
        remote.out(UNINSTALL)
    model = place_model(lab.models_dir / LAB_MODEL_FILE)
    with FileServer(model.parent) as server:
        the_rig = Rig(lab, server, directory, template, hosts, remotes)
        first = provision(the_rig.inventory(["rtest2"]), the_rig.env())
        assert_converged(first, remotes["rtest2"], the_rig.context)
        the_rig.record("rtest2")
        assert any(
            op.endswith(f"build {first.host('rtest2')['build']}")
            for op in first.host("rtest2")["changed_ops"]
        )
        yield the_rig
    # leave rtest2 and rtest3 running and bare, as the fleet tests expect them
    for name in hosts:
        if not any(h.name == name for h in lab.running_hosts()):
            the_rig.start(name)
        inside(
            the_rig.hosts[name],
            "systemctl start ssh.service; ! mountpoint -q /var/lib/rigctl || umount /var/lib/rigctl; "
            + UNINSTALL,
        )


@pytest.fixture(autouse=True)
def own_host_state(rig: Rig) -> Iterator[None]:
    """Each test starts from a host state of its own, whatever the one before it left (it may
    have failed half-way): see ``Rig.clean``; the tests that need hosts serving ask for it
    (``Rig.serving``, the ``serving`` fixture). A background run the test left is killed."""
    rig.clean()
    yield
    while RUNS:
        RUNS.pop().kill()


@pytest.fixture()
def serving(rig: Rig) -> dict[str, dict[str, Any]]:
    """rtest2 and rtest3 both serving the rig's config, as they are before the test."""
    return rig.serving(["rtest2", "rtest3"])


# --------------------------------------------------------------------------- crash consistency


@dataclass
class Case:
    """One kill point being run: what the hooks of a :class:`KillPoint` look at."""

    rig: Rig
    remote: Remote
    cache: Path  # the controller cache of the killed run and its re-run
    context: int  # what the killed run (and the re-run) asks for
    before: dict[str, Any] | None  # the host before the killed run (None when made bare)
    requests_before: int = 0  # the mirror's request count before the re-run

    @property
    def cached_model_part(self) -> Path:
        model = next(iter((self.rig.template / "models").rglob(LAB_MODEL_FILE)))
        cached = self.cache / model.relative_to(self.rig.template)
        return cached.with_name(cached.name + ".part")


Hook = Callable[[Case], None]


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: a progress line, then optionally a condition; and the proof it landed there."""

    name: str
    trigger: str  # a progress line (regex); the kill follows as soon as it is seen
    bare: bool = False  # the host is made bare first (never provisioned), else it is serving
    change_config: bool = False  # the killed run changes the unit (the context flips)
    cached_model: bool = True  # the controller's cache has the model
    cached_build: bool = True  # the controller's cache has the llama.cpp build
    setup: str = ""  # shell commands on the host before the killed run
    until: str = ""  # polled on the host after the trigger: the kill waits for it
    evidence: str = ""  # must hold on the host right after the kill
    before_kill: Callable[[Case], Callable[[], bool]] | None = None  # a controller-side `until`
    after_kill: Hook | None = None  # more proof, right after the kill
    after_rerun: Hook | None = None  # more checks after the re-run converged


def _slow_mirror(case: Case) -> Callable[[], bool]:
    case.rig.server.faults.bytes_per_second = 20 << 20  # 241 MiB in about 12 s
    part = case.cached_model_part
    return lambda: part.exists() and part.stat().st_size >= 16 << 20


def _download_interrupted(case: Case) -> None:
    part = case.cached_model_part
    assert part.exists() and 0 < part.stat().st_size < MODEL_SIZE
    assert not part.with_name(LAB_MODEL_FILE).exists()


def _download_resumed(case: Case) -> None:
    ranges = [r["range"] for r in case.rig.server.faults.requests[case.requests_before :]]
    assert any(r and r.startswith("bytes=") and r != "bytes=0-" for r in ranges), ranges


def _source_incomplete(case: Case) -> None:
    local = next(iter((case.cache / "sources").glob("llama.cpp-*.tar.gz")))
    size = case.remote.out(
        f"stat -c %s {LLAMACPP_PREFIX}/src/{local.name} 2>/dev/null || echo missing"
    )
    assert size.strip() != str(local.stat().st_size), "the source upload had finished"


def _build_not_kept(case: Case) -> None:
    assert not list(case.cache.glob("builds/*.tar.gz"))


def _build_kept(case: Case) -> None:
    build = case.remote.out(f"readlink {LLAMACPP_PREFIX}/current").strip().rsplit("/", 1)[1]
    assert (case.cache / "builds" / f"{build}.tar.gz").exists(), "the re-run did not keep it"


def _old_server_new_key(case: Case) -> None:
    assert case.before is not None
    assert case.remote.out(f"cat {KEY_FILE}").strip() not in ("", case.before["key"])
    assert (
        case.remote.out(f"systemctl show -p MainPID --value {UNIT}").strip() == case.before["pid"]
    )


def _new_key_served(case: Case) -> None:
    assert case.before is not None
    assert case.remote.out(f"cat {KEY_FILE}").strip() != case.before["key"]


def _unit_whole(case: Case) -> None:
    assert case.before is not None
    unit = case.remote.out(f"cat {UNIT_FILE}")
    old = case.before["cmdline"][case.before["cmdline"].index("-c") + 1]
    assert f" -c {case.context} " in unit or f" -c {old} " in unit, unit  # old or new, never torn


def _unit_new(case: Case) -> None:
    assert f" -c {case.context} " in case.remote.out(f"cat {UNIT_FILE}")


def _manifest_whole(case: Case) -> None:
    assert case.before is not None
    manifest = json.loads(case.remote.out(f"cat {MANIFEST}"))  # old or new, never torn
    old = case.before["cmdline"][case.before["cmdline"].index("-c") + 1]
    assert manifest["args"][manifest["args"].index("-c") + 1] in (old, str(case.context))


KILL_POINTS = [
    KillPoint(
        "controller model download",
        trigger=r"rtest2 model: ",
        cached_model=False,
        before_kill=_slow_mirror,
        after_kill=_download_interrupted,
        after_rerun=_download_resumed,
    ),
    KillPoint(
        "toolchain apt install",
        trigger=r"rtest2 running: .*toolchain: apt packages",
        bare=True,
        setup="apt-get remove -y -qq cmake cmake-data g++-12 >/dev/null",
        until="pgrep -x dpkg >/dev/null",
    ),
    KillPoint(
        "llama.cpp source upload",
        trigger=r"rtest2 running: .*llama\.cpp: push source",
        bare=True,
        cached_build=False,
        after_kill=_source_incomplete,
    ),
    KillPoint(
        "llama.cpp compile",
        trigger=r"rtest2 running: .*llama\.cpp: build ",
        bare=True,
        cached_build=False,
        until="pgrep -f 'cmake --build' >/dev/null",
        evidence=f"! ls {LLAMACPP_PREFIX}/builds/*/BUILD_INFO.json >/dev/null 2>&1",
    ),
    KillPoint(
        "controller keeping the fresh build",
        trigger=r"rtest2 build: keeping ",
        bare=True,
        cached_build=False,
        after_kill=_build_not_kept,
        after_rerun=_build_kept,
    ),
    KillPoint(
        "prebuilt build install",
        trigger=r"rtest2 running: .*llama\.cpp: install prebuilt ",
        bare=True,
        until=f"ls {LLAMACPP_BUILD_ROOT}/*.tar.gz >/dev/null 2>&1",
        evidence=f"! ls {LLAMACPP_PREFIX}/builds/*/BUILD_INFO.json >/dev/null 2>&1",
    ),
    KillPoint(
        "model upload to the host",
        trigger=r"rtest2 running: model: ",
        bare=True,
        until=f"[ -s {MODEL_PATH}.part ]",
        evidence=f"[ ! -e {MODEL_PATH} ]",
    ),
    KillPoint(
        "API key regenerated, before the restart",
        trigger=r"rtest2 running: .*service: unit file",
        setup=f"rm -f {KEY_FILE}",
        after_kill=_old_server_new_key,
        after_rerun=_new_key_served,
    ),
    KillPoint(
        "unit file write",
        trigger=r"rtest2 running: .*service: unit file",
        change_config=True,
        after_kill=_unit_whole,
    ),
    KillPoint(
        "service restart",
        trigger=r"rtest2 running: .*service: restart on change",
        change_config=True,
        after_kill=_unit_new,
    ),
    KillPoint(
        "deployment manifest write",
        trigger=r"rtest2 running: deployment manifest",
        change_config=True,
        after_kill=_manifest_whole,
    ),
    KillPoint(
        "smoke check",
        trigger=r"rtest2 smoke: waiting",
        change_config=True,
    ),
]


#: The kill points `make test` runs, one of each kind: the controller's own download, an upload
#: to the host (the model), a file rewritten in place (the unit), the service restart. The
#: others run in `make test-slow` (marked ``exhaustive``).
REPRESENTATIVE = (
    "controller model download",
    "model upload to the host",
    "unit file write",
    "service restart",
)


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(p, id=p.name, marks=() if p.name in REPRESENTATIVE else pytest.mark.exhaustive)
        for p in KILL_POINTS
    ],
)
def test_killed_provision_then_rerun_converges(rig: Rig, point: KillPoint) -> None:
    remote = rig.remotes["rtest2"]
    if point.bare:
        remote.out(UNINSTALL)
    else:
        rig.serving(["rtest2"])
    if point.setup:
        remote.out(point.setup)
    context = rig.context
    if point.change_config:
        context = CONTEXTS[1] if rig.context == CONTEXTS[0] else CONTEXTS[0]
    cache = copy_cache(
        rig.template,
        rig.directory / "run-cache",
        model=point.cached_model,
        build=point.cached_build,
    )
    case = Case(rig, remote, cache, context, None if point.bare else host_state(remote))
    inventory = rig.inventory(["rtest2"], rtest2={"context": context})

    def until() -> bool:
        return remote.ok(point.until)

    killed = Provision(inventory, rig.env(cache))
    try:
        condition = point.before_kill(case) if point.before_kill else until if point.until else None
        killed.wait_for(point.trigger, condition)
        killed.kill()
    finally:
        rig.server.faults.bytes_per_second = None
    assert killed.process.returncode == -signal.SIGKILL
    if point.evidence:  # proof the kill landed where it says
        assert remote.ok(point.evidence), f"{point.name}: not true after the kill: {point.evidence}"
    if point.after_kill:
        point.after_kill(case)

    case.requests_before = len(rig.server.faults.requests)
    assert_converged(provision(inventory, rig.env(cache)), remote, context)
    rig.context = context
    rig.record("rtest2")
    if point.after_rerun:
        point.after_rerun(case)


def test_a_plain_run_after_the_kills_changes_nothing(rig: Rig) -> None:
    """The restart owed by an interrupted run is made once, not on every run after."""
    rig.serving(["rtest2"])
    run = provision(rig.inventory(["rtest2"]), rig.env())
    assert run.returncode == 0 and run.host("rtest2")["changed_ops"] == [], run.host("rtest2")


# --------------------------------------------------------------------------- host faults


def container_init(host: LabHost) -> int:
    """The PID, on the controller, of a lab host's systemd (under its supervisor's nspawn)."""
    init = lab_hosts.container_init(host.pid)
    assert init is not None, f"{host.name}: no init process under its supervisor {host.pid}"
    return init


def inside(host: LabHost, command: str) -> str:
    """A shell command inside a lab host without SSH (when its sshd is down)."""
    argv = ["nsenter", "-t", str(container_init(host)), "-m", "-u", "-i", "-p", "-r", "-w"]
    result = subprocess.run(
        [*argv, "--", "sh", "-c", command], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{host.name}: {command}: {result.stderr[-500:]}"
    return result.stdout


def stop(rig: Rig, name: str) -> None:
    lab_hosts.stop(rig.hosts[name])
    rig.remotes[name].forget()
    assert not any(h.name == name for h in rig.lab.running_hosts())


def assert_failed_alone(run: Run, name: str) -> dict[str, Any]:
    """Exit 1, only ``name`` failed and says why; the other host finished and serves."""
    assert run.returncode == 1, run.stderr[-2000:]
    assert run.document["failed"] == [name], run.document["failed"]
    for other, outcome in run.document["hosts"].items():
        if other != name:
            assert outcome["status"] in ("ok", "changed") and outcome["smoke"]["ok"], outcome
    outcome = run.host(name)
    assert outcome["error"], outcome
    return outcome


def recovers(rig: Rig, name: str) -> None:
    """A later run of the recovered host alone converges."""
    assert_converged(provision(rig.inventory([name]), rig.env()), rig.remotes[name], rig.context)
    rig.record(name)


@pytest.mark.exhaustive  # unreachable as in test_host_whose_sshd_refuses, plus a reboot
def test_host_stopped_before_the_run(rig: Rig) -> None:
    stop(rig, "rtest3")
    run = provision(rig.inventory(["rtest2", "rtest3"]), rig.env())
    outcome = assert_failed_alone(run, "rtest3")
    assert outcome["status"] == "unreachable"
    assert re.search(r"Connection refused|timed out|No route to host", outcome["error"]), outcome[
        "error"
    ]
    rig.start("rtest3")
    recovers(rig, "rtest3")


def test_host_stopped_during_the_run(rig: Rig) -> None:
    """rtest3 powers off while its model is being copied; rtest2 applies the same change."""
    remote = rig.remotes["rtest3"]
    remote.out(f"rm -f {MODEL_PATH} {MODEL_PATH}.sha256")  # the run has a long operation on rtest3
    rig.context = CONTEXTS[1] if rig.context == CONTEXTS[0] else CONTEXTS[0]
    run = Provision(rig.inventory(["rtest2", "rtest3"]), rig.env())
    run.wait_for(r"rtest3 running: model: ", until=lambda: remote.ok(f"[ -s {MODEL_PATH}.part ]"))
    stop(rig, "rtest3")
    result = run.finish()
    outcome = assert_failed_alone(result, "rtest3")
    assert outcome["status"] == "failed", outcome
    assert (
        outcome["error"]
        == f"operation failed: model: {LAB_MODEL_FILE}: connection to the host lost"
    )
    assert result.host("rtest2")["status"] == "changed"
    state = rig.record("rtest2")
    assert state["cmdline"][state["cmdline"].index("-c") + 1] == str(rig.context)
    rig.start("rtest3")
    recovers(rig, "rtest3")


def test_host_whose_sshd_refuses(rig: Rig) -> None:
    host = rig.hosts["rtest3"]
    inside(host, "systemctl stop ssh.service")
    try:
        run = provision(rig.inventory(["rtest2", "rtest3"]), rig.env())
    finally:
        inside(host, "systemctl start ssh.service")
    outcome = assert_failed_alone(run, "rtest3")
    assert outcome["status"] == "unreachable", outcome
    assert outcome["error"].endswith("Connection refused"), outcome["error"]
    recovers(rig, "rtest3")


def test_host_without_room_for_the_model_fails_before_any_copy(rig: Rig) -> None:
    """rtest3's model volume (a 64 MiB tmpfs over /var/lib/rigctl) cannot hold the 241 MiB model:
    the pre-flight fails it from the detected free space, before any operation runs there."""
    remote = rig.remotes["rtest3"]
    remote.out("mount -t tmpfs -o size=64m rigctl-models /var/lib/rigctl")
    try:
        run = provision(rig.inventory(["rtest2", "rtest3"]), rig.env())
        leftovers = remote.out("find /var/lib/rigctl -mindepth 1")
    finally:
        remote.out("umount /var/lib/rigctl")
    outcome = assert_failed_alone(run, "rtest3")
    assert outcome["status"] == "failed" and outcome["error"].startswith("plan: disk: "), outcome[
        "error"
    ]
    assert "free" in outcome["error"]
    assert outcome["changed_ops"] == [] and outcome["failed_ops"] == [] and leftovers == ""
    recovers(rig, "rtest3")


def test_service_crashing_at_start_is_reported_with_its_journal(rig: Rig) -> None:
    """A listen address the host does not have (a typo in host data): llama-server cannot bind
    and exits at every start."""
    run = provision(rig.inventory(["rtest2", "rtest3"], rtest3={"listen": "192.0.2.1"}), rig.env())
    outcome = assert_failed_alone(run, "rtest3")
    assert "never became ready" in outcome["error"] and "keeps failing" in outcome["error"], outcome
    assert any("couldn't bind HTTP server socket" in line for line in outcome["journal"]), outcome
    recovers(rig, "rtest3")


# --------------------------------------------------------------------------- rollout faults
#
# rtest2 is the canary, rtest3 the next batch. Each fault must leave both serving exactly what
# they served before (rtest2 rolled back, rtest3 never touched) and the rollout halted (exit 1).


def serving_state(remote: Remote) -> dict[str, Any]:
    """What a host serves, for before/after comparisons: its unit, manifest and process."""
    state = host_state(remote)
    state["unit_sha256"] = remote.out(f"sha256sum {UNIT_FILE} 2>/dev/null | cut -c1-64").strip()
    return state


def assert_serves_as_before(remote: Remote, before: dict[str, Any]) -> None:
    """The host serves exactly what it did before the rollout, healthy and keyed."""
    now = serving_state(remote)
    assert now["unit_sha256"] == before["unit_sha256"], "the unit is not the one from before"
    assert now["manifest"] == before["manifest"]
    assert now["active"] == "active" and now["needs_reload"] == "no", now
    assert now["cmdline"] == before["cmdline"] == now["manifest"]["args"], now["cmdline"]
    assert now["exe"] == now["binary"] and now["current"] == before["current"]
    assert now["leftovers"] == [], now["leftovers"]
    url = f"http://{remote.host.address}:{now['manifest']['port']}/v1/chat/completions"
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    answered = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {now['key']}"}, timeout=120
    )
    assert answered.status_code == 200, answered.text[:300]


def assert_halted_at_the_canary(run: Run, canary_status: str) -> dict[str, Any]:
    assert run.returncode == 1, run.stderr[-3000:]
    document = run.document
    assert document["batches"] == [["rtest2"], ["rtest3"]]
    assert document["halted_after_batch"] == 0 and document["failed"] == ["rtest2"], document
    canary = document["hosts"]["rtest2"]
    assert canary["status"] == canary_status, canary
    assert document["hosts"]["rtest3"]["status"] == "skipped"
    assert "rollout halted after batch 0" in document["hosts"]["rtest3"]["reason"]
    return canary


#: The canary's new server is held to this share of one CPU while the gate measures it.
#: Unthrottled, llama-server decodes on both cores of the lab host; a CFS quota is a ceiling
#: that other load on the machine can only lower further. Measured on the 2-core runner: 69 ->
#: 2.1 tok/s quiet, 9.4 -> 2.1 tok/s with the runner at a load of 4 to 5 (a 97% and a 78% drop,
#: against the gate's 10%). The ceiling binds while the server's fair share of the CPUs is above
#: a tenth of one (a load below about 30 on 2 cores); a lower one would slow the gate's bench,
#: already about a minute, further.
CANARY_CPU_PERCENT = 10


def flipped(rig: Rig) -> int:
    return CONTEXTS[1] if rig.context == CONTEXTS[0] else CONTEXTS[0]


def test_rollout_whose_canary_regresses_past_the_speed_gate(
    rig: Rig, serving: dict[str, dict[str, Any]]
) -> None:
    """The change (a context flip) serves, and passes its smoke check; then the test holds the
    canary's new server to a CPU quota (10% of one core), so the gate measures it decoding far
    slower than before the change: the canary is rolled back, the rollout halts."""
    before = serving
    change = rig.inventory(
        ["rtest2", "rtest3"], rtest2={"context": flipped(rig)}, rtest3={"context": flipped(rig)}
    )
    run = Provision(change, rig.env(), "--canary", "1", "--batch", "1", name="rollout")
    host = rig.hosts["rtest2"]
    with CpuQuota(host.name, CANARY_CPU_PERCENT) as quota:
        # the smoke check's report is the last thing the provision does before the gate's bench
        run.wait_for(r"rtest2 smoke: TTFT ")
        servers = cpu_quota.host_pids(host, "llama-server")
        assert len(servers) == 1 and int(before["rtest2"]["pid"]) not in servers, servers
        quota.hold(next(iter(servers.values())))
        run.wait_for(r"rtest2 gate: failed")
        throttled = quota.throttled_periods()
    result = run.finish()
    canary = assert_halted_at_the_canary(result, "rolled-back")
    assert throttled > 0, "the quota never held the server back"
    assert canary["after_tps"] < canary["before_tps"] * 0.5, canary  # far past the gate's 10%
    assert re.fullmatch(
        r"decode [\d.]+ tok/s is [\d.]+% below [\d.]+ before the change \(gate 10%\)",
        canary["reason"],
    ), canary["reason"]
    assert "rtest2 rollback: rigctl-llama-server restored" in result.stderr
    for name in ("rtest2", "rtest3"):
        assert_serves_as_before(rig.remotes[name], before[name])


def _lost_canary(rig: Rig, wait: str) -> Provision:
    """A rollout of a context change whose canary (rtest2) powers off while its new server
    starts: the new unit is in place, the old one only in the on-host snapshot."""
    change = rig.inventory(
        ["rtest2", "rtest3"], rtest2={"context": flipped(rig)}, rtest3={"context": flipped(rig)}
    )
    run = Provision(change, rig.env(), "--canary", "1", "--batch", "1", "--lost-host-wait", wait,
                    name="rollout")  # fmt: skip
    run.wait_for(r"rtest2 smoke: waiting for")
    stop(rig, "rtest2")
    return run


@pytest.mark.exhaustive  # the canary lost as in the next test; here it returns within the wait
def test_rollout_canary_lost_during_its_update_is_rolled_back_when_it_returns(
    rig: Rig, serving: dict[str, dict[str, Any]]
) -> None:
    before = serving
    run = _lost_canary(rig, "300")
    run.wait_for(r"rtest2 rollback: unreachable .*retrying until it is back", timeout=300)
    rig.start("rtest2")  # back after a reboot
    result = run.finish()
    canary = assert_halted_at_the_canary(result, "rolled-back")
    assert canary["reason"].endswith("connection to the host lost"), canary["reason"]
    for name in ("rtest2", "rtest3"):
        assert_serves_as_before(rig.remotes[name], before[name])


def test_rollout_canary_lost_for_good_then_rigctl_rollback(
    rig: Rig, serving: dict[str, dict[str, Any]]
) -> None:
    """The canary stays down past --lost-host-wait: reported lost with what to do, the rollout
    halts; once the host is back (serving the half-applied change), ``rigctl rollback`` puts
    the previous version back."""
    before = serving
    run = _lost_canary(rig, "5")
    result = run.finish()
    canary = assert_halted_at_the_canary(result, "lost")
    assert "not back within 5 s to roll back" in canary["reason"], canary["reason"]
    assert "rigctl rollback" in canary["reason"] and "--limit rtest2" in canary["reason"]
    assert_serves_as_before(rig.remotes["rtest3"], before["rtest3"])
    rig.start("rtest2")
    booted = serving_state(rig.remotes["rtest2"])
    assert booted["unit_sha256"] != before["rtest2"]["unit_sha256"]  # the change, half-applied
    inventory = rig.inventory(["rtest2", "rtest3"])
    shown = command("status", inventory, rig.env())
    assert shown.document["hosts"]["rtest2"]["unproven_change_since"], shown.document["hosts"]
    assert shown.document["hosts"]["rtest3"]["unproven_change_since"] is None
    back = command("rollback", inventory, rig.env(), "--limit", "rtest2")
    assert back.returncode == 0, back.stderr[-3000:]
    assert back.document["failed"] == [] and list(back.document["hosts"]) == ["rtest2"]
    outcome = back.host("rtest2")
    assert outcome["status"] == "rolled-back" and outcome["snapshot_taken"], outcome
    assert outcome["unit"] == UNIT and outcome["build"] == before["rtest2"]["manifest"]["build"]
    for name in ("rtest2", "rtest3"):
        assert_serves_as_before(rig.remotes[name], before[name])
    after = command("status", inventory, rig.env(), "--limit", "rtest2")
    assert after.document["hosts"]["rtest2"]["unproven_change_since"] is None
    # rtest3 was never changed by a rollout: it has no snapshot, and is left as it is
    nothing = command("rollback", inventory, rig.env(), "--limit", "rtest3")
    assert nothing.returncode == 1 and nothing.document["failed"] == ["rtest3"]
    assert nothing.host("rtest3")["status"] == "failed"
    assert "no rollback snapshot on the host" in nothing.host("rtest3")["error"]
    assert_serves_as_before(rig.remotes["rtest3"], before["rtest3"])
    # a plain provision afterwards finds the host as the inventory says: nothing to change
    run_again = provision(inventory, rig.env())
    assert run_again.returncode == 0 and run_again.document["hosts"]["rtest2"]["changed_ops"] == []


def test_rollout_killed_mid_change_then_run_again_rolls_back_to_the_proven_version(
    rig: Rig, serving: dict[str, dict[str, Any]]
) -> None:
    """The controller is SIGKILLed while the canary's broken change (a listen address the host
    lacks) is being written: the canary is left with the change. The same rollout again keeps the snapshot
    from before the killed run (the change was never proven) instead of snapshotting the broken
    unit, so its rollback restores the version that served."""
    before = serving
    remote = rig.remotes["rtest2"]
    typo = {"listen": "192.0.2.1"}
    broken = rig.inventory(["rtest2", "rtest3"], rtest2=typo, rtest3=typo)
    argv = ("--canary", "1", "--batch", "1")
    killed = Provision(broken, rig.env(), *argv, name="rollout")
    killed.wait_for(
        r"rtest2 running: .*service: unit file",
        until=lambda: remote.ok(f"grep -q -- '--host 192.0.2.1 ' {UNIT_FILE}"),
    )
    killed.kill()
    assert remote.ok("[ -f /etc/rigctl/rollback/pending ]")
    again = command("rollout", broken, rig.env(), *argv)
    canary = assert_halted_at_the_canary(again, "rolled-back")
    assert "keeps failing" in canary["reason"] or "never became ready" in canary["reason"]
    assert re.search(
        r"rtest2 snapshot: keeping the snapshot of \S+: the change made after", again.stderr
    )
    for name in ("rtest2", "rtest3"):
        assert_serves_as_before(rig.remotes[name], before[name])
    assert not remote.ok("[ -e /etc/rigctl/rollback/pending ]")  # back on the proven version
