"""``rigctl remove``: take rigctl's deployment off each host, from the host's own manifest.

What a host serves is what its manifest (``/etc/rigctl/deployment.json``) says, so that is what
is removed: no inventory model, no plan, no guessing. Per host, in order:

1. every unit of the deployment stopped and disabled (``Deployment.units``; under launchd the
   LaunchDaemon booted out);
2. the files rigctl wrote that define the service (``config_files``: unit files, llama.cpp's
   presets, Ollama's drop-in and, when rigctl wrote it, Ollama's base unit; the launchd plist),
   then one ``daemon-reload``;
3. each unit's configuration directory (``/etc/rigctl/<unit>``: API key, environment files,
   restart stamp; vLLM's shared ``/etc/rigctl/rigctl-vllm``: the key and the token), and the
   rollback snapshot (``/etc/rigctl/rollback``, ``.new``, ``.old``);
4. with ``--purge``: the models the manifest names (under ``/var/lib/rigctl/models`` only), the
   runtime's install (llama.cpp's prefix and build caches, vLLM's virtualenvs and wheelhouse,
   Ollama's binary, libraries, models and imported Modelfiles) and the units' state
   directories (``StateDirectory=``: caches);
5. the service user and its group, unless a unit file left in the unit directory still runs
   as it (``User=``);
6. the manifest itself, last: a remove killed halfway is run again, and the manifest still
   says what is left to remove.

:func:`removal_steps` is that list, computed (pure) from the manifest, ``--purge``, where the
roles install things on this host (:class:`Layout`: the roles' defaults and host-data
overrides) and what the host showed before anything was removed (:class:`Found`); it refuses
(:class:`Refused`) anything the manifest names that rigctl did not make. :func:`apply_steps`
turns the steps into pyinfra operations (each one idempotent: a second run changes nothing),
run through the :class:`~rigctl.pyinfra_api.Session` like every deploy, so ``--dry`` shows what
would change and changes nothing.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rigctl.deploys import llamacpp as llamacpp_deploy
from rigctl.deploys import vllm as vllm_deploy
from rigctl.fleet import FleetResult
from rigctl.hostdata import role_value
from rigctl.lockfile import drop_lockfile_entries
from rigctl.manifest import HOST_PATH, MANIFEST, UNIT_NAME, Deployment, parse_deployment
from rigctl.plan import DEFAULT_MODEL_DIR
from rigctl.progress import Reporter, quiet
from rigctl.pyinfra_api import (
    CONNECTION_LOST,
    Host,
    HostResult,
    QuoteString,
    Session,
    StringCommand,
    connection_lost,
    files,
    host,
    load_inventory,
    operation,
    read_file,
    run_command,
    select_hosts,
    server,
    server_facts,
    systemd,
)
from rigctl.roles import llamacpp, ollama, vllm
from rigctl.roles.llamacpp import defaults as llamacpp_defaults
from rigctl.roles.ollama import defaults as ollama_defaults
from rigctl.roles.service import defaults as service_defaults
from rigctl.roles.service.setup_macos import LAUNCH_DAEMONS
from rigctl.roles.vllm import defaults as vllm_defaults
from rigctl.rollback import ROLLBACK_DIR
from rigctl.templates import render

#: The only place ``--purge`` removes models from: where every runtime's deploy puts them.
MODELS_ROOT = DEFAULT_MODEL_DIR
#: Where Ollama's base unit is when rigctl writes it (``roles/ollama`` ``configure``).
OLLAMA_BASE_UNIT = f"{ollama.DROPIN.rsplit('/', 2)[0]}/ollama.service"
OLLAMA_DROPIN_DIR = ollama.DROPIN.rsplit("/", 1)[0]
#: Where ``ollama create`` keeps the Modelfiles rigctl imported (``roles/ollama``).
OLLAMA_STATE = "/var/lib/rigctl/ollama"
#: The launchd service rigctl writes (llama.cpp on macOS), its working directory and log.
LAUNCHD_PLIST = f"{LAUNCH_DAEMONS}/{llamacpp_deploy.LAUNCHD_LABEL}.plist"
LAUNCHD_STATE = f"/var/lib/{llamacpp_deploy.UNIT}"
LAUNCHD_LOG = f"/var/log/rigctl/{llamacpp_deploy.UNIT}.log"
#: The user each runtime's units run as (rigctl creates them; Ollama's as upstream does).
USERS = {
    "llamacpp": llamacpp_deploy.USER,
    "vllm": vllm_deploy.USER,
    "ollama": ollama_defaults.OLLAMA_USER,
}
#: A ``StateDirectory=`` rigctl's units name (``/var/lib/<name>``).
STATE_NAME = re.compile(r"rigctl-[A-Za-z0-9_.@-]{1,120}")
#: System directories: never purged, nor is anything directly inside them (a host-data
#: override pointing an install at ``/usr/local`` or ``/home/me`` stays where it is).
SYSTEM_DIRS = frozenset({
    "/", "/usr", "/var", "/etc", "/home", "/root", "/boot", "/dev", "/proc", "/sys", "/run",
    "/tmp", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/snap", "/mnt", "/media",
    "/Users", "/Library", "/System", "/Applications", "/private", "/Volumes",
})
#: Nothing directly inside these is purged either (``/var/lib/apt``, ``/usr/local/lib``).
SYSTEM_PARENTS = SYSTEM_DIRS | {
    "/var/lib", "/var/cache", "/var/log", "/var/opt", "/var/spool", "/usr/local", "/usr/share",
    "/usr/lib",
}
#: Directories rigctl shares between runtimes or with the system: never purged whole.
SHARED_DIRS = frozenset({
    "/opt", "/opt/rigctl", "/srv", "/var/lib/rigctl", MODELS_ROOT, "/var/cache/rigctl",
    "/var/log/rigctl", "/usr/local", service_defaults.SERVICE_CONFIG_ROOT,
    service_defaults.SERVICE_SYSTEMD_UNIT_DIR,
})


class Refused(ValueError):
    """The manifest (or a host-data path) names something rigctl did not make: nothing of this
    host is removed."""


# --------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class StopUnit:
    """A systemd unit stopped and disabled (its name, without ``.service``)."""

    name: str


@dataclass(frozen=True)
class StopLaunchd:
    """A LaunchDaemon booted out (``launchctl bootout system/<label>``)."""

    label: str


@dataclass(frozen=True)
class RemovePath:
    """A file (or a directory with everything in it, ``recursive``) removed."""

    path: str
    recursive: bool = False


@dataclass(frozen=True)
class DaemonReload:
    """systemd re-reads its units (after unit files were removed)."""


@dataclass(frozen=True)
class RemoveUser:
    name: str


@dataclass(frozen=True)
class RemoveGroup:
    name: str


Step = StopUnit | StopLaunchd | RemovePath | DaemonReload | RemoveUser | RemoveGroup


@dataclass(frozen=True)
class Layout:
    """Where the roles put things on one host: their defaults, or the host data's overrides."""

    config_root: str = service_defaults.SERVICE_CONFIG_ROOT
    unit_dir: str = service_defaults.SERVICE_SYSTEMD_UNIT_DIR
    llamacpp_prefix: str = llamacpp_defaults.LLAMACPP_PREFIX
    llamacpp_build_root: str = llamacpp_defaults.LLAMACPP_BUILD_ROOT
    llamacpp_ccache_dir: str = llamacpp_defaults.LLAMACPP_CCACHE_DIR
    vllm_prefix: str = vllm_defaults.VLLM_PREFIX
    vllm_wheelhouse_dir: str = vllm_defaults.VLLM_WHEELHOUSE_DIR
    ollama_install_dir: str = ollama_defaults.OLLAMA_INSTALL_DIR
    ollama_models_dir: str = ollama_defaults.OLLAMA_MODELS_DIR


