"""Downloads that never lose anything: resumed, verified, atomic, cached, mirrored.

``download(["https://a/x.gguf", "https://mirror/x.gguf"], dest, sha256=...)``:

- mirrors are tried in order; the first that yields the right bytes wins;
- bytes go to ``dest.part``; an interrupted download resumes with an HTTP ``Range`` request
  (a server that ignores it, answering 200, restarts the file);
- the sha256 is computed while streaming (the bytes already on disk are hashed once on resume);
  a mismatch deletes the part file and tries the next mirror: nothing ever appears at ``dest``
  unless it verified;
- the finished file is renamed into place (atomic on one filesystem), then a ``.verified`` marker
  records size, mtime and sha256 so later runs trust it without re-hashing gigabytes;
- every URL is checked by the download policy first (:mod:`rigctl.fetch.policy`: https, http
  only to loopback or with ``allow_http`` and a sha256, ``file:`` absolute paths), and so is the
  URL a redirect ends at;
- without a sha256, bytes are accepted only when ``accept`` (the caller's check: for models, a
  GGUF header and the planned size) passes, or from an https or loopback source when there is
  no check at all; a ``file:`` source always needs one or the other; a known ``size`` must match;
- a Hugging Face token (``HF_TOKEN``) is sent only over https to the Hub (see the policy), and
  errors are redacted (:mod:`rigctl.redact`): no userinfo, token or signature in a message.

Just over 400 lines, kept whole on purpose: resuming, verifying, the redirect policy and the
atomic rename are one state machine over one part file, and each relies on the others' order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from rigctl.digest import sha256_file
from rigctl.errors import BadInput, RigctlError
from rigctl.fetch import policy
from rigctl.fetch.policy import HUB_DOMAINS as HF_HOSTS
from rigctl.redact import redact

__all__ = [
    "HF_HOSTS",
    "Accept",
    "ChecksumMismatch",
    "DownloadError",
    "Progress",
    "Verified",
    "auth_headers",
    "download",
    "marker_path",
    "part_path",
    "read_marker",
    "redact",
    "sha256_file",
    "verify_existing",
    "write_marker",
]

CHUNK = 1024 * 1024
TIMEOUT = (10, 60)  # connect, read (seconds)

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: ``progress(done_bytes, total_bytes_or_None)`` after each chunk.
Progress = Callable[[int, int | None], None]

#: ``accept(path)`` for a complete download with no sha256 to check: None to accept it, or
#: why it is refused (``"not a GGUF file"``).
Accept = Callable[[Path], str | None]


class DownloadError(RigctlError):
    """No mirror produced a verified file."""


class ChecksumMismatch(DownloadError):
    pass


@dataclass(frozen=True)
class Verified:
    path: Path
    sha256: str
    size: int


def marker_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified")


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_marker(dest: Path) -> Verified | None:
    """The file's recorded sha256, if the file is unchanged since it was verified.

    The marker is read back from disk, beside a file that may be the user's own, and its
    sha256 ends up in commands run on hosts: anything but ``{"sha256": 64 lowercase hex,
    "size": int, "mtime_ns": int}`` is ignored, as if there were no marker (the file is then
    hashed again)."""
    try:
        record = json.loads(marker_path(dest).read_text())
        info = dest.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    sha256, size, mtime_ns = record.get("sha256"), record.get("size"), record.get("mtime_ns")
    if not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        return None
    if not (_is_int(size) and _is_int(mtime_ns)):
        return None
    if size != info.st_size or mtime_ns != info.st_mtime_ns:
        return None
    return Verified(dest, sha256, info.st_size)


def write_marker(dest: Path, sha256: str) -> Verified:
    info = dest.stat()
    record = {"sha256": sha256, "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    tmp = marker_path(dest).with_suffix(".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(marker_path(dest))
    return Verified(dest, sha256, info.st_size)


def verify_existing(dest: Path, sha256: str | None) -> Verified | None:
    """A file already at ``dest`` that is known good (by marker, or hashed once to make one)."""
    if not dest.exists():
        return None
    marker = read_marker(dest)
    if marker and (sha256 is None or marker.sha256 == sha256):
        return marker
    if marker is None and sha256 is not None and sha256_file(dest) == sha256:
        return write_marker(dest, sha256)
    return None


def auth_headers(url: str) -> dict[str, str]:
    """The Hub token's header for ``url`` when the policy lets it go there (https, the Hub's
    hosts or ``HF_ENDPOINT``'s), else none: :func:`rigctl.fetch.policy.auth_headers`."""
    return policy.auth_headers(url)


