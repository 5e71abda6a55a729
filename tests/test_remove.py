"""``rigctl remove``, offline: the steps each runtime's manifest becomes (pure), what ``--purge``
adds and what it refuses, the steps as pyinfra operations, the whole command against fake hosts
(a host without a manifest, a host that is down, ``--dry``, a second run, a run killed
halfway), the lockfile entries dropped, and the CLI. Nothing here touches this machine: the lab
tests remove from real hosts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import rigctl
from deployments import llamacpp_deployment
from rigctl.cli.main import cli

from rigctl import remove as rm
from rigctl.lockfile import drop_lockfile_entries, lockfile_path, update_lockfile
from rigctl.manifest import MANIFEST, Deployment, parse_deployment
from rigctl.pyinfra_api import HostResult, RunSummary
from rigctl.remove import (
    DaemonReload,
    Found,
    Layout,
    Refused,
    RemoveGroup,
    RemovePath,
    RemoveUser,
    StopLaunchd,
    StopUnit,
    removal_steps,
)

SHA = "a" * 64
MODELS = "/var/lib/rigctl/models"
GEMMA = f"{MODELS}/gemma-3-270m-q4_k_m.gguf"
QWEN = f"{MODELS}/qwen2.5-7b-instruct-q4_k_m.gguf"
LLAMA_UNIT = "/etc/systemd/system/rigctl-llama-server.service"
DROPIN = "/etc/systemd/system/ollama.service.d/rigctl.conf"
OLLAMA_BASE = "/etc/systemd/system/ollama.service"
PLIST = "/Library/LaunchDaemons/org.rigctl.llama-server.plist"
ROLLBACK = [
    RemovePath("/etc/rigctl/rollback", recursive=True),
    RemovePath("/etc/rigctl/rollback.new", recursive=True),
    RemovePath("/etc/rigctl/rollback.old", recursive=True),
]


def manifest(**overrides: Any) -> Deployment:
    """A manifest as a deploy writes it, read back as ``rigctl remove`` reads it (validated)."""
    fields = {"model_name": "Gemma 3 270M", "model_path": GEMMA, "model_sha256": SHA,
              "config_files": [LLAMA_UNIT], **overrides}
    return parse_deployment(llamacpp_deployment(**fields).render())

def entry(alias: str, path: str, **server: Any) -> dict[str, Any]:
    return {"alias": alias, "model_name": alias, "model_quant": "Q4_K_M", "model_path": path,
            "model_sha256": SHA, **server}


def llamacpp_router() -> Deployment:
    return manifest(
        api_key_file="/etc/rigctl/rigctl-llama-server/api-key.env",
        config_files=[LLAMA_UNIT, "/etc/rigctl/rigctl-llama-server/models.ini"],
        served_model="chat",
        # two aliases of one file: placed once, removed once
        models=[entry("chat", GEMMA), entry("code", QWEN), entry("small", GEMMA)],
    )


def ollama_manifest(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "runtime": "ollama", "unit": "ollama", "user": "ollama", "api_key_file": "",
        "port": 11434, "build": "ollama-0123456789ab", "metrics_path": "", "health_path": "/",
        "served_model": "chat", "config_files": [DROPIN],
        "models": [entry("chat", GEMMA), entry("code", QWEN)],
    }
    return manifest(**{**fields, **overrides})


VLLM_MODEL = f"{MODELS}/org--tiny-llama@0123abc"


def vllm_single() -> Deployment:
    return manifest(
        runtime="vllm", unit="rigctl-vllm", user="vllm", port=8000,
        api_key_file="/etc/rigctl/rigctl-vllm/api-key.env", build="0.32.0-cpu-0123abcd",
        model_path=VLLM_MODEL, model_sha256="", served_model="tiny",
        config_files=["/etc/systemd/system/rigctl-vllm.service"],
    )


def vllm_several() -> Deployment:
    units = ["rigctl-vllm-chat", "rigctl-vllm-code"]
    return manifest(
        runtime="vllm", unit=units[0], user="vllm", port=8000,
        api_key_file="/etc/rigctl/rigctl-vllm/api-key.env", build="0.32.0-cpu-0123abcd",
        model_path=VLLM_MODEL, model_sha256="", served_model="chat",
        config_files=[f"/etc/systemd/system/{unit}.service" for unit in units],
        models=[entry("chat", VLLM_MODEL, unit=units[0], port=8000),
                entry("code", f"{MODELS}/org--coder@4567def", unit=units[1], port=8001)],
    )


def launchd_manifest() -> Deployment:
    return manifest(config_files=[PLIST])


USER_LLAMA = [RemoveUser("llama"), RemoveGroup("llama")]
#: the real operation (the ``world`` fixture replaces it with a fake)
GROUP_ABSENT = rm.group_absent
LAST = [RemovePath(MANIFEST)]


# --------------------------------------------------------------------------- steps per runtime


def test_llamacpp_single_model() -> None:
    found = Found(unit_users={LLAMA_UNIT: "llama"})
    assert removal_steps(manifest(), found=found) == [
        StopUnit("rigctl-llama-server"),
        RemovePath(LLAMA_UNIT),
        DaemonReload(),
        RemovePath("/etc/rigctl/rigctl-llama-server", recursive=True),  # key, restart stamp
        *ROLLBACK,
        *USER_LLAMA,  # only the unit just removed ran as it
        *LAST,
    ]


def test_llamacpp_router_removes_its_presets_and_key_file() -> None:
    assert removal_steps(llamacpp_router()) == [
        StopUnit("rigctl-llama-server"),
        RemovePath(LLAMA_UNIT),
        RemovePath("/etc/rigctl/rigctl-llama-server/models.ini"),
        DaemonReload(),
        RemovePath("/etc/rigctl/rigctl-llama-server", recursive=True),  # api-key.env too
        *ROLLBACK,
        *USER_LLAMA,
        *LAST,
    ]


def test_ollama_with_rigctls_drop_in_and_base_unit() -> None:
    found = Found(
        unit_users={OLLAMA_BASE: "ollama"},
        ollama_base_unit_ours=True,
        ollama_dropins=("rigctl.conf",),
    )
    assert removal_steps(ollama_manifest(), found=found) == [
        StopUnit("ollama"),
        RemovePath(DROPIN),
        RemovePath(OLLAMA_BASE),
        RemovePath("/etc/systemd/system/ollama.service.d", recursive=True),
        DaemonReload(),
        *ROLLBACK,  # no key, no /etc/rigctl/ollama: nothing else under /etc/rigctl but these
        RemoveUser("ollama"),
        RemoveGroup("ollama"),
        *LAST,
    ]


def test_ollama_keeps_upstreams_unit_its_user_and_other_drop_ins() -> None:
    found = Found(
        unit_users={OLLAMA_BASE: "ollama"},
        ollama_base_unit_ours=False,  # upstream's installer wrote it, or you did
        ollama_dropins=("rigctl.conf", "override.conf"),
    )
    steps = removal_steps(ollama_manifest(), found=found)
    assert RemovePath(DROPIN) in steps and StopUnit("ollama") in steps
    assert RemovePath(OLLAMA_BASE) not in steps
    assert not any(isinstance(s, RemovePath) and s.path.endswith("ollama.service.d") for s in steps)
    # upstream's unit stays, and runs as ollama: the user stays too
    assert not any(isinstance(s, RemoveUser | RemoveGroup) for s in steps)


def test_vllm_single_model_removes_the_shared_key_and_token_directory() -> None:
    assert removal_steps(vllm_single()) == [
        StopUnit("rigctl-vllm"),
        RemovePath("/etc/systemd/system/rigctl-vllm.service"),
        DaemonReload(),
        RemovePath("/etc/rigctl/rigctl-vllm", recursive=True),  # api-key.env, hf-token.env
        *ROLLBACK,
        RemoveUser("vllm"),
        RemoveGroup("vllm"),
        *LAST,
    ]


def test_vllm_several_units() -> None:
    assert removal_steps(vllm_several()) == [
        StopUnit("rigctl-vllm-chat"),
        StopUnit("rigctl-vllm-code"),
        RemovePath("/etc/systemd/system/rigctl-vllm-chat.service"),
        RemovePath("/etc/systemd/system/rigctl-vllm-code.service"),
        DaemonReload(),  # once
        RemovePath("/etc/rigctl/rigctl-vllm-chat", recursive=True),  # each one's restart stamp
        RemovePath("/etc/rigctl/rigctl-vllm-code", recursive=True),
        RemovePath("/etc/rigctl/rigctl-vllm", recursive=True),  # the key every unit reads
        *ROLLBACK,
        RemoveUser("vllm"),
        RemoveGroup("vllm"),
        *LAST,
    ]


def test_launchd() -> None:
    found = Found(unit_users={PLIST: "llama", "/Library/LaunchDaemons/com.other.plist": "_www"})
    assert removal_steps(launchd_manifest(), found=found) == [
        StopLaunchd("org.rigctl.llama-server"),
        RemovePath(PLIST),
        RemovePath("/etc/rigctl/rigctl-llama-server", recursive=True),
        *ROLLBACK,
        *USER_LLAMA,
        *LAST,
    ]  # no systemd: no unit file, no daemon-reload


@pytest.mark.parametrize("make", [manifest, llamacpp_router, ollama_manifest, vllm_single,
                                  vllm_several, launchd_manifest])
@pytest.mark.parametrize("purge", [False, True])
def test_order_stop_first_manifest_last_and_no_step_twice(
    make: Callable[[], Deployment], purge: bool
) -> None:
    steps = removal_steps(make(), purge=purge)
    assert isinstance(steps[0], StopUnit | StopLaunchd)
    assert steps[-1] == RemovePath(MANIFEST)
    assert len(steps) == len(set(steps))
    stops = [i for i, s in enumerate(steps) if isinstance(s, StopUnit | StopLaunchd)]
    removals = [i for i, s in enumerate(steps) if isinstance(s, RemovePath)]
    assert max(stops) < min(removals)
    users = [i for i, s in enumerate(steps) if isinstance(s, RemoveUser)]
    assert users and min(users) > max(removals[:-1])  # nothing runs as it any more, or owns a file
    if not launchd(make()):
        assert steps.count(DaemonReload()) == 1


def launchd(deployment: Deployment) -> bool:
    return rm.launchd(deployment)


def test_models_and_builds_stay_without_purge() -> None:
    for make in (manifest, llamacpp_router, ollama_manifest, vllm_single, vllm_several):
        paths = [s.path for s in removal_steps(make()) if isinstance(s, RemovePath)]
        assert not any(p.startswith((MODELS, "/opt/", "/var/lib/rigctl-", "/var/cache/",
                                     "/usr/local", "/var/lib/rigctl/ollama")) for p in paths)


# --------------------------------------------------------------------------- the service user


def test_the_user_stays_while_another_unit_runs_as_it() -> None:
    found = Found(unit_users={
        LLAMA_UNIT: "llama",
        "/etc/systemd/system/my-llama-tools.service": "llama",  # not rigctl's, still there
    })
    steps = removal_steps(manifest(), found=found)
    assert RemoveUser("llama") not in steps and RemoveGroup("llama") not in steps
    assert steps[-1] == RemovePath(MANIFEST)


def test_units_of_other_users_do_not_keep_it() -> None:
    found = Found(unit_users={"/etc/systemd/system/rigctl-vllm.service": "vllm",
                              "/etc/systemd/system/ssh.service": "root"})
    assert RemoveUser("llama") in removal_steps(manifest(), found=found)


def test_parse_unit_users() -> None:
    text = (
        f"{LLAMA_UNIT}:User=llama\n"
        "/etc/systemd/system/ollama.service:User= ollama \n"
        "/etc/systemd/system/broken.service:User=\n"
        "garbage\n"
    )
    assert rm.parse_unit_users(text) == {LLAMA_UNIT: "llama", OLLAMA_BASE: "ollama"}


# --------------------------------------------------------------------------- --purge


def test_purge_llamacpp() -> None:
    found = Found(unit_users={LLAMA_UNIT: "llama"}, state_directories=("rigctl-llama-server",))
    steps = removal_steps(manifest(), purge=True, found=found)
    start = steps.index(ROLLBACK[-1]) + 1
    assert steps[start:steps.index(RemoveUser("llama"))] == [
        RemovePath(GEMMA),
        RemovePath(f"{GEMMA}.sha256"),  # verified_file's marker
        RemovePath(f"{GEMMA}.part"),  # an upload cut short
        RemovePath("/opt/rigctl/llamacpp", recursive=True),  # builds, current, src
        RemovePath("/var/cache/rigctl/llamacpp-build", recursive=True),
        RemovePath("/var/cache/rigctl/ccache", recursive=True),
        RemovePath("/var/lib/rigctl-llama-server", recursive=True),  # StateDirectory=
    ]


def test_purge_router_removes_every_models_file_once() -> None:
    paths = [s.path for s in removal_steps(llamacpp_router(), purge=True)
             if isinstance(s, RemovePath) and s.path.startswith(MODELS)]
    assert paths == [GEMMA, f"{GEMMA}.sha256", f"{GEMMA}.part", QWEN, f"{QWEN}.sha256", f"{QWEN}.part"]


def test_purge_ollama() -> None:
    found = Found(ollama_base_unit_ours=True, ollama_installed_by_rigctl=True)
    steps = removal_steps(ollama_manifest(), purge=True, found=found)
    purged = steps[steps.index(ROLLBACK[-1]) + 1:steps.index(RemoveUser("ollama"))]
    assert [s for s in purged if not s.path.startswith(MODELS)] == [  # type: ignore[union-attr]
        RemovePath("/usr/local/bin/ollama"),  # the binary, then the tree with the marker
        RemovePath("/usr/local/lib/ollama", recursive=True),
        RemovePath("/var/lib/rigctl/ollama/models", recursive=True),  # OLLAMA_MODELS
        RemovePath("/var/lib/rigctl/ollama", recursive=True),  # the Modelfiles imported
    ]
    assert RemovePath("/usr/local", recursive=True) not in steps


def test_purge_keeps_an_ollama_rigctl_did_not_install() -> None:
    steps = removal_steps(ollama_manifest(), purge=True, found=Found(ollama_installed_by_rigctl=False))
    assert not any(isinstance(s, RemovePath) and s.path.startswith("/usr/local") for s in steps)


def test_purge_vllm() -> None:
    found = Found(state_directories=("rigctl-vllm",))
    steps = removal_steps(vllm_several(), purge=True, found=found)
    purged = steps[steps.index(ROLLBACK[-1]) + 1:steps.index(RemoveUser("vllm"))]
    assert purged == [
        RemovePath(VLLM_MODEL, recursive=True),
        RemovePath(f"{VLLM_MODEL}.partial", recursive=True),  # a Hub fetch cut short
        RemovePath(f"{MODELS}/org--coder@4567def", recursive=True),
        RemovePath(f"{MODELS}/org--coder@4567def.partial", recursive=True),
        RemovePath("/opt/rigctl/vllm", recursive=True),
        RemovePath("/var/cache/rigctl/wheelhouse", recursive=True),
        RemovePath("/var/lib/rigctl-vllm", recursive=True),  # caches: HF, torch, triton
    ]


def test_purge_launchd_removes_its_working_directory_and_log() -> None:
    steps = removal_steps(launchd_manifest(), purge=True)
    assert RemovePath("/var/lib/rigctl-llama-server", recursive=True) in steps
    assert RemovePath("/var/log/rigctl/rigctl-llama-server.log") in steps
    assert RemovePath("/var/log/rigctl", recursive=True) not in steps


def test_purge_follows_host_data_overrides() -> None:
    layout = Layout(
        config_root="/srv/rigctl/etc", unit_dir="/usr/lib/systemd/system",
        llamacpp_prefix="/srv/llama", llamacpp_build_root="/srv/cache/build",
        llamacpp_ccache_dir="/srv/cache/ccache",
    )
    steps = removal_steps(
        manifest(config_files=["/etc/systemd/system/rigctl-llama-server.service"]),
        purge=True, layout=layout,
    )
    paths = [s.path for s in steps if isinstance(s, RemovePath)]
    for wanted in ("/srv/llama", "/srv/cache/build", "/srv/cache/ccache",
                   "/usr/lib/systemd/system/rigctl-llama-server.service",
                   "/srv/rigctl/etc/rigctl-llama-server", "/etc/rigctl/rigctl-llama-server"):
        assert wanted in paths, wanted
    assert "/opt/rigctl/llamacpp" not in paths


def test_purge_state_directories_are_rigctls_only() -> None:
    found = Found(state_directories=("rigctl-vllm", "../etc", "postgresql", "rigctl-vllm"))
    paths = [s.path for s in removal_steps(vllm_single(), purge=True, found=found)
             if isinstance(s, RemovePath) and s.path.startswith("/var/lib/")]
    assert "/var/lib/rigctl-vllm" in paths
    assert not any(p.endswith(("etc", "postgresql")) for p in paths)


@pytest.mark.parametrize("path", [
    "/srv/models/gemma.gguf",  # a model rigctl did not place
    "/var/lib/rigctl/models",  # the directory itself
    "/var/lib/rigctl/models/",
    "/var/lib/rigctl/models//gemma.gguf",
    "/var/lib/rigctl/modelsX/gemma.gguf",
    "/var/lib/rigctl/models/./gemma.gguf",
    "/home/me/gemma.gguf",
])
def test_purge_refuses_a_model_outside_the_models_directory(path: str) -> None:
    deployment = manifest(model_path=path)
    with pytest.raises(Refused, match="--purge refused"):
        removal_steps(deployment, purge=True)
    assert removal_steps(deployment)[-1] == RemovePath(MANIFEST)  # without --purge: kept, fine


def test_purge_refuses_a_models_entry_outside_the_models_directory() -> None:
    deployment = manifest(
        config_files=[LLAMA_UNIT, "/etc/rigctl/rigctl-llama-server/models.ini"],
        models=[entry("chat", GEMMA), entry("etc", "/etc/shadow")],
    )
    with pytest.raises(Refused, match="/etc/shadow is not under /var/lib/rigctl/models"):
        removal_steps(deployment, purge=True)


@pytest.mark.parametrize("override", [
    {"llamacpp_prefix": "/usr/local"},
    {"llamacpp_prefix": "/opt"},
    {"llamacpp_prefix": "/opt/rigctl"},  # vLLM's too
    {"llamacpp_prefix": "/var/lib/apt"},
    {"llamacpp_prefix": "/home/me"},
    {"llamacpp_build_root": "/var/cache"},
    {"llamacpp_ccache_dir": "/var/lib/rigctl"},  # holds the models
    {"llamacpp_ccache_dir": "/"},
])
def test_purge_refuses_system_and_shared_directories(override: dict[str, str]) -> None:
    with pytest.raises(Refused, match="system or shared directory"):
        removal_steps(manifest(), purge=True, layout=Layout(**override))


def test_purge_refuses_ollama_models_in_the_shared_models_directory() -> None:
    with pytest.raises(Refused):
        removal_steps(ollama_manifest(), purge=True, layout=Layout(ollama_models_dir=MODELS))


# --------------------------------------------------------------------------- tampered manifests


@pytest.mark.parametrize("overrides, what", [
    ({"unit": "sshd"}, "unit 'sshd'"),
    ({"runtime": "vllm", "unit": "ssh", "user": "vllm",
      "config_files": ["/etc/systemd/system/ssh.service"]}, "unit 'ssh'"),
    ({"user": "root"}, "runs as llama"),
    ({"config_files": ["/etc/systemd/system/ssh.service"]}, "ssh.service"),
    ({"config_files": ["/etc/rigctl/other-unit/x"]}, "other-unit"),
    ({"config_files": [DROPIN]}, "rigctl.conf"),  # llama.cpp writes no Ollama drop-in
    ({"runtime": "vllm", "unit": "rigctl-vllm", "user": "vllm", "config_files": [PLIST]}, "launchd"),
])
def test_a_manifest_naming_what_rigctl_did_not_make_is_refused(
    overrides: dict[str, Any], what: str
) -> None:
    with pytest.raises(Refused, match=what):
        removal_steps(manifest(**overrides))


# --------------------------------------------------------------------------- survey


def test_survey_reads_users_state_and_ollamas_files(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = rm.ollama_base_unit_marker()
    outputs = {
        "grep -H '^User='": f"{OLLAMA_BASE}:User=ollama\n",
        "head -n 1 /etc/systemd/system/ollama.service": marker + "\n",
        "if [ -d /etc/systemd/system/ollama.service.d ]": "dir\nrigctl.conf\n",
        "lib/ollama/.rigctl-archive": "yes\n",
    }
    seen: list[str] = []

    def run_command(_host: Any, command: str) -> tuple[bool, str, str]:
        seen.append(command)
        return True, next((out for key, out in outputs.items() if key in command), ""), ""

    monkeypatch.setattr(rm, "run_command", run_command)
    found = rm.survey(object(), ollama_manifest(), Layout())  # type: ignore[arg-type]
    assert found == Found(unit_users={OLLAMA_BASE: "ollama"}, ollama_base_unit_ours=True,
                          ollama_dropins=("rigctl.conf",), ollama_installed_by_rigctl=True)
    assert all(command.endswith("; true") for command in seen)
    assert not any("StateDirectory" in command for command in seen)  # Ollama's unit is upstream's


def test_survey_of_a_systemd_host_without_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_command(_host: Any, command: str) -> tuple[bool, str, str]:
        if "StateDirectory" in command:
            assert "/etc/systemd/system/rigctl-vllm-chat.service" in command
            return True, "rigctl-vllm\nrigctl-vllm\n", ""
        return True, "", ""

    monkeypatch.setattr(rm, "run_command", run_command)
    found = rm.survey(object(), vllm_several(), Layout())  # type: ignore[arg-type]
    assert found == Found(state_directories=("rigctl-vllm",))


def test_upstreams_ollama_unit_is_not_taken_for_rigctls(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_command(_host: Any, command: str) -> tuple[bool, str, str]:
        return True, "[Unit]\n" if command.startswith("head -n 1") else "", ""  # install.sh's

    monkeypatch.setattr(rm, "run_command", run_command)
    assert not rm.survey(object(), ollama_manifest(), Layout()).ollama_base_unit_ours  # type: ignore[arg-type]


# --------------------------------------------------------------------------- operations


class Meta:
    """What a pyinfra operation returns, enough for :func:`rigctl.remove.changed`."""

    def __init__(self, will_change: bool) -> None:
        self.will_change = will_change
        self.complete = False
        self.did = False

    def is_complete(self) -> bool:
        return self.complete

    def did_change(self) -> bool:
        return self.did


class FakeHost:
    """A host's state as the fake operations read and change it."""

    def __init__(self, name: str, paths: set[str], *, deployment: Deployment | None = None,
                 users: set[str] = frozenset(), units: set[str] = frozenset(),  # type: ignore[assignment]
                 unit_users: dict[str, str] | None = None, down: bool = False) -> None:
        self.name = name
        self.data: dict[str, Any] = {}
        self.paths = set(paths)
        self.manifest = deployment.render().encode() if deployment else b""
        if deployment:
            self.paths.add(MANIFEST)
        self.users = set(users)
        self.groups = set(users)
        self.running = set(units)
        self.enabled = set(units)
        self.unit_users = dict(unit_users or {})
        self.down = down
        self.kill_after: int | None = None
        self.facts: dict[str, str] = {}

    def get_fact(self, _fact: Any, command: str = "", **_kw: Any) -> str:
        return next((out for key, out in self.facts.items() if key in command), "")

    def noop(self, _text: str) -> None:
        return None


