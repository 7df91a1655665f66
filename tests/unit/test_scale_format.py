"""Trace files at scale: the block format and JSONL round-trip (NaN and infinities too),
survive a SIGKILL losing at most the last block, and reject damage with one clear line."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness
from harness.errors import TraceError
from harness.recording.blocks import SIGNATURE, BlockTraceWriter
from harness.recording.trace import Event, Trace, TraceWriter

SUFFIXES = [".jsonl", ".htrace"]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_recorded_trace_round_trips_with_nan_and_infinities(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    with harness.record("nan", path, every=1) as rec:
        for step in rec.steps(40):
            rec.account(buffer=1000 + step)
            rec.metrics(loss=[math.nan, math.inf, -math.inf, 0.5][step % 4], count=step)
            if step == 10:
                rec.mark("steady")
    loaded = Trace.load(path)
    assert list(loaded.steps) == list(range(40))
    for name in ("rss", "acct:buffer", "metric:count", "unaccounted"):
        assert _same(loaded.signal(name), rec.trace.signal(name)), name
    loss = loaded.signal("metric:loss")
    assert math.isnan(loss[0]) and loss[1] == math.inf and loss[2] == -math.inf and loss[3] == 0.5
    assert loaded.event("steady").step == 10
    assert loaded.meta["samples"] == 40


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_decimated_trace_dumps_and_loads_with_its_block_statistics(tmp_path, suffix):
    trace = Trace("long", {"machine_memory": 2**34}, exact=64, history=16)
    n = 5_000
    steps = np.arange(n)
    rss = 1e8 + (steps % 7) * 4096.0
    trace.extend(steps, steps * 1e-3, {"v": {"rss": rss}})
    trace.add_event(Event("steady", 100, 0.1))
    assert trace.decimated and trace.samples == n and len(trace) < n // 4
    path = trace.dump(tmp_path / f"d{suffix}")
    loaded = Trace.load(path)
    assert loaded.samples == n
    assert list(loaded.counts) == list(trace.counts)
    assert _same(loaded.signal("rss"), trace.signal("rss"))
    lo, hi = loaded.extremes("rss")
    assert _same(lo, trace.extremes("rss")[0]) and _same(hi, trace.extremes("rss")[1])
    assert loaded.peak("rss") == rss.max()
    assert loaded.event("steady") == Event("steady", 100, 0.1)


def test_block_files_are_a_fraction_of_jsonl(tmp_path):
    with (
        harness.record("size", tmp_path / "t.jsonl", every=1) as a,
        harness.record("size", tmp_path / "t.htrace", every=1) as b,
    ):
        held = []
        for step in a.steps(3_000):
            held.append(bytearray(200))
            b.sample(step)
    per_jsonl = (tmp_path / "t.jsonl").stat().st_size / len(a.trace)
    per_block = (tmp_path / "t.htrace").stat().st_size / len(b.trace)
    assert per_block * 5 < per_jsonl, (per_block, per_jsonl)


def test_a_block_writer_killed_loses_at_most_its_last_block(tmp_path):
    path = tmp_path / "killed.htrace"
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import pathlib, time, harness
        rec = harness.record("killed", {str(path)!r}, every=1)
        rec.start()
        for step in rec.steps(10**9):
            if step == 3_000:
                rec.mark("midway")
                pathlib.Path({str(ready)!r}).write_text(str(time.monotonic()))
            time.sleep(0.0002)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline, "child never reached step 3,000"
            assert proc.poll() is None, "child died early"
            time.sleep(0.05)
        # Kill once a timed flush (every second) has written past the mark's own flush: a
        # fixed sleep raced the child for the 2 cores on a loaded machine.
        flushed = path.stat().st_size
        while path.stat().st_size <= flushed:
            assert time.monotonic() < deadline, "no timed flush after the mark"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    trace = Trace.load(path)
    assert trace.event("midway").step == 3_000
    # Everything up to the mark was flushed with it; the flush every second kept more.
    assert len(trace) > 3_000
    assert list(trace.steps) == list(range(len(trace)))
    # A torn write (the kill mid-block) is ignored too.
    with open(path, "ab") as fh:
        fh.write(b"S\x01\x00\x00" + (1000).to_bytes(4, "little") + b"\x00\x00\x00\x00" + b"partial")
    assert len(Trace.load(path)) == len(trace)


def test_damage_before_the_end_is_a_trace_error_naming_the_offset(tmp_path):
    path = tmp_path / "t.htrace"
    with BlockTraceWriter(path, "x", block_rows=100) as w:
        for step in range(1_000):
            w.sample(step, step * 0.01, {"rss": 1e6 + step})
        w.end({})
    data = bytearray(path.read_bytes())
    data[len(SIGNATURE) + 200] ^= 0xFF  # inside an early block
    path.write_bytes(bytes(data))
    with pytest.raises(TraceError, match=r"t\.htrace' record \d+ at byte \d+: (checksum mismatch|not a record)"):
        Trace.load(path)


def test_jsonl_damage_names_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "x") as w:
        for step in range(5):
            w.sample(step, step * 0.1, {"rss": 100 + step})
    lines = path.read_text().splitlines()
    cases = {
        '{"kind":"s","step":"7","t":0.1,"v":{}}': "line 3: 'step' must be a whole number",
        '{"kind":"s","step":7,"t":0.1,"v":[1]}': "line 3: 'v' must be an object",
        '{"kind":"s","step":7,"t":0.1,"v":{"rss":"big"}}': "line 3: v.rss must be a number",
        '{"kind":"s"}': "line 3: 'step' must be a whole number",
        "[1, 2]": "line 3: expected a JSON object, got list",
        '{"kind":"zz"}': "line 3: unknown record kind 'zz'",
        '{"kind":"event","name":3,"step":1,"t":0}': "line 3: event 'name' must be a string",
        "not json at all": r"line 3: not JSON \(",
    }
    for bad, message in cases.items():
        path.write_text("\n".join([*lines[:2], bad, *lines[2:]]) + "\n")
        with pytest.raises(TraceError, match=f"t.jsonl' {message}"):
            Trace.load(path)


def test_older_jsonl_with_null_values_loads_them_as_nan(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(
        json.dumps({"kind": "meta", "format": 1, "name": "old", "meta": {}})
        + "\n"
        + '{"kind":"s","step":0,"t":0.0,"v":{"rss":100},"m":{"loss":null}}\n'
    )
    assert math.isnan(Trace.load(path).signal("metric:loss")[0])


# -- fuzz: whatever the bytes, a Trace or a TraceError -------------------------------------

_META = json.dumps({"kind": "meta", "format": 1, "name": "fuzz", "meta": {}})
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_records = st.fixed_dictionaries(
    {"kind": st.sampled_from(["s", "event", "end", "meta", "b", "x"])},
    optional={
        "step": _json_values,
        "t": _json_values,
        "v": _json_values,
        "a": _json_values,
        "m": _json_values,
        "name": _json_values,
        "n": _json_values,
        "lo": _json_values,
        "hi": _json_values,
        "meta": _json_values,
        "format": _json_values,
    },
)
_lines = st.one_of(_records.map(json.dumps), st.text(max_size=30))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_lines, max_size=6), torn=st.booleans())
def test_fuzzed_jsonl_loads_or_raises_a_trace_error(tmp_path, lines, torn):
    path = tmp_path / "fuzz.jsonl"
    text = "\n".join([_META, *lines]) + ("" if torn else "\n")
    path.write_text(text, encoding="utf-8")
    try:
        trace = Trace.load(path)
    except TraceError as exc:
        assert "\n" not in str(exc) and "fuzz.jsonl" in str(exc)
    else:
        trace.summary()
        for name in trace.signals:
            trace.signal(name)


@pytest.fixture(scope="module")
def block_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("blocks") / "t.htrace"
    with BlockTraceWriter(path, "x", {"k": 1}, block_rows=16) as w:
        for step in range(64):
            w.sample(step, step * 0.01, {"rss": 1e6 + step * 4096}, {"buffer": 10.0}, {"loss": 0.5 * step})
            if step == 20:
                w.event(Event("steady", 20, 0.2))
        w.end({"done": True})
    return path.read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_block_files_load_or_raise_a_trace_error(tmp_path, block_file, data):
    raw = bytearray(block_file)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(len(SIGNATURE), len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(SIGNATURE), len(raw)))
    path = tmp_path / "fuzz.htrace"
    path.write_bytes(bytes(raw[:cut]))
    try:
        trace = Trace.load(path)
    except TraceError as exc:
        assert "\n" not in str(exc) and "fuzz.htrace" in str(exc)
    else:
        assert len(trace) <= 64
        trace.summary()


# -- compact encodings and the loader's folding -------------------------------------------


def test_the_compact_encodings_hold_the_exact_values_in_fewer_bytes():
    from harness.recording.blocks import _decode, _encode, _size

    rng = np.random.default_rng(5)
    n = 1_000
    pages = 5e8 + np.cumsum(rng.integers(-20, 21, n)) * 4096.0  # RSS moves in pages
    chunks = 3e8 + np.cumsum(rng.integers(-900, 900, n)) * 16.0  # the allocator in 16-byte chunks
    cases = {
        "dc": np.arange(n) * 32.0 + 7,  # steps at a fixed stride
        "d1x4096": pages,
        "d2x16": chunks,
        "d1": np.cumsum(rng.integers(-100, 100, n)).astype(float),  # no common divisor
        "f": rng.normal(0, 1, n),
    }
    for want, values in cases.items():
        enc, data = _encode(values)
        assert enc == want, (want, enc)
        assert len(data) == _size(enc, n)
        assert np.array_equal(_decode(enc, data, n), values), want
    assert _size("dc", n) == 16 and _size("d1x4096", n) == 8 + n  # 1 byte a page-quantised sample
    # one row, a constant column, negative steps, times in microseconds
    for values, micro in (([42.0], False), ([1e8] * 7, False), ([-4096.0 * k for k in range(9)], False)):
        enc, data = _encode(np.array(values), micro=micro)
        assert enc in ("dc", "uc") and np.array_equal(_decode(enc, data, len(values)), values)
    times = np.arange(50) * 1e-3 + rng.uniform(0, 2e-5, 50)
    enc, data = _encode(times, micro=True)
    assert enc.startswith("u") and np.allclose(_decode(enc, data, 50), times, atol=1e-6)


def test_unknown_encodings_are_named():
    from harness.recording.blocks import _parse

    for bad in ("d3", "q1", "dx", "d1x", "d1x-4", "d1x0", "uc2"):
        with pytest.raises(ValueError, match="unknown encoding"):
            _parse(bad)


def test_loading_a_long_file_folds_as_appending_does(tmp_path):
    """The loader folds straight from its decode buffers; the trace must be what appending
    the same rows (in any chunks) builds: same rows, counts, medians and extremes."""
    rng = np.random.default_rng(9)
    n = 300_000
    steps = np.cumsum(rng.integers(1, 20, n))
    rss = np.floor((4e8 + steps * 2.0 + rng.normal(0, 3e5, n)) / 4096) * 4096
    alloc = 2e8 + steps * 1.5 + rng.normal(0, 1e4, n)
    alloc[rng.integers(0, n, 300)] = np.nan
    path = tmp_path / "long.htrace"
    reference = Trace("long")
    with BlockTraceWriter(path, "long") as w:
        for a in range(0, n, 7_000):  # the writer's blocks and the reference's chunks differ
            b = min(n, a + 7_000)
            tables = {"v": {"rss": rss[a:b], "allocated": alloc[a:b]}}
            if a >= 150_000:  # a column that appears midway
                tables["a"] = {"buffer": np.full(b - a, 1e7)}
            for i in range(a, b):
                w.sample(
                    int(steps[i]),
                    i * 1e-3,
                    {k: float(v[i - a]) for k, v in tables["v"].items()},
                    {k: float(v[i - a]) for k, v in tables.get("a", {}).items()},
                )
            reference.extend(steps[a:b], np.arange(a, b) * 1e-3, tables)
    loaded = Trace.load(path)
    assert loaded.decimated and loaded.samples == reference.samples == n
    got, want = loaded._materialise(), reference._materialise()
    assert np.array_equal(got.steps, want.steps) and np.array_equal(got.counts, want.counts)
    assert np.allclose(got.times, want.times, rtol=0, atol=1e-6)  # times are stored in microseconds
    for group in ("tables", "lows", "highs"):
        for table in ("v", "a"):
            a_cols, b_cols = getattr(got, group)[table], getattr(want, group)[table]
            assert list(a_cols) == list(b_cols)
            for name in a_cols:
                assert _same(a_cols[name], b_cols[name]), (group, name)
