"""Hostile values from host data, from hosts and from the controller's own cache: shell fragments
are quoted (or refused), manifests read back from a host are validated, kept llama.cpp builds are
content-addressed and checked, and controller-side paths made from outside names stay inside
their directory. No lab: pure functions, the controller's file system and faked connections."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from deployments import llamacpp_deployment
from hypothesis import given
from hypothesis import strategies as st

from rigctl.bench import run as bench_run
from rigctl.fetch import builds
from rigctl.fetch.builds import BadBuild, check_build_tarball, keep
from rigctl.manifest import Deployment, parse_deployment
from rigctl.paths import confined, safe_component, write_private
from rigctl.rollback import ROLLBACK_DIR, current_target, restore_steps, snapshot_steps
from rigctl.verify import run as verify_run
from rigctl.verify.target import Target

NAME = "b6000-cpu-0123abcd"
HOSTILE_PREFIX = "/opt/ll ama;touch /x"


def manifest(**changes: Any) -> Deployment:
    return llamacpp_deployment(**{
        "build": NAME,
        "model_sha256": "5b23de65d3eae544541e2c0b47e40293eee735974b68ccaad67e394a924e1115",
        "args": ["/opt/rigctl/llamacpp/current/bin/llama-server", "--port", "8080"],
        **changes,
    })

# --------------------------------------------------------------------------- rollback steps


def test_snapshot_steps_quote_a_hostile_prefix() -> None:
    steps = snapshot_steps(manifest(), HOSTILE_PREFIX)
    link = "'/opt/ll ama;touch /x/current'"
    assert f"if [ -L {link} ]; then readlink {link} > {ROLLBACK_DIR}.new/current; fi" in steps
    script = " && ".join(steps)
    # the prefix appears only inside single quotes: never as shell syntax
    assert script.count("touch /x") == 2 and script.count(link) == 2


def test_snapshot_steps_of_the_default_prefix_are_unchanged() -> None:
    """What runs on hosts with the default prefix is exactly what ran before quoting."""
    new = f"{ROLLBACK_DIR}.new"
    assert snapshot_steps(manifest(), "/opt/rigctl/llamacpp") == [
        f"rm -rf {new}",
        f"mkdir -p {new}/files",
        f"cp -p /etc/rigctl/deployment.json {new}/deployment.json",
        f"cp -p /etc/systemd/system/rigctl-llama-server.service {new}/files/0",
        "if [ -L /opt/rigctl/llamacpp/current ]; then readlink /opt/rigctl/llamacpp/current"
        f" > {new}/current; fi",
        f"date -u +%Y-%m-%dT%H:%M:%SZ > {new}/taken",
        f"touch {new}/pending",
        f"rm -rf {ROLLBACK_DIR}.old",
        f"if [ -e {ROLLBACK_DIR} ]; then mv {ROLLBACK_DIR} {ROLLBACK_DIR}.old; fi",
        f"mv {new} {ROLLBACK_DIR}",
        f"rm -rf {ROLLBACK_DIR}.old",
    ]


def test_restore_steps_quote_the_prefix_and_the_build_link() -> None:
    target = f"{HOSTILE_PREFIX}/builds/{NAME}"
    steps = restore_steps(manifest(), None, HOSTILE_PREFIX, target, "/etc/rigctl/x/restarted")
    assert (
        f"ln -sfn '{target}' '/opt/ll ama;touch /x/current.rollback'"
        " && mv -T '/opt/ll ama;touch /x/current.rollback' '/opt/ll ama;touch /x/current'"
    ) in steps
    assert not any("$(cat" in step for step in steps)  # the link is never read by the shell


def test_restore_steps_of_the_default_prefix() -> None:
    prefix = "/opt/rigctl/llamacpp"
    steps = restore_steps(
        manifest(), manifest(unit="ollama"), prefix, f"{prefix}/builds/{NAME}", "/etc/rigctl/u/restarted"
    )
    assert steps[0] == "systemctl disable --now ollama.service"
    assert (
        f"ln -sfn {prefix}/builds/{NAME} {prefix}/current.rollback"
        f" && mv -T {prefix}/current.rollback {prefix}/current"
    ) in steps
    assert steps[-3:] == [
        "systemctl enable rigctl-llama-server.service",
        "systemctl restart rigctl-llama-server.service",
        "touch /etc/rigctl/u/restarted",
    ]
    assert not any(step.startswith("ln") for step in restore_steps(manifest(), None, prefix, None, "/s"))


@pytest.mark.parametrize(
    "raw",
    [
        b"/etc\n",
        b"/opt/rigctl/llamacpp/builds/../../../etc\n",
        b"/opt/rigctl/llamacpp/builds/x; rm -rf /\n",
        b"/opt/rigctl/llamacpp/builds/\n",
        b"/opt/rigctl/llamacpp/builds/a/b\n",
        b"/opt/rigctl/llamacpp/builds/..\n",
        b"$(touch /pwned)\n",
    ],
)
def test_snapshot_build_link_outside_the_builds_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        current_target(raw, "/opt/rigctl/llamacpp")


def test_snapshot_build_link_of_a_build_is_taken() -> None:
    assert current_target(f"/opt/x/builds/{NAME}\n".encode(), "/opt/x") == f"/opt/x/builds/{NAME}"


# --------------------------------------------------------------------------- manifests


def test_a_manifest_as_deploys_write_it_parses() -> None:
    for deployment in (
        manifest(),
        manifest(
            runtime="ollama",
            unit="ollama",
            api_key_file="",
            metrics_path="",
            health_path="/",
            model_sha256="",
            config_files=["/etc/systemd/system/ollama.service.d/rigctl.conf"],
        ),
        manifest(config_files=["/Library/LaunchDaemons/org.rigctl.llama-server.plist"]),
        manifest(config_files=[]),
    ):
        assert parse_deployment(deployment.render()) == deployment


@pytest.mark.parametrize(
    "changes",
    [
        {"unit": "x; rm -rf /"},
        {"unit": "$(touch /pwned)"},
        {"unit": "../x"},
        {"unit": ""},
        {"config_files": ["/etc/shadow"]},
        {"config_files": ["/etc/systemd/system/../../shadow"]},
        {"config_files": ["/etc/systemd/system/x.service; rm -rf /"]},
        {"config_files": ["etc/systemd/system/x.service"]},
        {"config_files": "/etc/systemd/system/x.service"},
        {"config_files": ["/etc/systemd/system/"]},
        {"port": "8080; id"},
        {"port": True},
        {"listen": "127.0.0.1; id"},
        {"runtime": "sh"},
        {"user": "root; id"},
        {"model_sha256": "' ; id"},
        {"model_path": "/var/lib/../../etc/shadow"},
        {"health_path": "/health?$(id)"},
        {"args": "llama-server"},
    ],
)
def test_a_hostile_manifest_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_deployment(manifest(**changes).render())


def test_a_manifest_that_is_not_one_is_refused() -> None:
    for raw in ("[]", '"x"', '{"unit": "x"}', b"\xff"):
        with pytest.raises(ValueError):
            parse_deployment(raw)


# --------------------------------------------------------------------------- the build cache


Member = tuple[str, str, dict[str, Any]]  # name, kind (dir/file/sym/lnk/chr/fifo), TarInfo fields


def build_members(name: str = NAME) -> list[Member]:
    info = json.dumps({"build": name, "version": "b6000"}).encode()
    return [
        (name, "dir", {}),
        (f"{name}/bin", "dir", {}),
        (f"{name}/bin/llama-server", "file", {"data": b"\x7fELF server"}),
        (f"{name}/bin/llama-bench", "file", {"data": b"\x7fELF bench"}),
        (f"{name}/BUILD_INFO.json", "file", {"data": info, "mode": 0o644}),
    ]


def make_tarball(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member_name, kind, fields in members:
            info = tarfile.TarInfo(member_name)
            info.mode = fields.get("mode", 0o755)
            data = fields.get("data", b"")
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "file":
                info.size = len(data)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, fields["link"]
            elif kind == "lnk":
                info.type, info.linkname = tarfile.LNKTYPE, fields["link"]
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            archive.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return path


def test_a_build_as_the_role_installs_it_is_kept_with_its_sha256(tmp_path: Path) -> None:
    incoming = make_tarball(
        tmp_path / "in.tar.gz",
        [
            *build_members(),
            (f"{NAME}/lib", "dir", {}),
            (f"{NAME}/lib/libggml.so.1", "file", {"data": b"lib"}),
            (f"{NAME}/lib/libggml.so", "sym", {"link": "libggml.so.1"}),
            (f"{NAME}/bin/llama", "sym", {"link": "../bin/llama-server"}),
            (f"{NAME}/bin/llama-server-2", "lnk", {"link": f"{NAME}/bin/llama-server"}),
        ],
    )
    data = incoming.read_bytes()
    cache = tmp_path / "builds"
    cache.mkdir()
    kept = keep(builds.tarball_path(NAME, cache), NAME, incoming)
    assert kept == cache / f"{NAME}.tar.gz" and kept.read_bytes() == data
    sha = builds.file_sha256(kept)
    assert (cache / f"{NAME}.tar.gz.sha256").read_text() == f"{sha}  {NAME}.tar.gz\n"
    assert builds.cached_build(NAME, cache) == kept
    assert builds.verified_sha256(kept) == sha


HOSTILE_BUILDS: dict[str, list[Member]] = {
    "setuid file": [(f"{NAME}/bin/sudo", "file", {"data": b"x", "mode": 0o4755})],
    "setgid file": [(f"{NAME}/bin/x", "file", {"data": b"x", "mode": 0o2755})],
    "sticky directory": [(f"{NAME}/lib", "dir", {"mode": 0o1777})],
    "device node": [(f"{NAME}/bin/mem", "chr", {})],
    "fifo": [(f"{NAME}/bin/pipe", "fifo", {})],
    "absolute member": [("/etc/cron.d/evil", "file", {"data": b"x"})],
    "dot-dot member": [(f"{NAME}/../../etc/cron.d/evil", "file", {"data": b"x"})],
    "member of another directory": [("other/bin/x", "file", {"data": b"x"})],
    "symlink outside": [(f"{NAME}/bin/evil", "sym", {"link": "../../../../etc/shadow"})],
    "absolute symlink": [(f"{NAME}/bin/evil", "sym", {"link": "/etc/shadow"})],
    "symlink to the build itself": [(f"{NAME}/bin/up", "sym", {"link": ".."})],
    "hardlink outside": [(f"{NAME}/bin/evil", "lnk", {"link": "etc/shadow"})],
    "file outside the layout": [(f"{NAME}/etc/cron.d/evil", "file", {"data": b"x"})],
    "nested file": [(f"{NAME}/bin/sub/x", "file", {"data": b"x"})],
    "member twice": [(f"{NAME}/bin", "sym", {"link": "lib"})],
}


@pytest.mark.parametrize("why", sorted(HOSTILE_BUILDS))
def test_a_hostile_build_is_refused_when_keeping(why: str, tmp_path: Path) -> None:
    incoming = make_tarball(tmp_path / "in.tar.gz", [*build_members(), *HOSTILE_BUILDS[why]])
    cache = tmp_path / "builds"
    cache.mkdir()
    with pytest.raises(BadBuild):
        keep(builds.tarball_path(NAME, cache), NAME, incoming)
    assert list(cache.iterdir()) == [] and not incoming.exists()
    assert builds.cached_build(NAME, cache) is None


@pytest.mark.parametrize(
    "members",
    [
        [m for m in build_members() if not m[0].endswith("BUILD_INFO.json")],
        [m for m in build_members() if m[1] != "dir" or m[0] == NAME],  # no bin/
        build_members("b6000-cpu-ffffffffffff"),  # another build's
    ],
)
def test_a_tarball_that_is_not_this_build_is_refused(members: list[Member], tmp_path: Path) -> None:
    with pytest.raises(BadBuild):
        check_build_tarball(make_tarball(tmp_path / "in.tar.gz", members), NAME)


def test_not_a_tarball_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "in.tar.gz"
    junk.write_bytes(b"not gzip")
    with pytest.raises(BadBuild):
        check_build_tarball(junk, NAME)


def _kept(tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "builds"
    cache.mkdir()
    incoming = make_tarball(tmp_path / "in.tar.gz", build_members())
    return cache, keep(builds.tarball_path(NAME, cache), NAME, incoming)


def test_a_kept_build_modified_after_keeping_is_discarded_not_installed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, kept = _kept(tmp_path)
    make_tarball(kept, [*build_members(), (f"{NAME}/bin/sudo", "file", {"data": b"x", "mode": 0o4755})])
    assert builds.cached_build(NAME, cache) is None
    assert "discarding the kept llama.cpp build" in caplog.text
    assert list(cache.iterdir()) == []  # tarball and record gone: the host compiles


@pytest.mark.parametrize("record", ["", "0" * 64 + f"  {NAME}.tar.gz\n", "$(id)  x\n"])
def test_a_kept_build_without_a_valid_record_is_discarded(record: str, tmp_path: Path) -> None:
    cache, kept = _kept(tmp_path)
    builds.record_path(kept).write_text(record)
    assert builds.cached_build(NAME, cache) is None and not kept.exists()


def test_the_role_installs_a_kept_build_only_when_it_matches(tmp_path: Path) -> None:
    """The role asks :func:`verified_sha256` for the sha256 it passes on (None: compile)."""
    cache, kept = _kept(tmp_path)
    sha = builds.verified_sha256(kept)
    assert sha == builds.file_sha256(kept)
    kept.write_bytes(kept.read_bytes() + b"\0")
    assert builds.verified_sha256(kept) is None


def test_keep_build_refuses_a_hostile_build_from_a_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed = make_tarball(tmp_path / "packed.tar.gz", [*build_members(), *HOSTILE_BUILDS["device node"]])
    commands: list[str] = []

    def run_command(_host: Any, command: str) -> tuple[bool, str, str]:
        commands.append(command)
        return True, "", ""

    monkeypatch.setattr(builds, "run_command", run_command)
    monkeypatch.setattr(builds, "fetch_file", lambda _h, _r, local: local.write_bytes(packed.read_bytes()))
    cache = tmp_path / "builds"
    cache.mkdir()
    host = type("H", (), {"name": "gpu1"})()
    with pytest.raises(BadBuild, match="from gpu1 refused"):
        builds.keep_build(host, NAME, "/opt/ll ama", cache)  # type: ignore[arg-type]
    assert list(cache.iterdir()) == []
    assert commands == [
        f"tar -czf /var/cache/rigctl/{NAME}.tar.gz -C '/opt/ll ama/builds' {NAME}",
        f"rm -f /var/cache/rigctl/{NAME}.tar.gz",
    ]


def _install_commands(kwargs: dict[str, Any], facts: dict[str, Any]) -> list[Any]:
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_testing.operations import parse_commands
    from pyinfra_testing.util import FakeState, create_host
    from rigctl.roles.llamacpp.operations import install_prebuilt

    state = FakeState()
    with ctx_state.use(state), ctx_host.use(create_host(state, facts=facts)):
        return parse_commands(list(install_prebuilt._inner(**kwargs)))


def test_install_checks_the_sha256_and_unpacks_without_owners_and_modes(tmp_path: Path) -> None:
    _cache, kept = _kept(tmp_path)
    sha = builds.file_sha256(kept)
    remote = f"/var/cache/rigctl/llamacpp-build/{NAME}.tar.gz"
    q = shlex.quote
    probe = (
        f"if [ -f {q(remote)} ]; then wc -c < {q(remote)} | tr -d ' '; else echo missing; fi;"
        f" cat {q(remote + '.sha256')} 2>/dev/null || true"
    )
    kwargs = {
        "archive": str(kept),
        "build_name": NAME,
        "prefix": "/opt/rigctl/llamacpp",
        "build_root": "/var/cache/rigctl/llamacpp-build",
        "sha256": sha,
    }
    facts = {
        "files.File": {f"path=/opt/rigctl/llamacpp/builds/{NAME}/BUILD_INFO.json": None},
        "server.Command": {f"command={probe}": "missing"},
    }
    commands = _install_commands(kwargs, facts)
    tar = [c for c in commands if isinstance(c, str) and c.startswith("tar ")]
    assert tar == [
        f"tar --no-same-owner --no-same-permissions -xzf {remote}"
        f" -C /opt/rigctl/llamacpp/builds/{NAME}.partial --strip-components=1"
    ]
    # uploaded beside, checked on the host against the recorded sha256, then renamed
    upload = commands.index(["upload", str(kept), f"{remote}.part"])
    assert f'[ "$got" = {sha} ]' in commands[upload + 1]
    assert commands.index(tar[0]) > upload + 1
    # changed after keeping: refused on the controller, nothing pushed
    kept.write_bytes(kept.read_bytes() + b"\0")
    with pytest.raises(Exception, match="is not the build kept as"):
        _install_commands(kwargs, facts)


# --------------------------------------------------------------------------- verified_file on a host


def test_verified_file_commands_run_safely_in_a_shell(tmp_path: Path) -> None:
    """The host-side check and marker of ``verified_file``, run by a real shell, for a
    destination full of shell syntax: it verifies, and nothing is injected."""
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_testing.operations import parse_commands
    from pyinfra_testing.util import FakeState, create_host

    from rigctl.operations.files import verified_file

    src = tmp_path / "src.bin"
    src.write_bytes(b"model bytes")
    sha = builds.file_sha256(src)
    folder = tmp_path / "it's $(touch pwned) `touch pwned2`; a"
    folder.mkdir()
    dest = str(folder / "m.gguf")
    q = shlex.quote
    probe = (
        f"if [ -f {q(dest)} ]; then wc -c < {q(dest)} | tr -d ' '; else echo missing; fi;"
        f" cat {q(dest + '.sha256')} 2>/dev/null || true"
    )
    state = FakeState()
    facts = {"server.Command": {f"command={probe}": "missing"}}
    with ctx_state.use(state), ctx_host.use(create_host(state, facts=facts)):
        commands = parse_commands(
            list(verified_file._inner(src=str(src), dest=dest, sha256=sha, user=_me(), group=_my_group()))
        )
    for command in commands:
        if isinstance(command, list):  # the upload
            Path(command[2]).write_bytes(src.read_bytes())
            continue
        subprocess.run(["sh", "-c", command], check=True, cwd=tmp_path)
    assert Path(dest).read_bytes() == b"model bytes"
    assert Path(dest + ".sha256").read_text() == f"{sha}  m.gguf\n"
    assert not list(tmp_path.rglob("pwned*"))


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _my_group() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name


@pytest.mark.parametrize(
    "sha256",
    [
        "5b23de65d3eae544541e2c0b47e40293eee735974b68ccaad67e394a924e111' ]; touch /pwned; [ '",
        "$(touch /pwned)",
        "5B23DE65D3EAE544541E2C0B47E40293EEE735974B68CCAAD67E394A924E1115",
        "5b23de65",
        "",
    ],
)
def test_verified_file_refuses_a_sha256_that_is_not_one(sha256: str) -> None:
    from rigctl.operations.files import verified_file

    with pytest.raises(ValueError, match="not a sha256"):
        list(verified_file._inner(src="/nonexistent", dest="/x", sha256=sha256))


# --------------------------------------------------------------------------- controller-side paths


SAFE = re.compile(r"[A-Za-z0-9._-]+")


@pytest.mark.parametrize(
    "name", ["../../etc", "a/b", ".", "..", "", "gpu1\n", "ωmega", "naïve", "x" * 300, "-", "a\0b"]
)
def test_confined_makes_one_safe_component_inside_base(name: str, tmp_path: Path) -> None:
    path = confined(tmp_path, name)
    assert path.parent == tmp_path
    assert SAFE.fullmatch(path.name) and path.name not in (".", "..")
    assert path.name != name  # each of these had to change
    assert len(path.name) <= 128


@pytest.mark.parametrize("name", ["gpu1", "b6000-cpu-0123abcd.tar.gz", "v0.12.3", "host.last.json"])
def test_confined_keeps_ordinary_names(name: str, tmp_path: Path) -> None:
    assert confined(tmp_path, name) == tmp_path / name


def test_confined_changes_a_name_that_looks_changed(tmp_path: Path) -> None:
    changed = safe_component("a/b")
    assert safe_component(changed) != changed  # or "a/b" and this one would share a path


def test_confined_refuses_a_symlink_out_of_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "evil").symlink_to(tmp_path)
    with pytest.raises(ValueError):
        confined(base, "evil", "x")


def test_confined_several_parts(tmp_path: Path) -> None:
    path = confined(tmp_path, "ollama", "../../v1", "ollama-linux-amd64.tgz")
    assert path.parent.parent == tmp_path / "ollama"
    assert path.name == "ollama-linux-amd64.tgz"


@given(st.lists(st.text(max_size=80), min_size=2, max_size=8, unique=True))
def test_confined_is_injective_and_stays_one_component(names: list[str]) -> None:
    base = Path("/nonexistent-rigctl-base")
    paths = [confined(base, name) for name in names]
    assert len(set(paths)) == len(names)
    for path in paths:
        assert path.parent == base and SAFE.fullmatch(path.name) and path.name not in (".", "..")


def test_bench_results_of_a_hostile_host_name_stay_in_their_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIGCTL_STATE_DIR", str(tmp_path / "state"))
    bench_run._save("../../x", "baseline", {"levels": []})
    (written,) = (tmp_path / "state" / "bench").iterdir()
    assert SAFE.fullmatch(written.name) and "--" in written.name
    assert bench_run.load_baseline("../../x") == {"levels": []}
    assert bench_run.load_baseline("..") is None
    assert not (tmp_path / "x.baseline.json").exists()


def test_verify_target_of_a_hostile_host_name_is_inside_the_run_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []

    class Process:
        returncode = 0

        def __init__(self, command: list[str], **_kwargs: Any) -> None:
            started.append(command)

    monkeypatch.setattr(verify_run.subprocess, "Popen", Process)
    workdir = tmp_path / "run" / "work"
    workdir.mkdir(parents=True)
    target = Target(name="../../x", ssh={"hostname": "10.0.0.1", "password": "hunter2"})
    old = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        verify_run._start(target, workdir)
    finally:
        os.umask(old)
    written = [p for p in tmp_path.rglob("target.json")]
    assert len(written) == 1
    (target_file,) = written
    assert target_file.parent.parent == workdir
    assert stat.S_IMODE(target_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(target_file.parent.stat().st_mode) == 0o700
    assert Target.read(target_file) == target
    assert not (tmp_path / "x").exists() and not (tmp_path / "run" / "x").exists()
    assert str(target_file) in started[0]


def test_write_private_is_0600_and_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text("old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        write_private(path, "new")
    finally:
        os.umask(old)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]


def test_lockfiles_of_non_file_targets_are_confined_and_distinct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigctl.lockfile import lockfile_path

    monkeypatch.setenv("RIGCTL_STATE_DIR", str(tmp_path))
    targets = ["@local", "a/b", "a_b", "../../x", "127.0.0.1,127.0.0.2", ".."]
    paths = [lockfile_path(t) for t in targets]
    assert len(set(paths)) == len(targets)
    for path in paths:
        assert path.parent == tmp_path / "locks" and path.name.endswith(".lock.json")


def test_api_keys_read_from_a_host_are_redacted_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rigctl.pyinfra_api as api
    from rigctl.manifest import read_api_key
    from rigctl.redact import redact

    key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    monkeypatch.setattr(api, "read_file", lambda _host, _path: (key + "\n").encode())
    assert read_api_key(object(), "/etc/rigctl/u/api-key") == key  # type: ignore[arg-type]
    assert key not in redact(f"HTTP 401 for Bearer-less request with key {key}")