class _Refused(Exception):
    """This source's bytes are not taken (the next mirror is tried)."""


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    max_bytes: int | None = None,
    accept: Accept | None = None,
    allow_http: bool = False,
    field: str = "source",
    progress: Progress | None = None,
    session: requests.Session | None = None,
) -> Verified:
    """Fetch ``dest`` from the first mirror that gives verified bytes; see the module doc.

    ``size`` is the exact size the file must have; ``max_bytes`` a bound on what is read when
    the size is only approximately known; ``accept`` the check for bytes no sha256 vouches for;
    ``allow_http`` and ``field`` are the policy's (:func:`rigctl.fetch.policy.check_url`:
    a refused URL is BadInput naming ``field``, raised before anything is fetched).
    """
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise DownloadError(f"not a sha256 (64 hex digits): {sha256!r}")
    checked = policy.check_urls(
        list(urls), field=field, allow_http=allow_http, sha256_known=sha256 is not None
    )
    existing = verify_existing(dest, sha256)
    if existing and sha256 is None and _refusal(dest, "", sha256=None, size=size, accept=accept):
        # Cached without a checksum (perhaps by an older rigctl that checked nothing): it is
        # kept only while it still passes today's check, which reads a header, not gigabytes.
        marker_path(dest).unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        existing = None
    if existing:
        return existing
    dest.parent.mkdir(parents=True, exist_ok=True)
    http = session or requests.Session()
    errors: list[str] = []

    def check_redirect(final: str) -> None:
        try:
            policy.check_url(
                final, field=field, allow_http=allow_http, sha256_known=sha256 is not None
            )
        except BadInput as e:
            raise _Refused(f"redirected to a URL the download policy refuses: {e.detail}") from None

    for url in checked:
        if sha256 is None and accept is None and policy.is_local(url):
            errors.append(f"{_short(url)}: a file on the controller needs a sha256 to be used")
            continue
        part = _part_for(dest, url, sha256)
        try:
            digest = _fetch(
                http,
                url,
                part,
                size=size,
                limit=size if size is not None else max_bytes,
                progress=progress,
                check_redirect=check_redirect,
            )
        except (requests.RequestException, OSError, _Refused) as e:
            errors.append(f"{_short(url)}: {_first_line(str(e))}")
            continue
        refused = _refusal(part, digest, sha256=sha256, size=size, accept=accept)
        if refused:
            part.unlink(missing_ok=True)
            errors.append(f"{_short(url)}: {refused}")
            continue
        os.replace(part, dest)
        _drop_parts(dest)
        return write_marker(dest, digest)
    kind = (
        ChecksumMismatch
        if errors and all("sha256 mismatch" in e for e in errors)
        else DownloadError
    )
    raise kind(
        redact(f"could not download {dest.name}: " + "; ".join(errors or ["no source given"]))
    )


def _refusal(
    part: Path, digest: str, *, sha256: str | None, size: int | None, accept: Accept | None
) -> str | None:
    """Why a complete download is not taken, or None to take it."""
    if sha256 is not None:
        if digest != sha256:
            return f"sha256 mismatch (got {digest[:12]}…, want {sha256[:12]}…)"
        return None
    have = part.stat().st_size
    if size is not None and have != size:
        return f"refused: {have:,} bytes, the plan says {size:,}"
    if accept is not None:
        reason = accept(part)
        return f"refused: {reason}" if reason else None
    return None


def _part_for(dest: Path, url: str, sha256: str | None) -> Path:
    """The part file for one source. With a sha256 every mirror resumes the same part (the
    checksum covers the whole file); without one each source gets its own, so a file is never
    one mirror's start and another's end."""
    if sha256 is not None:
        return part_path(dest)
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    return dest.with_name(f"{dest.name}.{tag}.part")


