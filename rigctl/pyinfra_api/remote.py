"""Remote I/O on one connected host, outside any operation: files, commands, a tunnel, and
whether the connection is still there."""

from __future__ import annotations

import contextlib
import io
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
from pyinfra.api import Host, StringCommand

CONNECTION_LOST = "connection to the host lost"


def connection_lost(host_obj: Host) -> bool:
    """An SSH host whose connection has dropped (powered off, sshd killed, network gone)."""
    client = getattr(host_obj.connector, "client", None)
    if client is None:
        return False
    transport = client.get_transport()
    return transport is None or not transport.is_active()


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


def stream_command(host_obj: Host, command: str) -> Iterator[bytes]:
    """Run a shell command on an SSH host now and yield its output (stderr merged in) as it
    arrives, until the command ends: for output that never ends (``journalctl -f``), which
    :func:`run_command` would wait for. Closing the iterator closes the command's channel.

    Over the connection's own SSH transport; OSError for a host without one (``@local``) or
    whose connection is gone."""
    client = getattr(host_obj.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None or not transport.is_active():
        raise OSError(CONNECTION_LOST if client is not None else "streaming needs an SSH connection")
    channel = transport.open_session()
    try:
        channel.set_combine_stderr(True)
        channel.exec_command(f"sh -c {shlex.quote(command)}")  # as run_command: under sh
        while data := channel.recv(65536):
            yield data
    finally:
        channel.close()
