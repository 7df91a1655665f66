"""The full catalog study: every case, leaky and fixed, 3 seeds, each in a fresh process."""

from __future__ import annotations

import pytest

from fixtures.catalog import verify as v


@pytest.mark.study
def test_every_catalog_case_leaks_or_stays_flat_as_declared():
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    lines: list[str] = []
    report = v.verify(None, seeds=3, steps=2000, echo=lines.append)
    failed = {name: c["verdict"] for name, c in report["cases"].items() if not c["verdict"]["pass"]}
    assert not failed, "\n".join(lines)
