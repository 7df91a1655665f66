"""Repeated looks in a soak: alpha spent across looks, evidence in the progress lines, an
early stop on a real leak, and (slow) the false-positive study over seeded clean soaks
(reports/studies/soak_looks.json)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.analysis.stats import robust_growth
from harness.recording.soak import SequentialCheck, SoakBudget, look_alpha
from harness.recording.trace import Event, Trace

OUT = Path(__file__).resolve().parents[2] / "reports" / "studies"


def test_interim_looks_spend_at_most_their_share_however_many():
    assert sum(look_alpha(k) for k in range(1, 100_000)) == pytest.approx(0.025, rel=1e-4)
    assert look_alpha(1) == 0.0125 and look_alpha(2) == pytest.approx(0.05 / 2 / 6)
    assert SequentialCheck("1 MB/1k steps").final_confidence == pytest.approx(0.975)


def clean_soak(seed: int, n: int, leak: float = 0.0, leak_from: int = 0, phi: float = 0.998) -> Trace:
    """A clean (or leaking) synthetic soak: page-quantised RSS with an AR(1) wobble (slow
    with ``phi`` near 1: a clean series that wanders), allocator stairs that return, noise."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.int64)
    shocks = rng.normal(0, 40_000.0 * math.sqrt(1 - phi**2) / math.sqrt(1 - 0.998**2), n)
    wobble = np.empty(n)
    level = 0.0
    for i in range(n):  # AR(1): autocorrelated like RSS, stationary (no trend)
        level = phi * level + shocks[i]
        wobble[i] = level
    stairs = np.zeros(n)
    for start in rng.integers(0, n, 4):
        stairs[start : start + int(rng.integers(n // 40, n // 8))] += rng.choice([-1.0, 1.0]) * 3e6
    leak_bytes = np.where(steps >= leak_from, (steps - leak_from) * leak, 0.0)
    rss = np.floor((9e8 + wobble + stairs + leak_bytes + rng.normal(0, 2e5, n)) / 4096) * 4096
    trace = Trace(f"soak-{seed}", {"machine_memory": 2**36})
    trace.extend(steps, steps * 0.01, {"v": {"rss": rss}})
    trace.add_event(Event("steady", 500, 5.0))
    return trace


def test_a_leaking_soak_stops_at_a_look_and_says_which():
    trace = clean_soak(1, 24_000, leak=3_000.0, leak_from=500)
    check = SequentialCheck("100 KB/1k steps", after="steady", signal="rss")
    with pytest.raises(
        harness.GrowthError, match=r"\(Soak look \d: tested at alpha [\d.e-]+ \(99\.\d+% confidence\) so that \d looks"
    ):
        for minute in range(1, 7):
            check.look(trace.head(minute * 4_000))


def test_progress_lines_show_the_evidence_so_far():
    written: list[str] = []
    budget = SoakBudget(max_steps=3_000, progress_every_s=0.2, look_every_s=0.3, write=written.append)
    budget.max_growth = "10 MB/1k steps"
    with harness.record("soak", every=1, gc_types=False) as rec:
        for step in budget.steps(rec, after="steady"):
            if step == 100:
                rec.mark("steady")
            end = time.perf_counter() + 5e-4
            while time.perf_counter() < end:
                pass
    assert budget.check is not None and budget.check.looks >= 2
    last = written[-1]
    assert "slope" in last and "since 'steady'" in last and "(budget spent)" in last
    assert re_search(
        r"\[look \d+ at alpha [\d.e-]+: .* vs limit 10(\.0)? MB/1k steps \(pass; alpha spent [\d.e-]+ of 0\.05\)\]",
        last,
    )
    assert rec.trace.meta["soak_final_confidence"] == pytest.approx(0.975)


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def look_study(
    seeds: int = 30, minutes: int = 12, per_minute: int = 3_000, limit: object = 0, phi: float = 0.998
) -> dict[str, object]:
    """Seeded clean soaks, one look a minute: how many fail, naive looks vs alpha spent."""
    end_only = naive_any = interim_stop = final_fail = overall = final_corrected = 0
    for seed in range(seeds):
        trace = clean_soak(1_000 + seed, minutes * per_minute, phi=phi)
        check = SequentialCheck(limit, after="steady", signal="rss")
        naive = stopped = False
        for minute in range(2, minutes + 1):
            head = trace.head(minute * per_minute - 1)
            final = minute == minutes
            verdict = harness.growth_verdict(head, max_growth=limit, after="steady", signal="rss")
            naive |= not verdict.passed
            end_only += final and not verdict.passed
            if final and not stopped and not verdict.passed:
                # what if the final verdict also widened its interval for autocorrelation
                from harness.analysis.window import window_series

                xs, ys = window_series(head, "rss", verdict.window)
                g = robust_growth(xs, ys, confidence=check.final_confidence, autocorrelated=True)
                final_corrected += g.exceeds(verdict.limit)
            if stopped:
                continue
            try:
                check.look(head, final=final)
            except harness.GrowthError:
                stopped = True
                interim_stop += not final
                final_fail += final
        naive_any += naive
        overall += stopped
    return {
        "soaks": seeds,
        "looks_per_soak": minutes - 1,
        "limit": str(limit),
        "ar1_phi": phi,
        "one_look_at_the_end_95pct": end_only / seeds,
        "every_look_at_95pct": naive_any / seeds,
        "alpha_spent_interim_stops": interim_stop / seeds,
        "alpha_spent_final_look": final_fail / seeds,
        "alpha_spent_overall": overall / seeds,
        "alpha_spent_overall_if_the_final_verdict_were_corrected": (interim_stop + final_corrected) / seeds,
        "alpha": 0.05,
    }


@pytest.mark.slow
def test_false_positive_rate_with_a_look_every_minute():
    """Clean soaks judged against a limit of 0 (any growth: the null's boundary, where a
    false positive is likeliest), on a slowly wandering series (AR(1) phi 0.998) and a
    quicker one (phi 0.98)."""
    results = {
        "model": "synthetic clean soaks: page-quantised RSS, AR(1) wobble, allocator stairs, noise; "
        "12 minutes of 3,000 samples, a look at the end of each minute from the second; interim looks "
        "spend alpha/2 as 1/(k(k+1)) and widen the interval for residual autocorrelation, the final "
        "look is the plain verdict at 97.5%",
        "wandering": look_study(limit=0, phi=0.998),
        "quick": look_study(limit=0, phi=0.98),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak_looks.json").write_text(json.dumps(results, indent=2) + "\n")
    for study in (results["wandering"], results["quick"]):
        assert isinstance(study, dict)
        rate = float(study["alpha_spent_interim_stops"])
        # the early stops stay within their share of alpha (binomial sampling error allowed)
        assert rate <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / float(study["soaks"])), results
        assert rate <= float(study["every_look_at_95pct"])
