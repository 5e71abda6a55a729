"""Ollama: its service environment and the name it pulls the model by."""

from __future__ import annotations

import re

from rigctl.plan.llamacpp import GgufLayout

_HF_SOURCE = re.compile(
    r"^(?:hf://|https://huggingface\.co/)(?P<repo>[^/]+/[^/]+)/(?:resolve/[^/]+/)?(?P<file>.+)$"
)


def ollama_model_name(source: str | None, quant: str | None) -> str | None:
    """Return the name Ollama pulls a Hugging Face GGUF by (``hf.co/org/repo:Q4_K_M``).

    None when the file is not on Hugging Face or is split into shards (Ollama pulls single
    files); the Ollama role then imports the downloaded file with a Modelfile instead.
    """
    if not source or not quant:
        return None
    match = _HF_SOURCE.match(source)
    if not match or re.search(r"-\d{5}-of-\d{5}\.gguf$", match.group("file")):
        return None
    return f"hf.co/{match.group('repo')}:{quant.upper()}"


def ollama_env(*, layout: GgufLayout, context_per_slot: int, slots: int) -> dict[str, str]:
    """Return the Ollama server's environment for this plan.

    Ollama reserves OLLAMA_CONTEXT_LENGTH × OLLAMA_NUM_PARALLEL tokens of KV cache, the same
    arithmetic as llama-server's -c split over -np. A quantized KV cache needs flash
    attention (Ollama ignores OLLAMA_KV_CACHE_TYPE without it); flash attention is on in
    every plan because the memory estimates assume it.
    """
    return {
        "OLLAMA_CONTEXT_LENGTH": str(context_per_slot),
        "OLLAMA_NUM_PARALLEL": str(slots),
        "OLLAMA_KV_CACHE_TYPE": layout.placement.kv_type,
        "OLLAMA_FLASH_ATTENTION": "1",
        # One model per host: the memory plan is for this model alone.
        "OLLAMA_MAX_LOADED_MODELS": "1",
        # A server keeps its model loaded; reloading costs seconds to minutes per request.
        "OLLAMA_KEEP_ALIVE": "-1",
    }