def layout_of(host_obj: Host) -> Layout:
    """The host's :class:`Layout`, read as the roles read it."""
    data = host_obj.data
    return Layout(
        config_root=str(role_value(data, "service_config_root", service_defaults.SERVICE_CONFIG_ROOT)),
        unit_dir=str(role_value(data, "service_systemd_unit_dir",
                                service_defaults.SERVICE_SYSTEMD_UNIT_DIR)),
        llamacpp_prefix=llamacpp.install_prefix(host_obj),
        llamacpp_build_root=str(data.get("llamacpp_build_root", llamacpp_defaults.LLAMACPP_BUILD_ROOT)),
        llamacpp_ccache_dir=str(data.get("llamacpp_ccache_dir", llamacpp_defaults.LLAMACPP_CCACHE_DIR)),
        vllm_prefix=vllm.install_prefix(host_obj),
        vllm_wheelhouse_dir=str(data.get("vllm_wheelhouse_dir", vllm_defaults.VLLM_WHEELHOUSE_DIR)),
        ollama_install_dir=ollama.install_dir(host_obj),
        ollama_models_dir=ollama.models_dir(host_obj),
    )


@dataclass(frozen=True)
class Found:
    """What the host showed before anything was removed (:func:`survey`)."""

    #: every unit file, drop-in or LaunchDaemon plist on the host -> the user it runs as
    unit_users: Mapping[str, str] = field(default_factory=dict)
    #: the ``StateDirectory=`` names of the deployment's units
    state_directories: tuple[str, ...] = ()
    #: Ollama's base unit is the one rigctl writes (its first line), not upstream's or yours
    ollama_base_unit_ours: bool = False
    #: what ``ollama.service.d/`` holds (None: no such directory)
    ollama_dropins: tuple[str, ...] | None = None
    #: Ollama's install in ``ollama_install_dir`` is rigctl's (its ``.rigctl-archive`` marker)
    ollama_installed_by_rigctl: bool = False


