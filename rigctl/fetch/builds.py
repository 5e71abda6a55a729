"""llama.cpp builds kept on the controller, so hosts with the same build key compile once.

The first host of a fleet that builds a key compiles; its install directory is packed on the
host and copied here (``~/.cache/rigctl/builds/<name>.tar.gz``); every other host with that key,
in this run or a later one, receives the binaries instead of compiling for minutes.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rigctl.paths import cache_dir
from rigctl.pyinfra_api import Host, fetch_file, run_command


def builds_cache() -> Path:
    return cache_dir() / "builds"


def cached_build(name: str, cache: Path | None = None) -> Path | None:
    path = (cache or builds_cache()) / f"{name}.tar.gz"
    return path if path.exists() else None


def keep_build(host: Host, name: str, prefix: str, cache: Path | None = None) -> Path:
    """Pack ``prefix/builds/<name>`` on the host and copy it into the controller's cache."""
    remote = f"/var/cache/rigctl/{name}.tar.gz"
    ok, _out, err = run_command(
        host,
        f"tar -czf {shlex.quote(remote)} -C {shlex.quote(prefix + '/builds')} {shlex.quote(name)}",
    )
    if not ok:
        raise OSError(f"packing build {name} on {host.name} failed: {err[-200:]}")
    local = (cache or builds_cache()) / f"{name}.tar.gz"
    try:
        fetch_file(host, remote, local)
    finally:
        run_command(host, f"rm -f {shlex.quote(remote)}")
    return local