class World:
    """The fake hosts, the host being prepared, and each host's queued operations."""

    def __init__(self) -> None:
        self.current: FakeHost | None = None
        self.queued: dict[str, list[tuple[Meta, Callable[[], None]]]] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def op(self, kind: str, will_change: bool, action: Callable[[], None], **kwargs: Any) -> Meta:
        assert self.current is not None
        self.calls.append((self.current.name, kind, kwargs))
        meta = Meta(will_change)
        self.queued.setdefault(self.current.name, []).append((meta, action))
        return meta


class _Proxy:
    def __init__(self, world: World) -> None:
        self._world = world

    def __getattr__(self, name: str) -> Any:
        return getattr(self._world.current, name)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """rigctl.remove's pyinfra parts replaced by fakes over :class:`FakeHost` state."""
    w = World()

    def here() -> FakeHost:
        assert w.current is not None
        return w.current

    def drop(path: str, recursive: bool) -> None:
        h = here()
        h.paths = {p for p in h.paths if p != path and not (recursive and p.startswith(path + "/"))}

    class Files:
        @staticmethod
        def file(name: str, path: str, **kw: Any) -> Meta:
            h = here()
            return w.op("file", path in h.paths, lambda: drop(path, False), name=name, path=path, **kw)

        @staticmethod
        def directory(name: str, path: str, **kw: Any) -> Meta:
            h = here()
            return w.op("directory", path in h.paths, lambda: drop(path, True), name=name,
                        path=path, **kw)

    class Systemd:
        @staticmethod
        def service(name: str, service: str, **kw: Any) -> Meta:
            h = here()

            def stop() -> None:
                h.running.discard(service)
                h.enabled.discard(service)

            return w.op("service", service in h.running | h.enabled, stop, name=name,
                        service=service, **kw)

        @staticmethod
        def daemon_reload(name: str) -> Meta:
            return w.op("daemon_reload", True, lambda: None, name=name)

    class Server:
        @staticmethod
        def user(name: str, user: str, present: bool) -> Meta:
            h = here()

            def userdel() -> None:
                h.users.discard(user)
                h.groups.discard(user)  # Debian's userdel takes the user's own group along

            return w.op("user", user in h.users, userdel, name=name, user=user, present=present)

        @staticmethod
        def shell(name: str, commands: list[str]) -> Meta:
            return w.op("shell", True, lambda: None, name=name, commands=commands)

    def group_absent(name: str, group: str) -> Meta:
        h = here()
        return w.op("group", group in h.groups, lambda: h.groups.discard(group), name=name,
                    group=group)

    def run_command(h: FakeHost, command: str) -> tuple[bool, str, str]:
        if h.down:
            return False, "", ""
        if "then echo present" in command:
            return True, "present" if MANIFEST in h.paths else "", ""
        if command.startswith("grep -H '^User='"):
            return True, "".join(f"{p}:User={u}\n" for p, u in h.unit_users.items()
                                 if p in h.paths), ""
        return True, "", ""

    def read_file(h: FakeHost, path: str) -> bytes:
        if path != MANIFEST or path not in h.paths:
            raise OSError(f"cannot read {path} on {h.name}")
        return h.manifest

    class Session:
        def __init__(self, inventory: list[FakeHost], *, limit: list[FakeHost], dry: bool = False,
                     on_operation: Any = None) -> None:
            self.hosts = limit
            self.dry = dry
            self.results = {h.name: HostResult(h.name) for h in limit}
            w.queued = {}

        def __enter__(self) -> Session:
            for h in self.hosts:
                if h.down:
                    self.results[h.name].fail("could not connect", status="unreachable")
            return self

        def __exit__(self, *exc: object) -> None:
            w.current = None

        def _active(self) -> list[FakeHost]:
            return [h for h in self.hosts if not self.results[h.name].failed]

        def each_host(self, func: Callable[[FakeHost], Any]) -> dict[str, Any]:
            values = {}
            for h in self._active():
                w.current = h
                try:
                    values[h.name] = func(h)
                except Exception as e:
                    self.results[h.name].fail(str(e))
            return values

        def prepare(self, deploy: Callable[[], None]) -> None:
            self.each_host(lambda _h: deploy())

        def run(self) -> None:
            if self.dry:
                return
            for h in self._active():
                w.current = h
                for index, (meta, action) in enumerate(w.queued.get(h.name, [])):
                    if h.kill_after is not None and index >= h.kill_after:
                        break
                    action()
                    meta.complete, meta.did = True, meta.will_change

        def summary(self) -> RunSummary:
            return RunSummary(dict(self.results))

    monkeypatch.setattr(rm, "files", Files)
    monkeypatch.setattr(rm, "systemd", Systemd)
    monkeypatch.setattr(rm, "server", Server)
    monkeypatch.setattr(rm, "group_absent", group_absent)
    monkeypatch.setattr(rm, "host", _Proxy(w))
    monkeypatch.setattr(rm, "run_command", run_command)
    monkeypatch.setattr(rm, "read_file", read_file)
    monkeypatch.setattr(rm, "connection_lost", lambda h: h.down)
    monkeypatch.setattr(rm, "Session", Session)
    w.hosts = {}  # type: ignore[attr-defined]
    monkeypatch.setattr(rm, "load_inventory", lambda _t: list(w.hosts.values()))  # type: ignore[attr-defined]
    monkeypatch.setattr(rm, "select_hosts", lambda inv, limit: [
        h for h in inv if not limit or h.name in limit])
    yield w


