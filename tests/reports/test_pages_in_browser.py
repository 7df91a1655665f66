"""The reports as a person sees them: a real project run three nights (the third one
regressed), its pages opened in headless Chromium with the network off.

Each page must load with no console error and no request that failed or left the file,
show its verdict, its axis titles and its limit line. Set HARNESS_SCREENSHOTS=DIR to keep
the screenshots (docs/screenshots/ holds the README's)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("websocket", reason="the page checks drive Chromium with websocket-client")

from report_browser import CHROMIUM, Browser
from report_demo import run_demo

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

CHECKS = {
    "title": "document.querySelector('h1') && document.querySelector('h1').textContent",
    "verdict": "Array.from(document.querySelectorAll('.verdict .head')).map(e => e.textContent).join(' | ')",
    "badges": "Array.from(document.querySelectorAll('.badge')).map(e => e.textContent)",
    "svg_text": "Array.from(document.querySelectorAll('svg.plot text')).map(e => e.textContent).join(' | ')",
    "limit_lines": "document.querySelectorAll('svg.plot [id^=\"limit-line\"]').length",
    "plots": "document.querySelectorAll('svg.plot').length",
    "wide": "document.documentElement.scrollWidth > document.documentElement.clientWidth",
    "scripts": "document.scripts.length",
    "body": "document.body.innerText",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Three nights of the demo project: saved, compared, then a regression that fails."""
    root = tmp_path_factory.mktemp("demo")
    first = run_demo(root, "--leak-save=night-1")
    assert "saved this run" in first.stdout, first.stdout + first.stderr
    run_demo(root, "--leak-save=night-2", "--leak-compare")
    third = run_demo(
        root,
        "--leak-save=night-3",
        "--leak-compare",
        "--leak-compare-fail=slope:+50%,peak:+10%",
        leak_kb=45,
        peak_mb=65,
    )
    return root / "reports", third


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def _shot(name: str) -> Path | None:
    folder = os.environ.get("HARNESS_SCREENSHOTS")
    return Path(folder) / f"{name}.png" if folder else None


def _open(browser, page: Path, shot: str):
    visit = browser.visit(page, CHECKS, screenshot=_shot(shot))
    assert visit.console_errors == [], visit.console_errors
    assert visit.failed_requests == [], visit.failed_requests
    assert visit.outside_requests == [], visit.outside_requests
    assert visit.facts["scripts"] == 0 and not visit.facts["wide"]
    return visit.facts


def test_a_failing_growth_page_shows_the_verdict_first_with_its_limit_and_window(demo, browser):
    reports, _ = demo
    facts = _open(
        browser, reports / "test_demo.py_test_replay_buffer_keeps_evicted_episodes" / "report.html", "growth-failing"
    )
    # The regression against last night first, then the verdict of the check itself.
    assert facts["badges"][:3] == ["failed", "REGRESSED", "FAIL"]
    # 45 KB a step of bytearrays, plus the small objects that keep them (pymalloc): 45.0–45.2 MB/1k
    assert re.search(r"FAIL .*grows 45\.[0-2] MB per 1k steps after 'full'", facts["verdict"])
    assert facts["limit_lines"] == 1
    for words in (
        "step",
        "allocated (MB)",
        "RSS (MB)",
        "analysis window",
        "limit 1 MB/1k steps from the window start",
        "full (step 500)",
    ):
        assert words in facts["svg_text"], words
    assert "Growing allocation sites in the window" in facts["body"] or "sites" not in facts["body"]
    assert "Against 0002_night-2" in facts["body"] and "REGRESSED" in facts["body"]
    assert '"first":' not in facts["body"]  # no raw dumps: verdict.json is linked instead
    assert "verdict.json" in facts["body"]


def test_a_passing_growth_page_is_green_and_still_draws_the_limit(demo, browser):
    reports, _ = demo
    facts = _open(
        browser, reports / "test_demo.py_test_fixed_buffer_stays_flat_after_eviction" / "report.html", "growth-passing"
    )
    assert facts["badges"][0] == "passed" and facts["verdict"].startswith("PASS")
    assert facts["limit_lines"] == 1 and "allocated (MB)" in facts["svg_text"]


def test_a_peak_page_shows_baseline_payload_and_limit(demo, browser):
    reports, _ = demo
    facts = _open(
        browser, reports / "test_demo.py_test_checkpoint_save_stays_within_its_payload" / "report.html", "peak"
    )
    # Within its own limit, but 45% above last night's peak: the comparison failed it.
    assert facts["verdict"].startswith("REGRESSED against 0002_night-2")
    assert "| PASS Peak during" in facts["verdict"] and "above baseline" in facts["verdict"]
    assert facts["limit_lines"] == 1
    for words in ("baseline", "baseline + payload 40.0 MB", "RSS (MB)", "seconds into the block"):
        assert words in facts["svg_text"], words


def test_a_release_check_the_test_expected_shows_its_chain(demo, browser):
    reports, _ = demo
    facts = _open(browser, reports / "test_demo.py_test_evicted_episodes_are_released" / "report.html", "release")
    assert "FAIL — expected: the test caught it and passed" in facts["badges"]
    assert "episode 2" in facts["body"] and "KEPT" in facts["body"]


def test_the_index_lists_every_test_and_keeps_the_history_newest_first(demo, browser):
    reports, third = demo
    assert third.returncode == 1 and "Memory regression against the saved run 0002_night-2" in third.stdout
    facts = _open(browser, reports / "index.html", "index")
    body = facts["body"]
    for test in (
        "test_replay_buffer_keeps_evicted_episodes",
        "test_fixed_buffer_stays_flat_after_eviction",
        "test_checkpoint_save_stays_within_its_payload",
        "test_evicted_episodes_are_released",
        "test_history_cache_is_bounded",
    ):
        assert test in body
    assert "expected to fail: failed (xfail)" in facts["badges"]
    assert "(this run)" in body and body.count("night-") >= 3
    runs = sorted((reports / "runs").iterdir())
    assert len(runs) == 3 and all((r / "index.html").exists() for r in runs)
    history = body[body.index("Run history") :]
    dates = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", history)
    assert dates == sorted(dates, reverse=True) and len(dates) == 3
    assert "commit" in body and "machine" in body and "--leak-compare-fail" in body


def test_the_trend_page_draws_every_saved_run(demo, browser):
    reports, _ = demo
    facts = _open(browser, reports / "trend.html", "trend")
    assert facts["plots"] == 4  # the release check saves no figures
    assert "slope, with its interval" in facts["svg_text"] and "3_night-3" in facts["svg_text"]
