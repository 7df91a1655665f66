"""The Trace: JSONL streamed and flushed per sample, loadable again, torn lines tolerated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import harness
from harness.errors import HarnessUsageError, TraceError
from harness.recording.trace import Event, Trace, TraceWriter


def test_a_recorded_trace_loads_back_identically(tmp_path):
    path = tmp_path / "t.jsonl"
    with harness.record("roundtrip", path, every=1) as rec:
        for step in rec.steps(50):
            rec.account(buffer=1000 + step)
            if step == 20:
                rec.mark("eviction")
                rec.metrics(ui_actions=step)
    loaded = Trace.load(path)
    assert list(loaded.steps) == list(rec.trace.steps) == list(range(50))
    assert loaded.signal("rss").tolist() == rec.trace.signal("rss").tolist()
    assert loaded.signal("acct:buffer").tolist() == [1000.0 + s for s in range(50)]
    assert loaded.event("eviction") == Event("eviction", 20, loaded.event("eviction").t)
    assert loaded.signal("metric:ui_actions")[21] == 20.0
    assert loaded.signal("unaccounted")[0] == loaded.signal("rss")[0] - 1000
    assert "type_growth:eviction" in loaded.meta


def test_first_mark_wins(tmp_path):
    with harness.record("marks") as rec:
        for _ in rec.steps(10):
            rec.mark("eviction")
    assert rec.trace.events == [Event("eviction", 0, rec.trace.events[0].t)]


def test_every_samples_every_nth_step_and_the_last():
    with harness.record("every", every=4) as rec:
        for _ in rec.steps(10):
            pass
    assert list(rec.trace.steps) == [3, 7, 9]


def test_a_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "torn") as w:
        for step in range(5):
            w.sample(step, step * 0.1, {"rss": 100 + step})
    with open(path, "a") as fh:
        fh.write('{"kind":"s","step":5,"t":0.5,"v":{"rs')  # the writer died mid-line
    trace = Trace.load(path)
    assert list(trace.steps) == [0, 1, 2, 3, 4]


def test_a_trace_whose_writer_was_killed_keeps_every_flushed_sample(tmp_path):
    path = tmp_path / "killed.jsonl"
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import pathlib, time, harness
        rec = harness.record("killed", {str(path)!r}, every=1)
        rec.start()
        for step in rec.steps(10**9):
            if step == 500:
                pathlib.Path({str(ready)!r}).write_text("go")
            time.sleep(0.0005)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline, "child never reached step 500"
            assert proc.poll() is None, "child died early"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    trace = Trace.load(path)
    assert len(trace) >= 500
    assert list(trace.steps) == list(range(len(trace)))
    assert "end" not in path.read_text()[-200:]


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(HarnessUsageError, match="cannot read trace file .*nope.jsonl"):
        Trace.load(missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(HarnessUsageError, match="empty.jsonl' is empty"):
        Trace.load(empty)
    future = tmp_path / "future.jsonl"
    future.write_text(json.dumps({"kind": "meta", "format": 99, "name": "x"}) + "\n")
    with pytest.raises(HarnessUsageError, match="has format 99; this harness reads 1"):
        Trace.load(future)


def test_unknown_signal_lists_what_the_trace_has():
    with harness.record("sig") as rec:
        for _ in rec.steps(3):
            pass
    with pytest.raises(TraceError, match="unknown signal 'vram'.*it has: rss"):
        rec.trace.signal("vram")
    with pytest.raises(TraceError, match="needs declared accounting"):
        rec.trace.signal("unaccounted")
    with pytest.raises(TraceError, match="heap=True"):
        rec.trace.signal("heap")


def test_heap_signal_and_growing_sites_with_tracemalloc():
    held = []
    with harness.record("heap", heap=True) as rec:
        for step in rec.steps(300):
            if step == 100:
                rec.mark("warm")
            held.append(bytearray(b"x") * 10_000)
    heap = rec.trace.signal("heap")
    assert heap[-1] - heap[0] > 2_500_000
    # Sites compare the start with the end: no snapshot at mark() (it moved RSS inside the
    # window it was measuring), so there is no "heap_growth:warm".
    assert "heap_growth:warm" not in rec.trace.meta
    sites = rec.trace.meta["heap_growth"]
    assert "test_trace.py" in sites[0]


def test_bad_recorder_input_is_one_line():
    with pytest.raises(HarnessUsageError, match=r"every=0 must be a whole number"):
        harness.record("x", every=0)
    rec = harness.record("x")
    with pytest.raises(HarnessUsageError, match=r"rec.account\(buffer='big'\) needs a number of bytes"):
        rec.account(buffer="big")
