"""Naming who keeps an object and the user's line that stored it (harness.probes.keepers)."""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path

from harness.probes.keepers import Keeper, Namer
from harness.probes.sites import is_user_file

HERE = Path(__file__).resolve()
FILE = str(HERE)
HISTORY: list[object] = []


def _line(tag: str) -> int:
    for number, text in enumerate(HERE.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# {tag}") and "def _line" not in text:
            return number
    raise LookupError(tag)


def _at(tag: str) -> str:
    return f"tests/unit/test_keepers.py:{_line(tag)}"


class Tree:
    def __init__(self) -> None:
        self.slots: list[object] = [0] * 8

    def update(self, index: int, value: object) -> None:
        self.slots[index] = value  # STORE-PASSES

    def refresh(self, index: int) -> None:
        self.slots[index] = [index]  # STORE-MAKES


def _namer() -> Namer:
    return Namer(is_user_file)


def test_a_list_attribute_is_named_with_its_class_and_the_line_that_passes_an_object_into_it():
    tree = Tree()
    value = object()  # MADE-ELSEWHERE
    tree.update(3, value)
    keeper = _namer().keeper(tree.slots, value, (FILE, _line("MADE-ELSEWHERE")))
    assert keeper == Keeper(
        "Tree.slots (list)", _at("STORE-PASSES"), "update", "self.slots[index] = value  # STORE-PASSES"
    )


def test_a_store_on_the_allocating_line_wins():
    tree = Tree()
    tree.refresh(2)
    keeper = _namer().keeper(tree.slots, tree.slots[2], (FILE, _line("STORE-MAKES")))
    assert keeper.location == _at("STORE-MAKES")


def test_two_lines_that_pass_objects_into_the_holder_name_no_line():
    class Twice:
        def __init__(self) -> None:
            self.items: list[object] = []

        def add(self, x: object) -> None:
            self.items.append(x)

        def add_too(self, x: object) -> None:
            self.items.append(x)

    keep = Twice()
    x = object()
    keep.add(x)
    keeper = _namer().keeper(keep.items, x, (FILE, 1))
    assert keeper.held_by.endswith("Twice.items (list)") and keeper.location == ""


def test_a_closure_variable_is_named_with_its_function_and_the_append_line():
    def make():
        losses: list[object] = []

        def step(x: object) -> None:
            losses.append(x)  # CLOSURE-APPEND

        return step, losses

    step, losses = make()
    x = object()
    step(x)
    keeper = _namer().keeper(losses, x, (FILE, 1))
    assert keeper.held_by.startswith("closure variable 'losses' of test_a_closure_variable_is_named")
    assert keeper.held_by.endswith(".<locals>.make.<locals>.step (list)")
    assert keeper.location == _at("CLOSURE-APPEND")


def remember(x: object) -> None:
    HISTORY.append(x)  # GLOBAL-APPEND


def test_a_module_global_is_named_with_its_module_and_the_append_line():
    x = object()
    remember(x)
    try:
        keeper = _namer().keeper(HISTORY, x, (FILE, 1))
        assert keeper.held_by.startswith("module global ") and keeper.held_by.endswith("test_keepers.HISTORY (list)")
        assert keeper.location == _at("GLOBAL-APPEND")
    finally:
        HISTORY.clear()


def test_an_attribute_holding_the_object_itself_names_the_assignment():
    class Stats:
        def __init__(self) -> None:
            self.total: object = 0.0

        def add(self, loss: object) -> None:
            self.total = loss  # ATTR-ASSIGN

    stats = Stats()
    loss = object()
    stats.add(loss)
    keeper = _namer().keeper(stats, loss, (FILE, 1))
    assert keeper.held_by.endswith("Stats.total (object)") and keeper.location == _at("ATTR-ASSIGN")


def test_the_cache_of_an_lru_cache_is_named_with_the_cached_function():
    class Tokenizer:
        @functools.cache  # noqa: B019 (the leak being named)
        def encode(self, word: str) -> int:
            return len(word)

    tok = Tokenizer()
    tok.encode("hello")
    cache = next(d for d in gc.get_referents(Tokenizer.__dict__["encode"]) if isinstance(d, dict) and d)
    keeper = _namer().keeper(cache, next(iter(cache)), (FILE, 1))
    assert keeper.held_by.startswith("the cache of functools.lru_cache on ")
    assert "Tokenizer.encode (tests/unit/test_keepers.py:" in keeper.held_by
    assert keeper.location == ""


def test_a_local_variable_of_a_running_function_is_named():
    history: list[object] = []
    x = object()
    history.append(x)  # LOCAL-APPEND
    keeper = Namer(is_user_file, [sys._getframe()]).keeper(history, x, (FILE, 1))
    assert keeper.held_by.startswith("local variable 'history' of test_a_local_variable")
    assert keeper.location == _at("LOCAL-APPEND")
