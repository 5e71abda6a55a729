"""Read a GGUF file's header — locally, or remotely with HTTP Range requests.

Only the header is read: the metadata key/values and the tensor table, a few MB even for a
70B model (a large vocabulary is most of it). A remote header is fetched in growing ranges
into a temporary file and parsed by the ``gguf`` library's :class:`GGUFReader`; tensor data
is never downloaded.

Just over 400 lines, kept whole on purpose: reading a header and distrusting what it says (its
values' types checked, ``general.name`` cleaned for the terminal) are one job; splitting them
would put the untrusted values one import away from their checks.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from gguf import (
    GGML_QUANT_SIZES,
    GGMLQuantizationType,
    GGUFEndian,
    GGUFReader,
    GGUFValueType,
    LlamaFileType,
)

from rigctl.errors import BadInput, RigctlError
from rigctl.models.facts import EXPERT_TENSOR, ModelFacts, WeightSplit, swa_layers_for
from rigctl.redact import redact

FIRST_FETCH_BYTES = 4 << 20  # enough for most headers (a 128k vocabulary is ~3 MB)
SHARD_FETCH_BYTES = 256 << 10  # a later shard of a split GGUF: its tensor table only
MAX_HEADER_BYTES = 256 << 20  # a header larger than this is not a model we can plan for
HTTP_TIMEOUT_S = 30.0

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)

#: A model's own metadata is written by whoever published the file: names are cut to this.
NAME_MAX = 80
#: An architecture selects code paths (metadata keys, SWA patterns) and is printed: a plain name.
_ARCHITECTURE = re.compile(r"^[a-z0-9_.-]{1,64}$")


def clean_text(value: object, limit: int = NAME_MAX) -> str:
    """Metadata text as a short printable line: every character that is not printable
    (controls, format and line-separator characters, other whitespace) becomes a space,
    runs of spaces one, and the result is cut to ``limit`` characters.

    A name from a GGUF reaches units, plists and the terminal; it is never trusted to be a
    line of text. Empty when nothing printable is left (callers fall back to another name).
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = "".join(char if char.isprintable() else " " for char in str(value))
    return " ".join(text.split())[:limit].rstrip()


def _architecture(value: object) -> str:
    """``general.architecture``, which must be a plain lower-case name (``llama``, ``gemma3``)."""
    if not value:
        raise BadInput("GGUF has no general.architecture", field="model")
    if not isinstance(value, str) or not _ARCHITECTURE.match(value):
        raise BadInput(
            f"GGUF general.architecture {clean_text(repr(value), 40)} is not a plain name "
            "(lower-case letters, digits, '_', '.', '-')",
            field="model",
        )
    return value