def _drop_parts(dest: Path) -> None:
    """Remove part files other sources left for ``dest`` (it is complete now)."""
    try:
        leftovers = [
            p
            for p in dest.parent.iterdir()
            if p.name.startswith(dest.name + ".") and p.name.endswith(".part")
        ]
    except OSError:
        return
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)


def _first_line(message: str) -> str:
    lines = redact(message).splitlines()
    return lines[0][:200] if lines else ""


def _short(url: str) -> str:
    try:
        parsed = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    return redact(f"{parsed.scheme}://{parsed.netloc}{parsed.path}")


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def _fetch(
    http: requests.Session,
    url: str,
    part: Path,
    *,
    size: int | None,
    limit: int | None,
    progress: Progress | None,
    check_redirect: Callable[[str], None],
) -> str:
    """Stream ``url`` into ``part`` (resuming it); return the sha256 of the whole file."""
    if policy.is_local(url):
        return _copy_local(_local_path(url), part, progress, size=size, limit=limit)
    digest = hashlib.sha256()
    have = part.stat().st_size if part.exists() else 0
    if limit is not None and have > limit:
        part.unlink()
        have = 0
    headers = auth_headers(url)
    if have:
        headers["Range"] = f"bytes={have}-"
    with http.get(
        url, headers=headers, stream=True, timeout=TIMEOUT, allow_redirects=True
    ) as response:
        if response.history:
            # requests drops Authorization when a redirect changes host or scheme; where the
            # redirect ends must still be a source the policy allows.
            check_redirect(response.url)
        if response.status_code == 416 and have:  # asked past the end: the part may be complete
            return _hash_file(part, digest)
        response.raise_for_status()
        resumed = response.status_code == 206 and have > 0
        if resumed:
            _hash_file(part, digest)
        else:
            have = 0
        total = _total_size(response, have) or size
        if size is not None and total != size:
            raise _Refused(f"serves {total:,} bytes, the plan says {size:,}")
        if limit is not None and total is not None and total > limit:
            raise _Refused(f"serves {total:,} bytes, more than the {limit:,} expected")
        done = have
        with part.open("ab" if resumed else "wb") as out:
            try:
                for block in response.iter_content(CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if limit is not None and done > limit:
                        break
                    if progress:
                        progress(done, total)
            except requests.exceptions.ChunkedEncodingError:
                pass  # the connection broke mid-body: keep what arrived, reported below
            out.flush()
            os.fsync(out.fileno())
    if limit is not None and done > limit:
        part.unlink(missing_ok=True)
        raise _Refused(f"sent more than the {limit:,} bytes expected")
    if total is not None and done != total:
        raise OSError(
            f"connection closed at {done:,} of {total:,} bytes (kept; the next try will resume)"
        )
    return digest.hexdigest()


def _total_size(response: requests.Response, have: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (have if response.status_code == 206 else 0)
    return None


def _hash_file(path: Path, digest: hashlib._Hash) -> str:
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_local(
    source: Path, part: Path, progress: Progress | None, *, size: int | None, limit: int | None
) -> str:
    """Copy a file on the controller into ``part``: a regular file only (never a device, a
    FIFO or ``/proc``), of the expected size when one is known."""
    info = source.stat()
    if not stat.S_ISREG(info.st_mode):
        raise _Refused(f"{source} is not a regular file")
    total = info.st_size
    if size is not None and total != size:
        raise _Refused(f"{total:,} bytes, the plan says {size:,}")
    if limit is not None and total > limit:
        raise _Refused(f"{total:,} bytes, more than the {limit:,} expected")
    digest = hashlib.sha256()
    done = 0
    with source.open("rb") as src, part.open("wb") as out:
        while block := src.read(CHUNK):
            out.write(block)
            digest.update(block)
            done += len(block)
            if done > total:
                break  # the file grew while copied: refused below
            if progress:
                progress(done, total)
    if done != total:
        part.unlink(missing_ok=True)
        raise _Refused(f"{source} changed while it was copied")
    return digest.hexdigest()