def test_steps_become_pyinfra_operations(world: World) -> None:
    world.current = FakeHost("h", set())
    steps: list[rm.Step] = [StopUnit("rigctl-vllm-chat"), RemovePath("/etc/x.service"),
             RemovePath("/etc/rigctl/rigctl-vllm", recursive=True), DaemonReload(),
             RemoveUser("vllm"), RemoveGroup("vllm")]
    applied = rm.apply_steps(steps)
    assert [a.step for a in applied] == steps
    assert [(kind, {k: v for k, v in kw.items() if k != "name"}) for _h, kind, kw in world.calls] == [
        ("service", {"service": "rigctl-vllm-chat.service", "running": False, "enabled": False}),
        ("file", {"path": "/etc/x.service", "present": False, "force": True, "force_backup": False}),
        ("directory", {"path": "/etc/rigctl/rigctl-vllm", "present": False, "force": True,
                       "force_backup": False}),
        ("daemon_reload", {}),
        ("user", {"user": "vllm", "present": False}),
        ("group", {"group": "vllm"}),
    ]
    names = [name for a in applied for name, _meta in a.ops]
    assert len(set(names)) == len(names) and all(n.startswith("remove: ") for n in names)


def test_launchd_steps_on_macos(world: World) -> None:
    h = FakeHost("mac", set())
    h.facts = {"launchctl print system/org.rigctl.llama-server ": "loaded", "id -u llama": "yes"}
    world.current = h
    rm.apply_steps([StopLaunchd("org.rigctl.llama-server"), RemoveUser("llama"),
                    RemoveGroup("llama")], macos=True)
    assert [kw["commands"] for _h, _kind, kw in world.calls] == [
        ["launchctl bootout system/org.rigctl.llama-server"],
        ["dscl . -delete /Users/llama"],  # the group's record is not there (no fact): left alone
    ]


