"""The one door to pyinfra.

Every use of pyinfra in rigctl goes through this module: the building blocks that
facts and roles need (re-exported below), and the run machinery the CLI needs:
load an inventory the way the ``pyinfra`` CLI does, connect, prepare each host's
operations *in parallel*, run them, and turn the outcome into a :class:`RunSummary`.

Why a door: pyinfra's Python API moves between releases (``add_deploy`` refuses to run
under the CLI, ``State.init`` changed signature in 3.x, op ordering differs between CLI
and API mode). Keeping it in one place means one file to read when upgrading
``pyinfra~=3.10``, and a test (``tests/test_layout.py``) makes sure no other module
imports pyinfra directly.

gevent is patched before pyinfra is imported: pyinfra's parallelism is greenlets.
"""

from __future__ import annotations

from rigctl import _gevent

_gevent.patch()

# ruff: noqa: E402  (imports must follow the gevent patch)
import contextlib
import io
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gevent
from pyinfra import context as _context
from pyinfra.api import (
    BaseStateCallback,
    Config,
    FactBase,
    FileUploadCommand,
    FunctionCommand,
    Host,
    Inventory,
    MaskString,
    OperationError,
    QuoteString,
    ShortFactBase,
    State,
    StringCommand,
    deploy,
    operation,
)
from pyinfra.api import operations as _operations
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.ssh import connector_data_meta as _ssh_data_meta
from pyinfra.context import ctx_config, ctx_host, ctx_state
from pyinfra.facts import files as file_facts
from pyinfra.facts import server as server_facts
from pyinfra.operations import apt, dnf, files, launchd, pip, server, systemd

from rigctl.errors import InventoryError
from rigctl.hostdata import check_entries, check_host_data

__all__ = [
    # building blocks for facts and roles
    "FactBase",
    "ShortFactBase",
    "StringCommand",
    "QuoteString",
    "MaskString",
    "FunctionCommand",
    "FileUploadCommand",
    "OperationError",
    "operation",
    "deploy",
    "host",
    "apt",
    "dnf",
    "files",
    "launchd",
    "pip",
    "server",
    "systemd",
    "file_facts",
    "server_facts",
    # running
    "Host",
    "Inventory",
    "Session",
    "HostResult",
    "OpResult",
    "RunSummary",
    "load_inventory",
    "read_file",
    "fetch_file",
    "endpoint_from_controller",
    "run_command",
    "select_hosts",
    "SSHSettings",
    "ssh_settings",
    "CONNECTION_LOST",
    "connection_lost",
]

#: The host being prepared (greenlet-local inside :meth:`Session.prepare`).
host: Host = _context.host

T = TypeVar("T")

log = logging.getLogger("rigctl")

# How many trailing stderr lines a failure keeps: enough to see the error, not a whole build log.
STDERR_TAIL_LINES = 20


# --------------------------------------------------------------------------- inventory


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
            _quiet_pyinfra_logging(),
            ctx_state.use(loading_state),
            ctx_config.use(Config()),
        ):
            inventory = make_inventory(spec, override_data=override_data, cwd=cwd)
    except SyntaxError as e:
        raise InventoryError(
            f"{spec}: syntax error at line {e.lineno}: {e.msg}", field="inventory"
        ) from None
    except Exception as e:  # pyinfra raises CliError/TypeError/anything the file raised
        raise InventoryError(f"{spec}: {_one_line(e)}", field="inventory") from None
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
        with _quiet_pyinfra_logging(), ctx_state.use(loading_state), ctx_config.use(Config()):
            groups = read_groups(str(path))
    except Exception as e:
        raise InventoryError(f"{spec}: {_one_line(e)}", field="inventory") from None
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


@contextlib.contextmanager
def _quiet_pyinfra_logging() -> Iterator[None]:
    logger = logging.getLogger("pyinfra")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _one_line(error: BaseException) -> str:
    # pyinfra wraps errors raised by user files (inventory, deploy) with the file name
    wrapped = getattr(error, "exception", None)
    if isinstance(wrapped, BaseException):
        error = wrapped
    try:
        text = str(error).strip().splitlines()
    except Exception:  # some exception classes cannot even print themselves
        text = [repr(error.args)] if error.args else []
    message = text[0] if text else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


# --------------------------------------------------------------------------- results


@dataclass
class OpResult:
    """One operation on one host, after the run."""

    name: str
    changed: bool
    success: bool
    stderr_tail: list[str] = field(default_factory=list)


