"""Model files on the controller: fetched once into a cache, verified, then pushed to hosts.

A fleet downloads each model once: hosts receive it from the controller over SSH
(``rigctl.operations.files.verified_file``). Sources are tried in order: the host data's
``model_mirrors`` first (your LAN mirror, a file on this machine), then the model's own URLs
(Hugging Face resolve URLs for catalog and ``hf://`` models).

A mirror is trusted with nothing: every source is checked by the download policy
(:mod:`rigctl.fetch.policy`), and its bytes are taken only when they match the model's sha256
(given, or the one Hugging Face publishes) or, when none is known, when they are a GGUF file
of the planned model's size (exact, or within the catalog's rounding). A private key, a text
file or another model from a mirror is refused and the next source tried.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from rigctl.errors import BadInput
from rigctl.fetch import policy
from rigctl.fetch.http import (
    Accept,
    ChecksumMismatch,
    Progress,
    Verified,
    auth_headers,
    download,
    sha256_file,
    verify_existing,
    write_marker,
)
from rigctl.models.gguf_header import read_local_header
from rigctl.models.refs import model_file_name
from rigctl.paths import cache_dir
from rigctl.plan.types import PlannedModel
from rigctl.redact import real_url

#: How far a size the catalog lists rounded (GB, two decimals) may be from the real one.
ROUNDED_SIZE_SLACK = 5_000_000

HF_RESOLVE = re.compile(r"^https://huggingface\.co/[^/]+/[^/]+/resolve/")


def models_cache() -> Path:
    return cache_dir() / "models"


def hf_lfs_sha256(url: str, session: requests.Session | None = None) -> str | None:
    """The sha256 Hugging Face publishes for an LFS file (``X-Linked-Etag`` of the resolve URL)."""
    http = session or requests.Session()
    try:
        response = http.head(
            url, headers=auth_headers(url), allow_redirects=False, timeout=(10, 30)
        )
    except requests.RequestException:
        return None
    etag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag") or ""
    etag = etag.strip().strip('"').removeprefix("W/").strip('"')
    return etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None


def size_slack(model: PlannedModel) -> int:
    """Bytes the real file may differ from ``model.size_bytes`` (0 when that is exact)."""
    if model.size_exact:
        return 0
    return max(ROUNDED_SIZE_SLACK, model.size_bytes // 100)


def gguf_check(model: PlannedModel) -> Accept:
    """The check for a file no sha256 vouches for: a readable GGUF header (magic ``GGUF``,
    parsed by the ``gguf`` library) and the planned size."""

    def accept(path: Path) -> str | None:
        try:
            with path.open("rb") as handle:
                magic = handle.read(4)
        except OSError as e:
            return f"unreadable ({e.strerror})"
        if magic != b"GGUF":
            return "not a GGUF file (and no sha256 to check it against)"
        size = path.stat().st_size
        if abs(size - model.size_bytes) > size_slack(model):
            return f"{size:,} bytes, the planned model has {model.size_bytes:,}"
        try:
            read_local_header(path)
        except BadInput as e:
            if "missing shards" not in e.detail:  # one shard of a split GGUF, checked alone
                return f"not a readable GGUF file ({e.detail[:120]})"
        return None

    return accept


def fetch_model(
    model: PlannedModel,
    *,
    mirrors: list[str] | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
    allow_http: bool = False,
) -> Verified:
    """Return the verified local file for ``model``, downloading it when not cached.

    ``mirrors`` are host data ``model_mirrors`` (URLs, ``file:`` URLs or absolute paths),
    refused by the policy as BadInput (field ``model_mirrors``); ``allow_http`` is host data
    ``allow_http``.
    """
    local = _local_source(real_url(model.source))
    if local is not None:
        if model.sha256:
            existing = verify_existing(local, model.sha256)
            if existing is None:
                raise ChecksumMismatch(f"{local}: sha256 is not {model.sha256}")
            return existing
        existing = verify_existing(local, None)
        if existing:
            return existing
        return write_marker(local, sha256_file(local))

    own = [real_url(u) for u in model.urls]
    sha256 = model.sha256
    if sha256 is None:
        for url in own:
            if HF_RESOLVE.match(url):
                sha256 = hf_lfs_sha256(url)
                if sha256:
                    break
    known = sha256 is not None
    urls = [
        *policy.check_urls(
            list(mirrors or []), field="model_mirrors", allow_http=allow_http, sha256_known=known
        ),
        *policy.check_urls(own, field="model", allow_http=allow_http, sha256_known=known),
    ]
    if not urls:
        raise BadInput(f"{model.source}: no URL to fetch the model from", field="model")
    name = model_file_name(own[0] if own else urls[0])
    bucket = sha256[:16] if sha256 else hashlib.sha256(model.source.encode()).hexdigest()[:16]
    dest = (cache or models_cache()) / bucket / name
    return download(
        urls,
        dest,
        sha256=sha256,
        size=model.size_bytes if model.size_exact else None,
        max_bytes=model.size_bytes + size_slack(model),
        accept=gguf_check(model),
        allow_http=allow_http,
        field="model",
        progress=progress,
    )


def _local_source(source: str) -> Path | None:
    if source.startswith("file://"):
        return Path(unquote(urlsplit(source).path))
    if "://" not in source and source.lower().endswith(".gguf") and Path(source).exists():
        return Path(source).resolve()
    return None
