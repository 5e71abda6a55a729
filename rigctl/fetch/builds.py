"""llama.cpp builds kept on the controller, so hosts with the same build key compile once.

The first host of a fleet that builds a key compiles; its install directory is packed on the
host and copied here (``~/.cache/rigctl/builds/<name>.tar.gz``); every other host with that key,
in this run or a later one, receives the binaries instead of compiling for minutes.

The cache is content-addressed: a tarball is unpacked as root on every host of its key, so one
compromised builder must not be able to plant anything fleet-wide. When a build is kept, its
members are checked here (:func:`check_build_tarball`: only the layout the ``llamacpp`` role
installs, regular files, directories and symbolic links inside the build, no setuid/setgid/
sticky bits, no devices) and its sha256 is recorded beside it (``<name>.tar.gz.sha256``,
``sha256sum``'s format). Each install checks that sha256 on the controller before pushing
(:func:`verified_sha256`) and on the host after the upload (``verified_file``), and unpacks with
``--no-same-owner --no-same-permissions``. A tarball that no longer matches its record is
discarded with a warning (the host compiles instead), never installed.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import shlex
import tarfile
from pathlib import Path

from rigctl.digest import sha256_file as file_sha256
from rigctl.paths import cache_dir, confined
from rigctl.pyinfra_api import Host, fetch_file, run_command

log = logging.getLogger(__name__)

#: Suffix of the sha256 record kept beside each tarball.
RECORD_SUFFIX = ".sha256"
#: A file name in ``bin/`` or ``lib/`` of a build.
_FILE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: What a kept tarball may unpack to, at most (a CUDA build with every architecture is large).
MAX_UNPACKED_BYTES = 8 << 30


class BadBuild(OSError):
    """A kept build that must not be installed (bad members, or not its recorded sha256)."""


def builds_cache() -> Path:
    return cache_dir() / "builds"


def tarball_path(name: str, cache: Path | None = None) -> Path:
    """Where the build ``name`` is kept (the name is made one safe file name in the cache)."""
    return confined(cache or builds_cache(), f"{name}.tar.gz")


def record_path(tarball: Path) -> Path:
    return tarball.with_name(tarball.name + RECORD_SUFFIX)


def recorded_sha256(tarball: Path) -> str | None:
    """The sha256 recorded when ``tarball`` was kept, None without a valid record."""
    try:
        text = record_path(tarball).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    fields = text.split()
    if len(fields) != 2 or not _SHA256.fullmatch(fields[0]) or fields[1] != tarball.name:
        return None
    return fields[0]


def discard(tarball: Path, why: str) -> None:
    log.warning("discarding the kept llama.cpp build %s: %s; the host compiles instead", tarball, why)
    tarball.unlink(missing_ok=True)
    record_path(tarball).unlink(missing_ok=True)


def verified_sha256(tarball: Path) -> str | None:
    """``tarball``'s sha256 when it matches the one recorded when it was kept; otherwise the
    tarball is discarded (with a warning) and None returned: it is never installed."""
    if not tarball.exists():
        return None
    recorded = recorded_sha256(tarball)
    if recorded is None:
        discard(tarball, "it has no valid sha256 record")
        return None
    try:
        actual = file_sha256(tarball)
    except OSError as e:
        discard(tarball, f"it cannot be read ({e})")
        return None
    if actual != recorded:
        discard(tarball, f"its sha256 {actual[:12]} is not the recorded {recorded[:12]}")
        return None
    return recorded


def cached_build(name: str, cache: Path | None = None) -> Path | None:
    """The kept tarball of build ``name``, when there is one that matches its record."""
    path = tarball_path(name, cache)
    return path if verified_sha256(path) is not None else None


def check_build_tarball(path: Path, name: str) -> None:
    """Raise :class:`BadBuild` unless ``path`` holds exactly a build as the ``llamacpp`` role
    installs one: ``<name>/`` with ``BUILD_INFO.json`` (naming this build), ``bin/`` and
    optionally ``lib/`` holding files (or symbolic links that stay inside the build); only
    regular files, directories, symbolic links and hard links to earlier files of the build;
    no setuid, setgid or sticky bit; no absolute or ``..`` names; no member twice."""
    seen: dict[str, str] = {}  # member name -> "dir" | "file" | "link"
    total = 0
    build_info: bytes | None = None
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                where = _member_path(member.name, name)
                if where in seen:
                    raise BadBuild(f"{member.name!r} appears twice")
                if member.mode & 0o7000:
                    raise BadBuild(f"{member.name!r} has a setuid, setgid or sticky bit")
                kind = _kind(member, name, seen)
                _check_layout(where, kind, member.name)
                seen[where] = kind
                if member.isreg():
                    total += member.size
                    if total > MAX_UNPACKED_BYTES:
                        raise BadBuild(f"unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB")
                    if where == "BUILD_INFO.json":
                        if member.size > 1 << 20:
                            raise BadBuild("BUILD_INFO.json is too large")
                        handle = archive.extractfile(member)
                        build_info = handle.read() if handle else None
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        if isinstance(e, BadBuild):
            raise
        raise BadBuild(f"not a readable tar.gz: {e}") from None
    if seen.get("") != "dir":
        raise BadBuild(f"no {name}/ directory at its top")
    if seen.get("bin") != "dir" or seen.get("BUILD_INFO.json") != "file" or build_info is None:
        raise BadBuild("not a llama.cpp build: bin/ or BUILD_INFO.json missing")
    try:
        info = json.loads(build_info)
    except ValueError:
        raise BadBuild("BUILD_INFO.json is not JSON") from None
    if not isinstance(info, dict) or info.get("build") != name:
        raise BadBuild(f"BUILD_INFO.json does not describe build {name}")


def _member_path(member: str, name: str) -> str:
    """The member's path inside the build directory ("" for the directory itself)."""
    if member.startswith("/") or "\\" in member or any(ord(ch) < 32 for ch in member):
        raise BadBuild(f"member name {member!r} is absolute or has odd characters")
    parts = member.split("/")
    if parts and parts[-1] == "":  # a directory's trailing slash
        parts.pop()
    if any(part in ("", ".", "..") for part in parts):
        raise BadBuild(f"member name {member!r} has empty, '.' or '..' parts")
    if not parts or parts[0] != name:
        raise BadBuild(f"member {member!r} is not inside {name}/")
    return "/".join(parts[1:])