def test_a_launchd_service_not_loaded_is_not_booted_out(world: World) -> None:
    world.current = FakeHost("mac", set())
    assert rm.apply_steps([StopLaunchd("org.rigctl.llama-server")], macos=True)[0].ops == []
    assert world.calls == []


def test_group_absent_checks_again_when_it_runs() -> None:
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_testing.operations import parse_commands
    from pyinfra_testing.util import FakeState, create_host

    state = FakeState()
    for groups, wanted in ((["llama", "users"], ["sh -c 'if getent group llama >/dev/null; then "
                                                 "groupdel llama; fi'"]), (["users"], [])):
        facts = {"server.Groups": groups}
        with ctx_state.use(state), ctx_host.use(create_host(state, facts=facts)):
            assert parse_commands(list(rm.group_absent._inner(group="llama"))) == wanted


# --------------------------------------------------------------------------- rigctl remove


LLAMA_PATHS = {
    LLAMA_UNIT, "/etc/rigctl", "/etc/rigctl/rigctl-llama-server",
    "/etc/rigctl/rigctl-llama-server/api-key", "/etc/rigctl/rigctl-llama-server/restarted",
    "/etc/rigctl/rollback", "/etc/rigctl/rollback/deployment.json", MODELS, GEMMA,
    f"{GEMMA}.sha256", "/opt/rigctl/llamacpp", "/opt/rigctl/llamacpp/current",
    "/var/lib/rigctl-llama-server", "/etc/systemd/system/ssh.service",
}


