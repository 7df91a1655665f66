"""Run-to-run comparison: the --leak-compare-fail rules, the memory-specific judgement, saved runs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessUsageError
from harness.reports import history
from harness.reports.compare import FIGURES, Comparison, compare, figures_from, parse_compare_fail
from harness.reports.storage import Storage


def test_rules_read_percentages_sizes_and_rates_in_the_harness_units():
    rules = parse_compare_fail("slope:+50%, peak:10%,level:+100MB,allocated:+5 KB/1k steps")
    assert [(r.figure, r.percent, r.amount) for r in rules] == [
        ("slope", 50.0, None),
        ("peak", 10.0, None),
        ("level", None, 100_000_000.0),  # MB is 10^6 (IEC), as everywhere in the harness
        ("allocated", None, 5.0),  # 5 KB per 1,000 steps = 5 bytes per step
    ]
    assert [r.text for r in rules] == ["slope:+50%", "peak:+10%", "level:+100 MB", "allocated:+5.0 KB/1k steps"]


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("speed:+5%", "unknown figure 'speed'; use one of slope, level, peak"),
        ("slope", "must read FIGURE:+N% or FIGURE:+AMOUNT"),
        ("slope:-10%", "only growth fails a comparison"),
        ("level:+lots", "'lots' is not a percentage or a size"),
        ("slope:+100MB", "is not a percentage or a rate (size per steps)"),
        ("peak:+5%,peak:+6%", "gives 'peak' twice"),
        ("", "is empty"),
    ],
)
def test_a_bad_rule_is_one_line_naming_the_option(expr, words):
    with pytest.raises(HarnessUsageError) as err:
        parse_compare_fail(expr, "--leak-compare-fail")
    message = str(err.value)
    assert words in message and "--leak-compare-fail" in message and "\n" not in message


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"[a-z_]{1,12}:[+-]?[0-9.,eE]{0,6}\s?[%a-zA-Z/ ]{0,12}", fullmatch=True))
def test_any_text_parses_or_fails_with_one_line(text):
    try:
        rules = parse_compare_fail(text, "HARNESS_COMPARE_FAIL")
    except HarnessUsageError as exc:
        assert "\n" not in str(exc) and "HARNESS_COMPARE_FAIL" in str(exc)
        return
    assert rules and all(r.figure in FIGURES for r in rules)
    assert all((r.percent is None) != (r.amount is None) for r in rules)
    assert all((r.percent or 0) >= 0 and (r.amount or 0) >= 0 for r in rules)


OLD = {
    "signal": "rss",
    "slope": 5.0,
    "slope_low": 4.0,
    "slope_high": 6.0,
    "level": 330e6,
    "peak": 40e6,
    "peak_kind": "over baseline",
}


def test_a_slope_that_went_from_5_to_500_kb_per_1k_steps_regresses():
    new = {**OLD, "slope": 500.0, "slope_low": 490.0, "slope_high": 510.0}
    delta = compare("t", OLD, new, parse_compare_fail("slope:+50%"))
    # allowance: max(50% of max(|5|, half-interval 1), floor 20) = 20 B/step; 490 > 25
    assert delta.regressed
    assert delta.failures == (
        "slope interval low 490 KB/1k steps > 25.0 KB/1k steps allowed by slope:+50% (saved 5.0 KB/1k steps)",
    )
    assert "slope 5.0 KB/1k steps → 500 KB/1k steps (+9900%)" in delta.line()


def test_a_noisy_flat_slope_is_judged_by_its_interval_not_its_point():
    old = {**OLD, "slope": 0.1, "slope_low": -20.0, "slope_high": 20.2}
    new = {**OLD, "slope": 15.0, "slope_low": -5.0, "slope_high": 35.0}
    # +50% of the saved half-interval (20.1) is 10.05; tonight's lower bound -5 is below 0.1 + 10.05
    assert not compare("t", old, new, parse_compare_fail("slope:+50%")).regressed


def test_changes_within_the_wander_between_identical_runs_do_not_regress():
    # Measured on three runs of one flat loop: slope 7.9-11.3 B/step (each interval +-0.1),
    # RSS rise 1.4-1.8 MB. +50% / +10% of such figures is below what moves between runs.
    old = {**OLD, "slope": 7.9, "slope_low": 7.8, "slope_high": 8.0, "peak": 1.4e6, "peak_kind": "RSS rise"}
    new = {**OLD, "slope": 13.0, "slope_low": 12.9, "slope_high": 13.1, "peak": 1.8e6, "peak_kind": "RSS rise"}
    assert not compare("t", old, new, parse_compare_fail("slope:+50%,peak:+10%")).regressed
    worse = {**new, "slope_low": 28.0, "peak": 2.5e6}  # beyond 7.9 + 20 B/step and 1.4 + 1 MB
    assert len(compare("t", old, worse, parse_compare_fail("slope:+50%,peak:+10%")).failures) == 2


def test_level_and_peak_regress_on_their_allowance():
    new = {**OLD, "level": 431e6, "peak": 44.5e6}
    delta = compare("t", OLD, new, parse_compare_fail("level:+100MB,peak:+10%"))
    assert delta.failures == (
        "level 431 MB > 430 MB allowed by level:+100 MB (saved 330 MB)",
        "peak 44.5 MB > 44.0 MB allowed by peak:+10% (saved 40.0 MB)",
    )


def test_a_new_test_or_a_changed_signal_is_not_a_regression():
    assert compare("t", None, OLD, parse_compare_fail("slope:+1%")).note == "new test: not in the saved run"
    delta = compare("t", OLD, {**OLD, "signal": "allocated", "slope": 1e6}, parse_compare_fail("slope:+1%"))
    assert not delta.regressed and "judged signal changed rss → allocated" in delta.note


def test_figures_come_from_the_first_growth_check_and_the_largest_peak():
    growth = {
        "kind": "growth",
        "signal": "allocated",
        "slope_bytes_per_step": 12.0,
        "interval": [10.0, 14.0],
        "window": [100, 900],
        "levels": {"allocated": 5e6, "rss": 9e7},
        "related": {"tree": {"slope": 3.0, "low": 1.0, "high": 5.0}},
    }
    peaks = [{"kind": "peak", "over_baseline": 1e6}, {"kind": "peak", "over_baseline": 3e6}]
    figures = figures_from([growth, *peaks], trace_rise=1e8, steps=999)
    assert figures == {
        "signal": "allocated",
        "slope": 12.0,
        "slope_low": 10.0,
        "slope_high": 14.0,
        "window": [100, 900],
        "level": 5e6,
        "allocated": 12.0,
        "allocated_low": 10.0,
        "allocated_high": 14.0,
        "allocated_level": 5e6,
        "tree": 3.0,
        "tree_low": 1.0,
        "tree_high": 5.0,
        "peak": 3e6,
        "peak_kind": "over baseline",
        "steps": 999,
    }


def test_saved_runs_are_numbered_per_machine_and_found_by_number_name_or_latest(tmp_path):
    storage = Storage(tmp_path, "Linux-CPython-3.11-x86_64-16GB")
    first = storage.save({"tests": {}}, "nightly")
    second = storage.save({"tests": {}}, "abc123_20261122_023000")
    third = storage.save({"tests": {}}, "nightly")
    assert [p.name for p in (first, second, third)] == [
        "0001_nightly.json",
        "0002_abc123_20261122_023000.json",
        "0003_nightly.json",
    ]
    assert storage.find(None) == third and storage.find("auto") == third
    assert storage.find("2") == second and storage.find("0001_nightly") == first
    assert storage.find("nightly") == third and storage.find("missing") is None
    assert json.loads(third.read_text())["format"] == "leak-harness-run"
    with pytest.raises(HarnessUsageError, match="must be 1-80 letters"):
        storage.save({}, "../escape")


def test_a_comparison_reads_the_saved_figures_of_each_test(tmp_path):
    saved = {
        "datetime": "2026-11-21T02:30:00+00:00",
        "commit": {"id": "0123456789abcdef"},
        "tests": {"t::a": {"figures": OLD}},
    }
    comparison = Comparison("0003_nightly", saved, parse_compare_fail("peak:+10%"))
    assert comparison.judge("t::a", {**OLD, "peak": 80e6}).regressed
    assert comparison.judge("t::b", OLD).note.startswith("new test")
    assert comparison.describe() == "0003_nightly (2026-11-21 02:30:00, commit 0123456789)"


def test_the_runs_log_keeps_every_run_newest_first_and_skips_a_torn_line(tmp_path):
    history.append_run(tmp_path, {"id": "a", "started": "2026-11-20T02:30:00+00:00"})
    history.append_run(tmp_path, {"id": "b", "started": "2026-11-21T02:30:00+00:00"})
    with open(tmp_path / history.RUNS_LOG, "a") as fh:
        fh.write('{"id": "c", "star')  # a run killed mid-write
    assert [r["id"] for r in history.read_runs(tmp_path)] == ["b", "a"]
