"""Hostile sources: mirrors, downloads, names and secrets (unit tests, no lab).

Every source a controller fetches from decides what hosts run as root, so each is treated as
hostile: mirrors and URLs go through the download policy, bytes without a sha256 must be the
planned GGUF, names on disk are confined, the Hub's answers are checked before use, values read
back from disk are validated, and credentials never reach a message, a plan or a record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import urllib3.util.connection
from click.testing import CliRunner
from fileserver import FileServer

from rigctl.errors import BadInput
from rigctl.fetch import http, policy
from rigctl.fetch.http import (
    DownloadError,
    download,
    marker_path,
    read_marker,
    verify_existing,
    write_marker,
)
from rigctl.fetch.llamacpp_source import LlamaCppSource
from rigctl.fetch.model import fetch_model
from rigctl.models.hf_model import read_remote_repo
from rigctl.models.refs import model_file_name, parse_model_ref
from rigctl.plan.types import PlannedModel
from rigctl.redact import redact

SHA = "ab" * 32
SECRETS = ("hunter2pw", "SECRETTOKEN", "SIGVALUE", "CREDVALUE")


def _gguf(path: Path, floats: int = 1024) -> Path:
    """A small real GGUF (a one-layer llama header and one tensor of ``floats`` f32)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Hostile Test")
    writer.add_block_count(1)
    writer.add_context_length(2048)
    writer.add_embedding_length(16)
    writer.add_head_count(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_token_list([f"t{i}" for i in range(32)])
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((floats,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _model(url: str, size: int, *, exact: bool = True, sha256: str | None = None) -> PlannedModel:
    return PlannedModel(
        name="hostile",
        quant="Q4_K_M",
        format="gguf",
        source=url,
        urls=[url],
        size_bytes=size,
        size_exact=exact,
        sha256=sha256,
        runtime_ref="/var/lib/rigctl/models/x.gguf",
    )


@pytest.fixture()
def www(tmp_path: Path) -> Iterator[tuple[FileServer, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    _gguf(root / "good.gguf")
    _gguf(root / "bigger.gguf", floats=4096)  # a real GGUF, another model's size
    (root / "notes.gguf").write_text("just some text, not a model\n" * 200)
    with FileServer(root) as server:
        yield server, root


# --- the policy: which sources are taken at all ---------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://mirror.lan/x.gguf",
        "gopher://mirror.lan/x.gguf",
        "~/.ssh/id_ed25519",
        "~/x.gguf",
        "models/x.gguf",
        "./x.gguf",
        "data:application/octet-stream;base64,R0dVRg==",
        "https://[::1/x.gguf",
        "https://mirror.lan:99999/x.gguf",
        "file://relative/x.gguf",
        "file:relative.gguf",
        "https:///x.gguf",
        "http://mirror.lan/x.gguf",  # plain http beyond loopback, no allow_http
        "https://mirror.lan/a b.gguf",
        "https://evil.com\\@huggingface.co/x.gguf",
    ],
)
def test_policy_refuses_as_bad_input(url: str) -> None:
    with pytest.raises(BadInput) as err:
        policy.check_url(url, field="model_mirrors", sha256_known=True)
    assert err.value.field == "model_mirrors"


def test_policy_http_beyond_loopback_needs_allow_http_and_a_sha256() -> None:
    lan = "http://mirror.lan/x.gguf"
    with pytest.raises(BadInput, match="sha256"):
        policy.check_url(lan, field="model_mirrors", allow_http=True, sha256_known=False)
    assert policy.check_url(lan, field="model_mirrors", allow_http=True, sha256_known=True) == lan
    for loopback in (
        "http://127.0.0.1:8000/x.gguf",
        "http://127.9.9.9/x.gguf",
        "http://[::1]:80/x.gguf",
        "http://localhost/x.gguf",
    ):
        assert policy.check_url(loopback, field="model", sha256_known=False) == loopback
    assert policy.check_url("/srv/m a.gguf", field="m", sha256_known=False) == (
        "file:///srv/m%20a.gguf"
    )


def test_download_and_fetch_refuse_before_fetching(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as err:
        download(["ftp://mirror.lan/x.gguf"], tmp_path / "x.gguf", sha256=SHA)
    assert err.value.field == "source"
    model = _model("https://example.com/x.gguf", 1000)
    for mirror in ("~/.ssh/id_ed25519", "models/x.gguf", "https://[::1/x.gguf", "http://lan/x"):
        with pytest.raises(BadInput) as err:
            fetch_model(model, mirrors=[mirror], cache=tmp_path)
        assert err.value.field == "model_mirrors", mirror
    assert list(tmp_path.iterdir()) == []


def test_model_reference_with_broken_ipv6_is_bad_input() -> None:
    with pytest.raises(BadInput) as err:
        parse_model_ref("https://[::1/x.gguf")
    assert err.value.field == "model"


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "tarball", "location": "ftp://mirror.lan/llama.tar.gz", "sha256": SHA},
        {"kind": "tarball", "location": "http://mirror.lan/llama.tar.gz", "sha256": SHA},
        {"kind": "file", "location": "llama.tar.gz", "sha256": SHA},
        {"kind": "file", "location": "~/llama.tar.gz", "sha256": SHA},
        {"kind": "file", "location": "/srv/llama.tar.gz", "sha256": "$(touch /tmp/x)"},
        {"kind": "pypi-sdist", "location": "--index-url=http://evil/"},
        {"kind": "upstream", "location": "https://[::1/x.tar.gz"},
        "not a mapping",
    ],
)
def test_llamacpp_source_mirrors_follow_the_policy(entry: Any) -> None:
    with pytest.raises(BadInput) as err:
        LlamaCppSource.from_host_data({"version": "0c1e57098", "mirrors": [entry]}, "gpu1")
    assert err.value.field == "llamacpp_source"


def test_llamacpp_source_http_mirror_with_allow_http_and_sha256() -> None:
    data = {
        "version": "0c1e57098",
        "mirrors": [{"kind": "tarball", "location": "http://mirror.lan/l.tar.gz", "sha256": SHA}],
    }
    source = LlamaCppSource.from_host_data(data, "gpu1", allow_http=True)
    assert source.allow_http and source.mirrors[0].location == "http://mirror.lan/l.tar.gz"
    with pytest.raises(BadInput):
        LlamaCppSource.from_host_data({"version": "../../x", "mirrors": data["mirrors"]})


# --- acceptance: bytes no sha256 vouches for -----------------------------------------------


def test_non_gguf_mirror_is_refused_and_the_next_source_used(
    www: tuple[FileServer, Path], tmp_path: Path
) -> None:
    server, root = www
    good = (root / "good.gguf").read_bytes()
    model = _model(f"{server.url}/good.gguf", len(good))
    verified = fetch_model(model, mirrors=[f"{server.url}/notes.gguf"], cache=tmp_path / "c")
    assert verified.path.read_bytes() == good
    assert verified.sha256 == hashlib.sha256(good).hexdigest()
    assert [r["path"] for r in server.faults.requests] == ["/notes.gguf", "/good.gguf"]
    assert not any(p.name.endswith(".part") for p in verified.path.parent.iterdir())


def test_gguf_of_another_size_is_refused(www: tuple[FileServer, Path], tmp_path: Path) -> None:
    server, root = www
    good = (root / "good.gguf").read_bytes()
    model = _model(f"{server.url}/bigger.gguf", len(good))  # the source itself serves the wrong one
    with pytest.raises(DownloadError, match="the plan says") as err:
        fetch_model(model, mirrors=[f"{server.url}/notes.gguf"], cache=tmp_path / "c")
    assert "notes.gguf" in str(err.value) and "bigger.gguf" in str(err.value)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]  # nothing left at all
    # A size that is only approximately known (the catalog's rounding) still refuses it.
    rounded = _model(f"{server.url}/good.gguf", len(good) + 50_000_000, exact=False)
    with pytest.raises(DownloadError, match="planned model has"):
        fetch_model(rounded, cache=tmp_path / "c")
    within = _model(f"{server.url}/good.gguf", len(good) + 1_000_000, exact=False)
    assert fetch_model(within, cache=tmp_path / "c").path.read_bytes() == good


