"""A model in Hugging Face layout (``config.json`` + ``*.safetensors``): what vLLM serves.

``read_local_dir`` reads a directory on the controller; ``read_remote_repo`` asks the Hugging
Face Hub (``HF_ENDPOINT``, default ``https://huggingface.co``) for the repository's
``config.json`` and its file sizes at a revision, downloading no weights. Both return the
:class:`~rigctl.models.facts.ModelFacts` the planner takes, with ``format="safetensors"``.

The Hub's answers are input like any other: the commit it pins a revision to becomes part of a
directory name on hosts (and that directory is replaced with ``rm -rf``), so it must be 40 hex
digits; a token goes only where :func:`rigctl.fetch.policy.token_allowed` says (https, the
Hub's hosts or ``HF_ENDPOINT``'s).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from rigctl.errors import BadInput
from rigctl.fetch.policy import auth_headers, hub_token
from rigctl.models.facts import ModelFacts
from rigctl.models.gguf_header import ModelFetchError
from rigctl.redact import redact

#: A commit id as the Hub answers it (``sha``): what a revision is pinned to.
COMMIT = re.compile(r"[0-9a-f]{40}")
#: ``org/name``, as :mod:`rigctl.models.refs` accepts it: it names a directory on hosts too.
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")

HF_ENDPOINT_DEFAULT = "https://huggingface.co"

#: Bytes per parameter of the dtypes a config names (``torch_dtype``, or ``dtype`` in newer
#: transformers releases).
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1}

#: Files vLLM reads from a model directory; the rest of a repository (README, GGUFs, original
#: PyTorch checkpoints) is not pushed to hosts.
SERVED_PATTERNS = ("*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.txt", "*.jinja")


def hf_endpoint() -> str:
    """Return the Hub's base URL (``HF_ENDPOINT``, as huggingface_hub reads it)."""
    return os.environ.get("HF_ENDPOINT", HF_ENDPOINT_DEFAULT).rstrip("/")


