"""Every runtime rigctl deploys, by the name the planner gives it: one :class:`Deploy` each."""

from __future__ import annotations

from rigctl.deploys import Deploy
from rigctl.deploys.llamacpp import LlamaCppDeploy
from rigctl.deploys.ollama import OllamaDeploy
from rigctl.deploys.vllm import VllmDeploy

from rigctl.plan import Plan
from rigctl.plan.multi import ModelsPlan

RUNTIMES: dict[str, type[Deploy]] = {
    "llamacpp": LlamaCppDeploy,
    "ollama": OllamaDeploy,
    "vllm": VllmDeploy,
}



class _OwnUnits(frozenset[str]):
    """rigctl's units, ``rigctl-vllm-<alias>.service`` (one per model) included."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (
            isinstance(name, str) and name.startswith(f"{VllmDeploy.UNIT}-")
            and name.endswith(".service")
        )


#: rigctl's servers: a port one of them holds is the one its deploy replaces, not a conflict
OWN_UNITS: frozenset[str] = _OwnUnits(f"{deploy.UNIT}.service" for deploy in RUNTIMES.values())


def deploy_for(plan: Plan, models: ModelsPlan | None) -> tuple[type[Deploy] | None, str | None]:
    """The deploy that serves a host's plan (its joint plan, for several models), or why none
    can: a runtime rigctl does not deploy, or several models where the plan puts them on
    runtimes that cannot serve them together yet."""
    runtimes = sorted({p.runtime for p in models.plans.values()}) if models else [plan.runtime]
    deploy = RUNTIMES.get(runtimes[0]) if len(runtimes) == 1 else None
    if deploy is None:
        if len(runtimes) > 1:
            return None, (
                f"the plan puts its models on {' and '.join(runtimes)}: one host serving "
                "models on several runtimes is not built yet (set `runtime` on the entries)"
            )
        return None, f"runtime {runtimes[0]} is not deployable"
    if models is not None and not deploy.SERVES_SEVERAL:
        return deploy, (
            f"several models on {runtimes[0]} are not built yet (set `runtime` on the "
            "entries to one that serves several)"
        )
    return deploy, None
