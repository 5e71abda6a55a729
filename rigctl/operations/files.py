"""Files that are replaced atomically, secrets made on the host, large files verified once."""

from __future__ import annotations

import hashlib
import io
import re
import shlex
from collections.abc import Generator
from pathlib import Path
from typing import IO

from rigctl.digest import sha256_file
from rigctl.pyinfra_api import (
    FileUploadCommand,
    QuoteString,
    StringCommand,
    file_facts,
    host,
    operation,
    server_facts,
)

#: Suffix of a file being uploaded; renamed over the real name once complete.
UPLOAD_SUFFIX = ".rigctl-new"

#: A sha256 as rigctl passes them: 64 lowercase hex digits, nothing else.
SHA256 = re.compile(r"[0-9a-f]{64}")
#: An octal mode (``0644``), a user or group name, an environment variable name.
_MODE = re.compile(r"[0-7]{3,4}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_sha256(sha256: object) -> str:
    """``sha256`` if it is 64 lowercase hex digits; ValueError otherwise (it goes into
    commands run on hosts as root, and may come from a marker file anyone could write)."""
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise ValueError(f"not a sha256 (64 lowercase hex digits): {sha256!r}")
    return sha256


def _owner(user: str, group: str) -> QuoteString:
    for what, name in (("user", user), ("group", group)):
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a {what} name: {name!r}")
    return QuoteString(f"{user}:{group}")


def _mode(mode: str) -> QuoteString:
    if not _MODE.fullmatch(mode):
        raise ValueError(f"not an octal mode: {mode!r}")
    return QuoteString(mode)


def _sha256_of(src: str | IO[bytes] | IO[str]) -> str:
    if isinstance(src, str):
        return sha256_file(src)
    digest = hashlib.sha256()
    src.seek(0)
    data = src.read()
    digest.update(data.encode() if isinstance(data, str) else data)
    src.seek(0)
    return digest.hexdigest()


@operation()
def atomic_put(
    src: str | IO[bytes] | IO[str],
    dest: str,
    mode: str = "0644",
    user: str = "root",
    group: str = "root",
) -> Generator[object, None, None]:
    """Upload a file only when its content differs, replacing the old one atomically.

    + src: local path or file-like object
    + dest: remote path
    + mode: octal permissions, e.g. ``"0600"``
    + user: owner
    + group: group

    pyinfra's ``files.put`` writes in place over SFTP, so an interrupted upload leaves a
    truncated file; here the new content goes to ``dest.rigctl-new``, gets its owner and mode,
    and is renamed over ``dest`` (``rename(2)`` is atomic): readers see the old file or the new.
    """
    if isinstance(src, str) and not Path(src).exists():
        raise FileNotFoundError(src)
    remote_sha = host.get_fact(file_facts.Sha256File, path=dest)
    info = host.get_fact(file_facts.File, path=dest)
    same_content = remote_sha == _sha256_of(src)
    same_meta = (
        isinstance(info, dict)
        and info.get("user") == user
        and info.get("group") == group
        and (_same_mode(info.get("mode"), mode))
    )
    if same_content and same_meta:
        host.noop(f"{dest} is up to date")
        return
    if same_content:
        yield StringCommand("chown", _owner(user, group), QuoteString(dest))
        yield StringCommand("chmod", _mode(mode), QuoteString(dest))
        return
    tmp = dest + UPLOAD_SUFFIX
    yield StringCommand("mkdir", "-p", QuoteString(str(Path(dest).parent)))
    yield FileUploadCommand(src if isinstance(src, str) else _as_bytes(src), tmp)
    yield StringCommand("chown", _owner(user, group), QuoteString(tmp))
    yield StringCommand("chmod", _mode(mode), QuoteString(tmp))
    yield StringCommand("mv", "-f", QuoteString(tmp), QuoteString(dest))


def _same_mode(fact_mode: object, wanted: str) -> bool:
    """pyinfra's File fact gives the mode as the octal digits read as a number (0644 -> 644)."""
    return fact_mode is not None and str(fact_mode).zfill(4)[-4:] == wanted.zfill(4)[-4:]


def _as_bytes(src: IO[bytes] | IO[str]) -> IO[bytes]:
    src.seek(0)
    data = src.read()
    return io.BytesIO(data.encode() if isinstance(data, str) else data)


@operation()
def secret_file(
    path: str,
    user: str,
    group: str,
    nbytes: int = 32,
    variable: str | None = None,
    seed_from: str | None = None,
) -> Generator[StringCommand, None, None]:
    """Make sure ``path`` holds a random secret, mode 0600, owned by ``user``.

    + path: where the secret lives on the host
    + user: the service user that reads it
    + group: its group
    + nbytes: random bytes in the secret (hex-encoded in the file)
    + variable: write ``VARIABLE=<secret>`` instead, an environment file for systemd's
      ``EnvironmentFile=`` (for servers that read their key only from the environment)
    + seed_from: a file holding the bare secret (the same key kept for another format): when
      ``path`` has none yet and this file has one, that secret is used, not a new one

    The secret is generated on the host from ``/dev/urandom`` and never travels to the
    controller or appears in a command line. An existing non-empty secret is kept (so clients
    keep working); only its owner and mode are corrected.
    """
    info = host.get_fact(file_facts.File, path=path)
    if isinstance(info, dict) and int(info.get("size") or 0) > 0:
        if (
            info.get("user") == user
            and info.get("group") == group
            and _same_mode(info.get("mode"), "0600")
        ):
            host.noop(f"secret {path} is in place")
            return
        yield StringCommand("chown", _owner(user, group), QuoteString(path))
        yield StringCommand("chmod", "0600", QuoteString(path))
        return
    tmp = path + UPLOAD_SUFFIX
    start = ":"
    if variable:
        if not _VARIABLE.fullmatch(variable):
            raise ValueError(f"not an environment variable name: {variable!r}")
        start = f"printf {variable}="
    yield StringCommand("mkdir", "-p", QuoteString(str(Path(path).parent)))
    fresh = f"od -An -tx1 -N{int(nbytes)} /dev/urandom | tr -d ' \\n'"
    if seed_from:  # the existing key's first line (a bare key file), else a fresh one
        fresh = (
            f"if [ -s {_q(seed_from)} ]; then head -n 1 {_q(seed_from)} | tr -d '\\n';"
            f" else {fresh}; fi"
        )
    yield StringCommand(
        "sh",
        "-c",
        QuoteString(
            f"umask 077 && {start} > {_q(tmp)} && {fresh} >> {_q(tmp)}"
            f" && echo >> {_q(tmp)}"
        ),
    )
    yield StringCommand("chown", _owner(user, group), QuoteString(tmp))
    yield StringCommand("chmod", "0600", QuoteString(tmp))
    yield StringCommand("mv", "-f", QuoteString(tmp), QuoteString(path))


@operation()
def verified_file(
    src: str,
    dest: str,
    sha256: str,
    mode: str = "0644",
    user: str = "root",
    group: str = "root",
) -> Generator[object, None, None]:
    """Place a large file (a model) on the host, checked by sha256, without re-hashing each run.

    + src: local path of the verified file on the controller
    + dest: remote path
    + sha256: the file's sha256 (already verified on the controller)
    + mode, user, group: permissions of the placed file

    A marker ``dest.sha256`` (``sha256sum``'s format) is written once the host has verified the
    upload; later runs compare the marker's hash and the file's size instead of hashing
    gigabytes. Owner and mode are set at upload only (a model's are not watched afterwards).
    The upload goes to ``dest.part``, is hashed on the host, and only then renamed to ``dest``:
    a truncated or corrupted transfer never appears at ``dest``.
    """
    check_sha256(sha256)
    size = Path(src).stat().st_size
    marker = f"{dest}.sha256"
    state = (
        host.get_fact(
            server_facts.Command,
            # wc -c and cat: the same on GNU and BSD (macOS) hosts, unlike stat's options
            f"if [ -f {_q(dest)} ]; then wc -c < {_q(dest)} | tr -d ' '; else echo missing; fi;"
            f" cat {_q(marker)} 2>/dev/null || true",
        )
        or ""
    )
    lines = state.splitlines()
    remote_size = lines[0].strip() if lines else "missing"
    remote_marker = lines[1].split()[0] if len(lines) > 1 and lines[1].split() else ""
    if remote_size == str(size) and remote_marker == sha256:
        host.noop(f"{dest} is verified ({sha256[:12]})")
        return
    part = f"{dest}.part"
    yield StringCommand("mkdir", "-p", QuoteString(str(Path(dest).parent)))
    yield StringCommand("rm", "-f", QuoteString(marker))
    yield FileUploadCommand(src, part)
    yield StringCommand(
        "sh",
        "-c",
        QuoteString(
            f"got=$( (sha256sum {_q(part)} 2>/dev/null || shasum -a 256 {_q(part)}) | cut -d' ' -f1 );"
            f' [ "$got" = {_q(sha256)} ]'
            f" || {{ rm -f {_q(part)}; echo {_q(f'sha256 mismatch after upload: {dest}')} >&2; exit 1; }}"
        ),
    )
    yield StringCommand("chown", _owner(user, group), QuoteString(part))
    yield StringCommand("chmod", _mode(mode), QuoteString(part))
    yield StringCommand("mv", "-f", QuoteString(part), QuoteString(dest))
    yield StringCommand(
        "sh", "-c", QuoteString(f"echo {_q(f'{sha256}  {Path(dest).name}')} > {_q(marker)}")
    )


def _q(text: str) -> str:
    return shlex.quote(text)
