"""The CUDA probe against a real GPU; skipped where torch or CUDA is missing."""

from __future__ import annotations

import pytest

import harness

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_columns_are_recorded_with_peaks_reset_per_interval():
    kept = []
    with harness.record("cuda") as rec:
        for step in rec.steps(400):
            kept.append(torch.empty(256 * 1024, dtype=torch.uint8, device="cuda"))  # 256 KiB a step
            torch.empty(8 * 2**20, dtype=torch.uint8, device="cuda")  # a transient 8 MiB peak
            if step == 50:
                rec.mark("eviction")
    alloc = rec.trace.signal("cuda_allocated")
    assert alloc[-1] - alloc[0] >= 300 * 256 * 1024
    peaks = rec.trace.signal("cuda_max_allocated")
    assert all(p >= a + 8 * 2**20 for p, a in zip(peaks[1:], alloc[:-1], strict=False))
    with pytest.raises(harness.GrowthError, match="CUDA allocated memory grows"):
        harness.assert_no_linear_growth(rec.trace, after="eviction", signal="cuda_allocated")
    assert harness.diagnose(rec.trace, after="eviction").case == "A"