def launchd(deployment: Deployment) -> bool:
    """A deployment served by launchd (macOS): its config files name a LaunchDaemon."""
    return any(path.startswith(f"{LAUNCH_DAEMONS}/") for path in deployment.config_files)


def removal_steps(
    deployment: Deployment,
    *,
    purge: bool = False,
    layout: Layout = Layout(),  # noqa: B008 (frozen: one shared default is safe)
    found: Found = Found(),  # noqa: B008
) -> list[Step]:
    """What removing ``deployment`` from its host is, in order (see the module doc); raises
    :class:`Refused` when the manifest names a unit, user or path that is not rigctl's, or
    ``purge`` would remove a model outside :data:`MODELS_ROOT` or a host-data path that is a
    system or shared directory."""
    runtime = deployment.runtime
    units = _units(deployment)
    user = USERS[runtime]
    if deployment.user != user:
        raise Refused(f"{MANIFEST}: {runtime} runs as {user}, not {deployment.user!r}: refused")
    on_launchd = launchd(deployment)
    if on_launchd and (runtime != "llamacpp" or units != [llamacpp_deploy.UNIT]):
        raise Refused(f"{MANIFEST}: only llama.cpp's single server is served by launchd: refused")
    steps: list[Step] = []

    # 1. nothing runs any more
    if on_launchd:
        steps.append(StopLaunchd(llamacpp_deploy.LAUNCHD_LABEL))
    else:
        steps += [StopUnit(unit) for unit in units]

    # 2. the files that define the service, then systemd re-reads its units
    service_files = _config_files(deployment, units, layout)
    if not on_launchd:
        for unit in units:
            if unit != ollama.UNIT:  # Ollama's base unit: only when it is the one rigctl wrote
                service_files.append(f"{layout.unit_dir}/{unit}.service")
    if runtime == "ollama" and found.ollama_base_unit_ours:
        service_files.append(OLLAMA_BASE_UNIT)
    steps += [RemovePath(path) for path in service_files]
    if runtime == "ollama" and found.ollama_dropins is not None and set(found.ollama_dropins) <= {
        ollama.DROPIN.rsplit("/", 1)[1]
    }:
        steps.append(RemovePath(OLLAMA_DROPIN_DIR, recursive=True))
    if not on_launchd:
        steps.append(DaemonReload())

    # 3. configuration (key, environment, presets, restart stamp) and the rollback snapshot
    steps += [RemovePath(path, recursive=True) for path in _config_dirs(deployment, units, layout)]
    steps += [RemovePath(ROLLBACK_DIR + suffix, recursive=True) for suffix in ("", ".new", ".old")]

    # 4. models, the runtime's install, state
    if purge:
        steps += _purge_steps(deployment, units, layout, found, on_launchd)

    # 5. the service user, unless a unit still on the host runs as it
    gone = [step for step in steps if isinstance(step, RemovePath)]
    still = sorted(
        path for path, name in found.unit_users.items()
        if name == user and not any(_covers(step, path) for step in gone)
    )
    if not still:
        steps += [RemoveUser(user), RemoveGroup(user)]

    # 6. the manifest, last: what says what is left to remove
    steps.append(RemovePath(MANIFEST))
    return list(dict.fromkeys(steps))


