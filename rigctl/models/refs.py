"""Parse what a user writes for ``--model`` into a :class:`ModelRef`.

Accepted forms:

- a catalog name, optionally with a quant: ``llama-3.1-8b-instruct``, ``gemma-3-4b-it:q8_0``
- ``hf://org/repo/path/file.gguf`` with an optional ``@revision``
- ``https://host/path/file.gguf`` (``http://`` only to a loopback address, for labs and tests)
- ``file:///abs/path/file.gguf`` or a plain path (one with a ``/`` or ending in ``.gguf``)
- for vLLM, a Hugging Face model repository ``hf://org/repo`` (``@revision`` optional), or a
  local directory in Hugging Face layout (``config.json`` and ``*.safetensors``): a path that
  does not end in ``.gguf``

File names on disk (the controller's cache, the host's model directory) come from
:func:`model_file_name`, never from a reference's text as it is: only ``[A-Za-z0-9._-]``,
never empty, ``.``/``..`` or hidden, and distinct for distinct references.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from rigctl.errors import BadInput
from rigctl.fetch.policy import check_url
from rigctl.models.catalog import get_catalog_model
from rigctl.redact import redact, register_url_secrets

RefKind = Literal["catalog", "hf", "url", "file", "hf_repo", "dir"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CATALOG_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(:[a-z0-9_]+)?$")
_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_NAME_MAX = 120  # characters of the original name kept (file names stop at 255 bytes)


def _confined(name: str, reference: str, *, changed: bool = False) -> str:
    """``name`` if it is a safe file name and ``changed`` is false; else a safe form of it
    with a short sha256 of ``reference`` appended, so that two references whose names clean
    up alike (``a@1.gguf``, ``a@2.gguf``) still get two files."""
    safe = name == _UNSAFE.sub("_", name) and name.strip(".") and name[0] != "."
    if safe and not changed and len(name) <= 2 * _NAME_MAX:
        return name
    suffix = ".gguf" if name.lower().endswith(".gguf") else ""
    stem = name[: len(name) - len(suffix)]
    stem = _UNSAFE.sub("_", stem).strip("._-")[:_NAME_MAX] or "model"
    # Credentials are left out of what is hashed: a rotated signed-URL token is the same file.
    tag = hashlib.sha256(redact(reference).encode()).hexdigest()[:12]
    return f"{stem}-{tag}{suffix}"


def model_file_name(source: str) -> str:
    """The file (or directory) name a model gets on disk, from its reference or URL.

    ``hf://org/repo/dir/file.gguf`` is ``file.gguf``, and with a revision other than ``main``
    ``file-<sha256 of the reference>.gguf``, so two revisions are two files; a URL's name is
    the last part of its path (an ``@`` there is part of the name, not a revision); a local
    path's is its last component. A name with any character outside ``[A-Za-z0-9._-]``, or
    empty, ``.``, ``..`` or starting with ``.``, is cleaned and gets the short sha256 too.
    """
    changed = False
    if source.lower().startswith("hf://"):
        rest = source[len("hf://") :]
        if "@" in rest:
            rest, _, revision = rest.rpartition("@")
            changed = revision != "main"
        name = rest.rstrip("/").rsplit("/", 1)[-1]
    elif "://" in source or source.lower().startswith("file:"):
        try:
            path = urlsplit(source).path
        except ValueError:
            path = ""
        name = posixpath.basename(path.rstrip("/"))
    else:
        name = os.path.basename(source.rstrip("/"))
    return _confined(name, source, changed=changed)


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference; exactly the fields of its ``kind`` are set."""

    kind: RefKind
    raw: str
    name: str | None = None  # catalog: name without quant
    quant: str | None = None  # catalog: pinned quant, lowercase
    url: str | None = None  # hf and url: the https URL to fetch
    path: str | None = None  # file: absolute or relative local path
    repo: str | None = None  # hf, hf_repo: org/repo
    filename: str | None = None  # hf: path inside the repo
    revision: str | None = None  # hf, hf_repo: branch, tag or commit ("main" when not given)
    sha256: str | None = None

    @property
    def basename(self) -> str:
        """Return the file name the model gets on disk (catalog, Hub repository: empty
        string): :func:`model_file_name` of the reference."""
        if self.kind in ("file", "dir") and self.path:
            return model_file_name(self.path)
        if self.kind == "hf":
            return model_file_name(self.raw)
        if self.url:
            return model_file_name(self.url)
        return ""


def _bad(text: str, why: str) -> BadInput:
    return BadInput(f"{why}: {text!r}", field="model")