def _int(config: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


#: ``quantization_config.quant_method`` values vLLM loads (vllm/model_executor/layers/
#: quantization/__init__.py's QUANTIZATION_METHODS, the ones a checkpoint names itself).
QUANT_METHODS = frozenset({
    "awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "compressed-tensors", "bitsandbytes",
    "mxfp4", "modelopt", "modelopt_fp4", "fbgemm_fp8", "experts_int8", "gguf", "torchao",
})


def quantization_of(
    config: dict[str, Any], source: str
) -> tuple[str | None, int | None, bool]:
    """(quant_method, weight bits, floating-point weights) of a checkpoint's
    ``quantization_config``, (None, None, False) for an unquantized one; BadInput for a method
    vLLM does not load (the config is untrusted)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    assert isinstance(text, dict)
    qc = config.get("quantization_config") or text.get("quantization_config")
    if qc is None:
        return None, None, False
    if not isinstance(qc, dict):
        raise BadInput(f"config.json of {source}: quantization_config is not an object",
                       field="model")
    method = qc.get("quant_method")
    if not isinstance(method, str) or method.lower() not in QUANT_METHODS:
        raise BadInput(
            f"config.json of {source}: quantization_config.quant_method "
            f"{redact(repr(method))[:40]} is not one vLLM loads "
            f"({', '.join(sorted(QUANT_METHODS))})",
            field="model",
        )
    method = method.lower()
    bits = _int(qc, "bits", "w_bit", "num_bits")
    floating = method in ("fp8", "fbgemm_fp8", "mxfp4")
    groups = qc.get("config_groups")
    if not bits and isinstance(groups, dict):
        # compressed-tensors: config_groups.<group>.weights.{num_bits,type}
        for group in groups.values():
            weights = group.get("weights") if isinstance(group, dict) else None
            if isinstance(weights, dict) and (bits := _int(weights, "num_bits")):
                floating = weights.get("type") == "float"
                break
    if not bits and method in ("fp8", "fbgemm_fp8"):
        bits = 8
    if not bits and method == "mxfp4":
        bits = 4
    return method, (bits if bits and bits <= 16 else None), floating


def facts_from_config(
    config: dict[str, Any],
    *,
    weights_bytes: int,
    name: str,
    source: str,
    hf_repo: str | None,
    revision: str | None,
    local_dir: str | None,
) -> ModelFacts:
    """Return the facts of a Hugging Face model from its ``config.json`` and weight bytes.

    Multimodal configs keep the language model's numbers under ``text_config``.
    """
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, dict)
    layers = _int(text, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(text, "num_attention_heads", "n_head")
    hidden = _int(text, "hidden_size", "n_embd", "d_model")
    if not (layers and heads and hidden):
        raise BadInput(
            f"config.json of {source} lacks num_hidden_layers/num_attention_heads/hidden_size",
            field="model",
        )
    kv_heads = _int(text, "num_key_value_heads") or heads
    head_dim = _int(text, "head_dim") or hidden // heads
    dtype = str(
        text.get("torch_dtype")
        or config.get("torch_dtype")
        or text.get("dtype")
        or config.get("dtype")
        or "bfloat16"
    )
    window = _int(text, "sliding_window") or None
    quant_method, quant_bits, quant_float = quantization_of(config, source)
    ffn = _int(text, "intermediate_size", "n_inner", "ffn_dim")
    experts = _int(text, "num_local_experts", "num_experts", "n_routed_experts")
    return ModelFacts(
        architecture=str(config.get("model_type") or text.get("model_type") or "unknown"),
        n_layers=layers,
        n_heads=heads,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        embedding_length=hidden,
        context_length=_int(text, "max_position_embeddings", "n_positions", "seq_length"),
        file_size=weights_bytes,
        name=name,
        quant=None,
        vocab_size=_int(text, "vocab_size"),
        sliding_window=window if window and text.get("use_sliding_window", True) else None,
        tied_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings"))),
        source=source,
        size_exact=True,
        hf_repo=hf_repo,
        hf_weights_bytes=weights_bytes,
        format="safetensors",
        hf_revision=revision,
        hf_dir=local_dir,
        hf_dtype=dtype if dtype in DTYPE_BYTES else "bfloat16",
        hf_quant=quant_method,
        hf_quant_bits=quant_bits,
        hf_quant_float=quant_float,
        feed_forward_length=ffn or None,
        expert_count=experts,
        expert_used_count=_int(text, "num_experts_per_tok", "experts_per_token"),
        # Mixtral and gpt-oss name an expert's width intermediate_size
        expert_ffn_length=(_int(text, "moe_intermediate_size") or ffn or None) if experts > 1
        else None,
    )


def served_files(directory: Path) -> list[Path]:
    """Return the files of a model directory that vLLM needs, sorted, relative paths kept.

    A file that is a link out of the directory is refused (BadInput): a shared model directory
    must not be able to push another file of the controller (a key) to every host."""
    root = directory.resolve()
    found = {
        path
        for pattern in SERVED_PATTERNS
        for path in directory.rglob(pattern)
        if path.is_file() and ".cache" not in path.relative_to(directory).parts
    }
    for path in found:
        if not path.resolve().is_relative_to(root):
            raise BadInput(
                f"{path.relative_to(directory).as_posix()!r} in {str(directory)!r} links outside "
                "the model directory",
                field="model",
            )
    return sorted(found)


def read_local_dir(path: str) -> ModelFacts:
    """Return the facts of a model directory on the controller (BadInput when it is not one)."""
    directory = Path(path).expanduser().resolve()
    config_path = directory / "config.json"
    if not directory.is_dir():
        raise BadInput(f"{path!r} is neither a .gguf file nor a model directory", field="model")
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise BadInput(
            f"{path!r} has no config.json (not a Hugging Face model directory)", field="model"
        ) from None
    except (OSError, ValueError) as e:
        raise BadInput(f"{config_path}: unreadable config.json ({e})", field="model") from None
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise BadInput(
            f"{path!r} has no *.safetensors weights (vLLM serves safetensors)", field="model"
        )
    if not isinstance(config, dict):
        raise BadInput(f"{config_path}: config.json is not an object", field="model")
    return facts_from_config(
        config,
        weights_bytes=sum(w.stat().st_size for w in weights),
        name=directory.name,
        source=str(directory),
        hf_repo=None,
        revision=None,
        local_dir=str(directory),
    )


def _get_json(session: requests.Session, url: str, token: str | None) -> Any:
    headers = auth_headers(url, token)
    try:
        response = session.get(url, headers=headers, timeout=30)
    except requests.RequestException as e:
        raise ModelFetchError(redact(f"GET {url}: {type(e).__name__}")) from None
    if response.status_code in (401, 403):
        raise ModelFetchError(
            redact(
                f"GET {url}: HTTP {response.status_code} (a gated or private repository: set "
                "HF_TOKEN on the controller and hf_token in the host data)"
            )
        )
    if response.status_code != 200:
        raise ModelFetchError(redact(f"GET {url}: HTTP {response.status_code}"))
    try:
        return response.json()
    except ValueError:
        raise ModelFetchError(redact(f"GET {url}: not JSON")) from None


def _pinned_commit(info: Any, repo: str, revision: str) -> str:
    """The commit the Hub pinned ``revision`` to: exactly 40 lowercase hex digits, or the
    model is refused (it names a directory on every host)."""
    sha = info.get("sha") if isinstance(info, dict) else None
    if not isinstance(sha, str) or not COMMIT.fullmatch(sha):
        raise BadInput(
            f"the Hub's answer for hf://{repo}@{revision} does not pin a commit (its sha must "
            f"be 40 hex digits, got {redact(repr(sha))[:60]})",
            field="model",
        )
    return sha


def _size(sibling: dict[str, Any]) -> int:
    """A file's size from the Hub's listing (0 when it gives no integer)."""
    lfs = sibling.get("lfs")
    for value in (sibling.get("size"), lfs.get("size") if isinstance(lfs, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def read_remote_repo(
    repo: str,
    revision: str = "main",
    *,
    token: str | None = None,
    session: requests.Session | None = None,
) -> ModelFacts:
    """Return the facts of ``repo`` at ``revision`` from the Hub, without downloading weights.

    ``config.json`` comes from ``/resolve/``; the safetensors sizes from the model API
    (``/api/models/<repo>/revision/<rev>?blobs=true``, the call huggingface_hub's
    ``model_info(files_metadata=True)`` makes). ``token`` defaults to ``HF_TOKEN``.
    """
    if not REPO.fullmatch(repo) or ".." in repo:
        raise BadInput(f"not a Hugging Face repository (org/name): {repo!r}"[:160], field="model")
    session = session or requests.Session()
    token = token or hub_token()
    base = hf_endpoint()
    rev = quote(revision, safe="")
    config = _get_json(session, f"{base}/{repo}/resolve/{rev}/config.json", token)
    info = _get_json(session, f"{base}/api/models/{repo}/revision/{rev}?blobs=true", token)
    siblings = info.get("siblings", []) if isinstance(info, dict) else []
    sizes = [
        _size(s)
        for s in (siblings if isinstance(siblings, list) else [])
        if isinstance(s, dict) and str(s.get("rfilename", "")).endswith(".safetensors")
    ]
    if not sizes:
        raise BadInput(f"hf://{repo}@{revision} has no *.safetensors weights", field="model")
    if not isinstance(config, dict):
        raise ModelFetchError(f"hf://{repo}@{revision}: config.json is not an object")
    pinned = _pinned_commit(info, repo, revision)
    return facts_from_config(
        config,
        weights_bytes=int(sum(sizes)),
        name=repo.split("/", 1)[1],
        source=f"hf://{repo}@{pinned}",
        hf_repo=repo,
        revision=pinned,
        local_dir=None,
    )
