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
- a Hugging Face token (``HF_TOKEN``) is sent only to huggingface.co and never appears in errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from rigctl.errors import RigctlError

CHUNK = 1024 * 1024
TIMEOUT = (10, 60)  # connect, read (seconds)
HF_HOSTS = ("huggingface.co", "hf.co", "cdn-lfs.huggingface.co", "cas-bridge.xethub.hf.co")

#: ``progress(done_bytes, total_bytes_or_None)`` after each chunk.
Progress = Callable[[int, int | None], None]


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


def read_marker(dest: Path) -> Verified | None:
    """The file's recorded sha256, if the file is unchanged since it was verified."""
    try:
        record = json.loads(marker_path(dest).read_text())
        stat = dest.stat()
    except (OSError, ValueError):
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    return Verified(dest, record["sha256"], stat.st_size)


def write_marker(dest: Path, sha256: str) -> Verified:
    stat = dest.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = marker_path(dest).with_suffix(".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(marker_path(dest))
    return Verified(dest, sha256, stat.st_size)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


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


def redact(text: str) -> str:
    """Remove secrets (tokens in headers or URLs) from a message."""
    token = os.environ.get("HF_TOKEN")
    if token:
        text = text.replace(token, "***")
    return re.sub(r"(?i)(token|key|signature|authorization)=([^&\s]+)", r"\1=***", text)


def auth_headers(url: str) -> dict[str, str]:
    token = os.environ.get("HF_TOKEN")
    host = urlparse(url).hostname or ""
    if token and any(host == h or host.endswith("." + h) for h in HF_HOSTS):
        return {"Authorization": f"Bearer {token}"}
    return {}


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: Progress | None = None,
    session: requests.Session | None = None,
) -> Verified:
    """Fetch ``dest`` from the first mirror that gives verified bytes; see the module doc."""
    existing = verify_existing(dest, sha256)
    if existing:
        return existing
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise DownloadError(f"not a sha256 (64 hex digits): {sha256!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    http = session or requests.Session()
    errors: list[str] = []
    for url in urls:
        try:
            digest = _fetch(http, url, part_path(dest), size=size, progress=progress)
        except (requests.RequestException, OSError) as e:
            errors.append(f"{_short(url)}: {redact(str(e)).splitlines()[0][:200]}")
            continue
        if sha256 is not None and digest != sha256:
            part_path(dest).unlink(missing_ok=True)
            errors.append(
                f"{_short(url)}: sha256 mismatch (got {digest[:12]}…, want {sha256[:12]}…)"
            )
            continue
        os.replace(part_path(dest), dest)
        return write_marker(dest, digest)
    kind = (
        ChecksumMismatch
        if errors and all("sha256 mismatch" in e for e in errors)
        else DownloadError
    )
    raise kind(f"could not download {dest.name}: " + "; ".join(errors or ["no source given"]))


def _short(url: str) -> str:
    parsed = urlparse(url)
    return redact(f"{parsed.scheme}://{parsed.netloc}{parsed.path}")


def _fetch(
    http: requests.Session, url: str, part: Path, *, size: int | None, progress: Progress | None
) -> str:
    """Stream ``url`` into ``part`` (resuming it); return the sha256 of the whole file."""
    if url.startswith("file://"):
        return _copy_local(Path(urlparse(url).path), part, progress)
    digest = hashlib.sha256()
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = auth_headers(url)
    if have:
        headers["Range"] = f"bytes={have}-"
    with http.get(
        url, headers=headers, stream=True, timeout=TIMEOUT, allow_redirects=True
    ) as response:
        if response.status_code == 416 and have:  # asked past the end: the part may be complete
            return _hash_file(part, digest)
        response.raise_for_status()
        resumed = response.status_code == 206 and have > 0
        if resumed:
            _hash_file(part, digest)
        else:
            have = 0
        total = _total_size(response, have) or size
        done = have
        with part.open("ab" if resumed else "wb") as out:
            try:
                for block in response.iter_content(CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            except requests.exceptions.ChunkedEncodingError:
                pass  # the connection broke mid-body: keep what arrived, reported below
            out.flush()
            os.fsync(out.fileno())
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


def _copy_local(source: Path, part: Path, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    total = source.stat().st_size
    done = 0
    with source.open("rb") as src, part.open("wb") as out:
        while block := src.read(CHUNK):
            out.write(block)
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()