def llama_host(name: str, **kw: Any) -> FakeHost:
    return FakeHost(name, LLAMA_PATHS, deployment=manifest(), users={"llama"},
                    units={"rigctl-llama-server.service"},
                    unit_users={LLAMA_UNIT: "llama", "/etc/systemd/system/ssh.service": "root"},
                    **kw)


def _fleet(world: World, *hosts: FakeHost) -> None:
    world.hosts = {h.name: h for h in hosts}  # type: ignore[attr-defined]


def _inventory(tmp_path: Path, *names: str) -> str:
    inventory = tmp_path / "fleet.py"
    inventory.write_text("# the hosts are fakes\n")
    update_lockfile(str(inventory), {name: {"runtime": "llamacpp", "sha256": SHA} for name in names})
    return str(inventory)


def _locked(target: str) -> set[str]:
    return set(json.loads(lockfile_path(target).read_text())["hosts"])


def test_remove_a_fleet_one_host_down_one_without_a_deployment(world: World, tmp_path: Path) -> None:
    a, bare, down = llama_host("a"), FakeHost("bare", {"/etc/rigctl"}), llama_host("down", down=True)
    _fleet(world, a, bare, down)
    target = _inventory(tmp_path, "a", "bare", "down", "elsewhere")

    result = rm.remove(target)

    assert result.exit_code == 1 and result.failed == ["down"]
    assert result.hosts["down"].result.status == "unreachable"
    ra = result.hosts["a"]
    assert ra.result.status == "changed" and not ra.purged
    assert ra.removed == [
        "rigctl-llama-server.service", LLAMA_UNIT, "/etc/rigctl/rigctl-llama-server",
        "/etc/rigctl/rollback", "user llama", "group llama", MANIFEST,
    ]  # not rollback.new/.old, never there
    assert len(ra.result.changed_ops) == 8  # and the daemon-reload
    # rigctl's own, and only its own, are gone; models and builds stay
    assert a.paths == {"/etc/rigctl", MODELS, GEMMA, f"{GEMMA}.sha256", "/opt/rigctl/llamacpp",
                       "/opt/rigctl/llamacpp/current", "/var/lib/rigctl-llama-server",
                       "/etc/systemd/system/ssh.service"}
    assert not a.running and not a.enabled and not a.users and not a.groups
    # a host without a manifest: nothing to do, ok
    assert result.hosts["bare"].result.status == "ok" and result.hosts["bare"].removed == []
    assert bare.paths == {"/etc/rigctl"}
    # the hosts removed leave the lockfile; the one that is down, and the others, stay
    assert _locked(target) == {"down", "elsewhere"}
    assert result.lockfile == str(lockfile_path(target))
    document = result.to_json()
    assert document["failed"] == ["down"] and document["ok"] is False
    assert set(document["hosts"]["a"]) >= {"status", "error", "removed", "changed_ops", "purged"}

    # again: nothing left to remove, nothing changes
    down.down = False
    again = rm.remove(target, limit=["a", "bare"])
    assert again.exit_code == 0
    assert all(h.result.status == "ok" and h.result.changed_ops == [] and h.removed == []
               for h in again.hosts.values())


