"""Probes: each reads one memory signal and nothing else.

``memory`` (RSS fast path, system memory, heap trim), ``tree`` (descendant processes),
``heap`` (tracemalloc and gc counts), ``cuda`` (torch CUDA, only where torch is loaded),
``memray`` (capture and render), ``liveness`` (weak references and retainer chains),
``paths`` (short file names for sites). Nothing here imports numpy, psutil or torch at
import time.
"""

from __future__ import annotations

from harness.probes.cuda import CudaProbe
from harness.probes.heap import AllocationSite, TracemallocProbe, gc_counts, gc_growth
from harness.probes.memory import AllocatedProbe, RssProbe, read_allocated, read_rss, system_memory, trim_heap
from harness.probes.memray import MemrayResult, memray_available, memray_capture, memray_flamegraph
from harness.probes.paths import short_path
from harness.probes.tree import ProcessMemory, ProcessSeries, TreeProbe, process_tree

__all__ = [
    "AllocatedProbe",
    "AllocationSite",
    "CudaProbe",
    "MemrayResult",
    "ProcessMemory",
    "ProcessSeries",
    "RssProbe",
    "TracemallocProbe",
    "TreeProbe",
    "gc_counts",
    "gc_growth",
    "memray_available",
    "memray_capture",
    "memray_flamegraph",
    "process_tree",
    "read_allocated",
    "read_rss",
    "short_path",
    "system_memory",
    "trim_heap",
]
