"""Role ``service``: a runtime served by systemd as its own unprivileged user, with an API key.

One job: given a rendered unit, make it the running service: the dedicated system user, the
configuration directory, the API key (generated on the host, 0600, owned by that user), the
unit file (replaced atomically), and a restart only when something it depends on changed.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from io import StringIO
from typing import Any

from rigctl.roles.service import defaults

from rigctl.hostdata import role_value
from rigctl.operations.files import atomic_put, secret_file
from rigctl.pyinfra_api import deploy, files, host, server, server_facts, systemd


def config_dir(unit: str) -> str:
    return f"{role_value(host.data, 'service_config_root', defaults.SERVICE_CONFIG_ROOT)}/{unit}"


def unit_path(unit: str) -> str:
    """Where the unit file of ``unit`` lives on the current host."""
    unit_dir = role_value(host.data, "service_systemd_unit_dir", defaults.SERVICE_SYSTEMD_UNIT_DIR)
    return f"{unit_dir}/{unit}.service"


def api_key_path(
    unit: str, config_root: str = defaults.SERVICE_CONFIG_ROOT, variable: str | None = None
) -> str:
    """The API key file: the bare key, or ``VARIABLE=key`` (``api-key.env``) for a server that
    reads its key from the environment (systemd ``EnvironmentFile=``)."""
    return f"{config_root}/{unit}/api-key{'.env' if variable else ''}"


def restart_stamp(unit: str) -> str:
    """Touched right after each restart rigctl makes: an input changed since is a restart owed."""
    return f"{config_dir(unit)}/restarted"


def restart_owed(unit: str, inputs: Sequence[str]) -> bool:
    """Whether a file the running service read at start changed after rigctl last restarted it.

    A run interrupted between replacing an input (unit, key, model, build) and the restart
    leaves the service on the old one, and the next run finds every input already in place;
    this is how it knows. ctime, not mtime: a file extracted from an archive keeps its mtime.
    """
    stamp = shlex.quote(restart_stamp(unit))
    paths = " ".join(shlex.quote(path) for path in inputs)
    changed = host.get_fact(
        server_facts.Command,
        f"if [ -e {stamp} ]; then find {paths} -maxdepth 0 -cnewer {stamp} 2>/dev/null;"
        " else echo never; fi; true",
    )
    return bool(changed and changed.strip())


@deploy("rigctl service user")
def user(user_name: str, groups: Sequence[str] = (), home: str = "/nonexistent") -> None:
    """The dedicated system user a runtime runs as (no shell, no login).

    + user_name: user and primary group name
    + groups: supplementary groups (``render``, ``video`` for GPU device access)
    + home: home directory (not created)
    """
    if host.get_fact(server_facts.Kernel) == "Darwin":
        from rigctl.roles.service import setup_macos

        setup_macos.user(user_name)
        return
    server.group(name="service: group", group=user_name, system=True)
    server.user(
        name="service: user",
        user=user_name,
        group=user_name,
        groups=list(groups) or None,
        system=True,
        home=home,
        shell=defaults.SERVICE_USER_SHELL,
        create_home=False,
        # pyinfra would make the home (/nonexistent) and chown it to each service user in turn
        ensure_home=False,
    )


@deploy("rigctl service")
def install(
    unit: str,
    unit_text: str,
    user_name: str,
    changed_inputs: Sequence[Any] = (),
    key_variable: str | None = None,
    input_paths: Sequence[str] = (),
    config_texts: Mapping[str, str] | None = None,
    key_of: str | None = None,
) -> None:
    """Install and (re)start a systemd unit running as ``user_name`` with a per-host API key.

    + unit: unit name without ``.service``
    + unit_text: the rendered unit (see ``rigctl.templates``)
    + user_name: the service user (create it first with :func:`user`)
    + changed_inputs: operations whose change must restart the service (model, build, env)
    + key_variable: keep the key as ``VARIABLE=key`` in ``api-key.env`` (vLLM's
      ``VLLM_API_KEY``), for the unit's ``EnvironmentFile=``
    + input_paths: the files those operations write (model, build link, binary): changed since
      the last restart (an interrupted run), they restart the service too
    + config_texts: files of the service's own (llama-server's presets), name -> text: written
      atomically into its configuration directory, readable by its user (0640 root:user); a
      change restarts the service
    + key_of: the unit whose configuration directory holds the key (default: this one's),
      for units that serve one endpoint's models and share its key (vLLM's, one per model)

    With ``key_variable``, a bare key the service had before (``api-key``) is carried into
    ``api-key.env``, so a server that changes how it reads its key keeps the clients' one.
    """
    conf = config_dir(unit)
    path = unit_path(unit)
    key_conf = conf if key_of is None else config_dir(key_of)
    key_path = f"{key_conf}/{api_key_path(unit, variable=key_variable).rsplit('/', 1)[1]}"
    texts = dict(config_texts or {})
    for name in texts:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a file name: {name!r}")
    config_paths = [f"{conf}/{name}" for name in texts]
    owed = restart_owed(unit, [path, key_path, *config_paths, *input_paths])
    files.directory(
        name="service: config directory", path=conf, user="root", group=user_name, mode="0750"
    )
    key = secret_file(
        name="service: API key",
        path=key_path,
        user=user_name,
        group=user_name,
        variable=key_variable,
        seed_from=f"{key_conf}/api-key" if key_variable else None,
    )
    written = [
        atomic_put(
            name=f"service: {name}", src=StringIO(text), dest=f"{conf}/{name}", mode="0640",
            group=user_name,
        )
        for name, text in texts.items()
    ]
    unit_file = atomic_put(
        name="service: unit file", src=StringIO(unit_text), dest=path, mode="0644"
    )

    # Decided while preparing, from what each input operation will change (or changed in a run
    # that never got to restart), so a dry run shows a restart exactly when a real run does one.
    if owed or any(op.will_change for op in (unit_file, key, *written, *changed_inputs)):
        systemd.service(
            name="service: restart on change",
            service=f"{unit}.service",
            running=True,
            enabled=True,
            restarted=True,
            daemon_reload=True,
        )
        files.file(name="service: restart recorded", path=restart_stamp(unit), touch=True)
    systemd.service(name="service: running", service=f"{unit}.service", running=True, enabled=True)


@deploy("rigctl service (launchd)")
def install_launchd(
    unit: str,
    label: str,
    plist_text: str,
    user_name: str,
    directories: Sequence[str] = (),
    changed_inputs: Sequence[Any] = (),
) -> None:
    """The macOS equivalent of :func:`install`: a LaunchDaemon running as ``user_name``.

    + unit: name of the service's config directory (``/etc/rigctl/<unit>``, API key inside)
    + label: the launchd label (``org.rigctl.llama-server``)
    + plist_text: the rendered plist (see ``rigctl.templates``)
    + user_name: the service user
    + directories: directories the service writes (working directory, logs), owned by the user
    + changed_inputs: operations whose change must reload the daemon
    """
    from rigctl.roles.service import setup_macos

    setup_macos.install(
        unit,
        label,
        plist_text,
        user_name,
        config_dir(unit),
        directories=directories,
        changed_inputs=changed_inputs,
    )
