"""A model directory on the controller (Hugging Face layout, for vLLM), hashed file by file.

Each file vLLM needs gets its sha256 (cached by path, size and mtime, so a re-run does not
re-read gigabytes); the directory's digest is the sha256 of its ``"<sha256>  <path>"`` lines,
which is what the lockfile records and what ``verify`` can recompute on the host.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rigctl.digest import sha256_file
from rigctl.models.hf_model import served_files
from rigctl.paths import cache_dir


@dataclass(frozen=True)
class ModelFile:
    path: Path  # on the controller
    relative: str  # inside the model directory
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelDir:
    path: Path
    files: tuple[ModelFile, ...]

    @property
    def sha256(self) -> str:
        return tree_digest((f.sha256, f.relative) for f in self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def tree_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 of ``sha256sum``-style lines (``"<sha>  <relative path>\\n"``), sorted by path.

    On a host: ``cd DIR && find . -type f ! -name '*.sha256' ! -name '.rigctl-*' | sed 's|^./||' | LC_ALL=C sort
    | xargs -d '\\n' sha256sum | sha256sum`` (the ``.sha256`` files are rigctl's upload markers).
    """
    lines = [f"{sha}  {rel}\n" for sha, rel in sorted(entries, key=lambda e: e[1].encode())]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def hash_model_dir(directory: str | Path) -> ModelDir:
    """Return the files of ``directory`` that vLLM reads, each with its sha256."""
    root = Path(directory).expanduser().resolve()
    cache_path = cache_dir() / "model-dir-hashes.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    found = []
    for path in served_files(root):
        stat = path.stat()
        key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
        sha = cache.get(key) or sha256_file(path)
        cache[key] = sha
        found.append(ModelFile(path, path.relative_to(root).as_posix(), sha, stat.st_size))
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(cache_path.name + ".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_path)
    except OSError:
        pass  # a cache, not a record
    return ModelDir(root, tuple(found))
