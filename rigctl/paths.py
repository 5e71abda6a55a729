"""Where rigctl keeps things on the controller: caches outside any repository."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """``$RIGCTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/rigctl``, else ``~/.cache/rigctl``."""
    env = os.environ.get("RIGCTL_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rigctl"


def state_dir() -> Path:
    """``$RIGCTL_STATE_DIR``, else ``$XDG_STATE_HOME/rigctl``, else ``~/.local/state/rigctl``:
    what rigctl remembers (benchmark baselines), as opposed to caches it can fetch again."""
    env = os.environ.get("RIGCTL_STATE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rigctl"


#: What a path component made from outside data may hold as it is.
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,127}")
#: How a component that had to be changed ends: ``--`` and 16 hex digits of its sha256. A name
#: that already looks like this is changed too (hashed), so no two names ever map to one.
_CHANGED = re.compile(r".*--[0-9a-f]{16}")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def safe_component(name: str) -> str:
    """``name`` as one path component of ``[A-Za-z0-9._-]``, never ``.``, ``..`` or ``-...``.

    A name that is already such a component (and short) is kept as it is, so paths of
    ordinary names do not change; any other gets its unsafe characters replaced and a short
    hash of the whole name appended (``../../etc`` -> ``.._.._etc--<16 hex>``), so two different
    names never give the same component.
    """
    if (
        _SAFE_COMPONENT.fullmatch(name)
        and name not in (".", "..")
        and not _CHANGED.fullmatch(name)
    ):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _UNSAFE_CHAR.sub("_", name)[:64].strip(".-") or "x"
    return f"{readable}--{digest}"


def confined(base: Path, *parts: str) -> Path:
    """``base/part/...`` with each part made one safe component (:func:`safe_component`),
    checked to stay under ``base`` once symbolic links are resolved (ValueError otherwise).

    For every controller-side path built from a host name, a version, a build name or any
    other value from outside: ``confined(results_dir(), f"{host}.last.json")``.
    """
    path = base.joinpath(*(safe_component(part) for part in parts))
    root = base.resolve()
    resolved = path.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ValueError(f"{path} is not inside {base}")
    return path


def write_private(path: Path, text: str | bytes) -> None:
    """Write a file that holds a secret: mode 0600 from its creation, replaced atomically
    (written beside, then renamed), so it is never readable by others nor seen half-written."""
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