@dataclass
class HostResult:
    """What happened on one host: the shape of ``--json`` summaries."""

    name: str
    status: str = "ok"  # ok | changed | failed | unreachable
    changed_ops: list[str] = field(default_factory=list)
    failed_ops: list[OpResult] = field(default_factory=list)
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable")

    def fail(self, error: str, status: str = "failed") -> None:
        # The first cause is the one worth reporting; later ones are consequences.
        if not self.failed:
            self.status = status
            self.error = error

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunSummary:
    hosts: dict[str, HostResult] = field(default_factory=dict)

    @property
    def failed_hosts(self) -> list[str]:
        return [name for name, result in self.hosts.items() if result.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_hosts else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {name: result.to_json() for name, result in self.hosts.items()},
            "failed": self.failed_hosts,
            "ok": not self.failed_hosts,
        }


#: ``on_operation(host_name, operation_name, event)`` with event "start", "ok" or "error".
OperationHook = Callable[[str, str, str], None]


class _Recorder(BaseStateCallback):
    """Collects why hosts could not be reached (pyinfra only logs it), and passes operation
    progress to an optional hook (the CLI's live view).

    pyinfra types its callbacks as static methods but calls them on the handler instance, so
    these are instance methods (hence the ``override`` ignores)."""

    def __init__(self, on_operation: OperationHook | None = None) -> None:
        self.connect_errors: dict[str, str] = {}
        #: host name -> (op hash, why): an operation that raised instead of failing
        self.raised: dict[str, tuple[str, str]] = {}
        self.on_operation = on_operation

    def host_connect_error(self, state: State, host: Host, error: Exception) -> None:  # type: ignore[override]
        message = _one_line(error)
        # paramiko's "Unable to connect to port 22" hides why (errno None); the socket errors it
        # wraps say it: refused (no sshd listening), timed out, no route to host
        wrapped = getattr(error.__cause__ or error.__context__, "errors", None)
        if isinstance(wrapped, dict) and wrapped:
            reasons = sorted({getattr(e, "strerror", None) or str(e) for e in wrapped.values()})
            message += ": " + "; ".join(reasons)
        if "No host key" in message:
            message += (
                " (pin it: ssh-keyscan HOST >> ~/.ssh/known_hosts, after checking its fingerprint;"
                " or set ssh_strict_host_key_checking: accept-new in the inventory)"
            )
        self.connect_errors[host.name] = message

    def _operation(self, state: State, host: Host, op_hash: str, event: str) -> None:
        if self.on_operation:
            names = state.get_op_meta(op_hash).names
            self.on_operation(host.name, ", ".join(sorted(names)) or op_hash, event)

    def operation_host_start(self, state: State, host: Host, op_hash: str) -> None:  # type: ignore[override]
        self._operation(state, host, op_hash, "start")

    def operation_host_success(self, state: State, host: Host, op_hash: str, retry_count: int = 0) -> None:  # type: ignore[override]
        self._operation(state, host, op_hash, "ok")

    def operation_host_error(self, state: State, host: Host, op_hash: str, *args: Any) -> None:  # type: ignore[override]
        self._operation(state, host, op_hash, "error")


CONNECTION_LOST = "connection to the host lost"


def connection_lost(host_obj: Host) -> bool:
    """An SSH host whose connection has dropped (powered off, sshd killed, network gone)."""
    client = getattr(host_obj.connector, "client", None)
    if client is None:
        return False
    transport = client.get_transport()
    return transport is None or not transport.is_active()


_run_host_op_unguarded = _operations._run_host_op_with_context


def _run_host_op_guarded(state: State, host: Host, op_hash: str) -> bool:
    """One host's operation, where anything it raises fails that host only.

    pyinfra turns OSError, SSHException and timeouts into a failed operation, but a connection
    lost during an SFTP transfer raises paramiko's EOFError: it escaped the host's greenlet,
    stopped every host's remaining operations and left no summary (a host powered off while its
    model was copied aborted the whole provision).
    """
    try:
        return bool(_run_host_op_unguarded(state, host, op_hash))
    except Exception as e:
        # paramiko raises EOFError when the socket closed under it
        why = CONNECTION_LOST if isinstance(e, EOFError) or connection_lost(host) else _one_line(e)
        for handler in state.callback_handlers:
            if isinstance(handler, _Recorder):
                handler.raised[host.name] = (op_hash, why)
        state.trigger_callbacks("operation_host_error", host, op_hash)
        return False


_operations._run_host_op_with_context = _run_host_op_guarded


# --------------------------------------------------------------------------- session


