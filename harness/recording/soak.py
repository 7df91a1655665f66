"""Soak runs: a time or step budget, progress lines for a CI log, and a gate in front.

A soak test burns its budget only after a short validation phase passes: components
active (``soak_gate`` on status endpoints) and memory not already growing. Otherwise it
fails fast with the table or the growth verdict, as incident 3's team resolved to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from harness.recording.recorder import Recorder
from harness.units import format_rate, format_size, format_step
from harness.verdicts.components import StatusLog, assert_components_active, poll_status


def soak_gate(
    urls: Sequence[str],
    required: Mapping[str, object] | Sequence[str],
    *,
    validate: object = "30 s",
    every: object = "5 s",
    timeout: object = "2 s",
) -> StatusLog:
    """Poll ``urls`` for up to ``validate``; pass as soon as every required metric is met,
    fail with the workers × metrics table if they are not by then."""
    until = required if isinstance(required, Mapping) else dict.fromkeys(required, "> 0")
    log = poll_status(urls, every=every, duration=validate, timeout=timeout, until=until)
    assert_components_active(log, required)
    return log


@dataclass
class SoakBudget:
    """How long a soak may run: minutes and/or steps; whichever ends first."""

    minutes: float | None = None
    max_steps: int | None = None
    progress_every_s: float = 10.0
    write: Callable[[str], None] = print

    def steps(self, rec: Recorder, *, after: str | None = None) -> Iterator[int]:
        """``rec.steps`` until the budget is spent, with a progress line every so often."""
        deadline = time.monotonic() + self.minutes * 60 if self.minutes else None
        total = self.max_steps if self.max_steps else 10**12
        started = last = time.monotonic()
        for step in rec.steps(total):
            yield step
            now = time.monotonic()
            if now - last >= self.progress_every_s:
                last = now
                self.write(self.progress_line(rec, step, now - started, after))
            if deadline is not None and now >= deadline:
                break
        self.write(self.progress_line(rec, rec.step, time.monotonic() - started, after) + "  (budget spent)")

    def progress_line(self, rec: Recorder, step: int, elapsed: float, after: str | None) -> str:
        trace = rec.trace
        rss = trace.columns["rss"][-1] if len(trace) else 0.0
        slope = ""
        event = trace.event(after) if after else None
        if event is not None:
            from harness.analysis.growth import growth_since

            g = growth_since(trace, event.step, min_samples=20)
            if g is not None:
                slope = f"  slope {format_rate(g.slope)} since {after!r}"
        budget = f" of {self.minutes:g} min" if self.minutes else ""
        return (
            f"[soak {rec.name}] step {format_step(step)}  RSS {format_size(rss)}{slope}  {elapsed / 60:.1f} min{budget}"
        )