def test_cached_file_without_a_sha256_is_checked_again(
    www: tuple[FileServer, Path], tmp_path: Path
) -> None:
    server, root = www
    good = (root / "good.gguf").read_bytes()
    model = _model(f"{server.url}/good.gguf", len(good))
    cached = fetch_model(model, cache=tmp_path / "c").path
    cached.write_text("planted by an older run that checked nothing\n" * 105)
    write_marker(cached, hashlib.sha256(cached.read_bytes()).hexdigest())  # a valid marker
    assert fetch_model(model, cache=tmp_path / "c").path.read_bytes() == good


def test_file_mirror_with_a_private_key_is_refused(
    www: tuple[FileServer, Path], tmp_path: Path
) -> None:
    server, root = www
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    key.chmod(0o600)
    good = (root / "good.gguf").read_bytes()
    model = _model(f"{server.url}/good.gguf", len(good))
    for mirror in (str(key), key.as_uri()):
        verified = fetch_model(model, mirrors=[mirror], cache=tmp_path / "c")
        assert verified.path.read_bytes() == good
    # With only the key to take, nothing is taken, and nothing of it is left in the cache.
    only_key = _model(key.as_uri(), key.stat().st_size)
    with pytest.raises(DownloadError, match="not a GGUF"):
        fetch_model(
            dataclass_replace(only_key, source="x", urls=[]),
            mirrors=[str(key)],
            cache=tmp_path / "k",
        )
    assert not [p for p in (tmp_path / "k").rglob("*") if p.is_file()]
    # Without any check of its contents a file on the controller is not taken at all.
    with pytest.raises(DownloadError, match="needs a sha256"):
        download([key.as_uri()], tmp_path / "plain" / "x")


