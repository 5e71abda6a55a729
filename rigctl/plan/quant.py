"""Choose a GGUF quant when the user named a catalog model without one."""

from __future__ import annotations

from collections.abc import Sequence

from rigctl.hardware import Hardware
from rigctl.models.catalog import CatalogModel
from rigctl.plan.memory import Device, fit_layers, gib

# Best quality first (llama.cpp's perplexity tables: each step down loses a little more).
QUALITY_ORDER = (
    "bf16", "f16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q4_k_m", "q4_k_s", "iq4_xs", "q4_0",
    "q3_k_l", "q3_k_m", "iq3_m", "q3_k_s", "q2_k",
)
# The usual balance of size and quality, and the fallback when nothing fits whole.
DEFAULT_QUANT = "q4_k_m"


def _rank(quant: str) -> int:
    return QUALITY_ORDER.index(quant) if quant in QUALITY_ORDER else len(QUALITY_ORDER)


def choose_quant(
    model: CatalogModel,
    hardware: Hardware,
    gpus: Sequence[Device],
    *,
    context_per_slot: int,
    slots: int,
) -> tuple[str, str]:
    """Return (quant, the sentence saying why) for a catalog model without a pinned quant.

    With GPUs: the highest-quality quant that fits entirely on them with the requested
    context (f16 KV cache). On CPU: q4_k_m when it fits RAM — decoding on a CPU reads every
    weight per token, so a smaller file is a faster one — else the largest that fits.
    Nothing fits: q4_k_m (or the smallest published).
    """
    quants = sorted(model.quants, key=_rank)
    fallback = DEFAULT_QUANT if DEFAULT_QUANT in quants else quants[-1]

    def fits(quant: str) -> tuple[bool, int, int]:
        placement = fit_layers(model.facts(quant), hardware, gpus,
                               context_per_slot=context_per_slot, slots=slots, kv_type="f16")
        if gpus:
            used = sum(g.bytes for g in placement.gpus)
            return placement.full_offload, used, sum(g.usable for g in gpus)
        return placement.host.fits, placement.host.bytes, placement.host.usable

    if gpus:
        for quant in quants:
            ok, used, usable = fits(quant)
            if ok:
                better = [q for q in quants if _rank(q) < _rank(quant)]
                tail = f"; {better[-1].upper()} does not" if better else ""
                return quant, (
                    f"quant {quant.upper()}: the highest-quality one that fits entirely on the "
                    f"GPU ({gib(used)} of {gib(usable)} usable){tail}"
                )
        return fallback, (
            f"quant {fallback.upper()}: no published quant fits entirely on the GPU, so the "
            "usual balance of size and quality with a partial offload"
        )
    # A larger quant than the fallback needs more RAM, so only smaller ones are tried.
    for quant in (q for q in quants if _rank(q) >= _rank(fallback)):
        ok, used, usable = fits(quant)
        if ok:
            return quant, (
                f"quant {quant.upper()}: on a CPU every token reads all weights, so a "
                f"q4_k_m-sized file decodes fastest; it takes {gib(used)} of {gib(usable)} "
                "usable RAM"
            )
    return fallback, f"quant {fallback.upper()}: no published quant fits in RAM"
