"""Where rigctl keeps things on the controller: caches outside any repository."""

from __future__ import annotations

import os
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