class ModelFetchError(RigctlError):
    """A remote model header could not be fetched (network, HTTP status, no size); its
    message is redacted (a URL's userinfo or signed-URL token never shows)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class _NeedMoreBytes(Exception):
    """The header runs past the bytes fetched so far."""

    def __init__(self, needed: int):
        super().__init__(needed)
        self.needed = needed


# Arrays longer than this are skipped, not decoded: only the tokenizer has them, and the
# planner needs just their length (GGUFReader decodes arrays element by element, seconds
# for a 128k vocabulary and its merges).
_DECODED_ARRAY_MAX = 4096


class _HeaderReader(GGUFReader):
    """A GGUFReader that parses the header only, so it works on a file cut after it.

    Reads past the end raise :class:`_NeedMoreBytes` instead of yielding short arrays; long
    arrays are stepped over (their parts keep the item type and length, so
    ``field.parts[4]`` is the element count either way); the tensor table is kept as raw
    fields instead of being mapped onto tensor data.
    """

    tensor_fields: list[Any]

    def _get(
        self, offset: int, dtype: Any, count: int = 1, override_order: Any = None
    ) -> Any:
        end = offset + np.dtype(dtype).itemsize * int(count)
        if end > self.data.shape[0]:
            raise _NeedMoreBytes(end)
        return super()._get(offset, dtype, count, override_order)

    def _get_field_parts(
        self, orig_offs: int, raw_type: int
    ) -> tuple[int, list[Any], list[int], list[GGUFValueType]]:
        if raw_type != GGUFValueType.ARRAY:
            return super()._get_field_parts(orig_offs, raw_type)
        item_type = self._get(orig_offs, np.uint32)
        length = self._get(orig_offs + 4, np.uint64)
        count = int(length[0])
        if count <= _DECODED_ARRAY_MAX:
            return super()._get_field_parts(orig_offs, raw_type)
        offs = orig_offs + 12
        kind = GGUFValueType(int(item_type[0]))
        if kind == GGUFValueType.STRING:
            offs = self._skip_strings(offs, count)
        elif kind in self.gguf_scalar_to_np:
            offs += np.dtype(self.gguf_scalar_to_np[kind]).itemsize * count
            if offs > self.data.shape[0]:
                raise _NeedMoreBytes(offs)
        else:
            return super()._get_field_parts(orig_offs, raw_type)
        return offs - orig_offs, [item_type, length], [], [GGUFValueType.ARRAY, kind]

    def _skip_strings(self, offs: int, count: int) -> int:
        """Return the offset after ``count`` length-prefixed strings starting at ``offs``."""
        view = memoryview(self.data)  # type: ignore[arg-type]  # a memmap is a buffer
        size = len(view)
        big = self.endianess == GGUFEndian.BIG
        for _ in range(count):
            if offs + 8 > size:
                raise _NeedMoreBytes(offs + 8)
            offs += 8 + int.from_bytes(view[offs : offs + 8], "big" if big else "little")
        if offs > size:
            raise _NeedMoreBytes(offs)
        return offs

    def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
        self.tensor_fields = fields


def _parse(path: str) -> _HeaderReader:
    """Return a parsed header; raise _NeedMoreBytes or BadInput (not a GGUF)."""
    try:
        return _HeaderReader(path)
    except _NeedMoreBytes:
        raise
    except (ValueError, KeyError, OSError) as exc:
        raise BadInput(f"not a readable GGUF file ({exc})", field="model") from exc


def _value(reader: _HeaderReader, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _int(value: Any) -> int | None:
    """Return an int from a scalar or a per-layer array (its largest entry)."""
    if value is None:
        return None
    try:
        if isinstance(value, list):
            return int(max(value)) if value else None
        return int(value)
    except (TypeError, ValueError):
        return None  # a string where a number belongs: the file does not say


def _quant_name(reader: _HeaderReader) -> str | None:
    """Return general.file_type as llama.cpp names it (15 → "Q4_K_M")."""
    raw = _value(reader, "general.file_type")
    if not isinstance(raw, int) or isinstance(raw, bool):
        return None  # absent, or not the integer it must be: the metadata says nothing
    try:
        name = LlamaFileType(int(raw)).name
    except ValueError:
        return f"FTYPE_{raw}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


@dataclass(frozen=True)
class _Tensor:
    """One entry of a tensor table: its name, element count and bytes (None: a type this
    gguf library does not know)."""

    name: str
    elements: int
    n_bytes: int | None


def _tensors(reader: _HeaderReader) -> list[_Tensor]:
    tensors = []
    for field in reader.tensor_fields:
        _name_len, name_data, _n_dims, dims, raw_dtype, _offset = field.parts
        elements = int(np.prod(dims.astype(np.int64)))
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(int(raw_dtype[0]))]
            n_bytes: int | None = elements * type_size // block_size
        except (ValueError, KeyError):
            n_bytes = None
        tensors.append(_Tensor(bytes(name_data).decode("utf-8", "replace"), elements, n_bytes))
    return tensors


def _weight_split(tensors: list[_Tensor], n_layers: int) -> tuple[WeightSplit | None, bool]:
    """Return (measured weight split, tied embeddings) from the tensor table (every shard's).

    The split is None when a tensor type is unknown to this gguf library.
    """
    token_embd = 0
    output = 0
    blocks = [0] * n_layers
    experts = [0] * n_layers
    names = {tensor.name for tensor in tensors}
    tied = "output.weight" not in names
    for tensor in tensors:
        if tensor.n_bytes is None:
            return None, tied
        match = re.match(r"blk\.(\d+)\.", tensor.name)
        if match and int(match.group(1)) < n_layers:
            blocks[int(match.group(1))] += tensor.n_bytes
            if EXPERT_TENSOR.search(tensor.name):
                experts[int(match.group(1))] += tensor.n_bytes
        elif tensor.name.startswith("token_embd."):
            token_embd += tensor.n_bytes
        else:
            output += tensor.n_bytes
    if tied:
        # llama.cpp loads a copy of the tied embedding as the output head on the output
        # device (TENSOR_DUPLICATED), so it counts there too.
        output += token_embd
    return WeightSplit(token_embd, tuple(blocks), output, tuple(experts) if any(experts) else ()), tied


def _parameters(tensors: list[_Tensor], expert_count: int, expert_used: int) -> tuple[int, int]:
    """(parameters, active parameters): one token uses ``expert_used`` of ``expert_count``
    routed experts, and every other tensor."""
    total = sum(tensor.elements for tensor in tensors)
    routed = sum(tensor.elements for tensor in tensors if EXPERT_TENSOR.search(tensor.name))
    if expert_count > 1 and 0 < expert_used <= expert_count:
        return total, total - routed + routed * expert_used // expert_count
    return total, total


def _model_name(reader: _HeaderReader, source: str) -> str:
    """``general.name`` cleaned (:func:`clean_text`); the file's stem when nothing printable
    is left of it; empty when the file has none (the plan names the architecture then)."""
    raw = _value(reader, "general.name")
    if raw is None or raw == "":
        return ""
    name = clean_text(raw)
    if name:
        return name
    stem = source.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return clean_text(stem.removesuffix(".gguf").removesuffix(".GGUF"))


def _facts(
    reader: _HeaderReader, *, tensors: list[_Tensor], file_size: int, source: str,
    sources: tuple[str, ...], size_exact: bool, sha256: str | None,
) -> ModelFacts:
    """``reader``: the first (or only) shard's header, which holds the metadata; ``tensors``:
    every shard's tensor table."""
    arch = _architecture(_value(reader, "general.architecture"))
    n_layers = _int(_value(reader, f"{arch}.block_count"))
    n_embd = _int(_value(reader, f"{arch}.embedding_length"))
    n_heads = _int(_value(reader, f"{arch}.attention.head_count"))
    if not n_layers or not n_embd or not n_heads:
        raise BadInput(
            f"GGUF ({arch}) lacks block_count, embedding_length or head_count", field="model"
        )
    n_kv_heads = _int(_value(reader, f"{arch}.attention.head_count_kv")) or n_heads
    head_dim = _int(_value(reader, f"{arch}.attention.key_length")) or n_embd // n_heads
    vocab = _int(_value(reader, f"{arch}.vocab_size"))
    if vocab is None:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        vocab = int(tokens.parts[4][0]) if tokens is not None else 0  # the array's length
    window = _int(_value(reader, f"{arch}.attention.sliding_window"))
    sliding: tuple[int, ...] = ()
    if window:
        pattern = _value(reader, f"{arch}.attention.sliding_window_pattern")
        if isinstance(pattern, list):
            sliding = tuple(i for i, is_swa in enumerate(pattern[:n_layers]) if is_swa)
        else:
            sliding = swa_layers_for(arch, n_layers, _int(pattern))
    weights, tied = _weight_split(tensors, n_layers)
    experts = _int(_value(reader, f"{arch}.expert_count")) or 0
    used = _int(_value(reader, f"{arch}.expert_used_count")) or 0
    parameters, active = _parameters(tensors, experts, used)
    return ModelFacts(
        architecture=str(arch),
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        embedding_length=n_embd,
        context_length=_int(_value(reader, f"{arch}.context_length")) or 0,
        file_size=file_size,
        name=_model_name(reader, source),
        quant=_quant_name(reader),
        vocab_size=vocab,
        sliding_window=window or None,
        sliding_layers=sliding,
        tied_embeddings=tied,
        weights=weights,
        source=source,
        sources=sources,
        sha256=sha256,
        size_exact=size_exact,
        expert_count=experts,
        expert_used_count=used,
        expert_ffn_length=_int(_value(reader, f"{arch}.expert_feed_forward_length")),
        feed_forward_length=_int(_value(reader, f"{arch}.feed_forward_length")),
        expert_shared_count=_int(_value(reader, f"{arch}.expert_shared_count")) or 0,
        parameters=parameters,
        active_parameters=active,
    )


def _shard_names(name: str, count: int) -> list[str]:
    """Return every shard name of a split GGUF given the first one (itself when unsplit)."""
    match = _SHARD.search(name)
    if count <= 1 or not match:
        return [name]
    stem = name[: match.start()]
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def read_local_header(path: str | os.PathLike[str], *, sha256: str | None = None) -> ModelFacts:
    """Return the :class:`ModelFacts` of a local GGUF (all shards summed for a split file).

    Raises BadInput (field model) for a missing file or one that is not GGUF.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no such file: {path}", field="model")
    try:
        reader = _parse(str(path))
    except _NeedMoreBytes as exc:
        raise BadInput(f"{path}: GGUF header is truncated", field="model") from exc
    count = _int(_value(reader, "split.count")) or 1
    shards = [path.with_name(n) for n in _shard_names(path.name, count)]
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise BadInput(f"split GGUF is missing shards: {', '.join(missing)}", field="model")
    size = sum(s.stat().st_size for s in shards)
    tensors = _tensors(reader)
    for shard in shards[1:]:
        try:
            tensors += _tensors(_parse(str(shard)))
        except _NeedMoreBytes as exc:
            raise BadInput(f"{shard}: GGUF header is truncated", field="model") from exc
    return _facts(
        reader, tensors=tensors, file_size=size, source=str(path),
        sources=tuple(str(s) for s in shards), size_exact=True, sha256=sha256,
    )


def _total_from_content_range(value: str | None) -> int | None:
    match = re.match(r"bytes \d+-\d+/(\d+)$", (value or "").strip())
    return int(match.group(1)) if match else None


def _fetch_range(
    session: requests.Session, url: str, start: int, end: int, headers: Mapping[str, str]
) -> tuple[bytes, int]:
    """Return (bytes start..end inclusive, total file size), reading no more than asked.

    A server that ignores Range answers 200 with the whole file: only the wanted bytes are
    read from the stream before it is closed.
    """
    request_headers = {**headers, "Range": f"bytes={start}-{end}"}
    try:
        with session.get(url, headers=request_headers, stream=True, timeout=HTTP_TIMEOUT_S) as r:
            if r.status_code == 206:
                total = _total_from_content_range(r.headers.get("Content-Range"))
                data = r.raw.read(end - start + 1, decode_content=True)
            elif r.status_code == 200:
                total = int(r.headers["Content-Length"]) if "Content-Length" in r.headers else None
                buffer = bytearray()
                for chunk in r.iter_content(chunk_size=1 << 16):
                    buffer += chunk
                    if len(buffer) > end:
                        break
                data = bytes(buffer[start : end + 1])
            elif r.status_code == 416:
                return b"", _total_from_content_range(r.headers.get("Content-Range")) or start
            else:
                raise ModelFetchError(f"GET {url}: HTTP {r.status_code}")
    except requests.RequestException as exc:
        raise ModelFetchError(f"GET {url}: {exc}") from exc
    if total is None:
        raise ModelFetchError(f"GET {url}: the server did not say how large the file is")
    return data, total


def read_remote_header(
    url: str,
    *,
    sha256: str | None = None,
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    first_bytes: int = FIRST_FETCH_BYTES,
    max_bytes: int = MAX_HEADER_BYTES,
) -> ModelFacts:
    """Return the :class:`ModelFacts` of the GGUF at ``url``, fetching only its header.

    Starts with ``first_bytes`` and fetches more (at least doubling) while the header runs
    past what arrived. The file size comes from ``Content-Range`` (all shards of a split
    GGUF are asked for theirs with a one-byte range). Raises ModelFetchError on network or
    HTTP failures, BadInput when the file is not GGUF or its header exceeds ``max_bytes``.
    """
    session = session or requests.Session()
    headers = dict(headers or {})
    with tempfile.TemporaryDirectory(prefix="rigctl-gguf-") as tmp:
        part = Path(tmp) / "header.gguf"
        reader, total = _fetch_header(session, url, headers, part, first_bytes, max_bytes)
        tensors = _tensors(reader)
        count = _int(_value(reader, "split.count")) or 1
        base, _, name = url.rpartition("/")
        shard_urls = [f"{base}/{n}" for n in _shard_names(name, count)]
        size = total
        for shard in shard_urls[1:]:
            # a later shard's header is its tensor table (no vocabulary): a small first range
            shard_reader, shard_size = _fetch_header(
                session, shard, headers, Path(tmp) / "shard.gguf", SHARD_FETCH_BYTES, max_bytes
            )
            tensors += _tensors(shard_reader)
            size += shard_size
        return _facts(
            reader, tensors=tensors, file_size=size, source=url, sources=tuple(shard_urls),
            size_exact=True, sha256=sha256,
        )


def _fetch_header(
    session: requests.Session, url: str, headers: Mapping[str, str], part: Path,
    first_bytes: int, max_bytes: int,
) -> tuple[_HeaderReader, int]:
    """Fetch the GGUF header at ``url`` into ``part`` in growing ranges, parsed: (reader, the
    file's size). Starts with ``first_bytes``, at least doubling while the header runs past
    what arrived."""
    data = b""
    want = first_bytes
    while True:
        chunk, total = _fetch_range(session, url, len(data), want - 1, headers)
        data += chunk
        part.write_bytes(data)
        try:
            return _parse(str(part)), total
        except _NeedMoreBytes as exc:
            if len(data) >= total:
                raise BadInput(f"{url}: GGUF header is truncated", field="model") from exc
            if exc.needed > max_bytes or len(data) >= max_bytes:
                raise BadInput(
                    f"{url}: GGUF header needs more than {len(data):,} bytes, over the "
                    f"{max_bytes:,}-byte limit", field="model",
                ) from exc
            # Grow generously: each try parses from the start again.
            want = min(total, max_bytes, max(2 * want, exc.needed + (1 << 20)))
