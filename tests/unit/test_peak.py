"""Peak over baseline: short spikes, other threads, child processes, sites, messages."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import harness
from harness.errors import HarnessUsageError, PeakError

MB = 1_000_000


def spike(nbytes: int, hold_s: float = 0.0) -> None:
    block = bytearray(b"x") * nbytes  # touched, so resident
    if hold_s:
        time.sleep(hold_s)
    del block


def test_a_short_spike_is_caught_by_the_kernel_high_water_mark():
    with harness.peak("spike") as pk:
        spike(200 * MB)  # lives a few ms: a 1 s poll would never see it
        time.sleep(0.05)
    assert pk.over_baseline >= 195 * MB
    assert "VmHWM" in pk.method


def test_a_spike_in_a_background_thread_is_seen():
    with harness.peak("thread") as pk:
        worker = threading.Thread(target=spike, args=(150 * MB,))
        worker.start()
        worker.join()
    assert pk.over_baseline >= 145 * MB


def test_child_processes_are_summed_when_asked():
    code = "import time; b = bytearray(b'x') * 120_000_000; time.sleep(2)"  # 2 s: a loaded machine may be slow to poll
    with harness.peak("children", children=True) as pk:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert pk.children_peak is not None and pk.children_peak >= 115 * MB
    assert pk.over_baseline < 50 * MB  # the parent itself did not grow


def test_the_message_states_figure_ratio_limit_time_and_sites():
    with harness.peak("save", where=True) as pk:
        spike(120 * MB, hold_s=0.05)
    with pytest.raises(PeakError) as err:
        harness.assert_peak_within(pk, "1.25x", payload=60 * MB)
    text = str(err.value)
    assert text.startswith("Peak during 'save' was 1")
    assert "above baseline (2.0" in text and "× the 60.0 MB payload); limit 1.25x (75.0 MB)" in text
    assert "The peak came at about " in text
    assert "Top allocation sites at the peak: tests/unit/test_peak.py:" in text
    assert 'block = bytearray(b"x") * nbytes' in text
    verdict = harness.assert_peak_within(pk, "256 MB")
    assert verdict.passed and verdict.limit == 256 * MB


def test_a_ratio_without_a_payload_is_a_one_line_error():
    with harness.peak() as pk:
        pass
    with pytest.raises(HarnessUsageError, match=r"limit 1.25x .* is relative to a payload, but no payload= was given"):
        harness.assert_peak_within(pk, "1.25x")
    with pytest.raises(HarnessUsageError, match="cannot read size 'lots'"):
        harness.assert_peak_within(pk, "lots")
