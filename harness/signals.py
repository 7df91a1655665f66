"""One registry of the signals a trace can hold: name, words, unit, colour, source.

Every layer reads this table: the recorder (which probe writes the column), the analysis
(which signals are derived, which are judged by default), the verdict messages (the words
for a signal), the reports (colour, axis title), the markers and the CLI (the allowed
values and their help). Adding a signal is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["probe", "derived"]


@dataclass(frozen=True)
class Signal:
    name: str
    words: str  # how a message names it; "{acct}" is replaced by the declared accounting names
    unit: str  # axis title unit
    colour: str
    source: str  # where the figure comes from, for help texts and reports
    kind: Kind = "probe"
    default_on: bool = True  # recorded without being asked for

    def describe(self, accounting: str = "") -> str:
        return self.words.format(acct=accounting or "no")


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal("rss", "RSS", "bytes", "#1f77b4", "/proc/self/statm (psutil elsewhere)"),
        Signal(
            "allocated",
            "Allocator live memory",
            "bytes",
            "#ff7f0e",
            "glibc mallinfo2() in-use heap bytes + mmapped blocks, plus pymalloc's allocated blocks "
            "(what malloc and Python's small-object allocator handed out and was not freed)",
        ),
        Signal(
            "tree",
            "Process-tree memory (PSS of this process and its descendants)",
            "bytes",
            "#8c564b",
            "PSS from /proc/PID/smaps_rollup, summed over the process tree (sampled on a time budget)",
            default_on=False,
        ),
        Signal(
            "children",
            "Child-process memory (PSS of the descendants)",
            "bytes",
            "#e377c2",
            "PSS from /proc/PID/smaps_rollup, summed over the descendant processes",
            default_on=False,
        ),
        Signal(
            "heap",
            "Python heap (tracemalloc)",
            "bytes",
            "#9467bd",
            "tracemalloc traced memory (heap=True)",
            default_on=False,
        ),
        Signal(
            "unaccounted",
            "Unaccounted memory (RSS minus declared {acct} bytes)",
            "bytes",
            "#d62728",
            "RSS minus everything declared with account()",
            kind="derived",
        ),
        Signal("accounted", "Declared memory ({acct})", "bytes", "#2ca02c", "sum of account() values", kind="derived"),
        Signal(
            "cuda_allocated",
            "CUDA allocated memory",
            "bytes",
            "#17becf",
            "torch.cuda.memory_allocated (where torch with CUDA is loaded)",
        ),
        Signal(
            "cuda_reserved",
            "CUDA reserved memory",
            "bytes",
            "#bcbd22",
            "torch.cuda.memory_reserved (where torch with CUDA is loaded)",
        ),
    )
}

#: Signals computed from other columns instead of read by a probe.
DERIVED = tuple(name for name, s in SIGNALS.items() if s.kind == "derived")
#: The values ``signal=`` accepts anywhere (markers, CLI, assertions).
NAMES = tuple(SIGNALS)


def words(name: str, accounting: str = "") -> str:
    """How a message names ``name`` (an unknown column is named as itself)."""
    signal = SIGNALS.get(name)
    return signal.describe(accounting) if signal is not None else f"signal {name!r}"


def colour(name: str) -> str:
    signal = SIGNALS.get(name)
    return signal.colour if signal is not None else "#7f7f7f"


def help_text() -> str:
    """One line listing the signals and where they come from (marker and CLI help)."""
    return "; ".join(f"'{s.name}': {s.source}" for s in SIGNALS.values())
