"""``rigctl logs``: each host's runtime log, read over rigctl's existing SSH connections.

Which log is the host's own manifest's (:mod:`rigctl.manifest`), not the inventory's plan: every
unit of its deployment (one per model for vLLM) read with ``journalctl``, or on a launchd host
(macOS: the service is a LaunchDaemon) the log file its plist names, read with ``tail``. A host
without a deployment is that host's error; the others are still read. With ``follow`` the lines
stream from every host at once until the user interrupts (Ctrl-C).

The commands are built by pure functions (:func:`journal_command`, :func:`tail_command`,
:func:`host_command`): the user's one free-form input, ``--since``, is checked against
journalctl's forms first (:func:`check_since`), and every argument is quoted whatever it holds.
Everything a host sends back is data: read byte for byte (:func:`byte_safe`), lines are kept as
sent (invalid UTF-8 replaced; JSON escapes the rest itself) and the CLI escapes them before
they reach a terminal.
"""

from __future__ import annotations

import base64
import plistlib
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rigctl.fleet import FleetResult
from rigctl.manifest import Deployment, plain_host_path, read_deployment
from rigctl.pyinfra_api import (
    CONNECTION_LOST,
    Host,
    Session,
    connection_lost,
    load_inventory,
    read_file,
    run_command,
    select_hosts,
    stream_command,
)

DEFAULT_LINES = 200
MAX_LINES = 100_000
#: where a launchd service's plist lives (a deployment's ``config_files``)
LAUNCH_DAEMONS = "/Library/LaunchDaemons/"
#: the most of one line kept waiting for its newline in a stream; longer runs are cut into lines
MAX_LINE_BYTES = 64 * 1024

# journalctl's --since forms rigctl passes on (systemd.time(7)); nothing else reaches a host.
_SPAN_UNITS = r"(?:s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?)"
_RELATIVE = re.compile(rf"-[0-9]{{1,6}}{_SPAN_UNITS}", re.ASCII)  # -5min, -2h, -1d
_AGO = re.compile(rf"[0-9]{{1,6}} ?{_SPAN_UNITS} ago", re.ASCII)  # 5 min ago
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?", re.ASCII)
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2})?", re.ASCII)
_CLOCK_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%H:%M", "%H:%M:%S")
SINCE_FORMS = "YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]', HH:MM[:SS], today, yesterday, -5min, -2h, -1d or '5 min ago'"


def check_since(value: str) -> str:
    """``value`` when it is one of the journalctl ``--since`` forms accepted here
    (:data:`SINCE_FORMS`, dates and times that exist), else ValueError."""
    if value in ("today", "yesterday") or _RELATIVE.fullmatch(value) or _AGO.fullmatch(value):
        return value
    if _DATE.fullmatch(value) or _TIME.fullmatch(value):
        for form in _CLOCK_FORMATS:
            try:
                datetime.strptime(value, form)
                return value
            except ValueError:
                continue
    raise ValueError(f"not a time: {value!r} (use {SINCE_FORMS})")


def _check_lines(lines: int) -> int:
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= MAX_LINES:
        raise ValueError(f"lines: not a whole number from 1 to {MAX_LINES}: {lines!r}")
    return lines


def journal_command(units: Iterable[str], since: str | None, lines: int, follow: bool) -> str:
    """``journalctl`` for the last ``lines`` lines of ``units`` (several: interleaved by time),
    each argument quoted."""
    names = [f"{unit}.service" for unit in units]
    if not names:
        raise ValueError("no unit to read the journal of")
    argv = ["journalctl"]
    for name in names:
        argv += ["-u", name]
    argv += ["-o", "short-iso", "--no-pager", "-n", str(_check_lines(lines))]
    if since is not None:
        argv += ["--since", check_since(since)]
    if follow:
        argv.append("-f")
    return shlex.join(argv)