def _units(deployment: Deployment) -> list[str]:
    """The deployment's units, each checked to be one of its runtime's own."""
    units = deployment.units
    for unit in units:
        own = (
            unit == llamacpp_deploy.UNIT if deployment.runtime == "llamacpp"
            else unit == ollama.UNIT if deployment.runtime == "ollama"
            else unit == vllm_deploy.UNIT or unit.startswith(f"{vllm_deploy.UNIT}-")
        )
        if not own or not UNIT_NAME.fullmatch(unit):
            raise Refused(
                f"{MANIFEST}: unit {unit!r} is not one of {deployment.runtime}'s: refused"
            )
    return units


def _config_roots(layout: Layout) -> list[str]:
    # deploys name some files under the default root whatever the host data says (the key
    # path in argv, vLLM's token, llama.cpp's presets), the service role under its own
    return list(dict.fromkeys([layout.config_root, service_defaults.SERVICE_CONFIG_ROOT]))


def _config_dir_units(deployment: Deployment, units: list[str]) -> list[str]:
    if deployment.runtime == "ollama":
        return []  # no key, nothing under /etc/rigctl but the manifest
    if deployment.runtime == "vllm":
        return list(dict.fromkeys([*units, vllm_deploy.UNIT]))  # the key and token: rigctl-vllm's
    return units


def _config_dirs(deployment: Deployment, units: list[str], layout: Layout) -> list[str]:
    return [
        f"{root}/{unit}"
        for unit in _config_dir_units(deployment, units)
        for root in _config_roots(layout)
    ]


def _config_files(deployment: Deployment, units: list[str], layout: Layout) -> list[str]:
    """The manifest's ``config_files``, each one a file rigctl writes for this deployment."""
    unit_dirs = {layout.unit_dir, service_defaults.SERVICE_SYSTEMD_UNIT_DIR}
    allowed = {f"{unit_dir}/{unit}.service" for unit_dir in unit_dirs for unit in units
               if unit != ollama.UNIT}
    if deployment.runtime == "ollama":
        allowed.add(ollama.DROPIN)
    if deployment.runtime == "llamacpp":
        allowed.add(LAUNCHD_PLIST)
    inside = tuple(f"{directory}/" for directory in _config_dirs(deployment, units, layout))
    for path in deployment.config_files:
        if path not in allowed and not (path.startswith(inside) and _plain(path)):
            raise Refused(f"{MANIFEST}: config file {path} is not one rigctl writes for "
                          f"{deployment.runtime}: refused")
    return list(deployment.config_files)


def _purge_steps(
    deployment: Deployment, units: list[str], layout: Layout, found: Found, on_launchd: bool
) -> list[Step]:
    steps: list[Step] = []
    # the models the manifest names, with what verified_file leaves beside a file
    paths = [deployment.model_path, *(entry["model_path"] for entry in deployment.models)]
    for path in dict.fromkeys(paths):
        if not _plain(path) or not path.startswith(f"{MODELS_ROOT}/"):
            raise Refused(f"model {path} is not under {MODELS_ROOT}: --purge refused (remove "
                          "without it, or delete the model yourself)")
        if deployment.runtime == "vllm":  # a model directory, and its half-fetched snapshot
            steps += [RemovePath(path, recursive=True), RemovePath(f"{path}.partial", recursive=True)]
        else:
            steps += [RemovePath(path), RemovePath(f"{path}.sha256"), RemovePath(f"{path}.part")]
    # the runtime's install
    if deployment.runtime == "llamacpp":
        installs = [layout.llamacpp_prefix, layout.llamacpp_build_root, layout.llamacpp_ccache_dir]
    elif deployment.runtime == "vllm":
        installs = [layout.vllm_prefix, layout.vllm_wheelhouse_dir]
    else:
        installs = [layout.ollama_models_dir, OLLAMA_STATE]
        if found.ollama_installed_by_rigctl:  # the binary first, the marker's tree last
            steps += [
                RemovePath(f"{layout.ollama_install_dir}/bin/ollama"),
                RemovePath(f"{layout.ollama_install_dir}/lib/ollama", recursive=True),
            ]
    for path in installs:
        _check_purgeable(path)
        steps.append(RemovePath(path, recursive=True))
    # state: the units' StateDirectory= (caches), launchd's working directory and log
    names = [llamacpp_deploy.UNIT] if deployment.runtime == "llamacpp" else (
        [vllm_deploy.UNIT] if deployment.runtime == "vllm" else []
    )
    for name in [*names, *found.state_directories]:
        if STATE_NAME.fullmatch(name):
            steps.append(RemovePath(f"/var/lib/{name}", recursive=True))
    if on_launchd:
        steps += [RemovePath(LAUNCHD_STATE, recursive=True), RemovePath(LAUNCHD_LOG)]
    return steps