def _kind(member: tarfile.TarInfo, name: str, seen: dict[str, str]) -> str:
    if member.isdir():
        return "dir"
    if member.isreg():
        return "file"
    if member.issym():
        link = member.linkname
        if not link or link.startswith("/") or any(ord(ch) < 32 for ch in link):
            raise BadBuild(f"symbolic link {member.name!r} -> {link!r} is absolute")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), link))
        if not (target + "/").startswith(f"{name}/") or target == name:
            raise BadBuild(f"symbolic link {member.name!r} -> {link!r} points outside the build")
        return "link"
    if member.islnk():
        target = _member_path(member.linkname, name)
        if seen.get(target) != "file":
            raise BadBuild(
                f"hard link {member.name!r} -> {member.linkname!r} is not to a file of the build"
            )
        return "file"
    raise BadBuild(f"{member.name!r} is not a file, directory or link (device, FIFO...)")


def _check_layout(where: str, kind: str, member: str) -> None:
    if where == "":
        ok = kind == "dir"
    elif where == "BUILD_INFO.json":
        ok = kind == "file"
    elif where in ("bin", "lib"):
        ok = kind == "dir"
    else:
        folder, _, file_name = where.partition("/")
        ok = (
            folder in ("bin", "lib")
            and "/" not in file_name
            and bool(_FILE_NAME.fullmatch(file_name))
            and kind in ("file", "link")
        )
    if not ok:
        raise BadBuild(f"{member!r} is not part of a llama.cpp build's layout")


def keep(tarball: Path, name: str, incoming: Path) -> Path:
    """Check ``incoming`` (a build packed on a host) and keep it as ``tarball`` with its sha256
    recorded; a tarball that fails the checks is removed and BadBuild raised."""
    try:
        check_build_tarball(incoming, name)
        sha256 = file_sha256(incoming)
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    # the record first: a tarball is never in place without the record that vouches for it
    # (one without, or with another's, is discarded rather than installed)
    record = record_path(tarball)
    partial_record = record.with_name(record.name + ".part")
    partial_record.write_text(f"{sha256}  {tarball.name}\n")
    partial_record.replace(record)
    incoming.replace(tarball)
    return tarball


def keep_build(host: Host, name: str, prefix: str, cache: Path | None = None) -> Path:
    """Pack ``prefix/builds/<name>`` on the host, copy it into the controller's cache, check its
    members and record its sha256 (raises OSError, BadBuild included, when it cannot be kept)."""
    remote = f"/var/cache/rigctl/{name}.tar.gz"
    ok, _out, err = run_command(
        host,
        f"tar -czf {shlex.quote(remote)} -C {shlex.quote(prefix + '/builds')} {shlex.quote(name)}",
    )
    if not ok:
        raise OSError(f"packing build {name} on {host.name} failed: {err[-200:]}")
    local = tarball_path(name, cache)
    incoming = local.with_name(local.name + ".incoming")
    try:
        fetch_file(host, remote, incoming)
    finally:
        run_command(host, f"rm -f {shlex.quote(remote)}")
    try:
        return keep(local, name, incoming)
    except BadBuild as e:
        raise BadBuild(f"build {name} from {host.name} refused: {e}") from None
