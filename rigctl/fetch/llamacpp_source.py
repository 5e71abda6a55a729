"""The llama.cpp source on the controller: pinned, fetched from ordered mirrors, packed once.

rigctl builds llama.cpp from source on each host, so the controller gets the source once,
checks it, trims what a build does not need (test vocabularies, docs, media: about 110 MB of
the tree), and packs it into ``~/.cache/rigctl/sources/llama.cpp-<version>.tar.gz``, which the
``llamacpp`` role pushes to hosts. The pin is one llama.cpp commit; every mirror carries that
same commit:

- ``upstream``: the commit's archive from the upstream git repository on GitHub;
- ``pypi-sdist``: the ``vendor/llama.cpp`` tree of the ``llama-cpp-python`` sdist that vendors
  exactly that commit, fetched with pip by name (works wherever PyPI does) and checked against
  the sdist's sha256;
- ``tarball``: any URL of a tarball of the tree, with its sha256 (your own mirror);
- ``file``: a tarball already on the controller (an absolute path), with its sha256.

Every location goes through the download policy (:mod:`rigctl.fetch.policy`) before anything
is fetched: https, http only to loopback (or with ``allow_http`` and a sha256), absolute paths;
a ``pypi-sdist`` location is a ``name==version`` requirement, never a pip option.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.errors import BadInput, RigctlError
from rigctl.fetch.http import DownloadError, download, sha256_file
from rigctl.fetch.policy import check_url
from rigctl.redact import redact

#: llama.cpp commit 0c1e57098, as vendored by llama-cpp-python 0.3.36 (its CHANGELOG:
#: "update llama.cpp to ggml-org/llama.cpp@0c1e57098"). Upstream removed the Makefile build:
#: this tree's Makefile stops with "The Makefile build has been replaced by CMake".
DEFAULT_COMMIT = "0c1e57098"
DEFAULT_SDIST = "llama-cpp-python==0.3.36"
DEFAULT_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
UPSTREAM_ARCHIVE = "https://github.com/ggml-org/llama.cpp/archive/{commit}.tar.gz"

#: Parts of the tree no build uses (vocab files for llama.cpp's own tests, documentation).
EXCLUDED_TOP_LEVEL = {"models", "docs", "media", ".github", ".devops", "pocs", "benches"}

FIELD = "llamacpp_source"
KINDS = ("upstream", "pypi-sdist", "tarball", "file")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # names the cached tarball
_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class SourceError(RigctlError):
    pass


@dataclass(frozen=True)
class Mirror:
    kind: str  # upstream | pypi-sdist | tarball | file
    location: str  # URL, path, or "package==version"
    sha256: str | None = None

    def describe(self) -> str:
        """How the mirror is named in messages and the ``.from`` marker (credentials masked)."""
        return redact(f"{self.kind} {self.location}")

    @classmethod
    def checked(
        cls, entry: Any, version: str, *, host: str | None = None, allow_http: bool = False
    ) -> Mirror:
        """A mirror from host data, its location checked by the download policy (BadInput,
        field ``llamacpp_source``, before anything is fetched)."""

        def bad(why: str) -> BadInput:
            return BadInput(why, host=host, field=FIELD)

        if not isinstance(entry, dict):
            raise bad("each mirror is {kind, location, sha256}")
        kind = entry.get("kind")
        if kind not in KINDS:
            raise bad(f"unknown mirror kind {redact(repr(kind))[:60]}")
        sha = entry.get("sha256")
        if sha is not None:
            if not isinstance(sha, str) or not _SHA256.fullmatch(sha.strip().lower()):
                raise bad(f"a {kind} mirror's sha256 must be 64 hex digits")
            sha = sha.strip().lower()
        if kind in ("tarball", "file") and not sha:
            raise bad(f"a {kind} mirror needs a sha256")
        location = entry.get("location")
        if location is None and kind == "upstream":
            location = UPSTREAM_ARCHIVE.format(commit=version)
        elif location is None and kind == "pypi-sdist" and version == DEFAULT_COMMIT:
            location, sha = DEFAULT_SDIST, sha or DEFAULT_SDIST_SHA256
        if not isinstance(location, str) or not location:
            raise bad(f"a {kind} mirror needs a location")
        if kind == "pypi-sdist":
            if not _REQUIREMENT.fullmatch(location):
                raise bad(
                    f"a pypi-sdist location is name==version, got {redact(repr(location))[:80]}"
                )
        elif kind == "file" and not location.startswith(("/", "file:")):
            raise bad(f"a file mirror is an absolute path, got {redact(repr(location))[:80]}")
        else:
            location = check_url(
                location, field=FIELD, allow_http=allow_http, sha256_known=sha is not None
            )
        return cls(kind, location, sha)


@dataclass(frozen=True)
class LlamaCppSource:
    version: str
    mirrors: tuple[Mirror, ...] = field(default_factory=tuple)
    allow_http: bool = (
        False  # host data allow_http: http:// mirrors beyond loopback (with a sha256)
    )

    @classmethod
    def default(cls) -> LlamaCppSource:
        return cls(
            version=DEFAULT_COMMIT,
            mirrors=(
                Mirror("upstream", UPSTREAM_ARCHIVE.format(commit=DEFAULT_COMMIT)),
                Mirror("pypi-sdist", DEFAULT_SDIST, DEFAULT_SDIST_SHA256),
            ),
        )

    @classmethod
    def from_host_data(
        cls, data: dict[str, Any] | None, host: str | None = None, *, allow_http: bool = False
    ) -> LlamaCppSource:
        """``llamacpp_source`` host data: ``{"version": ..., "mirrors": [{kind, location, sha256}]}``,
        or a list of mirror kinds to keep from the default order (e.g. ``["pypi-sdist"]`` offline).
        ``allow_http`` is host data ``allow_http``."""
        default = cls.default()
        if not data:
            return cls(default.version, default.mirrors, allow_http)
        if isinstance(data, list):
            keep = [m for m in default.mirrors if m.kind in data]
            if not keep:
                raise BadInput(
                    f"no default mirror of kind {redact(repr(data))[:80]}", host=host, field=FIELD
                )
            return cls(default.version, tuple(keep), allow_http)
        if not isinstance(data, dict) or "version" not in data or "mirrors" not in data:
            raise BadInput(
                "expected {version: ..., mirrors: [{kind, location, sha256}]}",
                host=host,
                field=FIELD,
            )
        version = data["version"]
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise BadInput(
                "version must be letters, digits and . _ + - (it names a file)",
                host=host,
                field=FIELD,
            )
        entries = data["mirrors"]
        if not isinstance(entries, list) or not entries:
            raise BadInput("mirrors must be a non-empty list", host=host, field=FIELD)
        mirrors = tuple(
            Mirror.checked(e, version, host=host, allow_http=allow_http) for e in entries
        )
        return cls(version, mirrors, allow_http)


@dataclass(frozen=True)
class PackedSource:
    version: str
    tarball: Path
    sha256: str
    mirror: str  # which mirror it came from


def sources_dir() -> Path:
    from rigctl.paths import cache_dir

    return cache_dir() / "sources"


def prepare(source: LlamaCppSource, cache: Path | None = None) -> PackedSource:
    """Return the packed source, fetching it from the first mirror that works (cached)."""
    cache = cache or sources_dir()
    cache.mkdir(parents=True, exist_ok=True)
    packed = cache / f"llama.cpp-{source.version}.tar.gz"
    marker = packed.with_name(packed.name + ".from")
    if packed.exists() and marker.exists():
        shown = redact(marker.read_text().strip())[:300]
        return PackedSource(source.version, packed, sha256_file(packed), shown)
    errors = []
    for mirror in source.mirrors:
        try:
            with tempfile.TemporaryDirectory(dir=cache) as scratch:
                tree = _fetch_tree(mirror, Path(scratch), allow_http=source.allow_http)
                _check_tree(tree)
                _pack(tree, packed)
        except (SourceError, DownloadError, OSError, tarfile.TarError) as e:
            errors.append(f"{mirror.describe()}: {redact(str(e))[:300]}")
            continue
        marker.write_text(mirror.describe() + "\n")
        return PackedSource(source.version, packed, sha256_file(packed), mirror.describe())
    raise SourceError(redact(f"llama.cpp {source.version}: no mirror worked: " + "; ".join(errors)))


def _fetch_tree(mirror: Mirror, scratch: Path, *, allow_http: bool = False) -> Path:
    """Fetch one mirror into ``scratch`` and return the llama.cpp tree's root."""
    if mirror.kind == "pypi-sdist":
        archive = _pip_download_sdist(mirror.location, scratch)
        if mirror.sha256 and sha256_file(archive) != mirror.sha256:
            raise SourceError(f"sha256 mismatch for {archive.name}")
        subdir = "vendor/llama.cpp"
    else:
        archive = scratch / "source.tar.gz"
        # The policy (inside download) refuses relative paths, ~ and other schemes.
        download(
            [mirror.location], archive, sha256=mirror.sha256, allow_http=allow_http, field=FIELD
        )
        subdir = ""
    unpacked = scratch / "tree"
    unpacked.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    tops = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise SourceError("archive does not hold one top-level directory")
    root = tops[0] / subdir if subdir else tops[0]
    if not root.is_dir():
        raise SourceError(f"archive has no {subdir}")
    return root


def _pip_download_sdist(requirement: str, scratch: Path) -> Path:
    if not _REQUIREMENT.fullmatch(requirement):  # argv to pip: never an option
        raise SourceError(f"not a name==version requirement: {redact(repr(requirement))[:80]}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            str(scratch),
            requirement,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    archives = list(scratch.glob("*.tar.gz"))
    if not archives:
        lines = [
            line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line
        ]
        raise SourceError(
            f"pip download {requirement} failed: {lines[-1] if lines else 'no archive'}"
        )
    return archives[0]


def _check_tree(root: Path) -> None:
    if not (root / "CMakeLists.txt").exists() or not (root / "ggml").is_dir():
        raise SourceError("not a llama.cpp tree (no CMakeLists.txt and ggml/)")


def _pack(root: Path, packed: Path) -> None:
    """Pack the trimmed tree as ``llama.cpp/...``; written beside the target, then renamed."""
    tmp = packed.with_name(packed.name + ".tmp")

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if len(parts) > 1 and parts[1] in EXCLUDED_TOP_LEVEL:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        tar.add(root, arcname="llama.cpp", filter=keep)
    tmp.replace(packed)