def _plain(path: str) -> bool:
    """An absolute path as rigctl writes them: no ``.``/``..``/empty parts, no odd characters."""
    return bool(HOST_PATH.fullmatch(path)) and posixpath.normpath(path) == path and path != "/"


def _check_purgeable(path: str) -> None:
    """A directory ``--purge`` may remove whole: a plain path that is no system or shared
    directory, not directly inside a system directory (:data:`SYSTEM_PARENTS`), and holds none
    of them."""
    protected = SYSTEM_DIRS | SHARED_DIRS
    if (
        not _plain(path)
        or path in protected
        or posixpath.dirname(path) in SYSTEM_PARENTS
        or any(other.startswith(f"{path}/") for other in protected)
    ):
        raise Refused(f"{path} is a system or shared directory: --purge refused (check the "
                      "host data that points the runtime's install there)")


def _covers(step: RemovePath, path: str) -> bool:
    return path == step.path or (step.recursive and path.startswith(f"{step.path}/"))


def label(step: Step) -> str | None:
    """What a step removes, as ``remove --json`` lists it (None: it removes nothing itself)."""
    if isinstance(step, StopUnit):
        return f"{step.name}.service"
    if isinstance(step, StopLaunchd):
        return f"system/{step.label}"
    if isinstance(step, RemovePath):
        return step.path
    if isinstance(step, RemoveUser):
        return f"user {step.name}"
    if isinstance(step, RemoveGroup):
        return f"group {step.name}"
    return None


# --------------------------------------------------------------------------- the host


def read_manifest(host_obj: Host) -> Deployment | None:
    """The host's manifest, None when it has none; OSError when it cannot be looked at,
    :class:`Refused` when it is not a valid manifest (never acted on)."""
    out = _command(host_obj, f"if [ -e {MANIFEST} ]; then echo present; fi")
    if out.strip() != "present":
        return None
    try:
        return parse_deployment(read_file(host_obj, MANIFEST))
    except ValueError as e:
        raise Refused(f"{MANIFEST}: {e}: refused, nothing removed") from None


def survey(host_obj: Host, deployment: Deployment, layout: Layout) -> Found:
    """What :func:`removal_steps` needs from the host, read before anything is removed."""
    q = shlex.quote
    if launchd(deployment):
        users = _command(
            host_obj,
            f"for f in {LAUNCH_DAEMONS}/*.plist; do [ -f \"$f\" ] || continue;"
            " u=$(plutil -extract UserName raw -o - \"$f\" 2>/dev/null) &&"
            " printf '%s:User=%s\\n' \"$f\" \"$u\"; done",
        )
        return Found(unit_users=parse_unit_users(users))
    unit_dir = q(layout.unit_dir)
    users = _command(
        host_obj,
        f"grep -H '^User=' {unit_dir}/*.service {unit_dir}/*.service.d/*.conf"
        f" {OLLAMA_DROPIN_DIR}/*.conf 2>/dev/null",
    )
    own = [f"{layout.unit_dir}/{unit}.service" for unit in deployment.units if unit != ollama.UNIT]
    state = _command(
        host_obj, f"sed -n 's/^StateDirectory=//p' {' '.join(map(q, own))} 2>/dev/null"
    ) if own else ""
    base = dropins = marker = ""
    if deployment.runtime == "ollama":
        base = _command(host_obj, f"head -n 1 {OLLAMA_BASE_UNIT} 2>/dev/null")
        dropins = _command(
            host_obj,
            f"if [ -d {OLLAMA_DROPIN_DIR} ]; then echo dir; ls -A1 {OLLAMA_DROPIN_DIR}; fi",
        )
        marker = _command(host_obj, "if [ -e {} ]; then echo yes; fi".format(
            q(f"{layout.ollama_install_dir}/lib/ollama/.rigctl-archive")))
    listed = dropins.splitlines()
    return Found(
        unit_users=parse_unit_users(users),
        state_directories=tuple(dict.fromkeys(state.split())),
        ollama_base_unit_ours=bool(base.strip()) and base.strip() == ollama_base_unit_marker(),
        ollama_dropins=tuple(listed[1:]) if listed[:1] == ["dir"] else None,
        ollama_installed_by_rigctl=marker.strip() == "yes",
    )


