"""heap=True must not hide the leak it is asked to explain (issue: a tracemalloc snapshot
at mark() took 5.7 s, moved RSS by +90 MB inside the window, and a 6 MB/1k-steps loss leak
then passed 3 of 3 runs). Now tracemalloc adds its counters per sample and compares the
start with the end only."""

from __future__ import annotations

import pytest

import harness

torch = pytest.importorskip("torch")


def loss_leak_loop(rec: harness.Recorder, steps: int, seed: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    total = torch.zeros(())
    for step in rec.steps(steps):
        x = torch.randn(16, 64)
        loss = (model(x) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward(retain_graph=True)
        opt.step()
        total = total + loss  # the leak: keeps every step's autograd graph alive
        if step == 200:
            rec.mark("warm")


# Seed 0 in the quick leak suite; the five seeds of the acceptance figure in the full run.
@pytest.mark.parametrize(
    "seed", [pytest.param(0, marks=pytest.mark.leak)] + [pytest.param(s, marks=pytest.mark.slow) for s in range(1, 5)]
)
def test_loss_leak_still_fails_with_heap_tracing(seed):
    with harness.record(f"loss-leak-heap-{seed}", heap=True, every=1) as rec:
        loss_leak_loop(rec, 1_000, seed)
    with pytest.raises(harness.GrowthError) as err:
        harness.assert_no_linear_growth(rec.trace, after="warm", max_growth="1 MB/1k steps")
    verdict = err.value.verdict
    assert verdict.growth.slope > 3_000  # ~6 KB/step retained: graphs of 16x256 activations
    assert "heap" in rec.trace.signals
