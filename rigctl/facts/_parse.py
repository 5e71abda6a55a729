"""Small parsing helpers shared by the fact modules: tolerant, never raising."""

from __future__ import annotations

import re
from collections.abc import Iterable

_VERSION = re.compile(r"\d+(?:\.\d+)+")


def to_int(text: str | None) -> int | None:
    """``int(text)``, or None for anything that is not a plain integer ("[N/A]", "", None)."""
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def split_pairs(lines: Iterable[str], separator: str) -> list[tuple[str, str]]:
    """Lines of ``key<separator>value`` as stripped pairs, in order; other lines are skipped."""
    pairs = []
    for line in lines:
        key, found, value = line.partition(separator)
        if found and key.strip():
            pairs.append((key.strip(), value.strip()))
    return pairs


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for dotted versions, so "12.10" sorts after "12.4"."""
    match = _VERSION.search(version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()
