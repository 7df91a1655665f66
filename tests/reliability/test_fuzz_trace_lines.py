"""Fuzzing trace files through the public ``harness.Trace.load``, and the API's own inputs.

The property: a Trace holding exactly what the lines say, or a one-line TraceError; never
another exception; NaN and infinities written by the recorder come back as written.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_profiles import FUZZ, one_line_error

import harness
from harness.errors import HarnessUsageError, TraceError

META = json.dumps({"kind": "meta", "format": 1, "name": "fuzz", "meta": {}})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**400),
    st.floats(),
    st.text(max_size=6),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)
sample_like = st.fixed_dictionaries(
    {"kind": st.sampled_from(["s", "event", "meta", "end", "b", "zzz"])},
    optional={
        "step": json_values,
        "t": json_values,
        "v": st.one_of(json_values, st.dictionaries(st.sampled_from(["rss", "heap"]), json_values, max_size=2)),
        "name": json_values,
        "meta": json_values,
        "a": json_values,
        "m": json_values,
        "format": json_values,
    },
)
lines = st.one_of(
    sample_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=30).filter(lambda s: "\n" not in s),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


def _load(tmp, body: bytes):
    path = tmp / "trace.jsonl"
    path.write_bytes(body)
    return harness.Trace.load(path)


@FUZZ
@given(st.lists(lines, min_size=1, max_size=4))
def test_any_trace_lines_load_or_raise_one_line_trace_error(tmp_path_factory, body_lines):
    tmp = tmp_path_factory.mktemp("trace")
    body = "\n".join([META, *body_lines, META.replace('"meta"', '"end"', 1)]) + "\n"
    try:
        trace = _load(tmp, body.encode("utf-8", "surrogatepass"))
    except TraceError as exc:
        one_line_error(exc, TraceError)
        return
    for step in trace.steps:
        assert math.isfinite(float(step))


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 10**9), st.floats(allow_nan=True, allow_infinity=True, width=64)),
        min_size=1,
        max_size=20,
        unique_by=lambda p: p[0],
    )
)
def test_well_formed_samples_load_as_written(tmp_path_factory, samples):
    samples.sort()
    rows = [json.dumps({"kind": "s", "step": s, "t": 0.0, "v": {"rss": v}}) for s, v in samples]
    trace = _load(tmp_path_factory.mktemp("ok"), ("\n".join([META, *rows]) + "\n").encode())
    assert list(trace.steps) == [s for s, _ in samples]
    for got, (_, want) in zip(trace.columns["rss"], samples, strict=True):
        assert (math.isnan(got) and math.isnan(want)) or got == want


@pytest.mark.parametrize(
    "line",
    [
        "[1, 2]",
        "3",
        '{"kind": "s", "step": "abc", "t": 0, "v": {"rss": 1}}',
        '{"kind": "s", "step": 1e400, "t": 0, "v": {"rss": 1}}',
        '{"kind": "s", "t": 0, "v": {"rss": 1}}',
        '{"kind": "s", "step": 1, "t": 0, "v": {"rss": "big"}}',
        '{"kind": "event", "name": "e", "step": "x", "t": 0}',
        '{"kind": "meta", "format": 1, "name": "x", "meta": [1]}',
        "\udcff",
    ],
    ids=["list", "number", "step-abc", "step-1e400", "step-missing", "rss-big", "event-step", "meta-list", "0xff"],
)
def test_a_malformed_line_is_a_one_line_trace_error(tmp_path, line):
    body = "\n".join([META, line, META.replace('"meta"', '"end"', 1)]) + "\n"
    with pytest.raises(TraceError) as err:
        _load(tmp_path, body.encode("utf-8", "surrogateescape"))
    one_line_error(err.value, TraceError)


def test_nan_and_infinite_values_round_trip_through_a_recorded_trace(tmp_path):
    path = tmp_path / "t.jsonl"
    with harness.record("nan", path, progress=False) as rec:
        for _ in rec.steps(5):
            rec.metrics(loss=math.nan, grad=math.inf)
            rec.account(x=-math.inf)
    trace = harness.Trace.load(path)
    assert all(math.isnan(v) for v in trace.metrics_columns["loss"])
    assert all(v == math.inf for v in trace.metrics_columns["grad"])


def test_a_nan_metric_does_not_break_an_isolated_run():
    result = harness.run_isolated("isolation_targets:records_nan", timeout="120 s")
    assert result.outcome == "ok" and result.trace is not None, result.message()


@pytest.mark.parametrize(
    "call",
    [
        lambda t: harness.assert_no_linear_growth(t, after="ev", confidence=1.5),
        lambda t: harness.assert_no_linear_growth(t, after="ev", confidence="x"),
        lambda t: harness.assert_no_linear_growth(t, after="ev", signal=None),
        lambda t: harness.assert_no_linear_growth("reports/x/trace.jsonl"),
        lambda t: harness.diagnose("reports/x/trace.jsonl"),
        lambda t: harness.assert_peak_within(None, "1 MB"),
    ],
    ids=["confidence-1.5", "confidence-x", "signal-None", "path-as-trace", "path-to-diagnose", "peak-None"],
)
def test_a_wrong_api_argument_is_a_one_line_usage_error(call):
    trace = harness.Trace(name="x", meta={})
    for step in range(400):
        trace.append(step, step * 0.01, {"rss": 1e8 + step})
    trace.add_event(harness.Event("ev", 50, 0.5))
    with pytest.raises(HarnessUsageError) as err:
        call(trace)
    one_line_error(err.value, HarnessUsageError)
