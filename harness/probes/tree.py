"""Memory of a process tree: RSS and USS of a process and its descendants (workers, pools)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessMemory:
    """One process of a tree: RSS and, when readable, USS (memory only it uses)."""

    pid: int
    name: str
    rss: int
    uss: int | None
    label: str = ""

    def describe(self) -> str:
        from harness.units import format_size

        who = self.label or self.name
        uss = f", USS {format_size(self.uss)}" if self.uss is not None else ""
        return f"{who} (pid {self.pid}) RSS {format_size(self.rss)}{uss}"


def process_tree(
    root: int | None = None, *, pids: list[int] | None = None, uss: bool = False, labels: dict[int, str] | None = None
) -> list[ProcessMemory]:
    """RSS (and USS with ``uss=True``, ~65 µs a process) of ``root`` and its descendants,
    or of the given ``pids``; largest first. Processes that exit meanwhile are skipped."""
    import psutil

    if pids is None:
        top = psutil.Process(root if root is not None else os.getpid())
        procs = [top, *top.children(recursive=True)]
    else:
        procs = []
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.Error:
                continue
    out = []
    for proc in procs:
        try:
            if uss:
                full = proc.memory_full_info()
                rss, uss_value = int(full.rss), int(full.uss)
            else:
                rss, uss_value = int(proc.memory_info().rss), None
            name = proc.name()
        except psutil.Error:
            continue
        out.append(ProcessMemory(proc.pid, name, rss, uss_value, (labels or {}).get(proc.pid, "")))
    out.sort(key=lambda p: -p.rss)
    return out


def _rollup(pid: int) -> tuple[int, int] | None:
    """(PSS, USS) of one process from /proc/PID/smaps_rollup, in bytes; None if unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    pss = uss = 0
    for line in text.splitlines():
        if line.startswith(b"Pss:"):
            pss = int(line.split()[1]) * 1024
        elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            uss += int(line.split()[1]) * 1024
    return pss, uss


def _children_of(pid: int) -> list[int]:
    """Descendants of ``pid`` (breadth first) from /proc/PID/task/*/children, psutil elsewhere."""
    out: list[int] = []
    queue = [pid]
    try:
        while queue:
            parent = queue.pop(0)
            for task in os.listdir(f"/proc/{parent}/task"):
                try:
                    with open(f"/proc/{parent}/task/{task}/children") as fh:
                        kids = [int(k) for k in fh.read().split()]
                except OSError:
                    continue
                out += kids
                queue += kids
        return out
    except OSError:
        import psutil

        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


@dataclass
class ProcessSeries:
    """One descendant process as the tree probe saw it, while it lived."""

    pid: int
    name: str
    first_step: int
    last_step: int
    first_pss: int
    last_pss: int
    first_uss: int
    last_uss: int
    max_pss: int
    points: list[tuple[int, int, int]]  # (step, PSS, USS), thinned to at most MAX_POINTS

    MAX_POINTS = 512

    def add(self, step: int, pss: int, uss: int) -> None:
        self.last_step, self.last_pss, self.last_uss = step, pss, uss
        self.max_pss = max(self.max_pss, pss)
        self.points.append((step, pss, uss))
        if len(self.points) > self.MAX_POINTS:
            # Keep every other point (and the last): bounded memory over a day-long soak.
            self.points = self.points[::2] + ([self.points[-1]] if len(self.points) % 2 == 0 else [])

    def as_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "name": self.name,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "first_pss": self.first_pss,
            "last_pss": self.last_pss,
            "first_uss": self.first_uss,
            "last_uss": self.last_uss,
            "max_pss": self.max_pss,
            "points": [list(p) for p in self.points],
        }


#: The tree is read at least this often per elapsed time (elapsed / MIN_READS apart), so
#: short runs have enough reads for a slope; long runs fall back to the max_share budget.
MIN_READS = 50


def tree_gap(elapsed: float, cost: float, interval: float, max_share: float, max_interval: float) -> float:
    """Seconds to the next tree read: ``cost / max_share`` (the probe's share of the time),
    at least ``interval``, and at most ``max_interval`` or ``elapsed / MIN_READS``
    (whichever is larger than ``interval`` and smaller)."""
    by_length = max(interval, elapsed / MIN_READS)
    return min(max_interval, max(interval, cost / max_share), by_length)


class TreeProbe:
    """PSS of this process and of every descendant (DataLoader workers, a Pool), summed.

    PSS counts each shared page once across the tree, so copy-on-read in forked workers
    (pages moving from shared to private while RSS stays flat, pytorch#13246) shows as
    growth. Reading smaps_rollup costs ~3–5 ms a process for a torch process here (15 ms
    for a parent and two DataLoader workers), so the recorder reads it on a time budget: at
    most every ``interval`` seconds, about ``max_share`` of the elapsed time (5%: a read
    every ~0.3 s for that tree; ``children=True`` is asked for, the default probes stay
    within 2%) and at least every ``max_interval`` seconds (a 60 ms read of a DataLoader
    over a million strings then costs ~12%). Processes that come and go are followed by pid.
    """

    def __init__(
        self, root: int | None = None, interval: float = 0.05, max_share: float = 0.05, max_interval: float = 0.5
    ) -> None:
        self.root = root if root is not None else os.getpid()
        self.interval = interval
        self.max_share = max_share
        self.max_interval = max_interval
        self.processes: dict[int, ProcessSeries] = {}
        self._next = 0.0
        self._cost = 0.0
        self._t0: float | None = None

    def due(self, now: float) -> bool:
        return now >= self._next

    def read(self, step: int, now: float) -> dict[str, float]:
        """{"tree": PSS of root + descendants, "children": PSS of descendants}; updates per-process series."""
        t0 = time.perf_counter()
        own = _rollup(self.root)
        children = 0
        for pid in _children_of(self.root):
            figures = _rollup(pid)
            if figures is None:
                continue  # exited between listing and reading
            pss, uss = figures
            children += pss
            series = self.processes.get(pid)
            if series is None:
                self.processes[pid] = ProcessSeries(pid, _name(pid), step, step, pss, pss, uss, uss, pss, [])
                self.processes[pid].add(step, pss, uss)
            else:
                series.add(step, pss, uss)
        # A moving average of the read's cost sets the gap, so one slow read on a loaded
        # machine does not silence the probe; the gap never exceeds max_interval, so a short
        # test still gets reads to judge, and a run keeps at least ~MIN_READS x ln 2 reads
        # per doubling of its length (a 4 s test: ~100 reads, not 8).
        cost = time.perf_counter() - t0
        if self._t0 is None:
            self._t0 = now
        self._cost = cost if self._cost == 0.0 else 0.8 * self._cost + 0.2 * cost
        self._next = now + tree_gap(now - self._t0, self._cost, self.interval, self.max_share, self.max_interval)
        own_pss = own[0] if own is not None else 0
        return {"tree": float(own_pss + children), "children": float(children)}

    def growing(self, min_bytes: float = 0.0) -> list[ProcessSeries]:
        """Descendants whose PSS grew while they lived, largest growth first."""
        grown = [p for p in self.processes.values() if p.last_pss - p.first_pss > min_bytes]
        return sorted(grown, key=lambda p: p.first_pss - p.last_pss)