def test_dry_run_changes_nothing_and_says_what_would_go(world: World, tmp_path: Path) -> None:
    a = llama_host("a")
    _fleet(world, a)
    target = _inventory(tmp_path, "a")
    before = set(a.paths)

    result = rm.remove(target, dry=True, purge=True)

    assert result.exit_code == 0 and result.dry
    assert a.paths == before and a.users == {"llama"} and a.running
    removed = result.hosts["a"].removed
    assert {GEMMA, "/opt/rigctl/llamacpp", "/var/lib/rigctl-llama-server", MANIFEST} <= set(removed)
    assert result.hosts["a"].result.status == "changed"
    assert _locked(target) == {"a"} and result.lockfile is None


def test_purge(world: World, tmp_path: Path) -> None:
    a = llama_host("a")
    _fleet(world, a)
    result = rm.remove(_inventory(tmp_path, "a"), purge=True)
    assert result.exit_code == 0 and result.hosts["a"].purged
    assert a.paths == {"/etc/rigctl", MODELS, "/etc/systemd/system/ssh.service"}


def test_a_refused_purge_fails_that_host_alone_with_nothing_changed(
    world: World, tmp_path: Path
) -> None:
    odd = FakeHost("odd", {"/srv/models/x.gguf", LLAMA_UNIT},
                   deployment=manifest(model_path="/srv/models/x.gguf"), users={"llama"},
                   units={"rigctl-llama-server.service"})
    fine = llama_host("fine")
    _fleet(world, odd, fine)
    target = _inventory(tmp_path, "odd", "fine")
    before = set(odd.paths)

    result = rm.remove(target, purge=True)

    assert result.failed == ["odd"]
    assert "/srv/models/x.gguf is not under /var/lib/rigctl/models" in str(result.hosts["odd"].result.error)
    assert odd.paths == before and odd.running
    assert result.hosts["fine"].purged and MANIFEST not in fine.paths
    assert _locked(target) == {"odd"}


