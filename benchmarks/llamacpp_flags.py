"""Are rigctl's llama.cpp flags good? Measure them against a llama-bench sweep and stock defaults.

On a provisioned host (``rigctl provision`` first), runs llama-bench once over the cartesian
product of threads x batch x ubatch (including rigctl's choice and llama.cpp's defaults), on the
model rigctl deployed, and prints side by side, from that one run:

- prompt processing (pp) and generation (tg) tokens/s for rigctl's flags, the best of the sweep,
  and llama.cpp's stock defaults;
- the ratios rigctl / best and rigctl / stock.

Usage: python benchmarks/llamacpp_flags.py [INVENTORY] [--host NAME] [--reps 3]
"""

from __future__ import annotations

from rigctl import _gevent

_gevent.patch()  # before ssl/requests load (pyinfra runs on gevent)

# ruff: noqa: E402
import argparse
import json
import shlex
import sys

from rigctl.detect_host import detect_host
from rigctl.host_plans import plan_for, resolve_for
from rigctl.hostspec import host_spec
from rigctl.pyinfra_api import Session, load_inventory, run_command

BENCH = "/opt/rigctl/llamacpp/current/bin/llama-bench"
STOCK = {
    "threads": None,
    "batch": 2048,
    "ubatch": 512,
}  # llama.cpp defaults; threads = physical cores


def flag(args: list[str], name: str) -> int:
    return int(args[args.index(name) + 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inventory", nargs="?", default="inventories/lab.py")
    parser.add_argument("--host")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--gen", type=int, default=64)
    options = parser.parse_args()

    inventory = load_inventory(options.inventory)
    with Session(inventory) as session:
        target = session.host(options.host) if options.host else session.active_hosts[0]
        spec = host_spec(target.name, target.data.dict())
        hardware = session.each_host(detect_host)[target.name]
        plan = plan_for(spec, hardware, resolve_for(spec))
        chosen = {
            "threads": flag(plan.args, "-t"),
            "batch": flag(plan.args, "-b"),
            "ubatch": flag(plan.args, "-ub"),
        }
        stock = dict(STOCK, threads=hardware.cpu.cores)
        threads = sorted(
            {
                1,
                max(1, hardware.cpu.cores // 2),
                hardware.cpu.cores,
                hardware.cpu.threads,
                chosen["threads"],
            }
        )
        batches = sorted({512, 2048, chosen["batch"]})
        ubatches = sorted({128, 512, chosen["ubatch"]})
        command = [
            BENCH,
            "-m",
            plan.model.runtime_ref,
            "-ngl",
            str(flag(plan.args, "-ngl")),
            "-t",
            ",".join(map(str, threads)),
            "-b",
            ",".join(map(str, batches)),
            "-ub",
            ",".join(map(str, ubatches)),
            "-p",
            str(options.prompt),
            "-n",
            str(options.gen),
            "-r",
            str(options.reps),
            "-o",
            "json",
        ]
        print(f"{target.name}: {shlex.join(command)}", file=sys.stderr)
        ok, out, err = run_command(target, shlex.join(command) + " 2>/dev/null")
        if not ok:
            print(f"llama-bench failed on {target.name}: {err[-500:]}", file=sys.stderr)
            return 1
    rows = json.loads(out)

    def rate(config: dict[str, int | None], kind: str) -> float:
        for row in rows:
            is_pp = row["n_prompt"] > 0 and row["n_gen"] == 0
            if (kind == "pp") != is_pp:
                continue
            if (row["n_threads"], row["n_batch"], row["n_ubatch"]) == (
                config["threads"],
                config["batch"],
                config["ubatch"],
            ):
                return float(row["avg_ts"])
        raise KeyError(config)

    print(
        f"model {plan.model.name} {plan.model.quant} on {target.name} "
        f"({hardware.cpu.model}, {hardware.cpu.cores} cores), {options.reps} reps each"
    )
    print(f"rigctl flags: -t {chosen['threads']} -b {chosen['batch']} -ub {chosen['ubatch']}")
    print(
        f"{'':6} {'rigctl':>10} {'best':>10} {'stock':>10} {'rigctl/best':>12} {'rigctl/stock':>13}  best config"
    )
    for kind, label in (("pp", f"pp{options.prompt}"), ("tg", f"tg{options.gen}")):
        mine = rate(chosen, kind)
        candidates = [
            r for r in rows if ((r["n_prompt"] > 0 and r["n_gen"] == 0) == (kind == "pp"))
        ]
        best = max(candidates, key=lambda r: r["avg_ts"])
        stock_rate = rate(stock, kind)
        print(
            f"{label:6} {mine:10.1f} {best['avg_ts']:10.1f} {stock_rate:10.1f} "
            f"{mine / best['avg_ts']:12.2f} {mine / stock_rate:13.2f}  "
            f"-t {best['n_threads']} -b {best['n_batch']} -ub {best['n_ubatch']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
