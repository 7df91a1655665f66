"""record(where=True) names the line that keeps what grows (harness.probes.sites)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.probes.sites import is_user_file

pytest.importorskip("memray")

HERE = Path(__file__).resolve()


def _line(tag: str) -> str:
    for number, text in enumerate(HERE.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# {tag}") and "def " not in text:
            return f"tests/unit/test_sites.py:{number}"
    raise LookupError(tag)


def _relative(location: str) -> str:
    return location.split("tests/unit/", 1)[-1].join(["tests/unit/", ""]) if "tests/unit/" in location else location


def test_torch_total_plus_loss_names_the_sum_line(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    w = torch.nn.Parameter(torch.ones(256))
    total = torch.zeros(())
    with harness.record("torch-total", tmp_path / "trace.jsonl", where=True) as rec:
        for step in rec.steps(400):
            x = torch.randn(64, 256)
            loss = ((x * w).tanh() ** 2).mean()
            loss.backward()
            total = total + loss  # LEAK-TORCH
            if step == 40:
                rec.mark("warm")
    verdict = harness.growth_verdict(rec.trace, after="warm", max_growth="1 MB/1k steps")
    assert verdict.sites, rec.trace.meta.get("sites_error")
    top = verdict.sites[0]
    assert _relative(top.location) == _line("LEAK-TORCH"), verdict.sites
    assert top.share > 0.5
    assert "autograd" in top.native
    assert top.code.startswith("total = total + loss")
    assert rec.trace.meta["sites_after"] == "warm"
    page = Path(rec.trace.meta["growth_flamegraph"])
    assert page.name == "growth.flamegraph.html" and page.parent == tmp_path
    text = page.read_text()
    assert top.location in text and "<script" not in text and "http" not in text.split("</style>", 1)[1]


def test_numpy_view_appended_to_a_list_names_the_append_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((256, 64), dtype=np.float32)
    history: list[np.ndarray] = []
    with harness.record("numpy-view", where=True) as rec:
        for step in rec.steps(600):
            feats = pool * np.float32(1.0 + step % 3)
            history.append(feats[-1])  # LEAK-NUMPY
    verdict = harness.growth_verdict(rec.trace, max_growth="1 KB/1k steps")
    assert verdict.sites, rec.trace.meta.get("sites_error")
    assert _relative(verdict.sites[0].location) == _line("LEAK-NUMPY"), verdict.sites
    # the whole 64 KiB temporary is kept through the view's .base
    assert verdict.sites[0].bytes_per_step > 50_000
    assert "growth_flamegraph" not in rec.trace.meta  # no trace file, no page


def test_where_is_off_by_default_and_costs_nothing() -> None:
    with harness.record("plain") as rec:
        for _ in rec.steps(100):
            pass
    assert "sites" not in rec.trace.meta
    assert harness.growth_verdict(rec.trace, max_growth="1 MB/1k steps").sites == ()


def test_user_frames_exclude_libraries_and_the_harness() -> None:
    assert is_user_file(str(HERE))
    assert not is_user_file(np.__file__)
    assert not is_user_file(harness.__file__)
    assert not is_user_file(os.__file__)
    assert not is_user_file("<frozen importlib._bootstrap>")
    import harness.scenarios.replay as replay

    assert is_user_file(replay.__file__)  # built-in scenarios are code under test


class _Table:
    """Rows stored by a method: the line that keeps them is not the line that made them."""

    def __init__(self, size: int) -> None:
        self.rows: list[object] = [None] * size

    def update(self, index: int, row: np.ndarray) -> None:
        self.rows[index] = row  # STORE-ROW


def test_rows_made_by_numpy_iteration_and_stored_by_a_method_name_the_storing_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((16, 256), dtype=np.float32)
    table = _Table(10_000)
    with harness.record("rows", where=True) as rec:
        for step in rec.steps(500):
            batch = pool * np.float32(1.0 + step % 3)  # MAKE-BATCH
            for k, row in enumerate(batch[:2]):  # ITERATE-ROWS
                table.update(2 * step + k, row)
            if step == 50:
                rec.mark("warm")
    verdict = harness.growth_verdict(rec.trace, after="warm", max_growth="1 KB/1k steps")
    assert verdict.sites, rec.trace.meta.get("sites_error")
    top = verdict.sites[0]
    # kept at the storing line; the bytes (each row's 16 KiB base) made by the batch line
    assert _relative(top.location) == _line("STORE-ROW"), verdict.sites
    assert top.code == "self.rows[index] = row  # STORE-ROW"
    assert "kept by _Table.rows (list)" in top.native
    assert f"allocated at {_line('MAKE-BATCH')}" in top.native
    detail = rec.trace.meta["sites_detail"][0]
    assert _relative(detail["allocated"]) == _line("MAKE-BATCH")
    assert top.bytes_per_step > 15_000


class _Tokenizer:
    def __init__(self, table: np.ndarray) -> None:
        self.table = table.copy()

    @functools.cache  # noqa: B019 (the leak this test names)
    def encode(self, word: str) -> int:
        return int(self.table[len(word) % len(self.table)])


def test_objects_an_lru_cache_keeps_through_its_keys_name_the_line_that_made_them() -> None:
    table = np.arange(2048, dtype=np.int32)
    with harness.record("lru", where=True) as rec:
        for step in rec.steps(400):
            tok = _Tokenizer(table)  # MAKE-TOKENIZER
            for word in ("a", "bb", "ccc"):
                tok.encode(word)
            if step == 40:
                rec.mark("warm")
    verdict = harness.growth_verdict(rec.trace, after="warm", max_growth="1 KB/1k steps")
    assert verdict.sites, rec.trace.meta.get("sites_error")
    top = verdict.sites[0]
    # the argument tuples the cache keeps as keys are looked through: what they keep is the
    # tokenizer (and, from its constructor, its 8 KiB table)
    assert _relative(top.location) == _line("MAKE-TOKENIZER"), verdict.sites
    assert "kept by the cache of functools.lru_cache on _Tokenizer.encode (tests/unit/test_sites.py:" in top.native
    assert top.bytes_per_step > 8_000, verdict.sites
