"""Soak runs: a time or step budget, progress lines for a CI log, and a gate in front.

A soak test burns its budget only after a short validation phase passes: components
active (``soak_gate`` on status endpoints) and memory not already growing. Otherwise it
fails fast with the table or the growth verdict, as incident 3's team resolved to do.

A soak looks at its verdict again and again (gate, every minute, the end); each look at
95% would be another 5% chance to fail a clean run. :class:`SequentialCheck` spends one
false-positive budget across the looks instead (alpha spending with a 1/(k(k+1))
schedule, so no number of looks has to be fixed in advance), and the progress lines show
each look's evidence.

A soak's series is long and serially correlated: RSS wanders with the heap and climbs and
falls in allocator stairs that last minutes, and an interval that takes its points as
independent is far too narrow: of seeded clean soaks, 63–70% failed a look a minute at 95%
and 8–13% the final verdict alone at 97.5% (reports/studies/soak_looks.json). Every verdict on a
soak's trace (the looks, a gate's ``assert_no_linear_growth``, the marker's final
verdict) is therefore judged with ``robust_growth(autocorrelated=True)``: batch means
and an effective sample size (harness.analysis.stats). :meth:`SoakBudget.steps` marks
the trace (``meta["soak_autocorrelated"]``) and ``growth_verdict`` reads the mark.
reports/studies/soak_looks.json measures the false-positive rate on seeded clean soaks
and the detection delay on leaking ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.recording.recorder import Recorder
from harness.recording.trace import Trace
from harness.units import format_rate, format_size, format_step
from harness.verdicts.components import StatusLog, assert_components_active, poll_status

if TYPE_CHECKING:
    from harness.analysis.growth import GrowthVerdict


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


def look_alpha(look: int, alpha: float = 0.05, interim_share: float = 0.5) -> float:
    """The false-positive rate spent on interim look ``look`` (1, 2, ...) of a soak.

    Interim looks spend ``alpha * interim_share`` in all, look k getting 1/(k(k+1)) of it
    (1/2, 1/6, 1/12, ...: the series sums to 1 however many looks a soak takes, so its
    length need not be known in advance); the final verdict gets the rest. By the union
    bound the chance that a clean soak fails at any look is at most ``alpha``, whatever the
    dependence between looks (they share most of their samples).
    """
    if look < 1:
        raise ValueError(f"looks count from 1, got {look}")
    return alpha * interim_share / (look * (look + 1))


#: The trace's mark that asks every growth verdict on it to allow for serial correlation.
AUTOCORRELATED = "soak_autocorrelated"


@dataclass
class SequentialCheck:
    """Repeated looks at one growth verdict with an honest overall false-positive rate.

    Each interim look tests at ``1 - look_alpha(k)`` confidence; the final look (the
    marker's verdict at the end) at ``1 - alpha * (1 - interim_share)``. Every look is
    judged robust to serial correlation (``autocorrelated``: see the module's docstring).
    The evidence of the latest look is kept for progress lines: the interval against the
    limit, the points it rests on and how many of them count as independent, and the
    false-positive rate spent so far.
    """

    max_growth: object
    after: str | None = None
    signal: str = "auto"
    alpha: float = 0.05
    interim_share: float = 0.5
    min_samples: int = 200  # rows in the window before an interim look counts
    autocorrelated: bool = True
    looks: int = 0
    spent: float = 0.0
    evidence: str = ""

    @property
    def final_confidence(self) -> float:
        return 1.0 - self.alpha * (1.0 - self.interim_share)

    def look(self, trace: Trace, *, final: bool = False) -> GrowthVerdict | None:
        """One look: the verdict at this look's confidence (None: the window is too short yet).

        Raises GrowthError when the verdict fails: the soak stops early on a real leak.
        """
        from harness.analysis.growth import growth_verdict
        from harness.errors import GrowthError, TraceError

        k = self.looks + 1
        a_k = self.alpha * (1.0 - self.interim_share) if final else look_alpha(k, self.alpha, self.interim_share)
        if self.autocorrelated:
            trace.meta[AUTOCORRELATED] = True
        try:
            verdict = growth_verdict(
                trace,
                max_growth=self.max_growth,
                after=self.after,
                signal=self.signal,
                confidence=1.0 - a_k,
                autocorrelated=self.autocorrelated,
            )
        except TraceError:
            return None
        if not final and verdict.growth.samples < self.min_samples:
            return None  # too early to judge: no look taken, no alpha spent
        self.looks = k
        self.spent += a_k
        g = verdict.growth
        failed = not verdict.passed
        what = "final look" if final else f"look {k}"
        independent = f"; {g.effective_points:.3g} of {g.points} points independent" if g.inflation > 1 else ""
        self.evidence = (
            f"{what} at alpha {a_k:.2g}: {format_rate(g.low)} to {format_rate(g.high)} "
            f"vs limit {format_rate(verdict.limit)} ({'FAIL' if failed else 'pass'}{independent}; "
            f"alpha spent {self.spent:.3g} of {self.alpha:g})"
        )
        trace.meta["soak_looks"] = self.looks
        trace.meta["soak_alpha_spent"] = self.spent
        trace.meta["soak_final_confidence"] = self.final_confidence
        if failed:
            serial = (
                f"; the interval allows for serial correlation: {g.effective_points:.3g} of its "
                f"{g.points} points count as independent"
                if self.autocorrelated
                else ""
            )
            raise GrowthError(
                f"{verdict.message()}\n(Soak {what}: tested at alpha {a_k:.2g} "
                f"({100 * (1 - a_k):.6g}% confidence) so that {self.looks} looks keep the false-positive "
                f"rate within {self.alpha:g}{serial}.)",
                verdict,
            )
        return verdict


@dataclass
class SoakBudget:
    """How long a soak may run: minutes and/or steps; whichever ends first.

    With ``max_growth`` (or ``steps(..., max_growth=...)``) the soak looks at its growth
    verdict every ``look_every_s`` and stops at the first look that fails; the looks spend
    ``alpha`` (see :class:`SequentialCheck`), and the progress lines show the evidence.
    """

    minutes: float | None = None
    max_steps: int | None = None
    progress_every_s: float = 10.0
    write: Callable[[str], None] = print
    max_growth: object = None
    after: str | None = None
    signal: str = "auto"
    alpha: float = 0.05
    look_every_s: float = 60.0
    check: SequentialCheck | None = None

    def steps(self, rec: Recorder, *, after: str | None = None, max_growth: object = None) -> Iterator[int]:
        """``rec.steps`` until the budget is spent, with a progress line every so often."""
        limit = max_growth if max_growth is not None else self.max_growth
        if limit is not None and self.check is None:
            look_after = after if after is not None else self.after
            self.check = SequentialCheck(limit, after=look_after, signal=self.signal, alpha=self.alpha)
        # Every growth verdict on a soak's trace allows for serial correlation (the module's docstring).
        rec.trace.meta[AUTOCORRELATED] = self.check.autocorrelated if self.check is not None else True
        if self.check is not None:
            rec.trace.meta["soak_final_confidence"] = self.check.final_confidence
        deadline = time.monotonic() + self.minutes * 60 if self.minutes else None
        total = self.max_steps if self.max_steps else 10**12
        started = last = last_look = time.monotonic()
        for step in rec.steps(total):
            yield step
            now = time.monotonic()
            if now - last >= self.progress_every_s or now - last_look >= self.look_every_s:
                if self.check is not None and now - last_look >= self.look_every_s:
                    self.check.look(rec.trace)
                    last_look = now = time.monotonic()  # a look's own time is not the soak's
                if now - last >= self.progress_every_s:
                    last = now
                    self.write(self.progress_line(rec, step, now - started, after))
            if deadline is not None and now >= deadline:
                break
        self.write(self.progress_line(rec, rec.step, time.monotonic() - started, after) + "  (budget spent)")

    def progress_line(self, rec: Recorder, step: int, elapsed: float, after: str | None) -> str:
        trace = rec.trace
        rss = float(trace.columns["rss"][-1]) if len(trace) else 0.0
        slope = ""
        event = trace.event(after) if after else None
        if event is not None:
            from harness.analysis.window import growth_since

            g = growth_since(trace, event.step, min_samples=20)
            if g is not None:
                slope = f"  slope {format_rate(g.slope)} since {after!r}"
        if self.check is not None and self.check.evidence:
            slope += f"  [{self.check.evidence}]"
        budget = f" of {self.minutes:g} min" if self.minutes else ""
        return (
            f"[soak {rec.name}] step {format_step(step)}  RSS {format_size(rss)}{slope}  {elapsed / 60:.1f} min{budget}"
        )
