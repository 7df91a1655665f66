"""Liveness: survivors are named with the chain that holds them; released objects pass."""

from __future__ import annotations

import sys
import types
import typing
from collections import deque

import numpy as np
import pytest

import harness
from harness.errors import HarnessUsageError, ReleaseError


def episode(n: int = 64) -> dict[str, np.ndarray]:
    return {"obs": np.ones((n, 8, 8, 3), dtype=np.uint8), "reward": np.zeros(n, dtype=np.float32)}


def test_released_objects_pass():
    tr = harness.track_release()
    ep = episode()
    tr.watch(ep, label="episode 0")
    del ep
    tr.assert_released()
    assert tr.watched == 2 and tr.released == 2


class Trainer:
    def __init__(self) -> None:
        self._inflight: deque[tuple[np.ndarray, int]] = deque()


def test_a_view_in_an_untracked_tuple_is_traced_to_the_queue_that_holds_it():
    trainer = Trainer()
    ep = episode()
    trainer._inflight.append((ep["obs"][3:11], 7))  # a tuple of untracked objects: gc untracks it
    tr = harness.track_release()
    tr.watch(ep["obs"], label="episode 17 obs")
    del ep
    with pytest.raises(ReleaseError) as err:
        tr.assert_released()
    text = str(err.value)
    assert "1 of 1 watched objects are still alive" in text
    assert "episode 17 obs (ndarray) is still alive, held by: local 'trainer' in " in text
    assert "Trainer._inflight (deque, 1 items) -> [0] (tuple, 2 items) -> [0] (ndarray view (8, 8, 8, 3) uint8)" in text
    assert "-> .base (ndarray (64, 8, 8, 3) uint8)" in text
    trainer._inflight.clear()
    tr.assert_released()


def test_a_closure_that_captured_the_object_is_named():
    ep = episode()

    def make_logger(arr):
        def log():
            return arr.shape

        return log

    callbacks = [make_logger(ep["obs"][::2])]
    tr = harness.track_release()
    tr.watch(ep["obs"], label="obs")
    del ep
    with pytest.raises(
        ReleaseError, match=r"local 'callbacks' .* -> \[0\] \(function .*log\) -> closure variable 'arr'"
    ):
        tr.assert_released()
    callbacks.clear()


def test_a_module_level_cache_is_named_with_its_module():
    mod = types.ModuleType("user_cache_mod")
    mod.CACHE = {}
    sys.modules["user_cache_mod"] = mod
    try:
        ep = episode()
        mod.CACHE["last"] = ep["obs"]
        tr = harness.track_release()
        tr.watch(ep["obs"], label="obs")
        del ep
        with pytest.raises(ReleaseError, match=r"module global user_cache_mod.CACHE \(dict, 1 items\) -> \['last'\]"):
            tr.assert_released()
    finally:
        del sys.modules["user_cache_mod"]


class History:
    seen: typing.ClassVar[list[np.ndarray]] = []  # a class-level list shared by every instance: the classic


def test_a_class_attribute_is_named():
    ep = episode()
    History.seen.append(ep["obs"])
    tr = harness.track_release()
    tr.watch(ep["obs"], label="obs")
    del ep
    try:
        with pytest.raises(ReleaseError, match=r"class History\)? -> .*\.seen \(list, 1 items\)|History.seen"):
            tr.assert_released()
    finally:
        History.seen.clear()
    tr.assert_released()


def test_a_tensor_sharing_memory_through_from_numpy_is_found():
    torch = pytest.importorskip("torch")
    ep = episode()
    pending = [torch.from_numpy(ep["obs"][2:6])]
    tr = harness.track_release()
    tr.watch(ep["obs"], label="obs")
    del ep
    with pytest.raises(ReleaseError, match=r"local 'pending' .* -> \[0\] \(Tensor \(4, 8, 8, 3\) uint8\)"):
        tr.assert_released()
    pending.clear()
    tr.assert_released()


def test_watching_something_without_weak_references_is_a_clear_error():
    tr = harness.track_release()
    with pytest.raises(HarnessUsageError, match="a int takes no weak references"):
        tr.watch(12345, label="a number")
    with pytest.raises(HarnessUsageError, match="a tuple takes no weak references and holds nothing that does"):
        tr.watch((1, 2), label="pair")


def test_only_the_first_survivors_are_searched():
    keep = [np.ones(10) for _ in range(5)]
    tr = harness.track_release()
    for i, arr in enumerate(keep):
        tr.watch(arr, label=f"a{i}")
    survivors = tr.survivors(max_report=2)
    assert [s.chain is not None for s in survivors] == [True, True, False, False, False]
    with pytest.raises(ReleaseError, match=r"5 of 5 watched objects .*\n.*\n.*\n  \.\.\. and 3 more"):
        tr.assert_released(max_report=2)
