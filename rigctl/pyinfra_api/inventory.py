"""Inventories and SSH settings: load one as the ``pyinfra`` CLI does, check it, select hosts.

Loading runs the inventory file with pyinfra's CLI loader (groups, host data, ``group_data/``),
then checks what pyinfra would merge away silently (a host listed twice), every host's data
(:mod:`rigctl.hostdata`), and pins SSH host keys unless the inventory says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyinfra.api import Config, Host, Inventory, State
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.ssh import connector_data_meta as _ssh_data_meta
from pyinfra.context import ctx_config, ctx_state

from rigctl.errors import InventoryError
from rigctl.hostdata import check_entries, check_host_data
from rigctl.pyinfra_api._support import one_line, quiet_pyinfra_logging


def load_inventory(spec: str, *, override_data: dict[str, Any] | None = None) -> Inventory:
    """Load an inventory exactly as ``pyinfra INVENTORY ...`` does.

    ``spec`` is an inventory file (module-level lists are groups, ``group_data/``
    beside it holds group data), a comma-separated host list, or a connector spec
    such as ``@local``. Any failure (syntax error, an import that raises, a bad host
    entry) becomes an :class:`InventoryError` with one line naming the file.
    """
    from pyinfra_cli.inventory import make_inventory

    path = Path(spec)
    looks_like_file = spec.endswith(".py") or "/" in spec
    if looks_like_file and not path.exists():
        raise InventoryError(f"inventory file not found: {spec}", field="inventory")
    cwd = str(path.parent.resolve()) if path.exists() else None
    try:
        # pyinfra prints import failures through its logger; the one-line error is ours.
        # Like the pyinfra CLI: inventory files run with a (bare) state and config in context.
        loading_state = State()
        loading_state.cwd = cwd
        with (
            quiet_pyinfra_logging(),
            ctx_state.use(loading_state),
            ctx_config.use(Config()),
        ):
            inventory = make_inventory(spec, override_data=override_data, cwd=cwd)
    except SyntaxError as e:
        raise InventoryError(
            f"{spec}: syntax error at line {e.lineno}: {e.msg}", field="inventory"
        ) from None
    except Exception as e:  # pyinfra raises CliError/TypeError/anything the file raised
        raise InventoryError(f"{spec}: {one_line(e)}", field="inventory") from None
    if len(inventory) == 0:
        raise InventoryError(f"{spec}: no hosts in inventory", field="inventory")
    check_entries(_inventory_entries(spec, path, loading_state))
    for host_obj in inventory:
        check_host_data(host_obj.name, host_obj.data.dict())
    _refuse_unknown_host_keys(inventory)
    return inventory


def _inventory_entries(
    spec: str, path: Path, loading_state: State
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(group, host, data)`` as the inventory lists them, before pyinfra merges them (it keeps
    the last of a host listed twice silently): for :func:`rigctl.hostdata.check_entries`."""
    if not path.is_file():
        return [("all", name, {}) for name in spec.split(",")]
    from pyinfra_cli import inventory as cli_inventory

    read_groups = getattr(cli_inventory, "_get_groups_from_filename", None)
    if read_groups is None:  # pragma: no cover - a pyinfra that moved it: say so, loudly
        raise InventoryError(
            "this pyinfra has no pyinfra_cli.inventory._get_groups_from_filename: "
            "rigctl cannot check the inventory for duplicate hosts",
            field="inventory",
        )
    try:
        with quiet_pyinfra_logging(), ctx_state.use(loading_state), ctx_config.use(Config()):
            groups = read_groups(str(path))
    except Exception as e:
        raise InventoryError(f"{spec}: {one_line(e)}", field="inventory") from None
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for group, members in groups.items():
        hosts = members[0] if isinstance(members, tuple) else members
        for entry in hosts:
            name, data = entry if isinstance(entry, tuple) else (entry, {})
            entries.append((group, str(name), dict(data) if isinstance(data, dict) else {}))
    return entries


def _refuse_unknown_host_keys(inventory: Inventory) -> None:
    """SSH hosts must have a pinned key unless their data says otherwise.

    pyinfra's default, ``accept-new``, trusts any host on first contact; rigctl runs commands
    as root on these machines and sends them model files and keys, so an inventory that does
    not set ``ssh_strict_host_key_checking`` gets ``yes``: the key must already be known.
    """
    for host_obj in inventory:
        if host_obj.connector_cls is not SSHConnector:
            continue
        if "ssh_strict_host_key_checking" in host_obj.data.dict():
            continue
        # an override of this host's data: the connector reads it when the session starts
        host_obj.data.ssh_strict_host_key_checking = "yes"


@dataclass(frozen=True)
class SSHSettings:
    """How pyinfra's SSH connector reaches a host, for tools that open their own SSH connection
    (``rigctl verify``'s testinfra suite): the same host data keys, the same defaults."""

    hostname: str
    port: int
    user: str | None
    key_file: str | None
    key_password: str | None
    password: str | None
    known_hosts_file: str
    strict_host_key_checking: str  # yes | accept-new | no | off
    allow_agent: bool
    look_for_keys: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ssh_settings(host_obj: Host) -> SSHSettings | None:
    """The SSH connection data of a host, as pyinfra's connector reads it; None for hosts that
    use another connector (``@local``, ``@docker``...)."""
    if host_obj.connector_cls is not SSHConnector:
        return None

    def get(key: str) -> Any:
        value = host_obj.data.get(key)
        if value is None and key in _ssh_data_meta:
            return _ssh_data_meta[key].default
        return value

    key_file = get("ssh_key")
    return SSHSettings(
        hostname=str(get("ssh_hostname") or host_obj.name),
        port=int(get("ssh_port") or 22),
        user=get("ssh_user") or None,
        key_file=str(Path(key_file).expanduser()) if key_file else None,
        key_password=get("ssh_key_password") or None,
        password=get("ssh_password") or None,
        known_hosts_file=str(Path(get("ssh_known_hosts_file") or "~/.ssh/known_hosts").expanduser()),
        strict_host_key_checking=str(get("ssh_strict_host_key_checking") or "accept-new"),
        # like pyinfra: with an explicit key, neither the agent nor other keys are tried
        allow_agent=False if key_file else bool(get("ssh_allow_agent")),
        look_for_keys=False if key_file else bool(get("ssh_look_for_keys")),
    )


def select_hosts(inventory: Inventory, limit: list[str] | None) -> list[Host]:
    """The hosts named in ``limit`` (host names or group names), or all; like ``--limit``."""
    if not limit:
        return list(inventory)
    hosts = [h for h in inventory if h.name in limit or set(h.groups) & set(limit)]
    if not hosts:
        raise InventoryError(f"no host or group named {', '.join(limit)}", field="limit")
    return hosts
