"""Repeated looks in a soak: alpha spent across looks, evidence in the progress lines, an
early stop on a real leak, verdicts robust to serial correlation (batch means and an
effective sample size, checked against hand-computed values), and the study over seeded
clean and leaking soaks (nightly; a few seeds in the test command):
reports/studies/soak_looks.json."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.analysis.stats import (
    MIN_BATCHES,
    batch_medians,
    corrected_lag1,
    lag1_autocorrelation,
    robust_growth,
    theil_sen,
    variance_inflation,
)
from harness.recording.soak import AUTOCORRELATED, SequentialCheck, SoakBudget, look_alpha
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
        r"\[look \d+ at alpha [\d.e-]+: .* vs limit 10(\.0)? MB/1k steps \(pass; [\d.]+ of \d+ points independent; "
        r"alpha spent [\d.e-]+ of 0\.05\)\]",
        last,
    )
    assert rec.trace.meta["soak_final_confidence"] == pytest.approx(0.975)
    # every later verdict on the soak's trace (the marker's, a user's assert) allows for serial correlation
    assert rec.trace.meta[AUTOCORRELATED] is True
    verdict = harness.growth_verdict(rec.trace, after="steady", max_growth="10 MB/1k steps")
    assert all(j.growth.points <= 400 and j.growth.inflation >= 1 for j in verdict.judged)
    assert harness.growth_verdict(rec.trace, after="steady", autocorrelated=False).judged[0].growth.inflation == 1


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


# -- the estimator: hand-computed values ------------------------------------------------


def test_lag1_autocorrelation_by_hand():
    # [1, 2, 3, 4] about its mean 2.5: -1.5, -0.5, 0.5, 1.5; lag-1 products 0.75 - 0.25 + 0.75
    # = 1.25 over the sum of squares 5
    assert lag1_autocorrelation(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.25)
    # alternating: -1, 1, -1, 1 -> products -1 three times over 4
    assert lag1_autocorrelation(np.array([0.0, 2.0, 0.0, 2.0])) == pytest.approx(-0.75)


def test_corrected_lag1_removes_the_small_sample_bias_and_clips():
    assert corrected_lag1(0.5, 13) == pytest.approx((13 * 0.5 + 1) / 10)  # 0.75
    assert corrected_lag1(0.0, 43) == pytest.approx(1 / 40)  # white noise reads -1/n on average
    assert corrected_lag1(-0.6, 20) == 0.0  # anticorrelation earns no narrower interval
    assert corrected_lag1(0.99, 10) == 1.0  # (9.9 + 1) / 7 > 1: clipped
    assert corrected_lag1(0.9, 3) == 0.0  # too few values to say


def test_variance_inflation_by_hand():
    # n = 4, rho = 0.5: 1 + 2 * (3/4 * 0.5 + 2/4 * 0.25 + 1/4 * 0.125) = 1 + 2 * 0.53125
    assert variance_inflation(0.5, 4) == pytest.approx(2.0625)
    # n = 3, rho = 0.2: 1 + 2 * (2/3 * 0.2 + 1/3 * 0.04) = 1 + 2 * 0.14666...
    assert variance_inflation(0.2, 3) == pytest.approx(1 + 2 * (0.4 / 3 + 0.04 / 3))
    assert variance_inflation(0.0, 100) == 1.0
    assert variance_inflation(1.0, 7) == pytest.approx(7.0)  # one effective point
    # large n: the AR(1) limit (1 + rho) / (1 - rho)
    assert variance_inflation(0.6, 100_000) == pytest.approx(1.6 / 0.4, rel=1e-3)


def test_sen_interval_widens_with_the_inflation_by_hand():
    # x 0..3, y 0, 1, 3, 2: pairwise slopes 1, 1.5, 2/3, 2, 0.5, -1; sorted
    # -1, 0.5, 2/3, 1, 1.5, 2 (nt = 6). Var(S) = 4 * 3 * 13 / 18, sigma 2.944.
    # At 50%: z = 0.6745, z * sigma = 1.986: upper index round((6 + 1.986) / 2) = 4 -> 1.5,
    # lower round((6 - 1.986) / 2) - 1 = 1 -> 0.5.
    x, y = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 3.0, 2.0])
    slope, intercept, low, high = theil_sen(x, y, 0.5)
    assert (slope, low, high) == (pytest.approx(5 / 6), 0.5, 1.5)  # median of 2/3 and 1
    assert intercept == pytest.approx(1.5 - 5 / 6 * 1.5)
    # Var(S) four times larger (sigma x2): z * sigma = 3.972: indices round(4.986) = 5 -> 2
    # and round(1.014) - 1 = 0 -> -1
    assert theil_sen(x, y, 0.5, inflate=2.0)[2:] == (-1.0, 2.0)


def test_the_trend_test_p_value_follows_the_inflated_variance():
    # z = 1.96 (p 0.05) with Var(S) x4 is z = 0.98: p = 2 * (1 - Phi(0.98)) = 0.3271
    from harness.analysis.stats import _inflated_p

    assert _inflated_p(0.05, 4.0) == pytest.approx(0.3271, abs=1e-4)
    assert _inflated_p(0.05, 1.0) == 0.05


def test_white_noise_keeps_its_points_a_random_walk_is_merged_to_few():
    rng = np.random.default_rng(7)
    x = np.arange(8_000, dtype=float)
    xs, _, r = batch_medians(x, rng.normal(0, 1, x.size), 400)
    assert len(xs) == 400 and r <= 2 / math.sqrt(400)
    walk = np.cumsum(rng.normal(0, 1, x.size))
    xs, _, r = batch_medians(x, walk, 400)
    assert len(xs) == 25 and MIN_BATCHES > 12  # 400, 200, 100, 50, 25 (not 12): still correlated
    assert r > 2 / math.sqrt(25)


def test_robust_growth_is_sen_on_the_batches_with_the_effective_sample_size():
    rng = np.random.default_rng(11)
    x = np.arange(12_000, dtype=float)
    # a line under a slow square wave (an allocator stair that comes and goes) and noise
    y = 50.0 * x + 2e6 * ((x // 3_000) % 2) + rng.normal(0, 1e5, x.size)
    plain = robust_growth(x, y)
    g = robust_growth(x, y, autocorrelated=True)
    xs, ys, r = batch_medians(x, y, 400)
    f = variance_inflation(corrected_lag1(r, len(xs)), len(xs))
    slope, intercept, low, high = theil_sen(xs, ys, 0.95, inflate=math.sqrt(f))
    assert (g.points, g.inflation) == (len(xs), pytest.approx(f))
    assert (g.slope, g.low, g.high, g.intercept) == (slope, low, high, intercept)
    assert g.points < plain.points and g.inflation > 1 and g.effective_points < g.points
    assert g.low < plain.low and g.high > plain.high  # wider: honest about the wave
    assert g.low < 50 < g.high
    assert g.p_value > plain.p_value
    # independent noise: the same interval as without the option, up to the small bias correction
    white = 50.0 * x + rng.normal(0, 1e5, x.size)
    a, b = robust_growth(x, white), robust_growth(x, white, autocorrelated=True)
    assert b.points == a.points == 400 and b.inflation < 1.3  # r <= 2/sqrt(400): at most ~1.23
    assert b.slope == a.slope and b.low == pytest.approx(a.low, rel=0.05)


# -- the study ---------------------------------------------------------------------------

#: The model of the study, as written to reports/studies/soak_looks.json.
MODEL = (
    "synthetic soaks: page-quantised RSS, an AR(1) wobble (stationary sd ~630 KB), four allocator "
    "stairs of +-3 MB lasting 1/40 to 1/8 of the run, noise; 12 minutes of 3,000 samples, 'steady' at "
    "step 500; a look at the end of each minute from the second (11 looks), judged on RSS against a "
    "limit of 0 (any growth: the null's boundary, where a false positive is likeliest); interim looks "
    "spend alpha/2 = 0.025 as 1/(k(k+1)), the final look the other 0.025"
)


def look_study(
    seeds: int = 30,
    minutes: int = 12,
    per_minute: int = 3_000,
    limit: object = 0,
    phi: float = 0.998,
    seed0: int = 1_000,
    leak: float = 0.0,
) -> dict[str, object]:
    """Seeded soaks, one look a minute, as SequentialCheck and the marker's final verdict
    judge them (robust to serial correlation), beside plain verdicts (independent points)."""
    end_only = naive_any = interim_stop = final_fail = overall = final_plain = 0
    stops: list[int] = []
    for seed in range(seeds):
        trace = clean_soak(seed0 + seed, minutes * per_minute, leak=leak, leak_from=500, phi=phi)
        check = SequentialCheck(limit, after="steady", signal="rss")
        naive = stopped = False
        for minute in range(2, minutes + 1):
            head = trace.head(minute * per_minute - 1)
            final = minute == minutes
            verdict = harness.growth_verdict(head, max_growth=limit, after="steady", signal="rss")
            naive |= not verdict.passed
            end_only += final and not verdict.passed
            if final:  # what the marker's final verdict was before: plain, at 97.5%
                final_plain += not harness.growth_verdict(
                    head, max_growth=limit, after="steady", signal="rss", confidence=check.final_confidence
                ).passed
            if stopped:
                continue
            try:
                check.look(head, final=final)
            except harness.GrowthError:
                stopped = True
                stops.append(minute)
                interim_stop += not final
                final_fail += final
        naive_any += naive
        overall += stopped
    out: dict[str, object] = {
        "soaks": seeds,
        "seeds": f"{seed0}..{seed0 + seeds - 1}",
        "looks_per_soak": minutes - 1,
        "limit": str(limit),
        "ar1_phi": phi,
        "plain_one_look_at_the_end_95pct": end_only / seeds,
        "plain_every_look_at_95pct": naive_any / seeds,
        "plain_final_look_at_97.5pct": final_plain / seeds,
        "robust_interim_stops": interim_stop / seeds,
        "robust_final_look": final_fail / seeds,
        "robust_overall": overall / seeds,
        "alpha": 0.05,
    }
    if leak:
        out["leak_bytes_per_step"] = leak
        out["median_stop_minute"] = float(np.median(stops)) if stops else None
    return out


def test_no_clean_soak_fails_and_a_leaking_one_stops_a_few_seeds():
    """The CI share of the nightly study: 4 clean soaks of each model, none fails; 4 soaks
    leaking 800 B/step (29 MB over the run), each stops at a look."""
    for phi in (0.998, 0.98):
        clean = look_study(seeds=4, phi=phi)
        assert clean["robust_overall"] == 0, clean
        leaking = look_study(seeds=4, phi=phi, leak=800.0, seed0=2_000)
        assert leaking["robust_overall"] == 1.0, leaking


@pytest.mark.study
def test_false_positive_rate_and_detection_with_a_look_every_minute():
    """Clean soaks (the 30 seeds of the earlier study and 100 more) on a slowly wandering
    series (AR(1) phi 0.998) and a quicker one (phi 0.98), then leaking soaks: how many are
    caught and at which look, and the smallest rate caught in 90% of them by the end."""
    results: dict[str, object] = {"model": MODEL, "clean": {}, "leaking": {}}
    clean: dict[str, object] = {}
    leaking: dict[str, object] = {}
    for name, phi in (("wandering", 0.998), ("quick", 0.98)):
        clean[name] = look_study(seeds=30, phi=phi)
        clean[f"{name}_more_seeds"] = look_study(seeds=100, phi=phi, seed0=5_000)
        rates = {}
        for leak in (50.0, 100.0, 200.0, 400.0, 800.0):
            rates[f"{leak:g} B/step"] = look_study(seeds=20, phi=phi, leak=leak, seed0=2_000)
        caught = [float(k.split()[0]) for k, v in rates.items() if float(v["robust_overall"]) >= 0.9]  # type: ignore[arg-type]
        leaking[name] = {"rates": rates, "smallest_rate_caught_in_90pct_bytes_per_step": min(caught, default=None)}
    results["clean"], results["leaking"] = clean, leaking
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak_looks.json").write_text(json.dumps(results, indent=2) + "\n")
    for name in ("wandering", "quick"):
        study = clean[name]
        assert isinstance(study, dict)
        assert study["robust_overall"] == 0, results  # none of the study's seeded clean soaks
        more = clean[f"{name}_more_seeds"]
        assert isinstance(more, dict)
        # honest: within alpha/2 = 0.025 (the one-sided rate at the boundary) plus sampling error
        assert float(more["robust_overall"]) <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / 100), results
