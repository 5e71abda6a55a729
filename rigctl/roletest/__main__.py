"""``python -m rigctl.roletest converge ROLE --instance-config PATH [--vars JSON]``.

Applies the role's scenario to the instances (``rigctl.roletest.converge``) and prints rigctl's
summary as one JSON document: ``{"role", "hosts": {NAME: {status, changed_ops, failed_ops,
error}}, "failed", "ok"}``. Exit 0 when every host converged, 1 when one failed, 2 for bad input.
"""

from __future__ import annotations

# gevent must patch the standard library before ssl/socket users load (rigctl._gevent).
from rigctl import _gevent

_gevent.patch()

# ruff: noqa: E402
import argparse
import json
import sys

from rigctl.errors import EXIT_BAD_INPUT, RigctlError
from rigctl.roletest.converge import converge
from rigctl.roletest.instances import read_instances
from rigctl.roletest.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rigctl.roletest")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("converge", help="apply a role's scenario to the instances")
    run.add_argument("role", choices=sorted(SCENARIOS))
    run.add_argument("--instance-config", required=True, help="Molecule's instance config (YAML)")
    run.add_argument("--vars", default="{}", help="scenario variables as a JSON object")
    args = parser.parse_args(argv)
    try:
        values = json.loads(args.vars)
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        print(f"rigctl: error: field vars: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summary = converge(args.role, read_instances(args.instance_config), values)
    except RigctlError as e:
        print(f"rigctl: error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps({"role": args.role, **summary.to_json()}, indent=2))
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
