"""The Trace: the one data model every layer shares.

A trace is per-sample rows (step, time, every probed signal, declared accounting,
component metrics), events ("eviction" at step N) and metadata. While a run goes it is
written append-only as JSONL, one line per sample, flushed per line, so a run that is
killed keeps every sample taken before the kill. ``Trace.load`` reads such a file back,
ignoring a torn last line.

In memory, columns are ``array('d')`` (8 bytes a value) rather than lists of floats
(about 32 bytes a value): the recorder lives inside the process it measures, and a
60,000-step trace must not itself look like a leak.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessUsageError, TraceError

FORMAT_VERSION = 1

#: Signals a trace always knows how to compute, besides its own columns.
DERIVED_SIGNALS = ("unaccounted", "accounted")


@dataclass(frozen=True)
class Event:
    name: str
    step: int
    t: float


@dataclass
class Trace:
    """Samples, events and metadata of one recorded run."""

    name: str
    meta: dict[str, Any] = field(default_factory=dict)
    steps: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    columns: dict[str, array[float]] = field(default_factory=dict)
    accounting: dict[str, array[float]] = field(default_factory=dict)
    metrics_columns: dict[str, array[float]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    # -- building --------------------------------------------------------------------
    def append(
        self,
        step: int,
        t: float,
        values: Mapping[str, float],
        accounting: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        n = len(self.steps)
        self.steps.append(step)
        self.times.append(t)
        _append_row(self.columns, values, n)
        _append_row(self.accounting, accounting or {}, n)
        _append_row(self.metrics_columns, metrics or {}, n)

    def add_event(self, event: Event) -> bool:
        """Add ``event`` unless one of that name exists (the first mark wins)."""
        if self.event(event.name) is not None:
            return False
        self.events.append(event)
        return True

    # -- reading ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.steps)

    def event(self, name: str) -> Event | None:
        for ev in self.events:
            if ev.name == name:
                return ev
        return None

    @property
    def signals(self) -> list[str]:
        names = list(self.columns)
        if self.accounting:
            names += list(DERIVED_SIGNALS)
            names += [f"acct:{k}" for k in self.accounting]
        names += [f"metric:{k}" for k in self.metrics_columns]
        return names

    def signal(self, name: str) -> list[float]:
        """Values of one signal per sample: a column, "unaccounted", "acct:NAME", "metric:NAME"."""
        if name in self.columns:
            return list(self.columns[name])
        if name == "heap" and "heap" not in self.columns:
            raise TraceError(
                f"signal 'heap' is not in trace {self.name!r}: record with heap=True "
                "(or @pytest.mark.leak(heap=True)) to trace the Python heap with tracemalloc"
            )
        if name in DERIVED_SIGNALS:
            if not self.accounting:
                raise TraceError(
                    f"signal {name!r} needs declared accounting, but trace {self.name!r} has none: "
                    "call rec.account(buffer=buf.nbytes) while recording"
                )
            accounted = self._accounted()
            if name == "accounted":
                return accounted
            return [r - a for r, a in zip(self.columns["rss"], accounted, strict=True)]
        for prefix, table in (("acct:", self.accounting), ("metric:", self.metrics_columns)):
            if name.startswith(prefix) and name[len(prefix) :] in table:
                return list(table[name[len(prefix) :]])
        raise TraceError(f"unknown signal {name!r} for trace {self.name!r}; it has: {', '.join(self.signals)}")

    def _accounted(self) -> list[float]:
        totals = [0.0] * len(self.steps)
        for values in self.accounting.values():
            for i, v in enumerate(values):
                if not math.isnan(v):
                    totals[i] += v
        return totals

    def head(self, last_step: int) -> Trace:
        """A copy holding only the samples and events up to ``last_step`` (what was known then)."""
        n = sum(1 for s in self.steps if s <= last_step)
        cut = Trace(name=self.name, meta=dict(self.meta))
        cut.steps = self.steps[:n]
        cut.times = self.times[:n]
        cut.columns = {k: v[:n] for k, v in self.columns.items()}
        cut.accounting = {k: v[:n] for k, v in self.accounting.items()}
        cut.metrics_columns = {k: v[:n] for k, v in self.metrics_columns.items()}
        cut.events = [e for e in self.events if e.step <= last_step]
        return cut

    def accounting_names(self) -> list[str]:
        return list(self.accounting)

    # -- files ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trace:
        """Read a JSONL trace; a torn last line (the writer was killed) is ignored."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise HarnessUsageError(f"cannot read trace file {str(path)!r}: {exc.strerror}") from None
        lines = text.split("\n")
        trace: Trace | None = None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if lineno >= len(lines) - 1:  # the torn last line of a killed writer
                    break
                raise HarnessUsageError(f"trace file {str(path)!r} line {lineno} is not JSON") from None
            kind = rec.get("kind")
            if kind == "meta":
                if rec.get("format") != FORMAT_VERSION:
                    raise HarnessUsageError(
                        f"trace file {str(path)!r} has format {rec.get('format')!r}; "
                        f"this harness reads {FORMAT_VERSION}"
                    )
                trace = cls(name=str(rec.get("name", path.stem)), meta=dict(rec.get("meta") or {}))
            elif trace is None:
                raise HarnessUsageError(f"trace file {str(path)!r} does not start with a meta line")
            elif kind == "s":
                trace.append(int(rec["step"]), float(rec["t"]), rec.get("v", {}), rec.get("a"), rec.get("m"))
            elif kind == "event":
                trace.add_event(Event(str(rec["name"]), int(rec["step"]), float(rec["t"])))
            elif kind == "end":
                trace.meta.update(rec.get("meta") or {})
        if trace is None:
            raise HarnessUsageError(f"trace file {str(path)!r} is empty")
        return trace

    def dump(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole trace as JSONL (the format ``TraceWriter`` streams)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with TraceWriter(path, self.name, self.meta) as writer:
            for i, step in enumerate(self.steps):
                writer.sample(
                    step,
                    self.times[i],
                    {k: v[i] for k, v in self.columns.items()},
                    _row(self.accounting, i),
                    _row(self.metrics_columns, i),
                )
            for ev in self.events:
                writer.event(ev)
            writer.end(self.meta)
        return path

    def summary(self) -> dict[str, Any]:
        """A small JSON-able digest: counts, first/last of each signal, events."""
        out: dict[str, Any] = {
            "name": self.name,
            "samples": len(self),
            "first_step": self.steps[0] if len(self) else None,
            "last_step": self.steps[-1] if len(self) else None,
            "events": [{"name": e.name, "step": e.step} for e in self.events],
        }
        for name in self.columns:
            col = self.columns[name]
            if len(col):
                out[name] = {"first": col[0], "last": col[-1], "max": max(col)}
        return out


def _append_row(table: dict[str, array[float]], values: Mapping[str, float], n: int) -> None:
    if not table and not values:
        return
    for key, value in values.items():
        col = table.get(key)
        if col is None:
            col = table[key] = array("d", [math.nan]) * n
        col.append(float(value))
    for col in table.values():
        if len(col) == n:
            col.append(math.nan)


def _row(table: Mapping[str, array[float]], i: int) -> dict[str, float]:
    return {k: v[i] for k, v in table.items() if not math.isnan(v[i])}


def _num(value: float) -> str:
    if type(value) is int:
        return str(value)
    if value != value or value in (math.inf, -math.inf):
        return "null"
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
    """Append-only JSONL writer, flushed after every line."""

    def __init__(self, path: str | os.PathLike[str], name: str, meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
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
        # Formatted by hand: json.dumps of a dict costs several µs, and this runs per step.
        parts = [f'{{"kind":"s","step":{step},"t":{t:.6f},"v":{_obj(values)}']
        if accounting:
            parts.append(f',"a":{_obj(accounting)}')
        if metrics:
            parts.append(f',"m":{_obj(metrics)}')
        parts.append("}\n")
        self._write("".join(parts))

    def event(self, event: Event) -> None:
        self._line({"kind": "event", "name": event.name, "step": event.step, "t": round(event.t, 6)})

    def end(self, meta: Mapping[str, Any] | None = None) -> None:
        self._line({"kind": "end", "meta": dict(meta or {})})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
