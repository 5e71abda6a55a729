"""The suite's SSH connection: testinfra's paramiko backend, with the inventory's host keys.

testinfra's paramiko backend never loads a known_hosts file and accepts unknown host keys with
a warning; rigctl pins host keys (``ssh_strict_host_key_checking``, default ``yes``), so the
backend here builds the paramiko client itself from the host's SSH settings (what
``rigctl.pyinfra_api.ssh_settings`` read from the inventory) and keeps everything else of
testinfra's. The same connection carries HTTP to the endpoint (``direct-tcpip``, like
``ssh -L``) and reads secrets over SFTP, so no secret passes through a command's output.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
from dataclasses import dataclass
from typing import Any

import paramiko
import testinfra.host
from testinfra.backend.paramiko import IgnorePolicy, ParamikoBackend

from rigctl.manifest import api_key_from_text
from rigctl.verify.results import HostUnreachable


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise paramiko.SSHException(
            f"No host key for {hostname} in {self.known_hosts} (pin it: ssh-keyscan HOST >> {self.known_hosts},"
            " after checking its fingerprint; or set ssh_strict_host_key_checking: accept-new in the inventory)"
        )


class PinnedParamikoBackend(ParamikoBackend):
    """testinfra's paramiko backend, connected with rigctl's SSH settings (a dict of
    :class:`rigctl.pyinfra_api.SSHSettings` fields)."""

    def __init__(self, settings: dict[str, Any], timeout: int = 10) -> None:
        self.settings = settings
        user = settings.get("user")
        address = str(settings["hostname"])
        shown = f"[{address}]" if ":" in address else address
        super().__init__(
            f"{user}@{shown}:{settings['port']}" if user else f"{shown}:{settings['port']}",
            timeout=timeout,
        )

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        settings = self.settings
        client = paramiko.SSHClient()
        strict = str(settings.get("strict_host_key_checking") or "yes")
        known_hosts = str(settings.get("known_hosts_file") or "")
        if strict in ("no", "off"):
            client.set_missing_host_key_policy(IgnorePolicy())
        else:
            if known_hosts:
                try:
                    client.load_host_keys(known_hosts)
                except FileNotFoundError:
                    pass
            # accept-new: trusted for this connection only (verify writes nothing on the controller)
            policy = (
                paramiko.AutoAddPolicy() if strict == "accept-new" else _RefuseUnknown(known_hosts)
            )
            client.set_missing_host_key_policy(policy)
        client.connect(
            hostname=str(settings["hostname"]),
            port=int(settings.get("port") or 22),
            username=settings.get("user") or None,
            key_filename=settings.get("key_file") or None,
            passphrase=settings.get("key_password") or None,
            password=settings.get("password") or None,
            allow_agent=bool(settings.get("allow_agent")),
            look_for_keys=bool(settings.get("look_for_keys")),
            timeout=self.timeout,
            banner_timeout=self.timeout,
            auth_timeout=self.timeout,
        )
        return client


def connect(settings: dict[str, Any], timeout: int = 10) -> testinfra.host.Host:
    """A testinfra host over SSH; raises :class:`HostUnreachable` with the cause when it cannot."""
    backend = PinnedParamikoBackend(settings, timeout=timeout)
    try:
        backend.client  # noqa: B018  (connects now, so every check sees the same cause)
    except paramiko.BadHostKeyException as e:
        raise HostUnreachable(
            f"SSH host key error: the key of {e.hostname} does not match the pinned one"
        ) from None
    except paramiko.AuthenticationException as e:
        raise HostUnreachable(f"SSH authentication failed ({e})") from None
    except (OSError, paramiko.SSHException, EOFError) as e:
        reason = str(e) or type(e).__name__
        raise HostUnreachable(
            f"could not connect to {settings['hostname']}:{settings.get('port') or 22}: {reason}"
        ) from None
    return testinfra.host.Host(backend)


def _client(host: testinfra.host.Host) -> paramiko.SSHClient:
    backend = host.backend
    if not isinstance(backend, ParamikoBackend):
        raise TypeError(f"needs an SSH (paramiko) host, got {backend.NAME}")
    return backend.client


def read_secret(host: testinfra.host.Host, path: str) -> str:
    """An API key file's key (bare, or ``VARIABLE=key`` as vLLM's environment file), read over
    SFTP: never through a command's output."""
    with _client(host).open_sftp() as sftp, sftp.open(path, "r") as handle:
        return api_key_from_text(handle.read(65536).decode())


@dataclass(frozen=True)
class Response:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    def summary(self, limit: int = 120) -> str:
        text = " ".join(self.body.split())
        return f"HTTP {self.status}" + (f" {text[:limit]}" if text else "")


class _ChannelReader(io.RawIOBase):
    """An SSH channel's incoming bytes as a raw stream (what ``makefile`` gives http.client)."""

    def __init__(self, owner: _ChannelSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._owner.channel.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner.release()


class _ChannelSocket:
    """An SSH channel as http.client's socket, closed as a socket is: only once the socket and
    every file made from it are closed. http.client closes its connection right after the
    headers of a ``Connection: close`` response and reads the body from the file it made
    (llama-server's router answers proxied requests so): closing the channel there, as
    paramiko's own ``makefile`` does, lost the body's end in a third of such answers."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self._files = 0
        self._closed = False

    def makefile(self, mode: str = "rb", *_args: Any, **_kwargs: Any) -> io.BufferedReader:
        self._files += 1
        return io.BufferedReader(_ChannelReader(self))

    def sendall(self, data: bytes) -> None:
        self.channel.sendall(data)

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def release(self) -> None:
        self._files -= 1
        self._close_if_done()

    def close(self) -> None:
        self._closed = True
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self._closed and self._files <= 0:
            self.channel.close()


class _ThroughSSH(http.client.HTTPConnection):
    """An HTTP connection whose socket is an SSH ``direct-tcpip`` channel to ``address:port``
    as the host sees it (so endpoints bound to the host's loopback answer too)."""

    def __init__(
        self, transport: paramiko.Transport, address: str, port: int, timeout: float
    ) -> None:
        super().__init__(f"[{address}]" if ":" in address else address, port, timeout=timeout)
        self._transport = transport
        self._target = (address, port)

    def connect(self) -> None:
        try:
            channel = self._transport.open_channel(
                "direct-tcpip", self._target, ("127.0.0.1", 0), timeout=self.timeout
            )
        except paramiko.ChannelException as e:
            raise ConnectionRefusedError(
                f"nothing answers on {self._target[0]}:{self._target[1]} on the host ({e.text or e.code})"
            ) from None
        channel.settimeout(self.timeout)
        self.sock = _ChannelSocket(channel)


def http_request(
    host: testinfra.host.Host,
    address: str,
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 60,
) -> Response:
    """One HTTP request to ``address:port`` on the host, through the host's SSH connection.

    Wildcard binds (``0.0.0.0``, ``::``) are reached on the host's loopback.
    """
    transport = _client(host).get_transport()
    if transport is None or not transport.is_active():
        raise ConnectionError("the SSH connection is closed")
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)
    connection = _ThroughSSH(transport, target, port, timeout)
    payload = json.dumps(body).encode() if body is not None else None
    sent = dict(headers or {})
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        try:
            text = response.read().decode(errors="replace")
        finally:
            response.close()
        return Response(response.status, text)
    except TimeoutError:
        raise TimeoutError(f"{method} {path}: no answer within {timeout:.0f} s") from None
    finally:
        connection.close()
