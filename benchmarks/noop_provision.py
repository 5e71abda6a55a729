"""Is a provision that changes nothing cheap? No-op runs of 1 host and of N hosts, side by side.

On the lab (`rigctl lab up N`, the hosts provisioned once: this script does it when they serve
nothing), one run measures, each figure the best of ``--reps`` no-op runs of
`rigctl provision --json` (nothing changed: each host probed, not generating):

- the no-op provision of 1 host (the issue's goal: at most 3 s),
- the no-op provision of all N hosts,
- their ratio (the goal: N hosts / 1 host at most 2.0), and with `--smoke` (a full generation
  per host, what every no-op run did before the probe) the same two, for comparison.

Usage: python benchmarks/noop_provision.py [--hosts 8] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rigctl.lab import Lab

RIGCTL = str(Path(sys.executable).with_name("rigctl"))


def inventory(lab: Lab, count: int, directory: Path) -> Path:
    hosts = [(h.name, lab.host_data(h)) for h in sorted(lab.running_hosts(), key=lambda h: h.index)][:count]
    path = directory / f"noop-{count}.py"
    path.write_text(f"hosts = {hosts!r}\n")
    return path


def provision(path: Path, *extra: str) -> tuple[float, dict]:
    start = time.monotonic()
    result = subprocess.run([RIGCTL, "provision", str(path), "--json", *extra],
                            capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"provision {path.name} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds, json.loads(result.stdout)


def best_noop(path: Path, reps: int, *extra: str) -> float:
    times = []
    for _ in range(reps):
        seconds, document = provision(path, *extra)
        changed = {n: h["changed_ops"] for n, h in document["hosts"].items() if h["changed_ops"]}
        if changed:
            raise SystemExit(f"not a no-op run: {changed}")
        times.append(seconds)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    lab = Lab()
    lab.up(options.hosts)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        os.environ.setdefault("RIGCTL_CACHE_DIR", str(Path.home() / ".cache" / "rigctl"))
        one, all_ = inventory(lab, 1, directory), inventory(lab, options.hosts, directory)
        seconds, _ = provision(all_)  # converge first (compiles once, pushes the build around)
        print(f"converge of {options.hosts} hosts: {seconds:.1f} s")
        rows = []
        for label, extra in (("probe (default)", ()), ("--smoke (full generation)", ("--smoke",))):
            single = best_noop(one, options.reps, *extra)
            fleet = best_noop(all_, options.reps, *extra)
            rows.append((label, single, fleet, fleet / single))
        print(f"{'no-op provision':28} {'1 host':>8} {options.hosts:>3} hosts {'ratio':>7}")
        for label, single, fleet, ratio in rows:
            print(f"{label:28} {single:7.2f}s {fleet:8.2f}s {ratio:7.2f}")
        single, ratio = rows[0][1], rows[0][3]
        print(f"goals: 1 host <= 3 s: {'met' if single <= 3 else 'NOT met'} ({single:.2f} s); "
              f"{options.hosts} hosts / 1 <= 2.0: {'met' if ratio <= 2.0 else 'NOT met'} ({ratio:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