def tail_command(paths: Iterable[str], lines: int, follow: bool) -> str:
    """``tail`` of the log files a launchd service writes (``-F``: on through rotations)."""
    files = [plain_host_path(path, "log file") for path in paths]
    if not files:
        raise ValueError("no log file to read")
    argv = ["tail", "-n", str(_check_lines(lines))]
    if follow:
        argv.append("-F")
    if len(files) > 1:
        argv.append("-q")  # no "==> file <==" headers between them
    return shlex.join([*argv, *files])


def plist_log_paths(raw: bytes) -> list[str]:
    """The files a LaunchDaemon's plist sends the service's output to (``StandardOutPath``,
    then ``StandardErrorPath`` when it differs). The plist is read back from the host: anything
    but a plist naming plain absolute paths is refused (ValueError)."""
    try:
        data: Any = plistlib.loads(raw)
    except Exception as e:  # plistlib raises what its parsers raise
        raise ValueError(f"the service's plist cannot be read: {type(e).__name__}") from None
    if not isinstance(data, dict):
        raise ValueError("the service's plist is not a dictionary")
    named = [data[key] for key in ("StandardOutPath", "StandardErrorPath") if key in data]
    paths = list(dict.fromkeys(plain_host_path(path, "the plist's log file") for path in named))
    if not paths:
        raise ValueError("the service's plist names no log file (StandardOutPath)")
    return paths


def launchd_plists(deployment: Deployment) -> list[str]:
    """The deployment's LaunchDaemon plists (none on a systemd host)."""
    return [
        path for path in deployment.config_files
        if path.startswith(LAUNCH_DAEMONS) and path.endswith(".plist")
    ]


def host_command(
    deployment: Deployment,
    *,
    since: str | None,
    lines: int,
    follow: bool,
    read: Callable[[str], bytes],
) -> str:
    """The command that shows ``deployment``'s log on its host: the journal of its units, or on
    a launchd host a ``tail`` of the files its plists (read with ``read``) name."""
    plists = launchd_plists(deployment)
    if not plists:
        return journal_command(deployment.units, since, lines, follow)
    if since is not None:
        raise ValueError(
            "--since: a launchd service logs to a plain file, without times to select by"
        )
    paths = dict.fromkeys(path for plist in plists for path in plist_log_paths(read(plist)))
    return tail_command(paths, lines, follow)


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """A stream's bytes as lines (split on ``\\n`` only, so a ``\\r`` stays in its line to be
    shown), decoded as UTF-8 with anything else replaced; a run of more than
    :data:`MAX_LINE_BYTES` without a newline is cut, so a host cannot fill the controller's
    memory with one line."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline >= 0:
                line, buffer = buffer[:newline], buffer[newline + 1 :]
            elif len(buffer) > MAX_LINE_BYTES:
                line, buffer = buffer[:MAX_LINE_BYTES], buffer[MAX_LINE_BYTES:]
            else:
                break
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


@dataclass
class HostLogs:
    name: str
    #: as the host sent them (the CLI escapes them for a terminal)
    lines: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "error": self.error}


@dataclass
class LogsResult(FleetResult[HostLogs]):
    """Per host: its log's last lines, or why they could not be read."""


#: what follows a read's output, before its exit status (:func:`byte_safe`)
EXIT_MARK = b"\nrigctl-exit:"


def byte_safe(command: str) -> str:
    """``command`` (one simple command) run so that its output, stderr merged, reaches the
    controller byte for byte: base64 on the host, its exit status after it.

    pyinfra decodes a command's output as strict UTF-8, and a byte that is not stops it reading
    the rest, silently; a log need not be UTF-8 (a server's partial tokens, a hostile host)."""
    return f"{{ {command} 2>&1; printf '\\nrigctl-exit:%s\\n' \"$?\"; }} | base64"