def hf_resolve_url(repo: str, filename: str, revision: str = "main") -> str:
    """Return the Hugging Face download URL of ``filename`` in ``repo`` at ``revision``."""
    return (
        f"https://huggingface.co/{repo}/resolve/{quote(revision, safe='')}/"
        f"{quote(filename, safe='/')}"
    )


def _parse_hf(text: str) -> ModelRef:
    rest = text[len("hf://") :]
    revision = "main"
    if "@" in rest:
        rest, _, revision = rest.rpartition("@")
        if not _REVISION.match(revision) or ".." in revision:
            raise _bad(text, "bad revision after '@'")
    parts = rest.split("/")
    if len(parts) < 2 or not all(parts):
        raise _bad(text, "expected hf://org/repo/path/file.gguf (or hf://org/repo for vLLM)")
    if not all(_HF_PART.match(p) and p not in (".", "..") for p in parts):
        raise _bad(text, "bad character in hf:// path")
    if len(parts) == 2:
        # A whole repository: safetensors weights, served by vLLM.
        return ModelRef(kind="hf_repo", raw=text, repo=rest, revision=revision)
    filename = "/".join(parts[2:])
    if not filename.lower().endswith(".gguf"):
        raise _bad(text, "hf:// must name a .gguf file")
    repo = f"{parts[0]}/{parts[1]}"
    return ModelRef(
        kind="hf",
        raw=text,
        url=hf_resolve_url(repo, filename, revision),
        repo=repo,
        filename=filename,
        revision=revision,
    )


def _parse_url(text: str) -> ModelRef:
    # The download policy's own check (it turns urllib's ValueError on a URL such as
    # ``https://[::1/x.gguf`` into BadInput); plain http:// only to loopback here.
    register_url_secrets(text)  # masked from here on, in whatever message quotes them
    check_url(text, field="model", allow_http=False, sha256_known=False)
    parts = urlsplit(text)
    if not parts.path.lower().endswith(".gguf"):
        raise _bad(text, "URL must name a .gguf file")
    url = text
    if parts.hostname in ("huggingface.co", "www.huggingface.co") and "/blob/" in parts.path:
        # A /blob/ link is the HTML page for the file; /resolve/ is the file itself.
        url = text.replace("/blob/", "/resolve/", 1)
    return ModelRef(kind="url", raw=text, url=url)


def _parse_path(text: str, path: str) -> ModelRef:
    if path.lower().endswith(".gguf"):
        return ModelRef(kind="file", raw=text, path=os.path.expanduser(path))
    # Anything else is a model directory in Hugging Face layout (vLLM); resolving checks it.
    return ModelRef(kind="dir", raw=text, path=os.path.expanduser(path.rstrip("/") or "/"))


def parse_model_ref(text: str, *, sha256: str | None = None) -> ModelRef:
    """Return the :class:`ModelRef` for ``text``.

    Raises BadInput with field "model" for anything malformed (and field "sha256" for a
    checksum that is not 64 hex digits). Catalog names are checked against the catalog.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadInput("no model given", field="model")
    text = text.strip()
    digest: str | None = None
    if sha256 is not None:
        digest = sha256.strip().lower().removeprefix("sha256:")
        if not _SHA256.match(digest):
            raise BadInput(f"sha256 must be 64 hex digits, got {sha256!r}", field="sha256")

    lowered = text.lower()
    if lowered.startswith("hf://"):
        ref = _parse_hf(text)
    elif lowered.startswith(("https://", "http://")):
        ref = _parse_url(text)
    elif lowered.startswith("file://"):
        rest = text[len("file://") :]
        if not rest.startswith("/"):
            raise _bad(text, "file:// takes an absolute path (file:///abs/path.gguf)")
        ref = _parse_path(text, rest)
    elif "://" in text:
        raise _bad(text, "unknown scheme (use hf://, https:// or file://)")
    elif "/" in text or lowered.endswith(".gguf"):
        if text.count("/") == 1 and text[0] not in "./~" and not lowered.endswith(".gguf"):
            raise _bad(
                text,
                "a Hugging Face repo, not a file: use hf://org/repo/file.gguf (a GGUF) or "
                "hf://org/repo (safetensors, for vLLM)",
            )
        ref = _parse_path(text, text)
    else:
        if not _CATALOG_NAME.match(lowered):
            raise _bad(text, "not a catalog name (name or name:quant)")
        entry = get_catalog_model(lowered)
        ref = ModelRef(kind="catalog", raw=text, name=entry.name, quant=entry.quant)
    if digest is not None:
        ref = dataclasses.replace(ref, sha256=digest)
    return ref
