"""Fuzzing every parser of outside input in harness.units: sizes, rates, ratios, limits,
durations, settle values and thresholds.

The property: a clear one-line HarnessUsageError, or the value a reference reading of the
same text gives; never another exception, never a silently different value.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from reliability_profiles import FUZZ, one_line_error

from harness.errors import HarnessUsageError
from harness.units import (
    parse_duration,
    parse_limit,
    parse_rate,
    parse_ratio,
    parse_settle,
    parse_size,
    parse_threshold,
)

SCALES = {
    "": 1,
    "b": 1,
    "B": 1,
    "bytes": 1,
    "KB": 10**3,
    "kb": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "k": 2**10,
    "M": 2**20,
    "g": 2**30,
}

numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e300),
    st.sampled_from([0, 0.0, 1e-320, 5e-324, 1e308, 1.5, 0.001]),
)
spaces = st.sampled_from(["", " ", "  ", "\t"])
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(10**400),
    st.just(-(10**400)),
)


def _num_text(x: float | int) -> str:
    return repr(x) if isinstance(x, float) else str(x)


def _expect(value: float, call, *args):
    """``call(*args)`` equals ``value`` if that is a finite non-negative reading, else refuses it."""
    if math.isfinite(value) and value >= 0:
        got = call(*args)
        assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-300), (args, got, value)
        return got
    with pytest.raises(HarnessUsageError) as err:
        call(*args)
    one_line_error(err.value, HarnessUsageError)
    return None


@FUZZ
@given(numbers, spaces, st.sampled_from(sorted(SCALES)), spaces, spaces)
def test_a_size_string_reads_as_its_number_times_its_unit(x, lead, unit, gap, tail):
    text = f"{lead}{_num_text(x)}{gap}{unit}{tail}"
    assume(not (unit and not gap and "e" in _num_text(x).lower() and unit[0].lower() in "eE"))
    _expect(float(x) * SCALES[unit], parse_size, text, "fuzz")


@FUZZ
@given(anything)
def test_any_size_value_is_bytes_or_a_one_line_usage_error(value):
    try:
        size = parse_size(value, "fuzz")
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
        return
    assert isinstance(size, float) and math.isfinite(size) and size >= 0
    if isinstance(value, (int, float)):
        assert size == float(value)


@FUZZ
@given(st.text(max_size=40))
def test_any_text_as_a_size_rate_ratio_or_limit_is_read_or_refused_in_one_line(text):
    for parse in (parse_size, parse_rate, parse_ratio):
        try:
            value = parse(text, "fuzz")
        except HarnessUsageError as exc:
            one_line_error(exc, HarnessUsageError)
            continue
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (parse, text, value)
    try:
        limit = parse_limit(text, "fuzz")
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
    else:
        assert (limit.bytes is None) != (limit.ratio is None)


@FUZZ
@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["KB", "MB", "GiB", "B"]),
    st.sampled_from(["/", " per ", " / "]),
    st.one_of(st.none(), numbers),
    st.sampled_from(["", "k", "K", "m", "M"]),
    st.sampled_from(["", " steps", " step", "steps"]),
)
def test_a_rate_string_reads_as_size_over_count(size, unit, sep, count, mult, steps):
    count_text = "" if count is None else _num_text(count)
    text = f"{size} {unit}{sep}{count_text}{' ' if count_text and mult else ''}{mult}{steps}"
    assume(count_text or mult or steps)
    assume(not (count_text and "e" in count_text.lower() and mult == "" and steps.startswith("s") and False))
    n = (1.0 if count is None else float(count)) * {"": 1, "k": 1e3, "m": 1e6}[mult.lower()]
    total = size * SCALES[unit]
    if not (math.isfinite(n) and n > 0):
        expected = -1.0
    else:
        expected = total / n
        if not math.isfinite(expected) or (expected == 0 and total != 0):
            expected = -1.0
    _expect(expected, parse_rate, text, "fuzz")


@pytest.mark.parametrize(
    "text", ["1 MB/1e-320 steps", "1 MB/1e999 steps", "1 MB/0 steps", "1 MB/-5 steps", "1 MB/", "1 MB per"]
)
def test_a_rate_that_would_pass_anything_is_refused(text):
    with pytest.raises(HarnessUsageError, match="rate") as err:
        parse_rate(text, "max_growth=")
    one_line_error(err.value, HarnessUsageError)


@FUZZ
@given(numbers, spaces, st.sampled_from(["x", "×"]))
def test_a_ratio_reads_as_its_multiple(x, gap, sign):
    _expect(float(x), parse_ratio, f"{_num_text(x)}{gap}{sign}", "fuzz")


DURATION_UNITS = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600}


@FUZZ
@given(numbers, st.sampled_from(sorted(DURATION_UNITS)), st.booleans())
def test_a_duration_reads_as_seconds(x, unit, spaced):
    text = f"{_num_text(x)}{' ' if spaced or unit == 'sec' else ''}{unit}"
    seconds = float(x) * DURATION_UNITS[unit]
    if not (0 < seconds < math.inf):
        seconds = -1.0
    _expect(seconds, parse_duration, text, "fuzz")


@FUZZ
@given(anything)
def test_any_duration_value_is_positive_seconds_or_a_one_line_usage_error(value):
    try:
        seconds = parse_duration(value, "fuzz")
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
        return
    assert 0 < seconds < math.inf


@FUZZ
@given(st.one_of(anything, numbers.map(_num_text), numbers.map(lambda x: f"{_num_text(x)}%")))
def test_any_settle_value_is_a_fraction_a_whole_step_count_or_refused(value):
    try:
        kind, amount = parse_settle(value, "--settle")
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
        return
    assert kind in ("fraction", "steps")
    if kind == "fraction":
        assert 0 <= amount < 1
    else:
        assert amount >= 1 and amount == int(amount)
    if isinstance(value, str) and not value.strip().endswith("%"):
        assert amount == float(value.replace("_", "").replace(",", ""))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500", ("steps", 500.0)), ("0.1", ("fraction", 0.1)), ("10%", ("fraction", 0.1)), ("500 steps", ("steps", 500))],
)
def test_settle_reads_steps_and_fractions_given_as_text(text, expected):
    assert parse_settle(text, "--settle") == expected


def test_settle_refuses_a_fractional_step_count():
    with pytest.raises(HarnessUsageError, match="--settle"):
        parse_settle("2.5", "--settle")


ops = {">": lambda x, v: x > v, ">=": lambda x, v: x >= v, "<": lambda x, v: x < v, "<=": lambda x, v: x <= v}
ops["=="] = lambda x, v: x == v


@FUZZ
@given(st.sampled_from(["", "sum ", "each "]), st.sampled_from(sorted(ops)), numbers, spaces, st.floats())
def test_a_threshold_holds_exactly_when_its_comparison_does(scope, op, value, gap, x):
    text = f"{scope}{op}{gap}{_num_text(value)}"
    threshold = parse_threshold(text, "fuzz")
    assert threshold.scope == (scope.strip() or "each")
    assert threshold.holds(x) == (not math.isnan(x) and ops[op](x, float(value)))


@FUZZ
@given(st.one_of(anything, st.text(alphabet="<>=.0123456789 esumach-+", max_size=15)))
def test_any_threshold_value_is_read_or_refused_in_one_line(value):
    try:
        threshold = parse_threshold(value, "fuzz")
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
        return
    assert math.isfinite(threshold.value)
    assert threshold.high is None or (math.isfinite(threshold.high) and threshold.value <= threshold.high)
    assert "\n" not in threshold.text


@pytest.mark.parametrize("value", ["> 1e999", "1..1e999", "-1e999..0", math.nan, math.inf, 10**400])
def test_a_threshold_that_no_value_or_every_value_meets_is_refused(value):
    with pytest.raises(HarnessUsageError, match="threshold"):
        parse_threshold(value, "fuzz")


def test_a_size_too_large_for_a_float_is_a_usage_error_not_overflow():
    with pytest.raises(HarnessUsageError, match="finite"):
        parse_size(10**400, "memory_limit=")