def unwrap(out: str) -> tuple[int, list[str]]:
    """What :func:`byte_safe` printed: the command's exit status and its output's lines (split
    as :func:`split_lines` does). ValueError when the host answered something else."""
    try:
        raw = base64.b64decode(out)  # the line breaks base64 puts in are discarded
    except ValueError:  # binascii.Error, or characters that are not ASCII
        raise ValueError("the host's answer is not the base64 it was asked for") from None
    body, mark, status = raw.rpartition(EXIT_MARK)
    if not mark or not status.strip().isdigit():
        raise ValueError("the host's answer has no exit status")
    return int(status), list(split_lines([body]))


def _last_said(lines: list[str]) -> int | None:
    """The index of the last line that says something, if any."""
    return next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)


def _read_host(host: Host, since: str | None, lines: int) -> HostLogs:
    try:
        command = host_command(
            read_deployment(host), since=since, lines=lines, follow=False,
            read=lambda path: read_file(host, path),
        )
        ok, out, err = run_command(host, byte_safe(command))
        if not ok:  # the wrapping itself failed (no base64 there, the connection gone)
            said = err.splitlines()
            last = _last_said(said)
            gone = CONNECTION_LOST if connection_lost(host) else "reading the log failed"
            return HostLogs(host.name, error=said[last] if last is not None else gone)
        status, shown = unwrap(out)
    except (OSError, ValueError) as e:
        return HostLogs(host.name, error=str(e))
    if status == 0:
        return HostLogs(host.name, lines=shown)
    last = _last_said(shown)  # the command's own message is its output's last line
    if last is None:
        return HostLogs(host.name, error=f"{command.split()[0]} exited with status {status}")
    return HostLogs(host.name, lines=shown[:last], error=shown[last])


def fleet_logs(
    target: str, limit: list[str] | None = None, *, since: str | None = None,
    lines: int = DEFAULT_LINES,
) -> LogsResult:
    """The last ``lines`` lines of each selected host's runtime log, hosts in parallel."""
    if since is not None:
        check_since(since)
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    found: dict[str, HostLogs] = {}
    with Session(inventory, limit=hosts) as session:
        found.update(session.each_host(lambda h: _read_host(h, since, lines)))
        for name, outcome in session.results.items():
            found.setdefault(name, HostLogs(name, error=outcome.error or outcome.status))
    return LogsResult({h.name: found[h.name] for h in hosts})


#: ``on_line(host, line)``: a line as the host sent it; ``on_error(host, why)``: a host stopped
LineHook = Callable[[str, str], None]


def follow_logs(
    target: str,
    limit: list[str] | None = None,
    *,
    since: str | None = None,
    lines: int = DEFAULT_LINES,
    on_line: LineHook,
    on_error: LineHook,
) -> LogsResult:
    """Stream each selected host's runtime log (its last ``lines`` lines first), from every host
    at once, each line to ``on_line`` as it comes, until interrupted (KeyboardInterrupt: the
    normal end) or every stream has ended. A host that cannot be read, or whose stream ends, is
    reported to ``on_error`` as it happens and fails; the others go on."""
    if since is not None:
        check_since(since)
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    outcomes = {h.name: HostLogs(h.name) for h in hosts}
    stopped = False

    def fail(name: str, why: str) -> None:
        if not stopped:  # closing the streams after Ctrl-C is no host's failure
            outcomes[name].error = why
            on_error(name, why)

    def follow(host: Host) -> None:
        try:
            command = host_command(
                read_deployment(host), since=since, lines=lines, follow=True,
                read=lambda path: read_file(host, path),
            )
            for text in split_lines(stream_command(host, command)):
                on_line(host.name, text)
        except Exception as e:  # this host only: the others stream on
            fail(host.name, str(e) or type(e).__name__)
            return
        fail(host.name, CONNECTION_LOST if connection_lost(host) else "the log stream ended")

    # one greenlet per host for as long as its stream lasts: the pool must hold them all
    with Session(inventory, limit=hosts, parallel=len(hosts)) as session:
        for name, outcome in session.results.items():
            if outcome.failed:
                fail(name, outcome.error or outcome.status)
        try:
            session.each_host(follow)
        except KeyboardInterrupt:
            stopped = True
    return LogsResult(outcomes)
