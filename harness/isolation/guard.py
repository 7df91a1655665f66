"""A memory guard: watch free memory while a pool runs; warn, then stop it before the OOM killer.

Incident 4's remedy, as a context manager: sample available memory in a background
thread; below ``warn`` record a warning, below ``critical`` call ``on_critical`` (stop the
pool) once. "Available" is the system's (psutil), or, with ``budget=``, the budget minus
what the watched processes use, so a test does not depend on this machine's free memory.
Events go to a Recorder's trace when one is given; messages list the top consumers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from harness.errors import HarnessError, HarnessUsageError
from harness.probes.memory import system_memory
from harness.probes.tree import ProcessMemory, process_tree
from harness.recording.recorder import Recorder
from harness.units import format_size, parse_size


@dataclass(frozen=True)
class GuardEvent:
    level: Literal["warning", "critical"]
    t: float
    available: float
    used: float
    top: tuple[ProcessMemory, ...]

    def describe(self) -> str:
        consumers = "; ".join(p.describe() for p in self.top[:5])
        return (
            f"{self.level}: {format_size(self.available)} available at {self.t:.1f} s "
            f"(watched processes use {format_size(self.used)}); top consumers: {consumers}"
        )


@dataclass
class MemoryGuard:
    warn: object = "1 GiB"
    critical: object = "512 MiB"
    on_critical: Callable[[], object] | None = None
    on_warn: Callable[[GuardEvent], object] | None = None
    budget: object = None
    pids: Callable[[], Iterable[int]] | None = None
    labels: Callable[[], dict[int, str]] | None = None
    interval_s: float = 0.05
    rec: Recorder | None = None
    events: list[GuardEvent] = field(default_factory=list)
    min_available: float | None = None

    def __post_init__(self) -> None:
        self._warn = parse_size(self.warn, "MemoryGuard warn=")
        self._critical = parse_size(self.critical, "MemoryGuard critical=")
        if self._critical > self._warn:
            raise HarnessUsageError(
                f"MemoryGuard critical={self.critical!r} is above warn={self.warn!r}: critical must be the lower level"
            )
        self._budget = parse_size(self.budget, "MemoryGuard budget=") if self.budget is not None else None
        interval = self.interval_s
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < math.inf:
            raise HarnessUsageError(f"MemoryGuard interval_s={interval!r} must be a number of seconds > 0")
        for name in ("pids", "labels", "on_critical", "on_warn"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise HarnessUsageError(
                    f"MemoryGuard {name}={value!r} must be a function (called in the guard's thread), not a value"
                )
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    @property
    def tripped(self) -> bool:
        return any(e.level == "critical" for e in self.events)

    def __enter__(self) -> MemoryGuard:
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="harness-memory-guard", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is not None and exc_type is None:
            raise HarnessError(self.message())

    def read(self) -> tuple[float, float, list[ProcessMemory]]:
        """(available, used by the watched processes, the processes largest first)."""
        labels = self.labels() if self.labels else None
        if labels is not None and not isinstance(labels, dict):
            raise HarnessUsageError(f"MemoryGuard labels() returned {type(labels).__name__}, not a dict pid -> label")
        if self.pids is not None:
            pids = list(self.pids())
            bad = [p for p in pids if isinstance(p, bool) or not isinstance(p, int) or p <= 0]
            if bad:
                raise HarnessUsageError(f"MemoryGuard pids() returned {bad[0]!r}, not a process id (an int > 0)")
            procs = process_tree(pids=pids, labels=labels)
        else:
            procs = process_tree()
        used = float(sum(p.rss for p in procs))
        if self._budget is not None:
            return self._budget - used, used, procs
        return float(system_memory()[1]), used, procs

    def _run(self) -> None:
        try:
            self._watch()
        except BaseException as exc:  # reported by __exit__ and message(): never "nothing happened"
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.error = text[:300]

    def _watch(self) -> None:
        warned = False
        # At least one reading, however soon the block ends: a guard that never read would
        # report "no threshold crossed" on no evidence.
        while True:
            available, used, procs = self.read()
            self.min_available = available if self.min_available is None else min(self.min_available, available)
            level: Literal["warning", "critical"] | None = (
                "critical" if available < self._critical else "warning" if available < self._warn else None
            )
            if (level == "warning" and not warned) or level == "critical":
                warned = True
                event = GuardEvent(level, time.perf_counter() - self._t0, available, used, tuple(procs))
                self.events.append(event)
                if self.rec is not None:
                    self.rec.mark(f"memory-{level}")
                    self.rec.trace.meta.setdefault("guard_events", []).append(event.describe())
                if level == "warning" and self.on_warn is not None:
                    self.on_warn(event)
                if level == "critical":
                    if self.on_critical is not None:
                        self.on_critical()
                    return
            if self._stop.wait(self.interval_s):
                return

    def message(self) -> str:
        if self.error is not None:
            seen = "; ".join(e.describe() for e in self.events)
            return f"memory guard crashed and stopped watching: {self.error}" + (
                f" (before that: {seen})" if seen else ""
            )
        if not self.events:
            low = format_size(self.min_available) if self.min_available is not None else "?"
            return f"memory guard: no threshold crossed (lowest available {low})"
        return "memory guard " + "; then ".join(e.describe() for e in self.events)
