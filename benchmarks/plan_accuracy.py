"""Does the planner count what llama-server allocates? Planned ÷ measured, side by side.

On a provisioned llama.cpp host (``make demo`` leaves one), for each context × slot count:
plan the deployed model on the host's detected hardware (``rigctl.plan.make_plan``, llama.cpp),
start the host's own ``llama-server`` with exactly the plan's arguments on a spare loopback
port, wait until it answers ``/health``, and read what it allocated from its own buffer report
(``model buffer size``, ``KV buffer size``, ``compute buffer size`` and ``output buffer size``
per device, in MiB) and its resident memory (``VmRSS``); then print planned ÷ measured for the
weights, the KV cache and the compute buffers. The planner's goal is each within 0.9–1.1.

The model's facts come from its real header: the GGUF is copied from the host to a temporary
file on the controller first.

Usage: python benchmarks/plan_accuracy.py [INVENTORY] [--host NAME] [--contexts 2048,8192]
       [--slots 1,4] [--port 18181]
"""

from __future__ import annotations

from rigctl import _gevent

_gevent.patch()  # before ssl/requests load (pyinfra runs on gevent)

# ruff: noqa: E402
import argparse
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigctl.detect_host import detect_host
from rigctl.manifest import read_deployment
from rigctl.models.gguf_header import read_local_header
from rigctl.plan import make_plan
from rigctl.pyinfra_api import Session, fetch_file, load_inventory, run_command

SERVER = "/opt/rigctl/llamacpp/current/bin/llama-server"
MiB = 1 << 20
#: llama.cpp's buffer report lines (src/llama-model.cpp, llama-kv-cache.cpp, llama-context.cpp)
BUFFER = re.compile(
    r"(?P<device>[A-Za-z0-9_]+) (?P<kind>model|KV|compute|output) buffer size =\s+"
    r"(?P<mib>[0-9.]+) MiB"
)


def measured(log: str) -> dict[str, int]:
    """Bytes per kind (model, KV, compute: compute and output buffers) from a server's log."""
    totals = {"model": 0, "KV": 0, "compute": 0}
    for match in BUFFER.finditer(log):
        kind = "compute" if match["kind"] == "output" else match["kind"]
        totals[kind] += round(float(match["mib"]) * MiB)
    return totals


def serve_once(
    host: Any, args: list[str], port: int, env: dict[str, str] | None = None
) -> tuple[str, int]:
    """Start llama-server with ``args`` in the plan's ``env``, wait for /health, return (its
    log, VmRSS bytes)."""
    log = f"/tmp/rigctl-plan-accuracy-{port}.log"
    variables = [f"{k}={v}" for k, v in (env or {}).items()]
    # the buffer report is llama.cpp's INFO level, below llama-server's default threshold (3)
    argv = shlex.join(["env", *variables, SERVER, *args, "-lv", "4", "--host", "127.0.0.1",
                       "--port", str(port)])
    script = (
        f"{argv} > {log} 2>&1 & pid=$!; "
        "up=0; for i in $(seq 1 240); do "
        f"curl -fs http://127.0.0.1:{port}/health >/dev/null && {{ up=1; break; }}; sleep 0.5; "
        "done; rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status); "
        f"kill $pid; wait $pid 2>/dev/null; echo UP=$up RSS_KB=$rss; cat {log}; rm -f {log}"
    )
    ok, out, err = run_command(host, script)
    if not ok or "UP=1" not in out:
        raise RuntimeError(f"llama-server did not come up: {(out + err)[-600:]}")
    rss = re.search(r"RSS_KB=(\d+)", out)
    return out, int(rss[1]) * 1024 if rss else 0


@dataclass(frozen=True)
class Row:
    """One part of one configuration: what the plan counted and what the server allocated."""

    context: int
    slots: int
    part: str  # model | KV | compute | RSS (the whole plan against the server's resident set)
    planned: int
    measured: int
    report: str = ""  # the server's buffer lines behind ``measured``

    @property
    def ratio(self) -> float:
        return self.planned / self.measured if self.measured else float("nan")


def measure(target: Any, contexts: list[int], slot_counts: list[int], port: int) -> list[Row]:
    """Plan the host's deployed model for each context × slot count, run its llama-server with
    exactly those arguments and return planned and measured bytes per part."""
    deployment = read_deployment(target)
    if deployment.runtime != "llamacpp":
        raise RuntimeError(f"{target.name} serves {deployment.runtime}, not llama.cpp")
    hardware = detect_host(target)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(deployment.model_path).name
        fetch_file(target, deployment.model_path, local)
        facts = read_local_header(local)
    for context in contexts:
        for slots in slot_counts:
            plan = make_plan(hardware, facts, concurrency=slots, context=context,
                             runtime="llamacpp")
            args = list(plan.args)
            args[args.index("-m") + 1] = deployment.model_path
            log, rss = serve_once(target, args, port, plan.env)
            got = measured(log)
            if not any(got.values()):
                raise RuntimeError(f"no buffer report in llama-server's log: {log[-1500:]}")
            placed = plan.memory.placement
            planned = {
                "model": sum(r.weights for r in placed),
                "KV": sum(r.kv_cache for r in placed),
                "compute": sum(r.overhead for r in placed),
            }
            report = "; ".join(m[0] for m in BUFFER.finditer(log))
            rows += [Row(context, slots, part, planned[part], got[part], report)
                     for part in planned]
            rows.append(Row(context, slots, "RSS", sum(planned.values()), rss))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inventory", nargs="?", default="inventories/lab.py")
    parser.add_argument("--host")
    parser.add_argument("--contexts", default="2048,8192")
    parser.add_argument("--slots", default="1,4")
    parser.add_argument("--port", type=int, default=18181)
    options = parser.parse_args()
    contexts = [int(c) for c in options.contexts.split(",")]
    slot_counts = [int(s) for s in options.slots.split(",")]
    with Session(load_inventory(options.inventory)) as session:
        target = session.host(options.host) if options.host else session.active_hosts[0]
        try:
            rows = measure(target, contexts, slot_counts, options.port)
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 2
    print(f"{'context':>8} {'slots':>5}  {'part':<8} {'planned MiB':>12} {'measured MiB':>13} "
          f"{'ratio':>6}")
    for row in rows:
        print(f"{row.context:>8} {row.slots:>5}  {row.part:<8} {row.planned / MiB:>12.1f} "
              f"{row.measured / MiB:>13.1f} {row.ratio:>6.3f}")
    parts = [r for r in rows if r.part != "RSS" and r.measured]
    worst = max((abs(1 - r.ratio) for r in parts), default=float("nan"))
    print(f"largest deviation of a part from 1.0: {worst:.3f} (goal: within 0.1)")
    return 0 if worst <= 0.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
