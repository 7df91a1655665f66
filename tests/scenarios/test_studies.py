"""The figures behind the verdicts: false positives over seeded clean runs and detection
delay on the bad variants. Each seed runs in a fresh interpreter. Slow: part of the full
test command, not of the quick leak suite. Results land in reports/studies/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from fixtures.studies import study, summarize
from harness.scenarios.drive import BAD_STEPS, FIXED, ReplayConfig

OUT = Path(__file__).resolve().parents[2] / "reports" / "studies"


def _write(name: str, summary: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(summary, indent=2))
    brief = {k: v for k, v in summary.items() if k != "results"}
    print(f"\n{name}: {json.dumps(brief)}")


@pytest.mark.study
def test_fixed_replay_is_never_flagged_over_50_seeds():
    summary = summarize(study(FIXED, range(50)))
    _write("false_positives", summary)
    assert summary["runs"] == 50
    assert summary["flagged"] == 0, f"clean seeds flagged: {summary['flagged_seeds']}"


@pytest.mark.slow
def test_fixed_replay_is_never_flagged_over_6_seeds():
    # The test command's share of the 50-seed study (seeds 100-105: not the study's own).
    summary = summarize(study(FIXED, range(100, 106)))
    assert summary["runs"] == 6
    assert summary["flagged"] == 0, f"clean seeds flagged: {summary['flagged_seeds']}"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["view_leak", "loss_leak"])
def test_bad_variants_are_caught_soon_after_eviction_on_every_seed(variant):
    summary = summarize(study(ReplayConfig(variant=variant, steps=BAD_STEPS), range(5), delays=True, after="eviction"))
    _write(f"detection_delay_{variant}", summary)
    assert summary["flagged"] == 5
    assert summary["growth_delay_steps"]["max"] <= 1_000
    if variant == "view_leak":
        # Dense sampling after the mark: judged as soon as 20 samples follow the settle.
        assert summary["growth_delay_steps"]["max"] <= 40
    if variant == "view_leak":
        # A weak reference sees the zombie on the very first eviction.
        assert summary["liveness_delay_evictions"] == {"min": 1, "max": 1}