def parse_unit_users(text: str) -> dict[str, str]:
    """``grep -H '^User='``'s lines (``PATH:User=NAME``) as path -> user."""
    users: dict[str, str] = {}
    for line in text.splitlines():
        path, found, name = line.partition(":User=")
        if found and path and name.strip():
            users[path] = name.strip()
    return users


def ollama_base_unit_marker() -> str:
    """The first line of the base unit rigctl writes for Ollama (upstream's has no such line)."""
    text = render("ollama.service.j2", install_dir=ollama_defaults.OLLAMA_INSTALL_DIR,
                  user=ollama_defaults.OLLAMA_USER)
    return text.splitlines()[0].strip()


def _command(host_obj: Host, command: str) -> str:
    """A read-only shell command's stdout (it always succeeds: ``; true``); OSError when the
    host cannot run it."""
    ok, out, err = run_command(host_obj, f"{command}; true")
    if not ok:
        if connection_lost(host_obj):
            raise OSError(CONNECTION_LOST)
        raise OSError(err.strip().splitlines()[-1][-300:] if err.strip() else f"failed: {command}")
    return out


# --------------------------------------------------------------------------- the operations


@dataclass
class Applied:
    """One step as the operations that carry it out, by the name each was given."""

    step: Step
    ops: list[tuple[str, Any]] = field(default_factory=list)


@operation()
def group_absent(group: str) -> Generator[object, None, None]:
    """A group removed if it exists. ``userdel`` may have removed it already (a user's own
    group, on Debian and Fedora): the command checks again when it runs."""
    if group not in (host.get_fact(server_facts.Groups) or []):
        host.noop(f"group {group} does not exist")
        return
    q = shlex.quote(group)
    yield StringCommand(
        "sh", "-c", QuoteString(f"if getent group {q} >/dev/null; then groupdel {q}; fi")
    )


def apply_steps(steps: list[Step], *, macos: bool = False) -> list[Applied]:
    """Inside a host's deploy: each step as pyinfra operations (each changes something only
    when there is something to remove)."""
    applied = []
    for step in steps:
        done = Applied(step)
        applied.append(done)

        def op(name: str, meta: Any, done: Applied = done) -> None:
            done.ops.append((name, meta))

        if isinstance(step, StopUnit):
            name = f"remove: {step.name}.service stopped and disabled"
            op(name, systemd.service(name=name, service=f"{step.name}.service",
                                     running=False, enabled=False))
        elif isinstance(step, StopLaunchd):
            target = shlex.quote(f"system/{step.label}")
            loaded = host.get_fact(
                server_facts.Command, f"launchctl print {target} >/dev/null 2>&1 && echo loaded || true"
            )
            if loaded == "loaded":
                name = f"remove: {step.label} booted out"
                op(name, server.shell(name=name, commands=[f"launchctl bootout {target}"]))
        elif isinstance(step, RemovePath):
            name = f"remove: {step.path}"
            remove = files.directory if step.recursive else files.file
            op(name, remove(name=name, path=step.path, present=False, force=True,
                            force_backup=False))
        elif isinstance(step, DaemonReload):
            name = "remove: systemd units reloaded"
            op(name, systemd.daemon_reload(name=name))
        elif isinstance(step, RemoveUser):
            name = f"remove: user {step.name}"
            if macos:
                _dscl(name, f"/Users/{step.name}", f"id -u {shlex.quote(step.name)}", op)
            else:
                op(name, server.user(name=name, user=step.name, present=False))
        elif isinstance(step, RemoveGroup):
            name = f"remove: group {step.name}"
            if macos:
                _dscl(name, f"/Groups/{step.name}",
                      f"dscl . -read {shlex.quote(f'/Groups/{step.name}')} PrimaryGroupID", op)
            else:
                op(name, group_absent(name=name, group=step.name))
    return applied


