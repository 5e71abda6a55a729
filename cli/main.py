"""The ``rigctl`` command: global options, command registration, exit codes.

Exit codes: 0 ok; 1 some host failed; 2 bad input or usage (nothing was changed).
"""

from __future__ import annotations

# gevent must patch the standard library before ssl/socket users load (rigctl._gevent).
from rigctl import _gevent

_gevent.patch()

# ruff: noqa: E402
import logging
import sys

import click
from rigctl.cli import bench as bench_cmd
from rigctl.cli import detect as detect_cmd
from rigctl.cli import lab as lab_cmd
from rigctl.cli import logs as logs_cmd
from rigctl.cli import models as models_cmd
from rigctl.cli import plan as plan_cmd
from rigctl.cli import provision as provision_cmd
from rigctl.cli import remove as remove_cmd
from rigctl.cli import rollout as rollout_cmd
from rigctl.cli import status as status_cmd
from rigctl.cli import verify as verify_cmd
from rigctl.cli.render import error_line

from rigctl import __version__
from rigctl.errors import EXIT_BAD_INPUT, RigctlError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rigctl")
@click.option("-v", "--verbose", count=True, help="More output (-vv: pyinfra's debug log).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Turn bare machines into tuned, benchmarked local-LLM inference servers.

    TARGET and INVENTORY are pyinfra inventories: a file such as inventories/homelab.py,
    a comma-separated host list, or a connector spec such as @local.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(provision_cmd.provision)
cli.add_command(detect_cmd.detect)
cli.add_command(plan_cmd.plan)
cli.add_command(bench_cmd.bench)
cli.add_command(status_cmd.status)
cli.add_command(logs_cmd.logs)
cli.add_command(rollout_cmd.rollout)
cli.add_command(rollout_cmd.rollback)
cli.add_command(remove_cmd.remove)
cli.add_command(verify_cmd.verify)
cli.add_command(models_cmd.models)
cli.add_command(lab_cmd.lab)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: turns rigctl errors into one line and an exit code."""
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        result = cli.main(args=argv, prog_name="rigctl", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        error_line(f"{e.format_message()}{hint}")
        return EXIT_BAD_INPUT
    except click.ClickException as e:
        error_line(e.format_message())
        return e.exit_code
    except click.Abort:
        error_line("aborted")
        return 130
    except RigctlError as e:
        error_line(str(e))
        return e.exit_code
    except SystemExit as e:
        return int(e.code or 0)
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
