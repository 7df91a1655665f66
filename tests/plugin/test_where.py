"""--leak-where: a failing growth check names the lines that keep what grows."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("memray")

# Each step keeps 20 KB (a module-level list); line 8 is the leak.
LEAKY = """
import pytest
HELD = []

@pytest.mark.leak(max_growth="1 MB/1k steps", after="full")
def test_grows(memory_trace):
    for step in memory_trace.steps(1_500):
        scratch = bytearray(b"y") * 50_000
        HELD.append(bytearray(b"x") * 20_000)
        if step == 300:
            memory_trace.mark("full")
"""
LEAK_LINE = "test_leaky.py:8"

FLAT = """
import pytest

@pytest.mark.leak(max_growth="1 MB/1k steps", after="full", every=10)
def test_flat(memory_trace):
    ring = [None] * 50
    for step in memory_trace.steps(1_500):
        ring[step % 50] = bytearray(b"x") * 20_000
        if step == 300:
            memory_trace.mark("full")
"""

# No event, judged on RSS: the advice names memory_trace.account and memory_trace.mark.
NO_EVENT = """
import pytest
HELD = []

@pytest.mark.leak(max_growth="1 MB/1k steps", signal="rss")
def test_grows_without_event(memory_trace):
    for step in memory_trace.steps(1_500):
        HELD.append(bytearray(b"x") * 40_000)
"""


@pytest.fixture
def run(pytester):
    def _run(*args: str):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml", *args)

    return _run


def _props(pytester) -> dict[str, str]:
    root = ET.parse(Path(pytester.path) / "junit.xml").getroot()
    return {p.get("name", ""): p.get("value", "") for p in root.iter("property")}


def _test_dir(pytester, name: str) -> Path:
    dirs = [d for d in (Path(pytester.path) / "reports").iterdir() if d.is_dir() and name in d.name]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_auto_reruns_a_failing_test_and_adds_its_sites_to_the_failure(pytester, run):
    pytester.makepyfile(test_leaky=LEAKY)
    result = run()
    assert result.ret == 1
    out = result.stdout.str()
    assert "GrowthError" in out
    assert "Growing allocation sites in the window" in out
    first = next(line for line in out.splitlines() if "test_leaky.py:" in line and " in test_grows" in line)
    assert LEAK_LINE in first, out
    assert "HELD.append(bytearray" in first
    # under the site: who keeps what it made (the line that stored it is the site itself)
    assert "← kept by module global test_leaky.HELD (list)" in out, out
    assert "Sites from one rerun of the test with site tracking" in out
    assert "--leak-memray" not in out  # sites are there: no "rerun with --leak-memray"
    props = _props(pytester)
    assert props["leak_top_site"].startswith(LEAK_LINE)
    assert float(props["leak_where_rerun_s"]) > 0
    page = Path(props["leak_growth_flamegraph_file"])
    assert page.name == "growth.flamegraph.html" and page.exists()
    assert LEAK_LINE in page.read_text()
    # the first run's trace is kept; the rerun's is beside it
    directory = _test_dir(pytester, "test_grows")
    assert (directory / "trace.jsonl").exists() and (directory / "trace.where.jsonl").exists()
    # the terminal summary names the top site
    assert f"top site {LEAK_LINE}" in out


def test_no_does_not_rerun_and_says_how_to_get_sites(pytester, run):
    pytester.makepyfile(test_leaky=LEAKY)
    result = run("--leak-where=no")
    assert result.ret == 1
    out = result.stdout.str()
    assert "Growing allocation sites" not in out
    assert "Sites from one rerun" not in out
    assert "--leak-where=always" in out
    assert not (_test_dir(pytester, "test_grows") / "trace.where.jsonl").exists()
    assert "leak_where_rerun_s" not in _props(pytester)


def test_a_passing_test_pays_nothing_in_auto_mode(pytester, run):
    pytester.makepyfile(test_flat=FLAT)
    result = run()
    assert result.ret == 0
    assert not (_test_dir(pytester, "test_flat") / "trace.where.jsonl").exists()
    props = _props(pytester)
    assert "leak_where_rerun_s" not in props and "leak_top_site" not in props


def test_always_tracks_the_run_itself(pytester, run):
    pytester.makepyfile(test_leaky=LEAKY)
    result = run("--leak-where=always")
    assert result.ret == 1
    out = result.stdout.str()
    assert "Growing allocation sites" in out and LEAK_LINE in out
    assert "Sites from one rerun" not in out
    assert not (_test_dir(pytester, "test_grows") / "trace.where.jsonl").exists()
    assert _props(pytester)["leak_top_site"].startswith(LEAK_LINE)


def test_bad_mode_is_a_usage_error(run, pytester):
    pytester.makepyfile(test_flat=FLAT)
    result = run("--leak-where=sometimes")
    assert result.ret != 0
    assert "--leak-where" in result.stderr.str() and "auto, always or no" in result.stderr.str()


def test_advice_in_pytest_names_memory_trace(pytester, run):
    pytester.makepyfile(test_noevent=NO_EVENT)
    result = run("--leak-where=no")
    assert result.ret == 1
    out = result.stdout.str()
    assert "memory_trace.account(buffer=...)" in out
    assert "memory_trace.mark('warmup')" in out
    assert "rec.account" not in out and "rec.mark" not in out
