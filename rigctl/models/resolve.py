"""Turn a user's model reference into what the planner takes."""

from __future__ import annotations

import dataclasses

import requests

from rigctl.models.catalog import CatalogModel, get_catalog_model
from rigctl.models.facts import ModelFacts
from rigctl.models.gguf_header import read_local_header, read_remote_header
from rigctl.models.hf_model import read_local_dir, read_remote_repo
from rigctl.models.refs import parse_model_ref


def resolve_model(
    text: str, *, sha256: str | None = None, session: requests.Session | None = None
) -> CatalogModel | ModelFacts:
    """Return a catalog entry (no I/O), the facts read from a GGUF header, or those of a
    Hugging Face model (directory or ``hf://org/repo``, for vLLM).

    Local files are read from this machine; ``hf://`` and ``https://`` references fetch the
    header only (HTTP Range). Raises BadInput for malformed references or non-GGUF files,
    ModelFetchError when a remote header cannot be fetched.
    """
    ref = parse_model_ref(text, sha256=sha256)
    if ref.kind == "catalog":
        assert ref.name is not None
        entry = get_catalog_model(f"{ref.name}:{ref.quant}" if ref.quant else ref.name)
        return entry
    if ref.kind == "file":
        assert ref.path is not None
        return read_local_header(ref.path, sha256=ref.sha256)
    if ref.kind == "dir":
        assert ref.path is not None
        return read_local_dir(ref.path)
    if ref.kind == "hf_repo":
        assert ref.repo is not None
        return read_remote_repo(ref.repo, ref.revision or "main", session=session)
    assert ref.url is not None
    facts = read_remote_header(ref.url, sha256=ref.sha256, session=session)
    if ref.kind == "hf":
        # Keep the hf:// form as the source: it names repo and revision, the URL follows.
        return dataclasses.replace(facts, source=ref.raw)
    return facts
