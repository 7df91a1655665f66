"""The recorder: drives sampling while user code runs, and builds the Trace.

``harness.record(name)`` returns a :class:`Recorder`. Inside its ``with`` block,
``rec.steps(n)`` yields step numbers and samples after each step; ``rec.account()``
declares memory that is legitimately held, ``rec.metrics()`` records component
metrics, and ``rec.mark()`` records an event (the first call wins).

Per sample the default probes cost one /proc read and one flushed JSONL line. tracemalloc
(``heap=True``) is opt-in. Type counts of gc objects are taken only at the start, at the
first mark of each event and at the end, because each one walks the whole heap.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import HarnessUsageError
from harness.probes import (
    CudaProbe,
    RssProbe,
    TracemallocProbe,
    gc_counts,
    gc_growth,
    system_memory,
    trim_heap,
)
from harness.recording.trace import Event, Trace, TraceWriter
from harness.units import format_size, format_step

ProgressFn = Callable[[str], None]


class Recorder:
    """Records one run into a :class:`~harness.trace.Trace` (and a JSONL file if ``path``)."""

    def __init__(
        self,
        name: str,
        path: str | os.PathLike[str] | None = None,
        *,
        every: int = 1,
        heap: bool = False,
        cuda: bool | None = None,
        gc_types: bool = True,
        progress: bool | ProgressFn | None = None,
        progress_every_s: float = 10.0,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise HarnessUsageError(f"record({name!r}) every={every!r} must be a whole number of steps >= 1")
        self.name = name
        self.path = Path(path) if path is not None else None
        self.every = every
        self._heap = TracemallocProbe() if heap else None
        self._cuda_wanted = cuda
        self._cuda: CudaProbe | None = None
        self._gc_types = gc_types
        self._rss = RssProbe()
        self._progress = _progress_fn(progress)
        self._progress_every = progress_every_s
        self._last_progress = 0.0
        self._accounting: dict[str, float] = {}
        self._metrics: dict[str, float] = {}
        self._writer: TraceWriter | None = None
        self._t0 = 0.0
        self._step = -1
        self._total: int | None = None
        self._gc_at: dict[str, dict[str, int]] = {}
        self._active = False
        total, _ = system_memory()
        self.trace = Trace(
            name=name,
            meta={
                "machine_memory": total,
                "rss_source": self._rss.source,
                "every": every,
                "pid": os.getpid(),
                **(meta or {}),
            },
        )

    # -- context ---------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(error=None if exc is None else f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        if self._active:
            return
        self._active = True
        if self.path is not None:
            self._writer = TraceWriter(self.path, self.name, self.trace.meta)
        if self._cuda_wanted is not False:
            self._cuda = CudaProbe.available()
            if self._cuda is None and self._cuda_wanted:
                raise HarnessUsageError(f"record({self.name!r}) cuda=True but torch.cuda is not available here")
        if self._heap is not None:
            self._heap.start()
            self._heap.snapshot("start")
        if self._gc_types:
            self._gc_at["start"] = gc_counts()
        trim_heap()  # new memory shows as RSS growth, not as reuse of what earlier code freed
        self._t0 = time.perf_counter()

    def stop(self, error: str | None = None) -> None:
        """Finish: take the end-of-run evidence, close the file. Safe to call twice."""
        if not self._active:
            return
        self._active = False
        try:
            if self._step >= 0 and (len(self.trace) == 0 or self.trace.steps[-1] != self._step):
                self.sample(self._step)
            self._finish_evidence()
            if error:
                self.trace.meta["error"] = error
        finally:
            if self._heap is not None:
                self._heap.stop()
            if self._writer is not None:
                self._writer.end(self.trace.meta)
                self._writer.close()
            self._rss.close()

    def _finish_evidence(self) -> None:
        meta = self.trace.meta
        if self._gc_types and "start" in self._gc_at:
            end = gc_counts()
            for label, before in self._gc_at.items():
                key = "type_growth" if label == "start" else f"type_growth:{label}"
                meta[key] = gc_growth(before, end)
        if self._heap is not None:
            self._heap.snapshot("end")
            labels = ["start"] + [e.name for e in self.trace.events if self._heap.has(e.name)]
            for label in labels:
                key = "heap_growth" if label == "start" else f"heap_growth:{label}"
                meta[key] = [site.describe() for site in self._heap.top_growth(label, "end")]

    # -- driving -----------------------------------------------------------------------
    def steps(self, n: int, start: int = 0) -> Iterator[int]:
        """Yield ``start .. start+n-1``; sample after each step (every ``every`` steps)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise HarnessUsageError(f"rec.steps({n!r}) needs a whole number of steps >= 0")
        if not self._active:
            self.start()
        self._total = start + n
        every = self.every
        last = start + n - 1
        for step in range(start, start + n):
            self._step = step
            yield step
            if (step + 1) % every == 0 or step == last:
                self.sample(step)

    def sample(self, step: int | None = None) -> None:
        """Take one sample now (``steps()`` calls this for you)."""
        if step is None:
            step = self._step = self._step + 1
        else:
            self._step = step
        t = time.perf_counter() - self._t0
        values: dict[str, float] = {"rss": self._rss.read()}
        if self._heap is not None:
            values["heap"] = self._heap.read()
        if self._cuda is not None:
            values.update(self._cuda.read())
        self.trace.append(step, t, values, self._accounting, self._metrics)
        if self._writer is not None:
            self._writer.sample(step, t, values, self._accounting, self._metrics)
        if self._progress is not None and t - self._last_progress >= self._progress_every:
            self._last_progress = t
            self._progress(self.progress_line())

    def progress_line(self) -> str:
        total = f"/{format_step(self._total)}" if self._total else ""
        rss = self.trace.columns["rss"][-1] if len(self.trace) else self._rss.read()
        line = f"[{self.name}] step {format_step(self._step)}{total}  RSS {format_size(rss)}"
        if self._accounting:
            line += f"  declared {format_size(sum(self._accounting.values()))}"
        return line

    def account(self, **sizes: float) -> None:
        """Declare memory that is legitimately held (bytes), e.g. ``account(buffer=buf.nbytes)``.

        Values stick until changed; "unaccounted" is RSS minus their sum.
        """
        for key, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise HarnessUsageError(f"rec.account({key}={value!r}) needs a number of bytes")
            self._accounting[key] = float(value)

    def metrics(self, **values: float) -> None:
        """Record component metrics (counters, totals) with the next sample."""
        for key, value in values.items():
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, (int, float)):
                raise HarnessUsageError(f"rec.metrics({key}={value!r}) needs a number")
            self._metrics[key] = float(value)

    def mark(self, name: str, step: int | None = None) -> bool:
        """Record event ``name`` at the current step; later calls with that name are no-ops.

        Returns True when this call recorded the event.
        """
        if self.trace.event(name) is not None:
            return False
        at = self._step if step is None else step
        event = Event(name, max(at, 0), time.perf_counter() - self._t0)
        self.trace.add_event(event)
        if self._writer is not None:
            self._writer.event(event)
        if self._gc_types:
            self._gc_at[name] = gc_counts()
        if self._heap is not None:
            self._heap.snapshot(name)
        return True

    @property
    def step(self) -> int:
        return self._step


def record(
    name: str,
    path: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Recorder:
    """Record memory while driving code step by step (see :class:`Recorder`)."""
    return Recorder(name, path, **options)


def _progress_fn(progress: bool | ProgressFn | None) -> ProgressFn | None:
    if callable(progress):
        return progress
    if progress is None:
        progress = sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ
    if progress:
        return lambda line: print(line, file=sys.stderr, flush=True)
    return None