def test_a_remove_killed_halfway_is_finished_by_the_next(world: World, tmp_path: Path) -> None:
    a = llama_host("a")
    a.kill_after = 3  # stopped, unit file gone, reloaded: then the controller died
    _fleet(world, a)
    target = _inventory(tmp_path, "a")
    rm.remove(target)
    assert MANIFEST in a.paths and "/etc/rigctl/rigctl-llama-server" in a.paths

    a.kill_after = None
    second = rm.remove(target)  # the manifest still says what is left
    assert second.hosts["a"].removed == [
        "/etc/rigctl/rigctl-llama-server", "/etc/rigctl/rollback", "user llama", "group llama",
        MANIFEST,
    ]
    third = rm.remove(target)
    assert third.hosts["a"].result.changed_ops == []


def test_a_manifest_that_does_not_parse_is_refused(world: World, tmp_path: Path) -> None:
    a = llama_host("a")
    a.manifest = b'{"runtime": "llamacpp", "unit": "x; rm -rf /"}'
    _fleet(world, a)
    before = set(a.paths)
    result = rm.remove(_inventory(tmp_path, "a"))
    assert result.failed == ["a"] and "refused" in str(result.hosts["a"].result.error)
    assert a.paths == before


# --------------------------------------------------------------------------- the lockfile


