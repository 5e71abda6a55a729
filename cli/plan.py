"""``rigctl plan``: the runtime and tuned flags for each host, with the reasons."""

from __future__ import annotations

from typing import Any

import click
from rigctl.cli.render import Markup, emit_json, error_line, esc, line, table

from rigctl.errors import BadInput
from rigctl.host_plans import HostPlan, plan_inventory, plan_offline
from rigctl.plan.types import PREFER_CHOICES, RUNTIME_CHOICES, Plan

GiB = 1024**3


def _gib(value: int) -> str:
    return f"{value / GiB:.2f} GiB"


def print_plan(name: str, host_plan: HostPlan) -> None:
    joint = host_plan.models
    if joint is None:
        _print_one(esc(name), host_plan.plan)
        return
    line(
        Markup(
            f"[bold]{esc(name)}[/]: {len(joint.plans)} models, {esc(joint.mode)}, at most "
            f"{joint.models_max} loaded at once"
        ),
        soft_wrap=False,
    )
    table(
        None,
        ["alias", "runtime", "model", "loaded", "gpu", "ram"],
        (
            (
                alias,
                plan.runtime,
                f"{plan.model.name} {plan.model.quant}",
                "always" if joint.mode == "resident" or alias in joint.keep_loaded
                or plan.runtime == "vllm" else ("first" if alias in joint.loaded else "on demand"),
                _gib(sum(r.bytes for r in plan.memory.placement if r.device != "cpu")),
                _gib(sum(r.bytes for r in plan.memory.placement if r.device == "cpu")),
            )
            for alias, plan in joint.plans.items()
        ),
    )
    for reason in joint.reasons:
        line(f"  - {reason}")
    for error in joint.errors:
        line(Markup(f"  [red]error:[/] {esc(error)}"))
    for alias, plan in joint.plans.items():
        _print_one(f"{esc(name)} / {esc(alias)}", plan)


def _print_one(title: str, plan: Plan) -> None:
    model = plan.model
    line(
        Markup(
            f"[bold]{title}[/]: {esc(plan.runtime)} serving {esc(model.name)} "
            f"{esc(model.quant)} ({_gib(model.size_bytes)})"
        ),
        soft_wrap=False,
    )
    flags = plan.flags
    if isinstance(flags, dict):
        line("  env: " + " ".join(f"{k}={v}" for k, v in flags.items()))
    else:
        line(f"  {plan.executable} " + " ".join(flags))
    memory = plan.memory
    table(
        None,
        ["device", "weights", "kv cache", "overhead", "total", "usable", "fits"],
        (
            (
                p.device,
                _gib(p.weights),
                _gib(p.kv_cache),
                _gib(p.overhead),
                _gib(p.bytes),
                _gib(p.usable),
                "yes" if p.fits else "NO",
            )
            for p in memory.placement
        ),
    )
    for reason in plan.reasons:
        line(f"  - {reason}")
    for warning in plan.warnings:
        line(Markup(f"  [yellow]warning:[/] {esc(warning)}"))
    for error in plan.errors:
        line(Markup(f"  [red]error:[/] {esc(error)}"))


@click.command()
@click.argument("target", required=False)
@click.option(
    "--hardware",
    "hardware_file",
    type=click.Path(),
    help="Plan offline from a `detect --json` file, or a host written by hand (accelerator, "
    "gpus, memory_bytes, cpu, os, disk_free_bytes: the README lists each field).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Catalog name (name:quant), hf://org/repo/file.gguf, https:// URL, or GGUF path; "
    "give it more than once to plan several models together (each served by its default alias).",
)
@click.option("--models-max", type=int, help="With several --model: how many may be loaded at once.")
@click.option("--concurrency", type=int, help="Concurrent users to serve.")
@click.option("--context", type=int, help="Context length per user, in tokens.")
@click.option(
    "--context-max",
    type=int,
    help="With no --context: grow the context up to this many tokens per user (default 32768).",
)
@click.option(
    "--runtime", type=click.Choice(RUNTIME_CHOICES), help="Force a runtime (default auto)."
)
@click.option("--prefer", type=click.Choice(PREFER_CHOICES), help="simple, control or throughput.")
@click.option("--json", "as_json", is_flag=True, help='Print {"hosts": {NAME: plan}} as JSON.')
def plan(
    target: str | None,
    hardware_file: str | None,
    models: tuple[str, ...],
    models_max: int | None,
    concurrency: int | None,
    context: int | None,
    context_max: int | None,
    runtime: str | None,
    prefer: str | None,
    as_json: bool,
) -> None:
    """Choose the runtime and tuned flags for each host, and say why.

    \b
    rigctl plan INVENTORY                      detect each host, plan from its host data
    rigctl plan --hardware H.json --model M    plan offline from `detect --json` output
    rigctl plan --hardware H.json --model A --model B [--models-max 1]
                                               several models on one host, planned together
    """
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "concurrency": concurrency,
            "context": context,
            "context_max": context_max,
            "runtime": runtime,
            "prefer": prefer,
            "models_max": models_max,
        }.items()
        if value is not None
    }
    model = models[0] if len(models) == 1 else None
    if len(models) > 1:
        overrides["models"] = [{"model": m} for m in models]
    if hardware_file:
        if target:
            raise BadInput("give either TARGET or --hardware, not both", field="target")
        if not models:
            raise BadInput("--hardware needs --model", field="model")
        result = plan_offline(hardware_file, {"model": model, **overrides} if model else overrides)
    elif target:
        result = plan_inventory(target, model=model, overrides=overrides)
    else:
        raise BadInput("give an inventory TARGET, or --hardware FILE with --model", field="target")
    if as_json:
        emit_json(result.to_json())
    else:
        for name, host_plan in result.plans.items():
            print_plan(name, host_plan)
        for name, failure in result.failed.items():
            error_line(f"host {name}: {failure['status']}: {failure['error']}")
    raise click.exceptions.Exit(result.exit_code)
