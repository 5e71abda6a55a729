"""The planner's inputs: their bounds and the one check of each.

The host-data schema (:mod:`rigctl.hostdata`) checks ``concurrency`` and ``context`` with these
same functions when an inventory loads, and :func:`validate_inputs` again when a plan is made
(``rigctl plan --concurrency``, a model's native context): one definition, one message.
Pure: no host, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rigctl.errors import BadInput
from rigctl.plan.memory import DEFAULT_CONTEXT
from rigctl.plan.types import PREFER_CHOICES, RUNTIME_CHOICES
from rigctl.redact import redact

if TYPE_CHECKING:
    from rigctl.models.catalog import CatalogModel
    from rigctl.models.facts import ModelFacts

#: users served at once
MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 1024
#: tokens of context per user; a model's native (trained) context lowers the upper bound
MIN_CONTEXT = 256
MAX_CONTEXT = 1_048_576


def _integer(value: Any, low: int, high: int, bound: str = "") -> int:
    """``value`` when it is an integer (not a bool) from ``low`` to ``high``; ValueError(why)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = redact(repr(value))[:80]
        raise ValueError(f"must be an integer from {low:,} to {high:,}{bound}, got {shown}")
    return value


def check_concurrency(value: Any) -> int:
    """``value`` as a concurrency: an integer from 1 to 1,024; ValueError(why) otherwise."""
    return _integer(value, MIN_CONCURRENCY, MAX_CONCURRENCY)


def context_limit(native: int | None) -> int:
    """The largest context per user: the model's native context (when known), at most 1,048,576."""
    return min(native or MAX_CONTEXT, MAX_CONTEXT)


def check_context(value: Any, native: int | None = None) -> int:
    """``value`` as a context per user: an integer from 256 to :func:`context_limit` of the
    model's ``native`` context (None: not known here); ValueError(why) otherwise."""
    limit = context_limit(native)
    bound = " (the model's native context)" if native and native < MAX_CONTEXT else ""
    return _integer(value, MIN_CONTEXT, limit, bound)


def validate_inputs(
    model: ModelFacts | CatalogModel,
    *,
    concurrency: int,
    context: int | None,
    runtime: str,
    prefer: str,
) -> int:
    """Check the plan's inputs; return the context per request to plan for.

    Raises BadInput naming the field: concurrency 1..1024, context 256..the model's native
    context (1,048,576 when unknown), prefer simple|control|throughput, runtime
    auto|ollama|llamacpp|vllm.
    """
    if runtime not in RUNTIME_CHOICES:
        raise BadInput(
            f"must be one of {', '.join(RUNTIME_CHOICES)}, got {runtime!r}", field="runtime"
        )
    if prefer not in PREFER_CHOICES:
        raise BadInput(
            f"must be one of {', '.join(PREFER_CHOICES)}, got {prefer!r}", field="prefer"
        )
    try:
        check_concurrency(concurrency)
    except ValueError as e:
        raise BadInput(str(e), field="concurrency") from None
    if context is None:
        return min(context_limit(model.context_length), DEFAULT_CONTEXT)
    try:
        return check_context(context, model.context_length)
    except ValueError as e:
        raise BadInput(str(e), field="context") from None
