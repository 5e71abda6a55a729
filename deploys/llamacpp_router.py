"""Several models behind one ``llama-server``: its router mode, configured from the joint plan.

The pinned llama-server, started with ``--models-preset FILE`` and no model, is a router: it
listens on the host's endpoint, and for each model a request names (the ``model`` field, the
alias) it starts a ``llama-server`` of its own on a loopback port with that model's options
from the presets file, and forwards the request. ``--models-max`` caps the models running at
once; asking for one more stops the least recently used first.

rigctl writes the presets file from :class:`~rigctl.plan.multi.ModelsPlan`: one section per
alias holding exactly the arguments that model's plan fitted (``-ngl``, context, slots, KV
cache types, expert offload, ``--fit off``), so every load runs the plan and not the server's
own fitting; the models the plan loads first are loaded at start (``load-on-startup``), and,
with ``models_idle_seconds``, the others sleep (unload) when idle. Every value goes through the
INI filters of :mod:`rigctl.templates`.

The API key: the router strips key options from what it passes its children, which listen on
loopback without one unless their environment holds ``LLAMA_API_KEY``; so in router mode the
key lives in an environment file (``api-key.env``, systemd ``EnvironmentFile=``) that the router
and each child read, and the router forwards the client's ``Authorization`` header: no port of
the unit answers without the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rigctl.roles import llamacpp
from rigctl.templates import render

from rigctl.errors import BadInput
from rigctl.hostspec import HostSpec
from rigctl.plan import Plan
from rigctl.plan.multi import ModelsPlan

#: The variable llama-server reads its API key from (``--api-key``'s environment name).
KEY_VARIABLE = "LLAMA_API_KEY"
#: The presets file's name in the unit's configuration directory (``/etc/rigctl/<unit>/``).
PRESETS_NAME = "models.ini"


@dataclass(frozen=True)
class Preset:
    """One model's section of the presets file."""

    alias: str
    description: str
    options: tuple[tuple[str, str], ...]


def plan_options(plan: Plan) -> list[tuple[str, str]]:
    """A llama-server plan's argv as presets-file options: each ``-flag value`` pair becomes
    ``flag = value`` (llama-server takes its arguments' names, short or long, as keys)."""
    args = list(plan.args)
    if len(args) % 2:
        raise ValueError(f"not option/value pairs: {args!r}")
    options: list[tuple[str, str]] = []
    for flag, value in zip(args[0::2], args[1::2], strict=True):
        if not flag.startswith("-") or flag.strip("-") == "":
            raise ValueError(f"not an option: {flag!r} in {args!r}")
        options.append((flag.lstrip("-"), value))
    return options


def presets(models: ModelsPlan, idle_seconds: int | None) -> list[Preset]:
    """The presets file's sections, in the host's ``models`` order."""
    sections = []
    for alias, plan in models.plans.items():
        options = plan_options(plan)
        if alias in models.loaded:
            options.append(("load-on-startup", "true"))
        if idle_seconds is not None and alias not in models.keep_loaded:
            options.append(("sleep-idle-seconds", str(idle_seconds)))
        loaded = (
            "loaded at all times" if alias in models.keep_loaded
            else "loaded at start" if alias in models.loaded else "loaded on demand"
        )
        sections.append(Preset(
            alias=alias,
            description=f"{plan.model.name} {plan.model.quant}: {plan.concurrency} user(s), "
            f"{plan.context:,} tokens each, {loaded}",
            options=tuple(options),
        ))
    return sections


def render_presets(unit: str, models: ModelsPlan, idle_seconds: int | None) -> str:
    """The presets file the router reads (``--models-preset``)."""
    return render(
        "llama-server-models.ini.j2",
        unit=unit,
        plan_summary=summary(models),
        presets=presets(models, idle_seconds),
    )


def summary(models: ModelsPlan) -> str:
    return (
        f"{len(models.plans)} models, {models.mode}, at most {models.models_max} loaded at once"
    )


def router_argv(
    spec: HostSpec,
    models: ModelsPlan,
    presets_path: str,
    prefix: str = llamacpp.defaults.LLAMACPP_PREFIX,
) -> list[str]:
    """The router's command line. The key comes from the environment (``LLAMA_API_KEY``, see
    the module doc); the server options here reach every child too (the router passes its own
    arguments on), as does ``-lv 4`` when a model is offloaded (the buffers' devices logged)."""
    verbose = any(plan.memory.gpu_layers for plan in models.plans.values())
    return [
        llamacpp.binary("llama-server", prefix),
        "--models-preset",
        presets_path,
        "--models-max",
        str(models.models_max),
        "--host",
        spec.listen,
        "--port",
        str(spec.port),
        "--metrics",
        "--no-slots",
        "--no-webui",
        *(["-lv", "4"] if verbose else []),
    ]


def router_environment(plans: Sequence[Plan], host: str) -> dict[str, str]:
    """The unit's environment: every plan's (the children inherit it); two plans that want one
    variable set two ways cannot share a process tree (BadInput)."""
    environment: dict[str, str] = {}
    for plan in plans:
        for name, value in plan.env.items():
            if environment.setdefault(name, value) != value:
                raise BadInput(
                    f"the models' plans set {name} differently ({environment[name]!r}, "
                    f"{value!r}): they cannot share one llama-server",
                    host=host, field="models",
                )
    return environment
