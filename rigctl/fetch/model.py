"""Model files on the controller: fetched once into a cache, verified, then pushed to hosts.

A fleet downloads each model once: hosts receive it from the controller over SSH
(``rigctl.operations.files.verified_file``). Sources are tried in order: the host data's
``model_mirrors`` first (your LAN mirror, a file on this machine), then the model's own URLs
(Hugging Face resolve URLs for catalog and ``hf://`` models).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlparse

import requests

from rigctl.fetch.http import (
    ChecksumMismatch,
    Progress,
    Verified,
    auth_headers,
    download,
    sha256_file,
    verify_existing,
    write_marker,
)
from rigctl.paths import cache_dir
from rigctl.plan.types import PlannedModel

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


def fetch_model(
    model: PlannedModel,
    *,
    mirrors: list[str] | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> Verified:
    """Return the verified local file for ``model``, downloading it when not cached."""
    local = _local_source(model.source)
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

    urls = [*(mirrors or []), *model.urls]
    sha256 = model.sha256
    if sha256 is None:
        for url in model.urls:
            if HF_RESOLVE.match(url):
                sha256 = hf_lfs_sha256(url)
                if sha256:
                    break
    basename = Path(urlparse(model.urls[0] if model.urls else urls[0]).path).name
    bucket = sha256[:16] if sha256 else hashlib.sha256(model.source.encode()).hexdigest()[:16]
    dest = (cache or models_cache()) / bucket / basename
    return download(
        urls,
        dest,
        sha256=sha256,
        size=model.size_bytes if model.size_exact else None,
        progress=progress,
    )


def _local_source(source: str) -> Path | None:
    if source.startswith("file://"):
        return Path(urlparse(source).path)
    if "://" not in source and source.lower().endswith(".gguf") and Path(source).exists():
        return Path(source).resolve()
    return None
