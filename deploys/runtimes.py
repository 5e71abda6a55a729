"""Every runtime rigctl deploys, by the name the planner gives it: one :class:`Deploy` each."""

from __future__ import annotations

from rigctl.deploys import Deploy
from rigctl.deploys.llamacpp import LlamaCppDeploy
from rigctl.deploys.ollama import OllamaDeploy
from rigctl.deploys.vllm import VllmDeploy

RUNTIMES: dict[str, type[Deploy]] = {
    "llamacpp": LlamaCppDeploy,
    "ollama": OllamaDeploy,
    "vllm": VllmDeploy,
}

#: rigctl's servers: a port one of them holds is the one its deploy replaces, not a conflict
OWN_UNITS = frozenset(f"{deploy.UNIT}.service" for deploy in RUNTIMES.values())
