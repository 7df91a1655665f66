"""Incident 2 at the acceptance size: a >= 500 MB numpy buffer, saved the naive way and the
streaming way. Reports each save's peak over baseline as a multiple of the payload, and
save / load throughput in MB/s (pytest-benchmark ``extra_info``; one round each, these are
seconds-long operations). Run ``pytest tests/bench`` without xdist for the figures."""

from __future__ import annotations

import time

import pytest

import harness
from fixtures.checkpoint import filled_buffer, load_buffer, naive_save_in_thread, save_buffer

PAYLOAD = 520_000_000


@pytest.fixture(scope="module")
def big():
    return filled_buffer(PAYLOAD, seed=7)


def _measure(benchmark, label, action, payload):
    pk_box = {}

    def run():
        with harness.peak(label) as pk:
            start = time.perf_counter()
            action()
            pk_box["seconds"] = time.perf_counter() - start
        pk_box["peak"] = pk

    benchmark.pedantic(run, rounds=1, iterations=1)
    pk = pk_box["peak"]
    ratio = pk.over_baseline / payload
    benchmark.extra_info.update(
        {
            "payload_MB": round(payload / 1e6, 1),
            "peak_over_baseline_MB": round(pk.over_baseline / 1e6, 1),
            "peak_ratio": round(ratio, 3),
            "throughput_MB_s": round(payload / 1e6 / pk_box["seconds"], 1),
        }
    )
    print(f"\n{label}: {benchmark.extra_info}")
    return pk, ratio


@pytest.mark.benchmark(group="checkpoint save/load, >= 500 MB")
def test_naive_save_in_a_thread_peaks_at_about_twice_the_payload(benchmark, big, tmp_path):
    assert big.nbytes >= 500_000_000
    pk, ratio = _measure(benchmark, "naive save", lambda: naive_save_in_thread(big, tmp_path / "r.pkl.gz"), big.nbytes)
    assert ratio >= 1.9
    with pytest.raises(harness.PeakError):
        harness.assert_peak_within(pk, "1.25x", payload=big.nbytes)


@pytest.mark.benchmark(group="checkpoint save/load, >= 500 MB")
def test_streaming_save_peaks_under_a_sixth_of_the_payload(benchmark, big, tmp_path):
    pk, ratio = _measure(benchmark, "streaming save", lambda: save_buffer(big, tmp_path / "r.ckpt"), big.nbytes)
    assert ratio <= 0.15
    harness.assert_peak_within(pk, "0.15x", payload=big.nbytes)


@pytest.mark.benchmark(group="checkpoint save/load, >= 500 MB")
def test_streaming_load_throughput(benchmark, big, tmp_path):
    path = save_buffer(big, tmp_path / "r.ckpt")
    box = {}
    _measure(benchmark, "streaming load", lambda: box.setdefault("buf", load_buffer(path)), big.nbytes)
    assert box["buf"].nbytes == big.nbytes


@pytest.mark.benchmark(group="checkpoint save/load, >= 500 MB")
def test_naive_load_throughput(benchmark, big, tmp_path):
    import gzip
    import pickle

    path = tmp_path / "r.pkl.gz"
    naive_save_in_thread(big, path)
    box = {}
    # Only our own file: never unpickle a checkpoint from elsewhere.
    _measure(
        benchmark,
        "naive load",
        lambda: box.setdefault("s", pickle.loads(gzip.decompress(path.read_bytes()))),
        big.nbytes,
    )
    assert len(box["s"]["episodes"]) == len(big.episodes)