def dataclass_replace(model: PlannedModel, **changes: Any) -> PlannedModel:
    import dataclasses

    return dataclasses.replace(model, **changes)


def test_device_file_mirror_is_refused_without_reading_it(tmp_path: Path) -> None:
    model = _model("https://example.invalid/x.gguf", 1000)
    with pytest.raises(DownloadError, match="not a regular file"):
        fetch_model(dataclass_replace(model, urls=[]), mirrors=["/dev/zero"], cache=tmp_path)


def _route(monkeypatch: pytest.MonkeyPatch, names: dict[str, int]) -> None:
    """Connect to 127.0.0.1 for these host names (the name stays in the URL and Host)."""
    original = urllib3.util.connection.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        if host in names:
            return original(("127.0.0.1", names[host]), *args, **kwargs)
        return original(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)


class _Recorder:
    """A server that records each request's path and Authorization header; ``/redirect``
    answers 302 to ``location``, everything else the Hub-like JSON or bytes in ``files``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.location = ""
        self.files: dict[str, bytes] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                recorder.seen.append((self.path, self.headers.get("Authorization")))
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", recorder.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = recorder.files.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    yield server
    server.close()


def test_redirect_to_a_refused_url_is_not_taken(
    recorder: _Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route(monkeypatch, {"mirror.lan": recorder.port})
    payload = b"x" * 1000
    recorder.files["/m.gguf"] = payload
    recorder.location = f"http://mirror.lan:{recorder.port}/m.gguf"  # plain http, not loopback
    with pytest.raises(DownloadError, match="redirected to a URL the download policy refuses"):
        download(
            [f"http://127.0.0.1:{recorder.port}/redirect"],
            tmp_path / "m.gguf",
            sha256=hashlib.sha256(payload).hexdigest(),
        )
    assert not (tmp_path / "m.gguf").exists()


# --- tokens: only to the Hub, only over https ----------------------------------------------


def test_hub_token_goes_only_to_the_hub_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_TESTTOKENabcdefghijklmnop")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    bearer = {"Authorization": "Bearer hf_TESTTOKENabcdefghijklmnop"}
    for url in (
        "https://huggingface.co/o/r/resolve/main/m.gguf",
        "https://cdn-lfs.huggingface.co/x",
        "https://cas-bridge.xethub.hf.co/x",
        "https://HuggingFace.co/o/r/resolve/main/m.gguf",
    ):
        assert http.auth_headers(url) == bearer, url
    for url in (
        "http://huggingface.co/o/r/resolve/main/m.gguf",  # plain http
        "https://huggingface.co.evil.com/o/r/resolve/main/m.gguf",
        "https://evilhuggingface.co/o/r/resolve/main/m.gguf",
        "https://evil.com/huggingface.co/m.gguf",
        "https://huggingface.co@evil.com/m.gguf",
        "https://user:pw@huggingface.co/m.gguf",
        "https://evil.com\\@huggingface.co/m.gguf",
        "https://huggingface.co:8443/m.gguf",
        "https://[::1/m.gguf",
        "ftp://huggingface.co/m.gguf",
    ):
        assert http.auth_headers(url) == {}, url
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.corp.lan:8443")
    assert http.auth_headers("https://hub.corp.lan:8443/api/models/o/r") == bearer
    assert http.auth_headers("https://hub.corp.lan/api/models/o/r") == {}
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.corp.lan")
    assert http.auth_headers("http://hub.corp.lan/api/models/o/r") == {}


def test_hub_token_is_not_sent_over_http_to_a_hub_named_host(
    recorder: _Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real requests: the host names resolve to the local server, the token must not arrive."""
    monkeypatch.setenv("HF_TOKEN", "hf_TESTTOKENabcdefghijklmnop")
    _route(monkeypatch, {"huggingface.co": recorder.port, "huggingface.co.evil.com": recorder.port})
    payload = b"y" * 512
    recorder.files["/o/r/resolve/main/m.gguf"] = payload
    sha = hashlib.sha256(payload).hexdigest()
    for host in ("huggingface.co", "huggingface.co.evil.com"):
        dest = tmp_path / host / "m.gguf"
        url = f"http://{host}:{recorder.port}/o/r/resolve/main/m.gguf"
        assert download([url], dest, sha256=sha, allow_http=True).sha256 == sha
    assert len(recorder.seen) == 2 and all(auth is None for _, auth in recorder.seen)


