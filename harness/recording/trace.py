"""The Trace: the one data model every layer shares.

A trace is per-sample rows (step, time, every probed signal, declared accounting,
component metrics), events ("eviction" at step N) and metadata.

**Bounded in memory, whatever the run's length.** The recorder lives inside the process
it measures, so a day-long soak must not make the harness the leak it looks for. A trace
keeps the most recent samples exactly (between ``exact`` and twice that many rows) and
folds older ones into a decimated history of at most ``history`` blocks: per block the
median step and time, the sample count, and per signal the median, minimum and maximum.
When the history is full, neighbouring blocks merge pairwise (counts add, minima and
maxima stay exact, the median becomes the count-weighted mean of the two medians: a
base-2 remedian, Rousseeuw & Bassett 1990). The verdicts reduce any window to a few
hundred medians of equal step spans (``harness.analysis.stats``), which a history of
thousands of blocks resolves; ``Trace(bounded=False)`` / ``Trace.load(..., bounded=False)``
keeps everything for comparison.

A trace is read as numpy arrays: ``steps``, ``times``, ``counts`` (samples behind each
row: 1 for exact rows), ``columns``/``accounting``/``metrics_columns`` (name -> values)
and ``signal(name)``; ``extremes(name)`` gives each row's minimum and maximum and
``peak(name)`` the true maximum.

On disk a trace is JSONL (one line per sample, flushed per line: readable, ~85 bytes a
sample) or the block format of :mod:`harness.recording.blocks` (compact, checksummed,
flushed in blocks); ``Trace.load`` reads either, ``dump`` writes either (by suffix).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import TraceError

FORMAT_VERSION = 1

#: Signals a trace always knows how to compute, besides its own columns.
DERIVED_SIGNALS = ("unaccounted", "accounted")

#: Exact recent rows kept (between this and twice this).
EXACT_ROWS = 32_768
#: Decimated history blocks kept (between half this and this, once the run is long).
HISTORY_BLOCKS = 8_192
#: Samples per history block at the first fold (doubles at each merge).
FIRST_BLOCK = 8

#: The three tables of a row: probe columns, declared accounting, component metrics.
TABLES = ("v", "a", "m")

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Event:
    name: str
    step: int
    t: float


class SignalNames(list[str]):
    """The signal names of a trace; usable as ``trace.signals`` and ``trace.signals()``."""

    def __call__(self) -> list[str]:
        return list(self)


@dataclass
class _View:
    steps: I64
    times: F64
    counts: I64
    tables: dict[str, dict[str, F64]]
    lows: dict[str, dict[str, F64]]
    highs: dict[str, dict[str, F64]]


class Trace:
    """Samples, events and metadata of one recorded run (bounded in memory by default)."""

    def __init__(
        self,
        name: str,
        meta: dict[str, Any] | None = None,
        *,
        events: list[Event] | None = None,
        bounded: bool = True,
        exact: int = EXACT_ROWS,
        history: int = HISTORY_BLOCKS,
    ) -> None:
        if exact < FIRST_BLOCK or exact & (exact - 1) or history < 4:
            raise ValueError("exact must be a power of two >= 8 and history >= 4")
        self.name = name
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.events: list[Event] = list(events or [])
        self._event_names: dict[str, Event] = {e.name: e for e in self.events}
        self.bounded = bounded
        self._exact = exact
        self._history_cap = history
        self._block = FIRST_BLOCK
        # exact recent rows: array('q'/'d') for cheap appends
        self._steps: array[int] = array("q")
        self._times: array[float] = array("d")
        self._tail: dict[str, dict[str, array[float]]] = {k: {} for k in TABLES}
        # decimated history: numpy arrays
        self._h: dict[str, Any] = _empty_history()
        self._total = 0
        self._view: _View | None = None

    # -- building --------------------------------------------------------------------
    def append(
        self,
        step: int,
        t: float,
        values: Mapping[str, float],
        accounting: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        n = len(self._steps)
        self._steps.append(step)
        self._times.append(t)
        tail = self._tail
        _append_row(tail["v"], values, n)
        if accounting or tail["a"]:
            _append_row(tail["a"], accounting or {}, n)
        if metrics or tail["m"]:
            _append_row(tail["m"], metrics or {}, n)
        self._total += 1
        self._view = None
        if self.bounded and n + 1 >= self._exact + max(self._exact, self._block):
            self._fold()

    def extend(
        self,
        steps: NDArray[Any],
        times: NDArray[Any],
        tables: Mapping[str, Mapping[str, NDArray[Any]]],
        *,
        counts: NDArray[Any] | None = None,
        lows: Mapping[str, Mapping[str, NDArray[Any]]] | None = None,
        highs: Mapping[str, Mapping[str, NDArray[Any]]] | None = None,
    ) -> None:
        """Append many rows at once (``tables``: "v"/"a"/"m" -> name -> values).

        Rows with ``counts`` > 1 are decimated blocks (from a dumped bounded trace): they
        go to the history, and only before any exact row.
        """
        k = len(steps)
        if not k:
            return
        if counts is not None and np.any(counts != 1):
            if len(self._steps):
                raise TraceError(f"trace {self.name!r}: decimated rows must come before exact rows")
            self._extend_history(steps, times, counts, tables, lows or {}, highs or {})
            return
        n = len(self._steps)
        if self.bounded and n + k >= self._exact + max(self._exact, self._block):
            self._extend_folding(steps, times, tables)
            return
        self._steps.frombytes(np.ascontiguousarray(steps, dtype=np.int64).tobytes())
        self._times.frombytes(np.ascontiguousarray(times, dtype=np.float64).tobytes())
        for table in TABLES:
            given = tables.get(table, {})
            tail = self._tail[table]
            if table != "v" and not given and not tail:
                continue
            for key, values in given.items():
                col = tail.get(key)
                if col is None:
                    col = tail[key] = array("d", [math.nan]) * n
                col.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
            for col in tail.values():
                if len(col) == n:
                    col.frombytes(np.full(k, math.nan).tobytes())
        self._total += k
        self._view = None

    def _extend_folding(
        self, steps: NDArray[Any], times: NDArray[Any], tables: Mapping[str, Mapping[str, NDArray[Any]]]
    ) -> None:
        """Bulk append that folds as it goes, on numpy arrays (loading a long trace)."""
        n, k = len(self._steps), len(steps)
        all_steps = np.concatenate((np.frombuffer(self._steps, dtype=np.int64), np.asarray(steps, dtype=np.int64)))
        all_times = np.concatenate((np.frombuffer(self._times, dtype=np.float64), np.asarray(times, dtype=float)))
        all_tables: dict[str, dict[str, F64]] = {}
        for table in TABLES:
            given = tables.get(table, {})
            tail = self._tail[table]
            names = list(tail) + [key for key in given if key not in tail]
            all_tables[table] = {}
            for key in names:
                old = tail.get(key)
                new = given.get(key)
                all_tables[table][key] = np.concatenate(
                    (
                        np.frombuffer(old, dtype=np.float64) if old is not None else np.full(n, math.nan),
                        np.asarray(new, dtype=float) if new is not None else np.full(k, math.nan),
                    )
                )
        total = n + k
        pos = 0
        while True:
            self._make_room()
            rows = max(self._exact, self._block)
            if total - pos < self._exact + rows:
                break
            self._fold_arrays(
                all_steps[pos : pos + rows],
                all_times[pos : pos + rows],
                {t: {key: v[pos : pos + rows] for key, v in cols.items()} for t, cols in all_tables.items()},
            )
            pos += rows
        self._steps = _q(all_steps[pos:])
        self._times = _d(all_times[pos:])
        self._tail = {t: {key: _d(v[pos:]) for key, v in cols.items()} for t, cols in all_tables.items()}
        self._total += k
        self._view = None

    def _fold_leading(self, steps: I64, times: F64, tables: Mapping[str, Mapping[str, F64]]) -> int:
        """Fold the leading rows of these arrays into the history, as appending them one by
        one would, and return how many were folded (a loader keeps the rest, then appends
        them): no copy of the arrays. Only while the trace holds no exact rows."""
        if not self.bounded or len(self._steps):
            return 0
        total = len(steps)
        pos = 0
        while True:
            self._make_room()
            rows = max(self._exact, self._block)
            if total - pos < self._exact + rows:
                return pos
            self._fold_arrays(
                steps[pos : pos + rows],
                times[pos : pos + rows],
                {t: {key: v[pos : pos + rows] for key, v in cols.items()} for t, cols in tables.items()},
            )
            self._total += rows
            self._view = None
            pos += rows

    def add_event(self, event: Event) -> bool:
        """Add ``event`` unless one of that name exists (the first mark wins)."""
        if event.name in self._event_names:
            return False
        self.events.append(event)
        self._event_names[event.name] = event
        return True

    # -- folding the exact rows into the history --------------------------------------
    def _make_room(self) -> None:
        """Merge history blocks pairwise until the next fold fits."""
        while len(self._h["count"]) + max(self._exact, self._block) // self._block > self._history_cap:
            self._h = _merge_pairs(self._h)
            self._block *= 2

    def _fold(self) -> None:
        self._make_room()
        rows = max(self._exact, self._block)
        if len(self._steps) < self._exact + rows:
            return  # blocks grew past the exact rows: fold once there are enough
        self._fold_arrays(
            np.frombuffer(self._steps, dtype=np.int64, count=rows),
            np.frombuffer(self._times, dtype=np.float64, count=rows),
            {
                t: {key: np.frombuffer(col, dtype=np.float64, count=rows) for key, col in cols.items()}
                for t, cols in self._tail.items()
            },
        )
        del self._steps[:rows]
        del self._times[:rows]
        for cols in self._tail.values():
            for col in cols.values():
                del col[:rows]

    def _fold_arrays(self, steps: I64, times: F64, tables: Mapping[str, Mapping[str, F64]]) -> None:
        """Append the history blocks of ``len(steps)`` exact rows (a multiple of the block size)."""
        k = self._block
        m = len(steps) // k
        s2 = steps.reshape(m, k)
        new: dict[str, Any] = {
            "step": _row_medians(s2),
            "first": s2[:, 0].copy(),
            "last": s2[:, -1].copy(),
            "t": _row_medians(times.reshape(m, k)),
            "count": np.full(m, k, dtype=np.int64),
        }
        h = self._h
        nh = len(h["count"])
        for table in TABLES:
            for key, col in tables.get(table, {}).items():
                med, lo, hi = _block_stats(col.reshape(m, k))
                for part, arr in (("med", med), ("lo", lo), ("hi", hi)):
                    old = h[part][table].get(key)
                    if old is None:
                        old = np.full(nh, math.nan)
                    h[part][table][key] = np.concatenate((old, arr))
        for part in ("med", "lo", "hi"):  # a column absent from these rows
            for table in TABLES:
                for key, old in h[part][table].items():
                    if len(old) == nh:
                        h[part][table][key] = np.concatenate((old, np.full(m, math.nan)))
        for key in ("step", "first", "last", "t", "count"):
            h[key] = np.concatenate((h[key], new[key]))

    def _extend_history(
        self,
        steps: NDArray[Any],
        times: NDArray[Any],
        counts: NDArray[Any],
        tables: Mapping[str, Mapping[str, NDArray[Any]]],
        lows: Mapping[str, Mapping[str, NDArray[Any]]],
        highs: Mapping[str, Mapping[str, NDArray[Any]]],
    ) -> None:
        h = self._h
        nh, k = len(h["count"]), len(steps)
        st = np.asarray(steps, dtype=np.int64)
        add = {
            "step": st.astype(float),
            "first": st,
            "last": st,
            "t": np.asarray(times, dtype=float),
            "count": np.asarray(counts, dtype=np.int64),
        }
        for key, arr in add.items():
            h[key] = np.concatenate((h[key], arr))
        for table in TABLES:
            names = set(tables.get(table, {})) | set(h["med"][table])
            for name in names:
                med = tables.get(table, {}).get(name)
                med = np.full(k, math.nan) if med is None else np.asarray(med, dtype=float)
                lo = lows.get(table, {}).get(name)
                hi = highs.get(table, {}).get(name)
                for part, arr in (("med", med), ("lo", med if lo is None else lo), ("hi", med if hi is None else hi)):
                    old = h[part][table].get(name)
                    if old is None:
                        old = np.full(nh, math.nan)
                    h[part][table][name] = np.concatenate((old, np.asarray(arr, dtype=float)))
        self._total += int(np.sum(counts))
        self._view = None
        while self.bounded and len(h["count"]) > self._history_cap:
            self._h = h = _merge_pairs(h)
            self._block *= 2

    # -- reading ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._h["count"]) + len(self._steps)

    def _materialise(self) -> _View:
        view = self._view
        if view is not None:
            return view
        h = self._h
        tail_steps = np.frombuffer(self._steps, dtype=np.int64).copy() if len(self._steps) else np.empty(0, np.int64)
        tail_times = np.frombuffer(self._times, dtype=np.float64).copy() if len(self._times) else np.empty(0)
        nh, nt = len(h["count"]), len(tail_steps)
        steps = np.concatenate((np.rint(h["step"]).astype(np.int64), tail_steps))
        times = np.concatenate((h["t"], tail_times))
        counts = np.concatenate((h["count"], np.ones(nt, dtype=np.int64)))
        tables: dict[str, dict[str, F64]] = {}
        lows: dict[str, dict[str, F64]] = {}
        highs: dict[str, dict[str, F64]] = {}
        for table in TABLES:
            tables[table], lows[table], highs[table] = {}, {}, {}
            names = list(h["med"][table]) + [k for k in self._tail[table] if k not in h["med"][table]]
            for name in names:
                col = self._tail[table].get(name)
                tail = (
                    np.frombuffer(col, dtype=np.float64).copy() if col is not None and len(col) else np.full(nt, np.nan)
                )
                for part, out in (("med", tables), ("lo", lows), ("hi", highs)):
                    hist = h[part][table].get(name)
                    if hist is None:
                        hist = np.full(nh, math.nan)
                    out[table][name] = np.concatenate((hist, tail)) if nh else tail
        view = self._view = _View(steps, times, counts, tables, lows, highs)
        return view

    @property
    def steps(self) -> I64:
        """Step of each row (for a history block: its median step)."""
        return self._materialise().steps

    @property
    def times(self) -> F64:
        return self._materialise().times

    @property
    def counts(self) -> I64:
        """Samples behind each row: 1 for exact rows, the block size for history rows."""
        return self._materialise().counts

    @property
    def columns(self) -> dict[str, F64]:
        """Probe columns (rss, heap, cuda_*, ...) per row; history rows hold block medians."""
        return self._materialise().tables["v"]

    @property
    def accounting(self) -> dict[str, F64]:
        return self._materialise().tables["a"]

    @property
    def metrics_columns(self) -> dict[str, F64]:
        return self._materialise().tables["m"]

    @property
    def samples(self) -> int:
        """Samples taken in all (rows in memory may be fewer: see ``counts``)."""
        return self._total

    @property
    def decimated(self) -> bool:
        """True when older samples are held as block statistics."""
        return bool(len(self._h["count"]))

    @property
    def nbytes(self) -> int:
        """Bytes this trace holds in its buffers (exact rows, history, the cached view)."""
        total = _abytes(self._steps) + _abytes(self._times)
        total += sum(_abytes(col) for table in self._tail.values() for col in table.values())
        h = self._h
        total += sum(int(h[k].nbytes) for k in ("step", "first", "last", "t", "count"))
        total += sum(int(a.nbytes) for part in ("med", "lo", "hi") for t in h[part].values() for a in t.values())
        view = self._view
        if view is not None:
            total += int(view.steps.nbytes + view.times.nbytes + view.counts.nbytes)
            for group in (view.tables, view.lows, view.highs):
                total += sum(int(a.nbytes) for t in group.values() for a in t.values())
        return total

    def event(self, name: str) -> Event | None:
        return self._event_names.get(name)

    @property
    def signals(self) -> SignalNames:
        names = list(self.columns)
        accounting = self.accounting
        if accounting:
            names += list(DERIVED_SIGNALS)
            names += [f"acct:{k}" for k in accounting]
        names += [f"metric:{k}" for k in self.metrics_columns]
        return SignalNames(names)

    def _lookup(self, name: str, part: str = "med") -> F64:
        view = self._materialise()
        group = {"med": view.tables, "lo": view.lows, "hi": view.highs}[part]
        if name in group["v"]:
            return group["v"][name]
        if name == "heap":
            raise TraceError(
                f"signal 'heap' is not in trace {self.name!r}: record with heap=True "
                "(or @pytest.mark.leak(heap=True)) to trace the Python heap with tracemalloc"
            )
        if name in DERIVED_SIGNALS:
            if not view.tables["a"]:
                raise TraceError(
                    f"signal {name!r} needs declared accounting, but trace {self.name!r} has none: "
                    "call rec.account(buffer=buf.nbytes) while recording"
                )
            accounted = np.zeros(len(view.steps))
            for values in view.tables["a"].values():
                accounted += np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf)
            if name == "accounted":
                return accounted
            return self._lookup("rss") - accounted
        for prefix, table in (("acct:", "a"), ("metric:", "m")):
            if name.startswith(prefix) and name[len(prefix) :] in group[table]:
                return group[table][name[len(prefix) :]]
        raise TraceError(f"unknown signal {name!r} for trace {self.name!r}; it has: {', '.join(self.signals)}")

    def signal(self, name: str) -> F64:
        """Values of one signal per row: a column, "unaccounted", "accounted", "acct:NAME",
        "metric:NAME" (history rows: block medians)."""
        return self._lookup(name)

    def extremes(self, name: str) -> tuple[F64, F64]:
        """Per-row (minimum, maximum) of a signal: equal to the value on exact rows, the
        block's extremes on history rows (derived signals: their per-row values)."""
        if name in DERIVED_SIGNALS:
            values = self._lookup(name)
            return values, values
        return self._lookup(name, "lo"), self._lookup(name, "hi")

    def peak(self, name: str = "rss") -> float:
        """The largest value ``name`` took in any sample (NaN when it has none)."""
        _, highs = self.extremes(name)
        finite = highs[~np.isnan(highs)]
        return float(finite.max()) if finite.size else math.nan

    def head(self, last_step: int) -> Trace:
        """A copy holding only the rows and events up to ``last_step`` (what was known then)."""
        view = self._materialise()
        n = int(np.searchsorted(view.steps, last_step, side="right"))
        cut = Trace(self.name, dict(self.meta), bounded=self.bounded, exact=self._exact, history=self._history_cap)
        cut._block = self._block
        cut._h = {
            "step": view.steps[:n].astype(float),
            "first": view.steps[:n].copy(),
            "last": view.steps[:n].copy(),
            "t": view.times[:n].copy(),
            "count": view.counts[:n].copy(),
            "med": {t: {k: v[:n].copy() for k, v in view.tables[t].items()} for t in TABLES},
            "lo": {t: {k: v[:n].copy() for k, v in view.lows[t].items()} for t in TABLES},
            "hi": {t: {k: v[:n].copy() for k, v in view.highs[t].items()} for t in TABLES},
        }
        nh = len(self._h["count"])
        if n > nh:  # keep the exact first/last of the history part
            cut._h["first"][:nh] = self._h["first"]
            cut._h["last"][:nh] = self._h["last"]
        else:
            cut._h["first"][:n] = self._h["first"][:n]
            cut._h["last"][:n] = self._h["last"][:n]
        cut._total = int(np.sum(view.counts[:n]))
        for event in self.events:
            if event.step <= last_step:
                cut.add_event(event)
        return cut

    def accounting_names(self) -> list[str]:
        return list(self.accounting)

    def rows(self) -> Iterator[tuple[int, float, int, dict[str, dict[str, float]]]]:
        """(step, t, count, {"v"/"a"/"m": {name: value}}) per row; NaN (absent) values left out."""
        view = self._materialise()
        for i in range(len(view.steps)):
            values = {
                table: {k: float(v[i]) for k, v in view.tables[table].items() if not math.isnan(v[i])}
                for table in TABLES
            }
            yield int(view.steps[i]), float(view.times[i]), int(view.counts[i]), values

    # -- files ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, bounded: bool = True) -> Trace:
        """Read a trace file (block format or JSONL, told apart by its first bytes).

        A torn end (the writer was killed mid-line or mid-block) is ignored; anything else
        malformed raises :class:`~harness.errors.TraceError` naming the file and the line
        (JSONL) or the byte offset (blocks). ``bounded=False`` keeps every sample exact.
        """
        from harness.recording import blocks

        path = Path(path)
        try:
            with open(path, "rb") as fh:
                head = fh.read(len(blocks.SIGNATURE))
        except OSError as exc:
            raise TraceError(f"cannot read trace file {str(path)!r}: {exc.strerror}") from None
        if head == blocks.SIGNATURE:
            return blocks.load_blocks(path, bounded=bounded)
        return _load_jsonl(path, bounded=bounded)

    def dump(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole trace: JSONL when ``path`` ends in .jsonl, else the block format."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            view = self._materialise()
            with TraceWriter(path, self.name, self.meta) as writer:
                for i, (step, t, count, values) in enumerate(self.rows()):
                    writer.sample(step, t, values["v"], values["a"], values["m"])
                    if count != 1:
                        writer.block(count, _row_at(view.lows, i), _row_at(view.highs, i))
                for ev in self.events:
                    writer.event(ev)
                writer.end(self.meta)
            return path
        from harness.recording.blocks import dump_blocks

        dump_blocks(self, path)
        return path

    def summary(self) -> dict[str, Any]:
        """A small JSON-able digest: counts, first/last of each signal, events."""
        n = len(self)
        steps = self.steps
        out: dict[str, Any] = {
            "name": self.name,
            "samples": self.samples,
            "rows": n,
            "first_step": int(self._h["first"][0]) if self.decimated else (int(steps[0]) if n else None),
            "last_step": int(steps[-1]) if n else None,
            "events": [{"name": e.name, "step": e.step} for e in self.events],
        }
        for name, col in self.columns.items():
            if len(col):
                out[name] = {"first": float(col[0]), "last": float(col[-1]), "max": self.peak(name)}
        return out


def _row_at(group: Mapping[str, Mapping[str, F64]], i: int) -> dict[str, dict[str, float]]:
    return {t: {k: float(v[i]) for k, v in group[t].items() if not math.isnan(v[i])} for t in TABLES}


def _abytes(a: array[Any]) -> int:
    return a.buffer_info()[1] * a.itemsize


def _empty_history() -> dict[str, Any]:
    return {
        "step": np.empty(0),
        "first": np.empty(0, dtype=np.int64),
        "last": np.empty(0, dtype=np.int64),
        "t": np.empty(0),
        "count": np.empty(0, dtype=np.int64),
        "med": {t: {} for t in TABLES},
        "lo": {t: {} for t in TABLES},
        "hi": {t: {} for t in TABLES},
    }


def _q(values: NDArray[Any]) -> array[int]:
    out = array("q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return out


def _d(values: NDArray[Any]) -> array[float]:
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def _row_medians(block: NDArray[Any]) -> F64:
    """Median of each row; rows already sorted (steps, times) need no partitioning."""
    k = block.shape[1]
    if k > 1 and not bool(np.all(block[:, 1:] >= block[:, :-1])):
        block = np.sort(block, axis=1)  # faster than np.median's partition on short rows
    return np.asarray((block[:, (k - 1) // 2] + block[:, k // 2]) / 2.0, dtype=float)


def _block_stats(block: F64) -> tuple[F64, F64, F64]:
    """Per-row median, minimum, maximum of a (blocks × samples) array, NaNs ignored."""
    lo, hi = block.min(axis=1), block.max(axis=1)
    if not np.isnan(lo).any():  # a row's minimum is NaN exactly when the row holds a NaN
        if bool(np.all(lo == hi)):  # flat blocks (RSS in pages, constant accounting)
            return lo.copy(), lo, hi
        if bool(np.all(block[:, 0] == lo)) and bool(np.all(block[:, -1] == hi)):
            return _row_medians(block), lo, hi  # perhaps sorted rows (a filling buffer): checked there
        k = block.shape[1]
        ordered = np.sort(block, axis=1)
        return (ordered[:, (k - 1) // 2] + ordered[:, k // 2]) / 2.0, lo, hi
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks are NaN, as meant
        return np.nanmedian(block, axis=1), np.nanmin(block, axis=1), np.nanmax(block, axis=1)


def _merge_pairs(h: dict[str, Any]) -> dict[str, Any]:
    """Merge neighbouring history blocks pairwise (an odd last block stays as it is)."""
    n = len(h["count"])
    p = n // 2 * 2
    if p == 0:
        return h
    counts = h["count"]
    c2 = counts[:p].reshape(-1, 2).astype(float)
    merged_counts = counts[:p].reshape(-1, 2).sum(axis=1)

    def mean(a: F64) -> F64:
        a2 = a[:p].reshape(-1, 2)
        ok = ~np.isnan(a2)
        w = c2 * ok
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(total > 0, (np.where(ok, a2, 0.0) * w).sum(axis=1) / np.where(total > 0, total, 1), np.nan)
        return np.concatenate((out, a[p:]))

    def pick(a: NDArray[Any], col: int) -> NDArray[Any]:
        return np.concatenate((a[:p].reshape(-1, 2)[:, col], a[p:]))

    def fold(a: F64, how: Any) -> F64:
        a2 = a[:p].reshape(-1, 2)
        return np.concatenate((how(a2[:, 0], a2[:, 1]), a[p:]))

    out: dict[str, Any] = {
        "step": mean(h["step"]),
        "first": pick(h["first"], 0),
        "last": pick(h["last"], 1),
        "t": mean(h["t"]),
        "count": np.concatenate((merged_counts, counts[p:])),
        "med": {t: {k: mean(v) for k, v in h["med"][t].items()} for t in TABLES},
        "lo": {t: {k: fold(v, np.fmin) for k, v in h["lo"][t].items()} for t in TABLES},
        "hi": {t: {k: fold(v, np.fmax) for k, v in h["hi"][t].items()} for t in TABLES},
    }
    return out


def _append_row(table: dict[str, array[float]], values: Mapping[str, float], n: int) -> None:
    for key, value in values.items():
        col = table.get(key)
        if col is None:
            col = table[key] = array("d", [math.nan]) * n
        col.append(value)
    if len(values) != len(table):
        for col in table.values():
            if len(col) == n:
                col.append(math.nan)


# -- JSONL ------------------------------------------------------------------------------


def _num(value: float) -> str:
    if type(value) is int:
        return str(value)
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


_KEYS: dict[str, str] = {}


def _key(name: str) -> str:
    quoted = _KEYS.get(name)
    if quoted is None:
        quoted = _KEYS[name] = json.dumps(name)
    return quoted


def _obj(values: Mapping[str, float]) -> str:
    return "{" + ",".join(f"{_key(k)}:{_num(v)}" for k, v in values.items()) + "}"


class TraceWriter:
    """Append-only JSONL writer, flushed after every line.

    Non-finite values are written as ``NaN``/``Infinity``/``-Infinity`` (what Python's
    json module reads back), so they round-trip.
    """

    def __init__(self, path: str | os.PathLike[str], name: str, meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        self._pending = ""
        self._line({"kind": "meta", "format": FORMAT_VERSION, "name": name, "meta": dict(meta or {})})

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, text: str) -> None:
        if self._fh is None:
            return
        self._fh.write(text)
        self._fh.flush()

    def _line(self, record: Mapping[str, Any]) -> None:
        self._write(json.dumps(record, default=str) + "\n")

    def sample(
        self,
        step: int,
        t: float,
        values: Mapping[str, float],
        accounting: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        # Formatted by hand: json.dumps of a dict costs several µs.
        parts = [f'{{"kind":"s","step":{step},"t":{_num(round(t, 6))},"v":{_obj(values)}']
        if accounting:
            parts.append(f',"a":{_obj(accounting)}')
        if metrics:
            parts.append(f',"m":{_obj(metrics)}')
        parts.append("}\n")
        self._write("".join(parts))

    def block(
        self, count: int, lows: Mapping[str, Mapping[str, float]], highs: Mapping[str, Mapping[str, float]]
    ) -> None:
        """Mark the sample line just written as a decimated block of ``count`` samples."""
        lo = ",".join(f"{_key(t)}:{_obj(lows.get(t, {}))}" for t in TABLES)
        hi = ",".join(f"{_key(t)}:{_obj(highs.get(t, {}))}" for t in TABLES)
        self._write(f'{{"kind":"b","n":{count},"lo":{{{lo}}},"hi":{{{hi}}}}}\n')

    def event(self, event: Event) -> None:
        self._line({"kind": "event", "name": event.name, "step": event.step, "t": round(event.t, 6)})

    def end(self, meta: Mapping[str, Any] | None = None) -> None:
        self._line({"kind": "end", "meta": dict(meta or {})})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Bad(Exception):
    """A malformed record (the loader adds file and position)."""


def _int(rec: Mapping[str, Any], key: str) -> int:
    value = rec.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{key!r} must be a whole number, got {value!r}"[:200])
    if not -(2**63) <= value < 2**63:
        raise _Bad(f"{key!r} {value} is out of range")
    return value


def _float(value: Any, what: str) -> float:
    if value is None:  # older writers wrote NaN and infinities as null
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{what} must be a number, got {value!r}"[:200])
    try:
        return float(value)
    except OverflowError:
        raise _Bad(f"{what} {value} is out of range") from None


def _values(rec: Mapping[str, Any], key: str) -> dict[str, float]:
    raw = rec.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _Bad(f"{key!r} must be an object of name: number, got {type(raw).__name__}")
    return {str(name): _float(v, f"{key}.{name}") for name, v in raw.items()}


_CHUNK = 8_192
_Row = tuple[int, float, tuple[dict[str, float], dict[str, float], dict[str, float]]]


def _load_jsonl(path: Path, *, bounded: bool) -> Trace:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceError(f"cannot read trace file {str(path)!r}: {exc.strerror}") from None
    where = str(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
        raise TraceError(f"trace file {where!r} line {bad_line}: not UTF-8 text (nor a block-format trace)") from None
    del data
    lines = text.split("\n")
    torn_ok = not text.endswith("\n")  # the writer died mid-line: the last line may be cut
    last_index = len(lines) - 1
    trace: Trace | None = None
    rows: list[_Row] = []
    blocks: dict[int, tuple[int, dict[str, Any], dict[str, Any]]] = {}

    def flush() -> None:
        assert trace is not None
        _extend_rows(trace, rows, blocks)
        rows.clear()
        blocks.clear()

    for index, line in enumerate(lines):
        if not line.strip():
            continue
        lineno = index + 1
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            if torn_ok and index == last_index:
                break
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise TraceError(f"trace file {where!r} line {lineno}: not JSON ({msg})") from None
        try:
            if not isinstance(rec, dict):
                raise _Bad(f"expected a JSON object, got {type(rec).__name__}")
            kind = rec.get("kind")
            if kind == "meta":
                if trace is not None:
                    raise _Bad("a second meta line")
                if rec.get("format") != FORMAT_VERSION:
                    raise TraceError(
                        f"trace file {where!r} has format {rec.get('format')!r}; this harness reads {FORMAT_VERSION}"
                    )
                meta = rec.get("meta")
                if meta is not None and not isinstance(meta, dict):
                    raise _Bad("'meta' must be an object")
                trace = Trace(name=str(rec.get("name", path.stem)), meta=dict(meta or {}), bounded=bounded)
            elif trace is None:
                raise TraceError(f"trace file {where!r} does not start with a meta line")
            elif kind == "s":
                step, t = _int(rec, "step"), _float(rec.get("t"), "'t'")
                rows.append((step, t, (_values(rec, "v"), _values(rec, "a"), _values(rec, "m"))))
                if len(rows) >= _CHUNK:
                    flush()
            elif kind == "b":
                if not rows:
                    raise _Bad("a block line must follow a sample line")
                count = _int(rec, "n")
                if count < 1:
                    raise _Bad(f"'n' must be >= 1, got {count}")
                lo, hi = rec.get("lo") or {}, rec.get("hi") or {}
                if not isinstance(lo, dict) or not isinstance(hi, dict):
                    raise _Bad("'lo' and 'hi' must be objects")
                blocks[len(rows) - 1] = (
                    count,
                    {t: _values(lo, t) for t in TABLES},
                    {t: _values(hi, t) for t in TABLES},
                )
            elif kind == "event":
                name = rec.get("name")
                if not isinstance(name, str):
                    raise _Bad(f"event 'name' must be a string, got {name!r}"[:200])
                flush()
                trace.add_event(Event(name, _int(rec, "step"), _float(rec.get("t"), "'t'")))
            elif kind == "end":
                meta = rec.get("meta")
                if meta is not None and not isinstance(meta, dict):
                    raise _Bad("'meta' must be an object")
                trace.meta.update(meta or {})
            else:
                raise _Bad(f"unknown record kind {kind!r}"[:200])
        except _Bad as exc:
            raise TraceError(f"trace file {where!r} line {lineno}: {exc}") from None
    if trace is None:
        if text.strip():  # one line and no newline: a torn header, or not a trace at all
            raise TraceError(
                f"trace file {where!r} holds no complete record ({len(text):,} characters on one unfinished "
                f"line, starting {text[:40]!r}): not a harness trace, or one cut before its header was written"
            )
        raise TraceError(f"trace file {where!r} is empty")
    flush()
    return trace


def _extend_rows(
    trace: Trace,
    rows: list[_Row],
    blocks: Mapping[int, tuple[int, dict[str, Any], dict[str, Any]]],
) -> None:
    if not rows:
        return
    n = len(rows)
    steps = np.fromiter((r[0] for r in rows), np.int64, n)
    times = np.fromiter((r[1] for r in rows), np.float64, n)
    tables: dict[str, dict[str, F64]] = {}
    for ti, table in enumerate(TABLES):
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r[2][ti]))
        tables[table] = {
            name: np.fromiter((r[2][ti].get(name, math.nan) for r in rows), np.float64, n) for name in names
        }
    if not blocks:
        trace.extend(steps, times, tables)
        return
    counts = np.ones(n, dtype=np.int64)
    lows: dict[str, dict[str, F64]] = {t: {k: v.copy() for k, v in tables[t].items()} for t in TABLES}
    highs: dict[str, dict[str, F64]] = {t: {k: v.copy() for k, v in tables[t].items()} for t in TABLES}
    for i, (count, lo, hi) in blocks.items():
        counts[i] = count
        for table in TABLES:
            for name, value in lo[table].items():
                if name in lows[table]:
                    lows[table][name][i] = value
            for name, value in hi[table].items():
                if name in highs[table]:
                    highs[table][name][i] = value
    split = int(np.max(np.nonzero(counts != 1)[0])) + 1
    if len(trace._steps) and split:
        raise TraceError(f"trace {trace.name!r}: decimated rows must come before exact rows")
    trace.extend(
        steps[:split],
        times[:split],
        {t: {k: v[:split] for k, v in tables[t].items()} for t in TABLES},
        counts=np.where(counts[:split] == 1, 1, counts[:split]) if split else None,
        lows={t: {k: v[:split] for k, v in lows[t].items()} for t in TABLES},
        highs={t: {k: v[:split] for k, v in highs[t].items()} for t in TABLES},
    )
    if split < n:
        trace.extend(steps[split:], times[split:], {t: {k: v[split:] for k, v in tables[t].items()} for t in TABLES})
