"""The model lockfile beside an inventory: which model file (sha256) and build each host serves.

``inventories/homelab.py`` -> ``inventories/homelab.lock.json``. ``provision`` writes it,
``verify`` checks hosts against it. Entries of hosts not in a run (``--limit``) are kept; the
file is replaced atomically, and what it records is redacted (a source URL's userinfo or
signed-URL token never lands in it). ``remove`` drops the entries of the hosts it took rigctl
off (:func:`drop_lockfile_entries`), the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rigctl.paths import confined, safe_component, state_dir
from rigctl.redact import redact_data


def lockfile_path(target: str) -> Path:
    """``inventories/homelab.py`` -> ``inventories/homelab.lock.json``; other targets (``@local``,
    host lists) keep theirs in the controller's state directory."""
    path = Path(target)
    if path.is_file():
        return path.with_suffix(".lock.json")
    # one file per target, confined to the directory (``a/b`` and ``a_b`` are two targets)
    return confined(state_dir() / "locks", safe_component(target) + ".lock.json")


def update_lockfile(target: str, entries: dict[str, dict[str, Any]]) -> Path:
    """Set these hosts' entries (``{host: {runtime, model, quant, source, sha256, size_bytes,
    build}}``), keep the others, and replace the file atomically."""
    path = lockfile_path(target)
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError):
        lock = {}
    if not isinstance(lock, dict) or not isinstance(lock.get("hosts"), dict):
        lock = {"hosts": {}}
    lock["hosts"].update(redact_data(entries))
    _replace(path, lock)
    return path


def drop_lockfile_entries(target: str, hosts: Iterable[str]) -> Path | None:
    """Remove these hosts' entries, keep the others, and replace the file atomically; the
    file's path, or None when it had none of them (a missing or unreadable file is left as it
    is: nothing recorded, or nothing this can safely rewrite)."""
    path = lockfile_path(target)
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(lock, dict) or not isinstance(lock.get("hosts"), dict):
        return None
    dropped = [name for name in hosts if name in lock["hosts"]]
    if not dropped:
        return None
    for name in dropped:
        del lock["hosts"][name]
    _replace(path, lock)
    return path


def _replace(path: Path, lock: dict[str, Any]) -> None:
    """Write ``lock`` beside ``path`` and rename it over: readers see the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
