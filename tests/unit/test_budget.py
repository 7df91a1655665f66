"""The worker budget planner against incident 4's figures, and its bad input."""

from __future__ import annotations

import pytest

from harness import plan_workers
from harness.errors import HarnessUsageError

INCIDENT = {"per_worker": ("800 MB", "1.2 GB"), "sidecars": {"vlm": ("4 GB", "6 GB")}, "system": ("1 GB", "2 GB")}


def test_five_workers_do_not_fit_in_six_and_a_half_gigabytes():
    plan = plan_workers("6.5 GB", workers=5, **INCIDENT)
    assert not plan.fits
    assert plan.max_workers == 0  # worst case: 6.5 - (2 + 6) < 0
    assert plan.need(5) == (9e9, 14e9)  # the incident's 9–14 GB
    assert plan.explain().splitlines() == [
        "Available: 6.5 GB. Fixed: system 1.0 GB–2.0 GB, vlm 4.0 GB–6.0 GB; per worker 800 MB–1.2 GB.",
        "Worst case: (6.5 GB - 8.0 GB fixed) / 1.2 GB per worker = 0 workers.",
        "Typical case (middle of each range): (6.5 GB - 6.5 GB) / 1.0 GB = 0 workers.",
        "5 workers need 9.0 GB–14.0 GB against 6.5 GB: does not fit.",
        "Recommendation: no worker fits in the worst case; shrink a sidecar (quantise the model), cap each worker "
        "lower, or use a bigger machine.",
    ]


def test_a_quantised_model_server_makes_room():
    plan = plan_workers(
        "6.5 GB",
        per_worker=("800 MB", "1.2 GB"),
        sidecars={"vlm": ("2 GB", "3 GB")},
        system=("1 GB", "2 GB"),
        workers=3,
    )
    # Worst: (6.5 - 5) / 1.2 = 1.25 -> 1; typical: (6.5 - 4) / 1.0 = 2.5 -> 2.
    assert (plan.max_workers, plan.typical_workers) == (1, 2)
    assert plan.need(3) == (5.4e9, 8.6e9)
    assert "3 workers need 5.4 GB–8.6 GB against 6.5 GB: fits only in the typical case." in plan.explain()
    assert plan.explain().endswith("Recommendation: launch at most 1 worker, each capped at 1.2 GB.")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"available": "-1 GB", "per_worker": "1 GB"}, "must be a finite number of bytes >= 0"),
        ({"available": "6 GB", "per_worker": "a lot"}, "cannot read size 'a lot' (from plan_workers per_worker=)"),
        ({"available": "6 GB", "per_worker": ("2 GB", "1 GB")}, "min 2.0 GB is above max 1.0 GB"),
        ({"available": "6 GB", "per_worker": 0}, "must be more than 0 bytes"),
        ({"available": "6 GB", "per_worker": "1 GB", "workers": -2}, "workers=-2 must be a whole number"),
    ],
)
def test_bad_input_is_rejected_clearly(kwargs, fragment):
    with pytest.raises(HarnessUsageError) as err:
        plan_workers(**kwargs)
    assert fragment in str(err.value)
