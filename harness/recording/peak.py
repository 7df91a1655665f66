"""Peak memory of a block over its baseline: ``with harness.peak() as pk: save(...)``.

Polling misses short spikes (a 1 GB buffer that lives 50 ms), so on Linux the exact peak
comes from the kernel: writing "5" to /proc/self/clear_refs resets VmHWM, the process's
resident high-water mark, and VmHWM is read after the block. It covers every thread of
the process (the incident's save ran in a background thread). A sampling thread runs
beside it for the timeline and the moment of the peak, and is the fallback where
clear_refs is not allowed. Child processes are summed by the sampler when asked.

With ``where=True`` the block also runs under memray, and the allocation records alive at
memray's high-water mark name the lines that held the memory at the peak.
"""

from __future__ import annotations

import linecache
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import HarnessError
from harness.probes.memory import RssProbe, trim_heap
from harness.probes.paths import short_path

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _read_hwm() -> int | None:
    try:
        with open(_STATUS, "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class PeakSite:
    where: str  # "fixtures/checkpoint.py:41 naive_save"
    code: str  # the source line
    size: int


@dataclass
class PeakResult:
    """What ``harness.peak()`` measured."""

    label: str = ""
    baseline: int = 0
    peak: int = 0
    method: str = ""
    duration_s: float = 0.0
    peak_at_s: float | None = None
    timeline: list[tuple[float, int]] = field(default_factory=list)
    children_peak: int | None = None
    heap_peak: int | None = None
    sites: list[PeakSite] = field(default_factory=list)
    note: str = ""

    @property
    def over_baseline(self) -> int:
        return max(0, self.peak - self.baseline)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "baseline": self.baseline,
            "peak": self.peak,
            "over_baseline": self.over_baseline,
            "method": self.method,
            "duration_s": self.duration_s,
            "peak_at_s": self.peak_at_s,
            "children_peak": self.children_peak,
            "heap_peak": self.heap_peak,
            "sites": [site.__dict__ for site in self.sites],
            "note": self.note,
        }


class PeakMeter:
    """Context manager measuring the block's peak RSS over the RSS it started at."""

    def __init__(
        self,
        label: str = "",
        *,
        interval_s: float = 0.002,
        children: bool = False,
        heap: bool = False,
        where: bool = False,
    ) -> None:
        self.result = PeakResult(label=label)
        self._interval = interval_s if not children else max(interval_s, 0.01)
        self._children = children
        self._heap = heap
        self._where = where
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rss = RssProbe()
        self._kernel = False
        self._t0 = 0.0
        self._memray: Any = None
        self._capture: Path | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._started_tracemalloc = False
        self._error: str | None = None

    def __enter__(self) -> PeakResult:
        # The baseline is live memory only: garbage collected, free heap returned to the OS,
        # so the block's allocations cannot hide in memory an earlier test freed.
        trim_heap()
        if self._where:
            self._start_memray()
        if self._heap:
            import tracemalloc

            if not tracemalloc.is_tracing():
                tracemalloc.start()
                self._started_tracemalloc = True
            tracemalloc.reset_peak()
        self.result.baseline = self._rss.read()
        self._kernel = _reset_hwm()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="harness-peak", daemon=True)
        self._thread.start()
        return self.result

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        duration = time.perf_counter() - self._t0
        hwm = _read_hwm() if self._kernel else None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        res = self.result
        res.duration_s = duration
        sampled = max((rss for _, rss in res.timeline), default=res.baseline)
        if hwm is not None:
            res.peak = max(hwm, sampled)
            res.method = "kernel high-water mark (VmHWM after clear_refs), all threads"
        else:
            res.peak = sampled
            res.method = f"sampling every {self._interval * 1000:g} ms (clear_refs not allowed here)"
        if res.timeline:
            res.peak_at_s = max(res.timeline, key=lambda item: item[1])[0]
        if self._heap:
            import tracemalloc

            res.heap_peak = tracemalloc.get_traced_memory()[1]
            if self._started_tracemalloc:
                tracemalloc.stop()
        if self._memray is not None:
            self._finish_memray()
        self._rss.close()
        if self._error is not None:
            res.note = f"the peak sampler crashed: {self._error}"
            if exc_type is None:
                raise HarnessError(
                    f"harness.peak({res.label!r}): the sampling thread crashed ({self._error}); "
                    f"the peak {'is the kernel high-water mark only' if hwm is not None else 'was not measured'}"
                )

    def _sample(self) -> None:
        try:
            self._sample_loop()
        except BaseException as exc:  # reported by __exit__ as an error of its own
            self._error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]

    def _sample_loop(self) -> None:
        timeline = self.result.timeline
        read = self._rss.read
        t0 = self._t0
        proc: Any = None
        if self._children:
            import psutil

            proc = psutil.Process()
        child_peak = 0
        while not self._stop.is_set():
            timeline.append((time.perf_counter() - t0, read()))
            if proc is not None:
                total = 0
                for child in proc.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except Exception:  # the child exited between listing and reading
                        continue
                child_peak = max(child_peak, total)
            self._stop.wait(self._interval)
        timeline.append((time.perf_counter() - t0, read()))
        if proc is not None:
            self.result.children_peak = child_peak

    def _start_memray(self) -> None:
        try:
            import memray
        except ImportError:
            self.result.note = "allocation sites need memray: pip install memray"
            return
        self._tmpdir = tempfile.TemporaryDirectory(prefix="harness-peak-")
        self._capture = Path(self._tmpdir.name) / "peak.bin"
        tracker = memray.Tracker(str(self._capture))
        try:
            tracker.__enter__()
        except RuntimeError:  # another Tracker (pytest-memray, --leak-memray) is running
            self.result.note = "allocation sites skipped: another memray tracker is active"
            return
        self._memray = tracker

    def _finish_memray(self) -> None:
        import memray

        self._memray.__exit__(None, None, None)
        self._memray = None
        assert self._capture is not None
        try:
            reader = memray.FileReader(str(self._capture))
            by_site: dict[tuple[str, str], int] = {}
            for record in reader.get_high_watermark_allocation_records(merge_threads=True):
                frames = record.stack_trace(max_stacks=8)
                site = _user_frame(frames)
                by_site[site] = by_site.get(site, 0) + int(record.size)
            ranked = sorted(by_site.items(), key=lambda item: -item[1])[:5]
            # Sites under 5% of the largest are noise next to the spike (the sampler's own
            # thread, interpreter bookkeeping).
            floor = ranked[0][1] * 0.05 if ranked else 0
            self.result.sites = [PeakSite(where, code, size) for (where, code), size in ranked if size >= floor]
        except Exception as exc:  # a torn capture must not hide the peak itself
            self.result.note = f"allocation sites unavailable: {exc}"
        finally:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()


def _user_frame(frames: list[tuple[str, str, int]]) -> tuple[str, str]:
    """The innermost frame outside the standard library and the harness, described."""
    chosen = frames[0] if frames else ("?", "?", 0)
    stdlib = os.path.dirname(os.__file__)
    harness_dir = os.path.dirname(__file__)
    for function, filename, lineno in frames:
        if not filename.startswith(stdlib) and not filename.startswith(harness_dir):
            chosen = (function, filename, lineno)
            break
    function, filename, lineno = chosen
    code = linecache.getline(filename, lineno).strip()
    return f"{short_path(filename)}:{lineno} {function}", code


def peak(label: str = "", **options: Any) -> PeakMeter:
    """Measure the peak RSS of a block over its baseline (see :class:`PeakMeter`)."""
    return PeakMeter(label, **options)
