"""The catalog judged by the harness (fixtures/catalog/study.py): every leaky case flagged
on every seed, every fixed and clean case on none, each run in a fresh interpreter, with
the user's tolerance (a quarter of the case's leak rate). The 20-seed study is nightly
(``-m study``); the test command runs one seed of four cases across the libraries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from fixtures.catalog.study import study

OUT = Path(__file__).resolve().parents[2] / "reports" / "studies"


def _check(result: dict) -> None:
    for name, row in result["cases"].items():
        if "leaky" in row:
            leaky = row["leaky"]
            assert not leaky["errors"], (name, leaky["errors"])
            assert leaky["flagged_user_limit"] == leaky["runs"], (name, leaky)
        fixed = row["fixed"]
        assert not fixed["errors"], (name, fixed["errors"])
        assert fixed["flagged_user_limit"] == 0, (name, fixed)


@pytest.mark.slow
def test_catalog_cases_across_libraries_are_judged_right_on_one_seed():
    _check(study(1, ["torch-loss-accumulate", "numpy-slice-view", "logging-logger-per-step", "clean-gc-cycles"]))


@pytest.mark.study
def test_every_catalog_case_is_judged_right_on_every_seed():
    result = study(20, worker_seeds=5)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "catalog.json").write_text(json.dumps({"catalog": result}, indent=2))
    _check(result)
