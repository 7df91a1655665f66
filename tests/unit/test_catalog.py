"""The public leak catalog: citations, leak lines, and one quick leaky/fixed measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.catalog import CASES, CITE, close_step, get
from fixtures.catalog import verify as v

ROOT = Path(__file__).resolve().parents[2]


def test_at_least_twelve_leak_cases_and_unique_names():
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)
    assert sum(not case.clean_only for case in CASES) >= 12
    assert any(case.clean_only for case in CASES)
    assert sum(case.children for case in CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cite_is_owner_repo_number_and_in_the_docstring(case):
    import fixtures.catalog as catalog

    assert CITE.match(case.cite), case.cite
    assert case.cite in (catalog.__doc__ or "")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_leak_line_points_at_the_expected_code(case):
    if case.clean_only:
        assert case.leak_line == "" and case.rate == 0 and case.variants == ("fixed",)
        return
    path, _, number = case.leak_line.rpartition(":")
    assert path.startswith("fixtures/catalog/") and path.endswith(".py")
    lines = (ROOT / path).read_text().splitlines()
    line = lines[int(number) - 1]
    assert case.leak_snippet, "a leaky case needs its leak_snippet"
    assert case.leak_snippet in line, f"{case.leak_line} reads {line.strip()!r}"
    assert case.rate > 0 and case.variants == ("leaky", "fixed")


def test_unknown_case_and_variant_are_refused():
    with pytest.raises(KeyError):
        get("no-such-case")
    with pytest.raises(ValueError):
        get("numpy-slice-view").make("bad", 0)
    with pytest.raises(ValueError):
        get("clean-gc-cycles").make("leaky", 0)


def test_probes_read_something():
    assert v.rss_bytes() > 0
    assert v.live_bytes() > 0


def test_one_leaky_and_one_fixed_case_through_verify():
    case = get("numpy-slice-view")
    leaky = v.measure(case, "leaky", seed=1, steps=400)
    fixed = v.measure(case, "fixed", seed=1, steps=400)
    verdict = v.judge(case, {"leaky": [leaky], "fixed": [fixed]})
    assert verdict["pass"], verdict
    assert leaky["slopes"]["mallinfo"] >= 0.5 * case.rate


def test_worker_case_closes_its_workers(no_stray_children):
    case = get("pool-module-list")
    step = case.make("leaky", 0)
    try:
        for i in range(5):
            step(i)
    finally:
        close_step(case, step)