def _dscl(name: str, record: str, probe: str, op: Any) -> None:
    """A macOS account record deleted, when it exists."""
    if host.get_fact(server_facts.Command, f"{probe} >/dev/null 2>&1 && echo yes || true") == "yes":
        op(name, server.shell(name=name, commands=[f"dscl . -delete {shlex.quote(record)}"]))


def changed(meta: Any, dry: bool) -> bool:
    """An operation that changed its host (in a dry run: would change it)."""
    if meta.is_complete():
        return bool(meta.did_change())
    return dry and bool(meta.will_change)


# --------------------------------------------------------------------------- rigctl remove


@dataclass
class HostRemoval:
    name: str
    result: HostResult
    deployment: Deployment | None = None
    steps: list[Step] = field(default_factory=list)
    #: what was removed (a dry run: what would be): units, paths, user and group
    removed: list[str] = field(default_factory=list)
    purged: bool = False

    @property
    def failed(self) -> bool:
        return self.result.failed

    def to_json(self) -> dict[str, Any]:
        return {
            **self.result.outcome_json(),
            "runtime": self.deployment.runtime if self.deployment else None,
            "removed": self.removed,
            "purged": self.purged,
        }


@dataclass
class RemoveResult(FleetResult[HostRemoval]):
    dry: bool = False
    purge: bool = False
    lockfile: str | None = None  # the lockfile this run dropped entries from

    def extra_json(self) -> dict[str, Any]:
        return {"dry": self.dry, "purge": self.purge, "lockfile": self.lockfile}


def remove(
    target: str,
    *,
    limit: list[str] | None = None,
    purge: bool = False,
    dry: bool = False,
    report: Reporter = quiet,
) -> RemoveResult:
    """Take rigctl's deployment off every selected host, all in parallel: a host that is down,
    or whose manifest is refused, fails alone; the lockfile loses the others' entries."""
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    result = RemoveResult(
        {h.name: HostRemoval(h.name, HostResult(h.name)) for h in hosts}, dry=dry, purge=purge
    )
    applied: dict[str, list[Applied]] = {}

    def plan(host_obj: Host) -> None:
        outcome = result.hosts[host_obj.name]
        deployment = read_manifest(host_obj)
        if deployment is None:
            report(host_obj.name, "remove", "no rigctl deployment: nothing to remove")
            return
        outcome.deployment = deployment
        layout = layout_of(host_obj)
        outcome.steps = removal_steps(
            deployment, purge=purge, layout=layout, found=survey(host_obj, deployment, layout)
        )

    def deploy() -> None:
        outcome = result.hosts[host.name]
        macos = outcome.deployment is not None and launchd(outcome.deployment)
        applied[host.name] = apply_steps(outcome.steps, macos=macos)

    def on_operation(name: str, operation_name: str, event: str) -> None:
        if event == "start":
            report(name, "remove", operation_name)

    with Session(inventory, limit=hosts, dry=dry, on_operation=on_operation) as session:
        report(None, "remove", f"reading the manifests of {len(hosts)} host(s)")
        session.each_host(plan)
        session.prepare(deploy)
        session.run()
        summary = session.summary()
    for name, outcome in result.hosts.items():
        outcome.result = summary.hosts[name]
        done = applied.get(name, [])
        # each operation by its own name (pyinfra's names of one position join every host's)
        outcome.result.changed_ops = [
            op_name for each in done for op_name, meta in each.ops if changed(meta, dry)
        ]
        if not outcome.failed:
            outcome.result.status = "changed" if outcome.result.changed_ops else "ok"
        outcome.removed = [
            text for each in done
            if (text := label(each.step)) and any(changed(meta, dry) for _, meta in each.ops)
        ]
        outcome.purged = purge and outcome.deployment is not None and not outcome.failed
    if not dry:
        written = drop_lockfile_entries(target, [n for n, o in result.hosts.items() if not o.failed])
        result.lockfile = str(written) if written else None
    return result