def test_hub_api_is_not_sent_the_token_over_http(
    recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_TESTTOKENabcdefghijklmnop")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{recorder.port}")
    recorder.files["/acme/tiny/resolve/main/config.json"] = json.dumps(_CONFIG).encode()
    recorder.files["/api/models/acme/tiny/revision/main"] = json.dumps(
        {"sha": "a" * 40, "siblings": [{"rfilename": "model.safetensors", "size": 1000}]}
    ).encode()
    assert read_remote_repo("acme/tiny").hf_revision == "a" * 40
    assert recorder.seen and all(auth is None for _, auth in recorder.seen)


# --- names on disk --------------------------------------------------------------------------


def test_file_names_are_confined_and_distinct() -> None:
    names = {
        source: model_file_name(source)
        for source in (
            "https://h/..@.gguf",
            "https://h/a@1.gguf",
            "https://h/a@2.gguf",
            "hf://o/r/a.gguf@1",
            "hf://o/r/a.gguf@2",
            "https://h/..",
            "https://h/.hidden.gguf",
            "/srv/$(touch x).gguf",
            "/",
        )
    }
    for source, name in names.items():
        assert name not in ("", ".", "..") and not name.startswith("."), source
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert len(set(names.values())) == len(names)  # no two sources share a file
    assert model_file_name("hf://o/r/dir/a.gguf") == "a.gguf"  # clean names are kept
    assert model_file_name("hf://o/r/a.gguf@main") == "a.gguf"
    assert parse_model_ref("https://h/..@.gguf").basename == names["https://h/..@.gguf"]
    assert (
        parse_model_ref("https://h/a@1.gguf").basename
        != parse_model_ref("https://h/a@2.gguf").basename
    )


def test_cached_names_never_leave_the_cache_nor_collide(
    www: tuple[FileServer, Path], tmp_path: Path
) -> None:
    server, root = www
    good = (root / "good.gguf").read_bytes()
    for name in ("..@.gguf", "a@1.gguf", "a@2.gguf"):
        (root / name).write_bytes(good)
    cache = tmp_path / "cache"
    paths = set()
    for name in ("..@.gguf", "a@1.gguf", "a@2.gguf"):
        url = f"{server.url}/{name}"
        verified = fetch_model(_model(url, len(good)), cache=cache)
        assert verified.path.resolve().parent.parent == cache.resolve()
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", verified.path.name), verified.path
        paths.add(verified.path)
    assert len(paths) == 3


def test_host_path_of_a_model_stays_in_the_models_directory(
    www: tuple[FileServer, Path], tmp_path: Path
) -> None:
    from test_cli import RTX4090_HOST

    from rigctl.host_plans import plan_offline

    server, root = www
    hardware = tmp_path / "hw.json"
    hardware.write_text(json.dumps({"hosts": {"rig": RTX4090_HOST}}))
    refs = []
    for name in ("..@.gguf", "a@1.gguf", "a@2.gguf"):
        _gguf(root / name)
        plan = plan_offline(str(hardware), {"model": f"{server.url}/{name}", "runtime": "llamacpp"})
        refs.append(plan.plans["rig"].plan.model.runtime_ref)
    assert all(os.path.basename(r) not in ("..", ".") for r in refs)
    assert len(set(refs)) == 3


# --- values the Hub answers, values read back from disk ------------------------------------

_CONFIG = {
    "model_type": "qwen2",
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "hidden_size": 64,
    "max_position_embeddings": 2048,
    "vocab_size": 1000,
}