def test_drop_lockfile_entries_keeps_the_others_and_replaces_the_file(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.py"
    inventory.write_text("")
    target = str(inventory)
    update_lockfile(target, {name: {"sha256": SHA} for name in ("a", "b", "c")})
    before = lockfile_path(target).stat().st_ino

    assert drop_lockfile_entries(target, ["a", "c", "never-locked"]) == lockfile_path(target)

    assert json.loads(lockfile_path(target).read_text()) == {"hosts": {"b": {"sha256": SHA}}}
    assert lockfile_path(target).stat().st_ino != before  # renamed over, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.lock.json", "fleet.py"]  # no .tmp


def test_drop_lockfile_entries_leaves_what_it_cannot_or_need_not_change(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.py"
    inventory.write_text("")
    target = str(inventory)
    assert drop_lockfile_entries(target, ["a"]) is None
    assert not lockfile_path(target).exists()  # none made
    lockfile_path(target).write_text("not json")
    assert drop_lockfile_entries(target, ["a"]) is None
    assert lockfile_path(target).read_text() == "not json"
    update_lockfile(target, {"b": {"sha256": SHA}})
    text = lockfile_path(target).read_text()
    assert drop_lockfile_entries(target, ["a"]) is None
    assert lockfile_path(target).read_text() == text


# --------------------------------------------------------------------------- the CLI


def test_cli_help_and_bad_input() -> None:
    assert "  remove " in rigctl("--help").stdout
    helped = rigctl("remove", "--help")
    assert helped.returncode == 0
    for option in ("--limit", "--purge", "--dry", "--json"):
        assert option in helped.stdout
    missing = rigctl("remove", "inventories/no-such-file.py")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "rigctl: error: field inventory: inventory file not found: inventories/no-such-file.py"
    )


def _result(failed: bool) -> rm.RemoveResult:
    ok = rm.HostRemoval("a", HostResult("a", status="changed", changed_ops=["remove: x"]),
                        deployment=manifest(), removed=[MANIFEST], purged=True)
    down = rm.HostRemoval("b", HostResult("b"))
    if failed:
        down.result.fail("could not connect", status="unreachable")
    return rm.RemoveResult({"a": ok, "b": down}, dry=False, purge=True)


@pytest.mark.parametrize("failed, code", [(False, 0), (True, 1)])
def test_cli_renders_json_and_exits_by_the_result(
    monkeypatch: pytest.MonkeyPatch, failed: bool, code: int
) -> None:
    import rigctl.cli.remove as remove_cli

    calls: list[dict[str, Any]] = []

    def fake(target: str, **kw: Any) -> rm.RemoveResult:
        calls.append({"target": target, **{k: v for k, v in kw.items() if k != "report"}})
        return _result(failed)

    monkeypatch.setattr(remove_cli, "run_remove", fake)
    out = CliRunner().invoke(cli, ["remove", "inv.py", "--limit", "a,b", "--purge", "--json"])
    assert out.exit_code == code, out.output
    assert calls == [{"target": "inv.py", "limit": ["a", "b"], "purge": True, "dry": False}]
    document = json.loads(out.stdout)
    assert document["hosts"]["a"] == {
        "status": "changed", "error": None, "runtime": "llamacpp", "removed": [MANIFEST],
        "changed_ops": ["remove: x"], "failed_ops": [], "purged": True,
    }
    assert document["failed"] == (["b"] if failed else []) and document["ok"] is (not failed)
    table = CliRunner().invoke(cli, ["remove", "inv.py"])
    assert table.exit_code == code and "remove" in table.stdout


def _real_commands(op: Any, facts: dict[str, Any], **kwargs: Any) -> list[Any]:
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_testing.operations import parse_commands
    from pyinfra_testing.util import FakeState, create_host

    state = FakeState()
    with ctx_state.use(state), ctx_host.use(create_host(state, facts=facts)):
        return parse_commands(list(op._inner(**kwargs)))


def test_the_operations_are_pyinfras_with_these_arguments(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What :func:`apply_steps` passes, given to pyinfra's own operations: the commands they
    yield on a host that has everything, and none on one that has nothing (idempotent)."""
    from rigctl import pyinfra_api as real

    world.current = FakeHost("h", set())
    rm.apply_steps([StopUnit("rigctl-vllm-chat"), RemovePath(LLAMA_UNIT),
                    RemovePath("/etc/rigctl/rigctl-vllm", recursive=True), DaemonReload(),
                    RemoveUser("vllm"), RemoveGroup("vllm")])
    ops = {"service": real.systemd.service, "file": real.files.file,
           "directory": real.files.directory, "daemon_reload": real.systemd.daemon_reload,
           "user": real.server.user, "group": GROUP_ABSENT}
    unit = "machine=None, services=['rigctl-vllm-chat.service'], user_mode=False, user_name=None"
    there = {
        "systemd.SystemdStatus": {unit: {"rigctl-vllm-chat.service": True}},
        "systemd.SystemdEnabled": {unit: {"rigctl-vllm-chat.service": True}},
        "files.File": {f"path={LLAMA_UNIT}": {"mode": 644}},
        "files.Directory": {"path=/etc/rigctl/rigctl-vllm": {"mode": 750}},
        "server.Users": {"vllm": {"home": "/nonexistent", "group": "vllm", "groups": []}},
        "server.Groups": ["vllm"], "server.Os": "Linux", "server.Which": {"command=userdel": "/usr/sbin/userdel"},
    }
    gone = {
        "systemd.SystemdStatus": {unit: {}}, "systemd.SystemdEnabled": {unit: {}},
        "files.File": {f"path={LLAMA_UNIT}": None},
        "files.Directory": {"path=/etc/rigctl/rigctl-vllm": None},
        "server.Users": {}, "server.Groups": [], "server.Os": "Linux",
        "server.Which": {"command=userdel": "/usr/sbin/userdel"},
    }
    wanted = [
        ["systemctl stop rigctl-vllm-chat.service", "systemctl disable rigctl-vllm-chat.service"],
        [f"rm -f {LLAMA_UNIT}"],
        ["rm -rf /etc/rigctl/rigctl-vllm"],
        ["systemctl daemon-reload"],
        ["userdel vllm"],
        ["sh -c 'if getent group vllm >/dev/null; then groupdel vllm; fi'"],
    ]
    monkeypatch.setattr(rm, "host", real.host)  # group_absent's, back from the fake
    for (_h, kind, kwargs), commands in zip(world.calls, wanted, strict=True):
        arguments = {k: v for k, v in kwargs.items() if k != "name"}
        assert _real_commands(ops[kind], there, **arguments) == commands, kind
        if kind != "daemon_reload":
            assert _real_commands(ops[kind], gone, **arguments) == [], kind


def test_a_path_of_the_other_kind_is_removed_too() -> None:
    """A file where a directory was expected, or the other way round: removed (``force``),
    never an error that would stop the host's removal halfway."""
    from rigctl import pyinfra_api as real

    assert _real_commands(real.files.file, {"files.File": {"path=/x": False}}, path="/x",
                          present=False, force=True, force_backup=False) == ["rm -rf /x"]
    assert _real_commands(real.files.directory, {"files.Directory": {"path=/x": False},
                                                 "files.Link": {"path=/x": None}},
                          path="/x", present=False, force=True, force_backup=False) == ["rm -rf /x"]
