"""Downloads: resumed, verified, atomic, mirrored; against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fileserver import FileServer

from rigctl.fetch import http
from rigctl.fetch.http import ChecksumMismatch, DownloadError, download, marker_path, part_path
from rigctl.fetch.model import hf_lfs_sha256


@pytest.fixture()
def served(tmp_path: Path) -> tuple[FileServer, bytes, str]:
    root = tmp_path / "www"
    root.mkdir()
    payload = os.urandom(5 * 1024 * 1024 + 123)
    (root / "model.gguf").write_bytes(payload)
    with FileServer(root) as server:
        yield server, payload, hashlib.sha256(payload).hexdigest()


def test_download_verifies_and_places_atomically(
    served: tuple[FileServer, bytes, str], tmp_path: Path
) -> None:
    server, payload, sha = served
    dest = tmp_path / "cache" / "model.gguf"
    seen: list[tuple[int, int | None]] = []
    verified = download(
        [f"{server.url}/model.gguf"], dest, sha256=sha, progress=lambda d, t: seen.append((d, t))
    )
    assert dest.read_bytes() == payload and verified.sha256 == sha
    assert not part_path(dest).exists() and marker_path(dest).exists()
    assert seen[-1] == (len(payload), len(payload))


def test_interrupted_download_resumes_with_range(
    served: tuple[FileServer, bytes, str], tmp_path: Path
) -> None:
    server, payload, sha = served
    dest = tmp_path / "model.gguf"
    server.faults.cut_after_bytes = 2 * 1024 * 1024
    with pytest.raises(DownloadError, match="will resume"):
        download([f"{server.url}/model.gguf"], dest, sha256=sha)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == 2 * 1024 * 1024
    download([f"{server.url}/model.gguf"], dest, sha256=sha)
    assert dest.read_bytes() == payload
    assert server.faults.requests[-1]["range"] == f"bytes={2 * 1024 * 1024}-"


def test_server_ignoring_range_restarts_cleanly(
    served: tuple[FileServer, bytes, str], tmp_path: Path
) -> None:
    server, payload, sha = served
    dest = tmp_path / "model.gguf"
    part_path(dest).write_bytes(payload[:1000])
    server.faults.ignore_range = True
    download([f"{server.url}/model.gguf"], dest, sha256=sha)
    assert dest.read_bytes() == payload


def test_corrupted_download_is_rejected_and_nothing_is_left(
    served: tuple[FileServer, bytes, str], tmp_path: Path
) -> None:
    server, _payload, sha = served
    dest = tmp_path / "model.gguf"
    server.faults.corrupt = True
    with pytest.raises(ChecksumMismatch):
        download([f"{server.url}/model.gguf"], dest, sha256=sha)
    assert not dest.exists() and not part_path(dest).exists() and not marker_path(dest).exists()


def test_mirrors_are_tried_in_order(served: tuple[FileServer, bytes, str], tmp_path: Path) -> None:
    server, payload, sha = served
    dest = tmp_path / "model.gguf"
    download(
        [f"{server.url}/missing.gguf", "http://127.0.0.1:1/none.gguf", f"{server.url}/model.gguf"],
        dest,
        sha256=sha,
    )
    assert dest.read_bytes() == payload


def test_verified_marker_avoids_rehashing(
    served: tuple[FileServer, bytes, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _payload, sha = served
    dest = tmp_path / "model.gguf"
    download([f"{server.url}/model.gguf"], dest, sha256=sha)
    monkeypatch.setattr(http, "sha256_file", lambda _p: pytest.fail("re-hashed a verified file"))
    requests_before = len(server.faults.requests)
    assert download([f"{server.url}/model.gguf"], dest, sha256=sha).sha256 == sha
    assert len(server.faults.requests) == requests_before


def test_changed_file_loses_its_marker(
    served: tuple[FileServer, bytes, str], tmp_path: Path
) -> None:
    server, payload, sha = served
    dest = tmp_path / "model.gguf"
    download([f"{server.url}/model.gguf"], dest, sha256=sha)
    with dest.open("r+b") as handle:
        handle.truncate(100)
    assert http.verify_existing(dest, sha) is None
    download([f"{server.url}/model.gguf"], dest, sha256=sha)
    assert dest.read_bytes() == payload


def test_malformed_checksum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not a sha256"):
        download(["http://127.0.0.1:1/x.gguf"], tmp_path / "x.gguf", sha256="abc")


def test_hf_token_never_appears_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    assert "hf_secret_value_123" not in http.redact(
        "failed: Bearer hf_secret_value_123 at x?token=abc"
    )
    assert http.auth_headers("https://huggingface.co/a/b/resolve/main/f.gguf") == {
        "Authorization": "Bearer hf_secret_value_123"
    }
    assert http.auth_headers("http://127.0.0.1:8000/f.gguf") == {}


def test_lfs_sha256_from_linked_etag(served: tuple[FileServer, bytes, str]) -> None:
    server, _payload, sha = served
    server.faults.linked_etag = sha
    assert hf_lfs_sha256(f"{server.url}/model.gguf") == sha
