"""``--leak-where``: allocation sites for a failed growth check, without a rerun by hand.

In ``auto`` mode (the default) a test whose ``leak`` marker's growth check failed runs its
body once more, in the same call phase, with a fresh ``memory_trace`` that tracks sites
(``record(where=True)``: memray with native traces, ``harness.probes.sites``). The other
fixtures are the ones the first run used: what the first run leaked is older than the
rerun's window and is not counted; what the rerun's steps keep is. The sites join the
first run's verdict (its figures are the plain run's, not the tracked one's) and so the
same failure, the terminal summary, junit properties, verdict.json and the report. A
passing test never reruns; ``always`` tracks every ``memory_trace`` test's own run; ``no``
never tracks.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.analysis.growth import GrowthVerdict
    from harness.plugin.settings import ItemSettings
    from harness.recording.recorder import Recorder


@dataclass
class Rerun:
    verdict: GrowthVerdict
    message: str | None
    properties: dict[str, Any] = field(default_factory=dict)


def site_properties(verdict: GrowthVerdict) -> dict[str, Any]:
    """junit/summary properties of the sites: the top one, and all in one line."""
    from harness.units import format_rate_short

    if not verdict.sites:
        return {}
    words = [f"{s.location} ({format_rate_short(s.bytes_per_step)}/1k steps, {s.share:.0%})" for s in verdict.sites]
    return {"leak_top_site": words[0], "leak_sites": "; ".join(words)}


def flamegraph_properties(rec: Recorder) -> dict[str, Any]:
    """Where the growth flamegraph of a tracked run is, for the report (``leak_growth_flamegraph_file``)."""
    out: dict[str, Any] = {}
    path = rec.trace.meta.get("growth_flamegraph")
    if path:
        out["leak_growth_flamegraph_file"] = str(path)
    error = rec.trace.meta.get("sites_error")
    if error:
        out["leak_where"] = str(error)
    return out


def rerun_with_sites(
    item: pytest.Item, directory: Path, options: ItemSettings, first: Recorder, verdict: GrowthVerdict
) -> Rerun:
    """Run the test body again with a site-tracking ``memory_trace``; add its sites to ``verdict``."""
    from harness.analysis.growth import sites_from_meta
    from harness.recording.recorder import Recorder

    function = getattr(item, "obj", None)
    if not isinstance(item, pytest.Function) or function is None or inspect.iscoroutinefunction(function):
        return Rerun(verdict, None, {"leak_where": "no rerun with site tracking: not a plain test function"})
    rec = Recorder(
        item.nodeid,
        directory / "trace.where.jsonl",
        heap=False,
        every=options.every,
        children=False,
        progress=False,
        meta={"test": item.nodeid, "where_rerun": True},
        where=True,
    )
    funcargs = dict(item.funcargs)
    funcargs["memory_trace"] = rec
    testargs = {name: funcargs[name] for name in item._fixtureinfo.argnames if name in funcargs}
    checks = _checks(item)
    kept_checks = len(checks) if checks is not None else 0
    raised = None
    t0 = time.perf_counter()
    try:
        rec.start()
        function(**testargs)
    except Exception as exc:  # the rerun's own failure (its assertions, its leak) is not the test's outcome
        raised = f"{type(exc).__name__}"
    finally:
        rec.stop()
        if checks is not None:
            del checks[kept_checks:]  # the rerun's own checks are not the test's
    seconds = time.perf_counter() - t0
    sites = sites_from_meta(rec.trace.meta)
    first_s = float(first.trace.times[-1]) if len(first.trace) else None
    props = flamegraph_properties(rec)
    props["leak_where_rerun_s"] = f"{seconds:.2f}"
    if not sites:
        why = rec.trace.meta.get("sites_error") or "no allocation kept by the rerun's window"
        props["leak_where"] = f"rerun with site tracking found no sites: {why}"
        note = f"A rerun with site tracking ({seconds:.1f} s) found no growing sites: {why}."
        return Rerun(verdict, verdict.message() + "\n" + note, props)
    enriched = dataclasses.replace(verdict, sites=sites)
    props.update(site_properties(enriched))
    took = f"; the test itself ran {first_s:.1f} s" if first_s is not None else ""
    note = (
        f"(Sites from one rerun of the test with site tracking, memray with native frames: {seconds:.1f} s{took}"
        + (f"; the rerun ended with {raised}" if raised else "")
        + ". --leak-where=no turns the rerun off.)"
    )
    return Rerun(enriched, enriched.message() + "\n" + note, props)


def _checks(item: pytest.Item) -> list[Any] | None:
    try:
        from harness.plugin.reporting import CHECKS_KEY
    except ImportError:  # pragma: no cover - reports not installed
        return None
    checks = item.stash.get(CHECKS_KEY, None)
    return checks if isinstance(checks, list) else None
