"""The Python heap: tracemalloc (traced bytes, sites that grew) and gc object counts.

tracemalloc is slow (pytest-memray's leak marker measured 1.9x to 15x slower on loops
here), so it only runs when a test asks for it.
"""

from __future__ import annotations

import collections
import gc
import tracemalloc
from dataclasses import dataclass

from harness.probes.paths import short_path


@dataclass(frozen=True)
class AllocationSite:
    """One line of code whose allocations changed between two snapshots."""

    where: str  # "file.py:42"
    size_diff: int
    count_diff: int
    size: int

    def describe(self) -> str:
        from harness.units import format_size

        sign = "+" if self.size_diff >= 0 else ""
        return f"{self.where} {sign}{format_size(self.size_diff)} ({self.count_diff:+,} blocks)"


class TracemallocProbe:
    """Python heap in use (tracemalloc), and the sites that grew between two points."""

    def __init__(self, frames: int = 1) -> None:
        self._frames = frames
        self._started_here = False
        self._snapshots: dict[str, tracemalloc.Snapshot] = {}

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self._frames)
            self._started_here = True

    def stop(self) -> None:
        if self._started_here and tracemalloc.is_tracing():
            tracemalloc.stop()
        self._started_here = False

    def read(self) -> int:
        return tracemalloc.get_traced_memory()[0]

    def snapshot(self, label: str) -> None:
        """Keep a snapshot under ``label`` for a later :meth:`top_growth`."""
        snap = tracemalloc.take_snapshot()
        self._snapshots[label] = snap.filter_traces(
            (
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                tracemalloc.Filter(False, "<unknown>"),
            )
        )

    def has(self, label: str) -> bool:
        return label in self._snapshots

    def top_growth(self, first: str, last: str, limit: int = 5) -> list[AllocationSite]:
        diff = self._snapshots[last].compare_to(self._snapshots[first], "lineno")
        sites = [
            AllocationSite(
                where=f"{short_path(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                size_diff=s.size_diff,
                count_diff=s.count_diff,
                size=s.size,
            )
            for s in diff
            if s.size_diff > 0
        ]
        return sites[:limit]


def gc_counts(top: int | None = None) -> dict[str, int]:
    """Live gc-tracked objects by type name (a full heap walk: call it rarely)."""
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    return dict(counts.most_common(top))


def gc_growth(before: dict[str, int], after: dict[str, int], top: int = 5) -> list[tuple[str, int]]:
    """Types whose live count grew the most between two :func:`gc_counts`."""
    grown = [(name, after[name] - before.get(name, 0)) for name in after]
    grown = [item for item in grown if item[1] > 0]
    grown.sort(key=lambda item: -item[1])
    return grown[:top]
