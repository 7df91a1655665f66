"""Fuzzing the leak/soak marker parser: every argument with values of every type.

The property: a LeakSpec whose fields say what the arguments said, or a one-line
HarnessUsageError naming the marker; never another exception.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_profiles import FUZZ, one_line_error

from harness.errors import HarnessUsageError
from harness.plugin.markers import ARGUMENTS, parse_marker

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10**6),
    st.floats(),
    st.sampled_from(["1 MB/1k steps", "10%", "500", "1.25x", "256 MB", "eviction", "rss", "heap", "", "120 s"]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.just(10**400),
)
argument_names = st.sampled_from([*sorted(ARGUMENTS), "max_grwoth", "isolated"])


@FUZZ
@given(st.sampled_from(["leak", "soak"]), st.dictionaries(argument_names, values, max_size=5))
def test_any_marker_arguments_give_a_spec_or_a_one_line_usage_error(marker, kwargs):
    try:
        spec = parse_marker(marker, (), kwargs)
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
        assert f"@pytest.mark.{marker}" in str(exc)
        return
    if "confidence" in kwargs:
        assert 0 < spec.confidence < 1 and spec.confidence == kwargs["confidence"]
    if kwargs.get("max_growth") is not None:
        assert spec.max_growth is not None and math.isfinite(spec.max_growth) and spec.max_growth >= 0
    if "signal" in kwargs:
        assert spec.signal == kwargs["signal"]
    if "every" in kwargs:
        assert spec.every == kwargs["every"] and spec.every >= 1
    for flag in ("heap", "memray", "isolate"):
        if flag in kwargs:
            assert getattr(spec, flag) is kwargs[flag]
    if kwargs.get("timeout") is not None:
        assert spec.timeout is not None and 0 < spec.timeout < math.inf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.5},
        {"confidence": "x"},
        {"confidence": math.nan},
        {"signal": None},
        {"every": 0},
        {"max_growth": "1 MB/1e-320 steps"},
        {"settle": 2.5},
    ],
)
def test_a_bad_marker_value_is_one_line_naming_the_marker(kwargs):
    with pytest.raises(HarnessUsageError) as err:
        parse_marker("leak", (), kwargs)
    one_line_error(err.value, HarnessUsageError)
    assert "@pytest.mark.leak" in str(err.value)
