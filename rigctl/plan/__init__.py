"""The planner: what to run on a host, with which flags, and why. Pure: no host, no I/O.

``make_plan(hardware, model)`` takes a :class:`~rigctl.hardware.Hardware` record and a
model (:class:`~rigctl.models.facts.ModelFacts` from a GGUF header, or a
:class:`~rigctl.models.catalog.CatalogModel`) and returns a :class:`Plan`.

This module is the package's face: ``make_plan`` lives in :mod:`rigctl.plan.make`, the inputs'
bounds and checks in :mod:`rigctl.plan.limits`, the records in :mod:`rigctl.plan.types`.
"""

from __future__ import annotations

from rigctl.plan.limits import (
    MAX_CONCURRENCY,
    MAX_CONTEXT,
    MIN_CONCURRENCY,
    MIN_CONTEXT,
    check_concurrency,
    check_context,
    validate_inputs,
)
from rigctl.plan.make import (
    DEFAULT_MODEL_DIR,
    MIN_LLAMACPP_COMPUTE_CAPABILITY,
    make_plan,
    vllm_host_path,
)
from rigctl.plan.types import (
    PREFER_CHOICES,
    RUNTIME_CHOICES,
    DevicePlacement,
    MemoryPlan,
    Plan,
    PlannedModel,
)

__all__ = [
    "DEFAULT_MODEL_DIR",
    "MAX_CONCURRENCY",
    "MAX_CONTEXT",
    "MIN_CONCURRENCY",
    "MIN_CONTEXT",
    "MIN_LLAMACPP_COMPUTE_CAPABILITY",
    "PREFER_CHOICES",
    "RUNTIME_CHOICES",
    "DevicePlacement",
    "MemoryPlan",
    "Plan",
    "PlannedModel",
    "check_concurrency",
    "check_context",
    "make_plan",
    "validate_inputs",
    "vllm_host_path",
]