class Session:
    """One run against an inventory: connect, prepare per host in parallel, run, summarise.

    Usage::

        with Session(load_inventory("inventories/lab.py")) as session:
            session.prepare(my_deploy)        # runs my_deploy() once per host, in parallel
            session.run()                     # executes the operations
            summary = session.summary()

    A host that cannot be reached, whose preparation raises, or whose operation fails is
    marked failed in the summary; the others carry on.
    """

    def __init__(
        self,
        inventory: Inventory,
        *,
        parallel: int = 0,
        connect_timeout: int = 10,
        dry: bool = False,
        limit: list[Host] | None = None,
        on_operation: OperationHook | None = None,
    ) -> None:
        self.inventory = inventory
        self.recorder = _Recorder(on_operation)
        config = Config(PARALLEL=parallel, CONNECT_TIMEOUT=connect_timeout)
        # Hosts outside the limit are never connected to (pyinfra's --limit).
        self.state = State(inventory, config, initial_limit=limit)
        self.state.add_callback_handler(self.recorder)
        # FAIL_PERCENT None means: never stop the others because some failed.
        self.state.config.FAIL_PERCENT = None
        self.dry = dry
        selected = [h for h in inventory if limit is None or h in limit]
        self.results: dict[str, HostResult] = {h.name: HostResult(h.name) for h in selected}
        self._hosts = {h.name: h for h in selected}
        self._connected = False

    # -- context management

    def __enter__(self) -> Session:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect to every host in parallel; unreachable ones are recorded, not raised."""
        with ctx_state.use(self.state), _quiet_pyinfra_logging():
            try:
                connect_all(self.state)
            except PyinfraError:
                pass  # "No hosts remaining!": every host failed; the summary says why
        self._connected = True
        for name, host_obj in self._hosts.items():
            if not host_obj.connected:
                reason = self.recorder.connect_errors.get(name, "could not connect")
                self.results[name].fail(reason, status="unreachable")

    def close(self) -> None:
        if self._connected:
            with ctx_state.use(self.state), contextlib.suppress(Exception):
                disconnect_all(self.state)
            self._connected = False

    # -- hosts

    @property
    def active_hosts(self) -> list[Host]:
        return [h for h in self._hosts.values() if h in self.state.active_hosts]

    def host(self, name: str) -> Host:
        return self._hosts[name]

    def fail_host(self, name: str, error: str) -> None:
        """Take a host out of the run (its remaining operations are skipped)."""
        self.results[name].fail(error)
        host_obj = self._hosts[name]
        if host_obj in self.state.active_hosts:
            self.state.failed_hosts.add(host_obj)
            self.state.active_hosts.discard(host_obj)

    # -- per-host work in parallel

    def each_host(self, func: Callable[[Host], T]) -> dict[str, T]:
        """Call ``func(host)`` for every active host concurrently, with pyinfra's host context set.

        An exception fails that host (recorded in the summary) and the others go on.
        Returns the values of the hosts that succeeded.
        """

        def call(host_obj: Host) -> tuple[bool, Any]:
            try:
                with ctx_config.use(self.state.config.copy()), ctx_host.use(host_obj):
                    return True, func(host_obj)
            except Exception as e:  # one bad host never aborts the run
                log.debug("host %s failed:\n%s", host_obj.name, traceback.format_exc())
                return False, e

        values: dict[str, T] = {}
        with ctx_state.use(self.state), _quiet_pyinfra_logging():
            hosts = self.active_hosts
            greenlets = {self.state.pool.spawn(call, h): h for h in hosts}
            gevent.joinall(list(greenlets))
            for greenlet, host_obj in greenlets.items():
                ok, value = greenlet.get()
                if ok:
                    values[host_obj.name] = value
                else:
                    self.fail_host(host_obj.name, _one_line(value))
        return values

    def prepare(self, deploy_func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a deploy function once per host, in parallel, adding its operations to the state.

        pyinfra's ``add_deploy`` does this one host at a time; each host's fact round trips
        then add up (measured: 48 s vs 16 s for six loopback hosts). Operation order stays
        per host (API mode orders each host's operations by the order it added them).
        """
        self.each_host(lambda _h: deploy_func(*args, **kwargs))

    def fact_command(self, command: str) -> dict[str, str]:
        """Run a read-only shell command on every active host in parallel; its stdout per host."""
        return self.fact(server_facts.Command, command)

    def fact(self, fact_cls: type[FactBase[T]], *args: Any, **kwargs: Any) -> dict[str, T]:
        """Read one fact from every active host in parallel."""
        return self.each_host(lambda h: h.get_fact(fact_cls, *args, **kwargs))

    def run(self) -> None:
        """Execute the prepared operations on all active hosts (in parallel)."""
        if self.dry or not self.active_hosts:
            return
        with ctx_state.use(self.state), _quiet_pyinfra_logging():
            try:
                run_ops(self.state)
            except PyinfraError as e:
                # Raised when the last active host failed; each host's result says why.
                log.debug("run_ops stopped: %s", e)

    # -- summary

    def summary(self) -> RunSummary:
        for name, host_obj in self._hosts.items():
            result = self.results[name]
            if result.status == "unreachable":
                continue
            for op_hash in host_obj.op_hash_order:
                op_meta = self.state.get_op_meta(op_hash)
                op_name = ", ".join(sorted(op_meta.names)) or op_hash
                meta = self.state.get_op_data_for_host(host_obj, op_hash).operation_meta
                raised = self.recorder.raised.get(name)
                if raised and raised[0] == op_hash:
                    result.failed_ops.append(
                        OpResult(op_name, changed=False, success=False, stderr_tail=[raised[1]])
                    )
                    result.fail(f"operation failed: {op_name}: {raised[1]}")
                    continue
                if not meta.is_complete():
                    if self.dry and meta.will_change:
                        result.changed_ops.append(op_name)
                    continue
                if meta.did_error():
                    stderr = list(meta.stderr_lines)[-STDERR_TAIL_LINES:]
                    if not stderr and connection_lost(host_obj):
                        stderr = [CONNECTION_LOST]  # pyinfra only logs why the command failed
                    result.failed_ops.append(
                        OpResult(op_name, changed=False, success=False, stderr_tail=stderr)
                    )
                    tail = f": {stderr[-1]}" if stderr else ""
                    result.fail(f"operation failed: {op_name}{tail}")
                elif meta.did_change():
                    result.changed_ops.append(op_name)
            if host_obj in self.state.failed_hosts and not result.failed:
                result.fail("failed")
            if not result.failed and result.changed_ops:
                result.status = "changed"
        return RunSummary(dict(self.results))


