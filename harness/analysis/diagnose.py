"""Incident 1's four cases (GPU leak, GPU fragmentation, RAM leak, capacity limit), told
apart from the slopes of the signals after an event. Pure: a Trace in, a Diagnosis out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.analysis.stats import Growth
from harness.analysis.window import select_window, window_growth
from harness.errors import HarnessUsageError, TooFewSamples
from harness.recording.trace import Trace
from harness.units import format_rate, format_rate_short, parse_rate

Case = Literal["A", "B", "C", "D", "?"]

CASES: dict[Case, str] = {
    "A": "GPU leak: allocated GPU memory climbs after the buffer is full",
    "B": "GPU fragmentation: allocated GPU memory is flat while reserved climbs",
    "C": "RAM leak: RSS exceeds the buffer's own bytes by a growing margin",
    "D": "no leak: everything is flat; an OOM here is a capacity limit, at the same footprint every time",
    "?": "RSS grows, but no declared accounting or GPU signal says where",
}


@dataclass(frozen=True)
class Diagnosis:
    """Which of incident 1's cases a trace shows, with the slopes that say so."""

    case: Case
    title: str
    evidence: dict[str, Growth]
    limit: float
    explanation: str

    def __str__(self) -> str:
        return f"case {self.case}: {self.title}. {self.explanation}"


def diagnose(
    trace: Trace, *, after: str | None = None, max_growth: object = "1 MB/1k steps", settle: object = None
) -> Diagnosis:
    """Tell apart incident 1's cases A–D from the slopes after ``after``."""
    if not isinstance(trace, Trace):
        raise HarnessUsageError(
            f"diagnose got {type(trace).__name__} {trace!r:.60}, not a Trace; read a file with harness.Trace.load(path)"
        )
    limit = parse_rate(max_growth, "diagnose max_growth=")
    window = select_window(trace, after, settle)
    present = trace.signals
    evidence: dict[str, Growth] = {}
    for name in ("rss", "unaccounted", "cuda_allocated", "cuda_reserved"):
        if name not in present:
            continue
        try:
            evidence[name] = window_growth(trace, name, window)
        except TooFewSamples:
            if name == "rss":
                raise
            # an optional column with no values here (no CUDA on this run): no evidence

    def grows(name: str) -> bool:
        return name in evidence and evidence[name].exceeds(limit)

    case: Case
    if grows("cuda_allocated"):
        case = "A"
    elif "cuda_allocated" in evidence and grows("cuda_reserved"):
        case = "B"
    elif grows("unaccounted"):
        case = "C"
    elif grows("rss") and "unaccounted" not in evidence:
        case = "?"
    else:
        case = "D"
    figures = "; ".join(
        f"{name} {format_rate(g.slope)} [{format_rate_short(g.low)}–{format_rate_short(g.high)}]"
        for name, g in evidence.items()
    )
    return Diagnosis(case, CASES[case], evidence, limit, f"Slopes after {after or 'warm-up'}: {figures}.")
