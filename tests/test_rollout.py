"""Rollout arithmetic: batch sizes, canaries, the speed gate."""

from __future__ import annotations

import pytest

from rigctl.errors import BadInput
from rigctl.rollout import _gate, make_batches, parse_batch, regression


def test_batches_start_with_the_canaries() -> None:
    names = [f"gpu{i}" for i in range(7)]
    assert make_batches(names, 1, 3) == [["gpu0"], ["gpu1", "gpu2", "gpu3"], ["gpu4", "gpu5", "gpu6"]]
    assert make_batches(names, 0, 4) == [names[:4], names[4:]]
    assert make_batches(["a"], 2, 1) == [["a"]]


def test_batch_size_as_count_or_percent() -> None:
    assert parse_batch("2", 10) == 2
    assert parse_batch("25%", 10) == 3  # rounded up: never a zero-host batch
    assert parse_batch("1%", 3) == 1
    for bad in ("0", "-1", "x", "0%", "150%"):
        with pytest.raises(BadInput, match="field batch"):
            parse_batch(bad, 10)


def test_speed_gate() -> None:
    assert regression(100.0, 95.0, 10) is None
    assert regression(100.0, 89.0, 10) == "decode 89.0 tok/s is 11.0% below 100.0 before the change (gate 10%)"
    assert regression(None, 50.0, 10) is None  # a fresh host has nothing to compare with
    assert regression(100.0, 120.0, 0) is None


def test_each_model_of_a_host_is_gated_on_its_own_speed() -> None:
    # one model: its speed against itself
    assert _gate({None: 100.0}, {None: 95.0}, 10) is None
    assert _gate({None: 100.0}, {None: 80.0}, 10) is not None
    # several: the first that dropped is named; an added or removed one has nothing to compare
    before = {"chat": 100.0, "coder": 50.0, "gone": 10.0}
    assert _gate(before, {"chat": 99.0, "coder": 49.0, "new": 1.0}, 10) is None
    why = _gate(before, {"chat": 99.0, "coder": 30.0}, 10)
    assert why == "coder: decode 30.0 tok/s is 40.0% below 50.0 before the change (gate 10%)"