def read_file(host_obj: Host, path: str) -> bytes:
    """Read a (small) file from a host over the connector (SFTP for SSH), not through a shell:
    used for secrets, whose content must never pass through command output or logs."""
    buffer = io.BytesIO()
    if not host_obj.get_file(path, buffer):
        raise OSError(f"cannot read {path} on {host_obj.name}")
    return buffer.getvalue()


def fetch_file(host_obj: Host, remote: str, local: Path) -> None:
    """Copy a file from a host to the controller (written beside ``local``, then renamed)."""
    partial = local.with_name(local.name + ".part")
    local.parent.mkdir(parents=True, exist_ok=True)
    if not host_obj.get_file(remote, str(partial)):
        partial.unlink(missing_ok=True)
        raise OSError(f"cannot copy {remote} from {host_obj.name}")
    partial.replace(local)


@contextlib.contextmanager
def endpoint_from_controller(
    host_obj: Host, address: str, port: int, *, tunnel: bool | None = None
) -> Iterator[str]:
    """An HTTP base URL on the controller that reaches ``address:port`` as the host sees it.

    Endpoints bound to the host's loopback (rigctl's default) are not reachable from the
    controller; for SSH hosts this forwards a local port through the existing SSH connection
    (paramiko ``direct-tcpip``, like ``ssh -L``). Where the controller can reach the address
    itself (``@local``, or a host whose SSH address is the bind address), no tunnel is used
    unless ``tunnel=True``.
    """
    client = getattr(host_obj.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    direct = transport is None or (not tunnel and address == host_obj.data.get("ssh_hostname"))
    if direct:
        shown = f"[{address}]" if ":" in address else address
        yield f"http://{shown}:{port}"
        return
    assert transport is not None  # direct when there is none
    target = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(32)
    local_port = listener.getsockname()[1]

    def pipe(source: Any, sink: Any) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()

    def accept() -> None:
        while True:
            connection, peer = listener.accept()
            try:
                channel = transport.open_channel("direct-tcpip", (target, port), peer)
            except Exception:
                connection.close()
                continue
            gevent.spawn(pipe, connection, channel)
            gevent.spawn(pipe, channel, connection)

    acceptor = gevent.spawn(accept)
    try:
        yield f"http://127.0.0.1:{local_port}"
    finally:
        acceptor.kill()
        listener.close()


def run_command(host_obj: Host, command: str) -> tuple[bool, str, str]:
    """Run a shell command on a host now (outside any operation): (ok, stdout, stderr)."""
    ok, output = host_obj.run_shell_command(StringCommand(command))
    return bool(ok), "\n".join(output.stdout_lines), "\n".join(output.stderr_lines)
