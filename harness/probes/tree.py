"""Memory of a process tree: RSS and USS of a process and its descendants (workers, pools)."""

from __future__ import annotations

import os
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
