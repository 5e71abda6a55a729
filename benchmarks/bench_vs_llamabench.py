"""Is `rigctl bench` honest? Its single-user decode tok/s against llama-bench's, same host, same config.

On a provisioned llama.cpp host, in one run:
- `rigctl bench` at concurrency 1 (streamed chat completions through the real endpoint, prompt
  calibrated to N tokens, M tokens generated with ignore_eos);
- `llama-bench -n M -d N` with the served flags (-t, -ngl, -b, -ub; flash attention and KV
  types as served): generation of M tokens at depth N, the same work without HTTP;
then prints both and their ratio (expected within +-10%: HTTP, sampling and the chat template
cost little per token).

Usage: python benchmarks/bench_vs_llamabench.py [INVENTORY] [--host NAME]
"""

from __future__ import annotations

from rigctl import _gevent

_gevent.patch()  # before ssl/requests load (pyinfra runs on gevent)

# ruff: noqa: E402
import argparse
import json
import shlex
import sys

from rigctl.bench.run import bench
from rigctl.manifest import read_deployment
from rigctl.pyinfra_api import Session, load_inventory, run_command

BENCH = "/opt/rigctl/llamacpp/current/bin/llama-bench"
# Flags llama-bench shares with llama-server, as (server flag, bench flag).
SHARED = [("-t", "-t"), ("-ngl", "-ngl"), ("-b", "-b"), ("-ub", "-ub"), ("-ctk", "-ctk"), ("-ctv", "-ctv"), ("-fa", "-fa")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inventory", nargs="?", default="inventories/lab.py")
    parser.add_argument("--host")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--duration", type=float, default=20.0)
    options = parser.parse_args()

    inventory = load_inventory(options.inventory)
    with Session(inventory) as session:
        target = session.host(options.host) if options.host else session.active_hosts[0]
        deployment = read_deployment(target)
        args = deployment.args
        bench_flags: list[str] = []
        for server_flag, bench_flag in SHARED:
            if server_flag in args:
                value = args[args.index(server_flag) + 1]
                bench_flags += [bench_flag, "1" if bench_flag == "-fa" and value == "on" else value]
        command = [BENCH, "-m", deployment.model_path, *bench_flags, "-p", "0",
                   "-n", str(options.max_tokens), "-d", str(options.prompt_tokens), "-r", "5", "-o", "json"]
        ok, out, err = run_command(target, shlex.join(command) + " 2>/dev/null")
        if not ok:
            print(f"llama-bench failed: {err[-400:]}", file=sys.stderr)
            return 1
        reference = json.loads(out)[0]["avg_ts"]

    result = bench(
        options.inventory,
        limit=[target.name],
        levels=[1],
        prompt_tokens=options.prompt_tokens,
        max_tokens=options.max_tokens,
        duration_s=options.duration,
    )
    measured = result.hosts[target.name].levels[0]
    print(f"host {target.name}: {deployment.model_name} {deployment.model_quant}, build {deployment.build}")
    print(f"llama-bench: {shlex.join(command[1:])}")
    print(f"{'':28} {'decode tok/s':>12}")
    print(f"{'rigctl bench (1 user, HTTP)':28} {measured.decode_tps_per_request or 0:12.1f}  "
          f"({measured.requests} requests, prompt {measured.prompt_tokens} tokens)")
    print(f"{'llama-bench tg at depth':28} {reference:12.1f}")
    ratio = (measured.decode_tps_per_request or 0) / reference
    print(f"ratio rigctl/llama-bench: {ratio:.2f} ({'within' if abs(ratio - 1) <= 0.10 else 'OUTSIDE'} +-10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