@pytest.mark.parametrize("sha", ["../../../../etc", None, "A" * 40, "a" * 39, ["a" * 40]])
def test_hub_sha_must_be_a_commit(
    sha: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "acme" / "tiny" / "resolve" / "main"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text(json.dumps(_CONFIG))
    api = tmp_path / "api" / "models" / "acme" / "tiny" / "revision"
    api.mkdir(parents=True)
    info: dict[str, Any] = {"siblings": [{"rfilename": "model.safetensors", "size": 1000}]}
    if sha is not None:
        info["sha"] = sha
    (api / "main").write_text(json.dumps(info))
    with FileServer(tmp_path) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(BadInput, match="40 hex digits") as err:
            read_remote_repo("acme/tiny")
    assert err.value.field == "model"


@pytest.mark.parametrize(
    "record",
    [
        {"sha256": "$(touch /tmp/x)"},
        {"sha256": "A" * 64},
        {"sha256": "a" * 63},
        {"size": "SIZE"},
        {"size": True},
        {"mtime_ns": 1.5},
        [],
    ],
)
def test_malformed_marker_is_ignored(record: Any, tmp_path: Path) -> None:
    model = _gguf(tmp_path / "local.gguf")
    info = model.stat()
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    if isinstance(record, dict):
        record = {"sha256": "b" * 64, "size": info.st_size, "mtime_ns": info.st_mtime_ns, **record}
    marker_path(model).write_text(json.dumps(record))
    assert read_marker(model) is None
    assert verify_existing(model, None) is None
    # The local model is hashed again and a good marker written in its place.
    planned = _model(str(model), info.st_size)
    planned = dataclass_replace(planned, urls=[])
    assert fetch_model(planned).sha256 == sha
    assert read_marker(model) is not None and read_marker(model).sha256 == sha  # type: ignore[union-attr]


# --- secrets: never in a message, a plan or a record ----------------------------------------

SIGNED = "?token=SECRETTOKEN&sig=SIGVALUE&X-Amz-Credential=CREDVALUE"


def test_download_errors_are_redacted(tmp_path: Path) -> None:
    assert http.redact is redact  # one redaction for smoke, load and fetch
    with pytest.raises(DownloadError) as err:
        download(
            [f"http://alice:hunter2pw@127.0.0.1:1/m.gguf{SIGNED}"], tmp_path / "m.gguf", sha256=SHA
        )
    message = str(err.value)
    assert "127.0.0.1:1/m.gguf" in message
    assert not [s for s in SECRETS if s in message], message
    with pytest.raises(BadInput) as bad:
        policy.check_url(
            f"ftp://alice:hunter2pw@h/m.gguf{SIGNED}", field="model", sha256_known=True
        )
    assert not [s for s in SECRETS if s in str(bad.value)]


def test_plan_json_shows_no_credentials_and_the_model_still_fetches(
    www: tuple[FileServer, Path], tmp_path: Path
) -> None:
    from rigctl.cli.plan import plan
    from test_cli import RTX4090_HOST

    from rigctl.host_plans import plan_offline

    server, root = www
    hardware = tmp_path / "hw.json"
    hardware.write_text(json.dumps({"hosts": {"rig": RTX4090_HOST}}))
    url = server.url.replace("http://", "http://alice:hunter2pw@") + "/good.gguf" + SIGNED
    result = CliRunner().invoke(plan, ["--hardware", str(hardware), "--model", url, "--json"])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 0, output
    document = json.loads(result.stdout)
    model = document["hosts"]["rig"]["model"]
    assert model["source"].endswith("/good.gguf?token=***&sig=***&X-Amz-Credential=***")
    assert not [s for s in SECRETS if s in output], output
    # The plan itself holds the masked form (lockfiles and progress lines are written from
    # it), not only its rendering; fetching still uses the real URL (this process only).
    planning = plan_offline(str(hardware), {"model": url})
    assert not [s for s in SECRETS if s in json.dumps(planning.to_json())]
    planned = planning.plans["rig"].plan.model
    assert "hunter2pw" not in planned.source and not any("SIGVALUE" in u for u in planned.urls)
    verified = fetch_model(planned, cache=tmp_path / "cache")
    assert verified.path.read_bytes() == (root / "good.gguf").read_bytes()
    assert server.faults.requests[-1]["path"] == "/good.gguf" + SIGNED


def test_a_model_directory_linking_outside_itself_is_refused(tmp_path: Path) -> None:
    """A shared model directory whose ``tokenizer.json`` is a link to the controller's SSH key
    would push the key to every host."""
    from rigctl.errors import BadInput
    from rigctl.models.hf_model import served_files

    secret = tmp_path / "id_ed25519"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0" * 16)
    assert [p.name for p in served_files(model)] == ["config.json", "model.safetensors"]
    (model / "tokenizer.json").symlink_to(secret)
    with pytest.raises(BadInput, match="links outside the model directory"):
        served_files(model)
