"""Worker budgets: how many workers fit, worst case and typical case, with the arithmetic.

Incident 4: five workers (800–1,200 MB each), a vision-language model server (4–6 GB) and
1–2 GB of system overhead needed 9–14 GB on a machine with 6.5 GB available.
``plan_workers`` does that sum before launch instead of the OOM killer doing it after.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.errors import HarnessUsageError
from harness.units import format_size, parse_size

Range = tuple[float, float]


def parse_range(value: object, source: str) -> Range:
    """(low, high) bytes from "1 GB", ("800 MB", "1.2 GB") or a number."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise HarnessUsageError(f"{source} {value!r} must be one size or a (min, max) pair")
        low, high = parse_size(value[0], source), parse_size(value[1], source)
    else:
        low = high = parse_size(value, source)
    if low > high:
        raise HarnessUsageError(f"{source} {value!r}: min {format_size(low)} is above max {format_size(high)}")
    return low, high


@dataclass(frozen=True)
class WorkerPlan:
    available: float
    per_worker: Range
    sidecars: dict[str, Range]
    system: Range
    headroom: float
    max_workers: int  # fits in the worst case: every part at its maximum
    typical_workers: int  # fits when every part sits at the middle of its range
    requested: int | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.requested is None or self.requested <= self.max_workers

    def need(self, workers: int) -> Range:
        fixed_low = self.system[0] + sum(r[0] for r in self.sidecars.values())
        fixed_high = self.system[1] + sum(r[1] for r in self.sidecars.values())
        return fixed_low + workers * self.per_worker[0], fixed_high + workers * self.per_worker[1]

    def explain(self) -> str:
        return "\n".join(self.lines)


def _n(workers: int) -> str:
    return f"{workers} worker{'s' if workers != 1 else ''}"


def plan_workers(
    available: object,
    per_worker: object,
    *,
    sidecars: Mapping[str, object] | None = None,
    system: object = 0,
    headroom: object = 0,
    workers: int | None = None,
) -> WorkerPlan:
    """How many workers fit in ``available`` after sidecars, system overhead and headroom."""
    avail = parse_size(available, "plan_workers available=")
    worker = parse_range(per_worker, "plan_workers per_worker=")
    if worker[1] <= 0:
        raise HarnessUsageError(f"plan_workers per_worker={per_worker!r} must be more than 0 bytes")
    if sidecars is not None and not isinstance(sidecars, Mapping):
        raise HarnessUsageError(
            f"plan_workers sidecars={sidecars!r} must be a mapping name -> size or (min, max), e.g. {{'vlm': '4 GB'}}"
        )
    cars = {str(name): parse_range(r, f"plan_workers sidecars[{name!r}]") for name, r in (sidecars or {}).items()}
    sys_range = parse_range(system, "plan_workers system=")
    reserve = parse_size(headroom, "plan_workers headroom=")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise HarnessUsageError(f"plan_workers workers={workers!r} must be a whole number >= 0")

    def mid(r: Range) -> float:
        return (r[0] + r[1]) / 2

    worst_fixed = sys_range[1] + sum(r[1] for r in cars.values()) + reserve
    typical_fixed = mid(sys_range) + sum(mid(r) for r in cars.values()) + reserve
    worst_count = (avail - worst_fixed) // worker[1]
    typical_count = (avail - typical_fixed) // mid(worker) if mid(worker) > 0 else math.inf
    if not (math.isfinite(worst_count) and math.isfinite(typical_count)) or max(worst_count, typical_count) > 1e15:
        raise HarnessUsageError(
            f"plan_workers per_worker={per_worker!r} is too small next to available={available!r}: "
            "the worker count is beyond counting; give the worker's size in bytes or with a unit, e.g. '800 MB'"
        )
    max_workers = max(0, int(worst_count))
    typical = max(0, int(typical_count))
    fs = format_size
    parts = [f"system {fs(sys_range[0])}–{fs(sys_range[1])}"]
    parts += [f"{name} {fs(r[0])}–{fs(r[1])}" for name, r in cars.items()]
    if reserve:
        parts.append(f"headroom {fs(reserve)}")
    lines = [
        f"Available: {fs(avail)}. Fixed: " + ", ".join(parts) + f"; per worker {fs(worker[0])}–{fs(worker[1])}.",
        f"Worst case: ({fs(avail)} - {fs(worst_fixed)} fixed) / {fs(worker[1])} per worker = {_n(max_workers)}.",
        f"Typical case (middle of each range): ({fs(avail)} - {fs(typical_fixed)}) / {fs(mid(worker))} "
        f"= {_n(typical)}.",
    ]
    plan = WorkerPlan(avail, worker, cars, sys_range, reserve, max_workers, typical, workers, lines)
    if workers is not None:
        low, high = plan.need(workers)
        low, high = low + reserve, high + reserve
        verdict = "fits" if high <= avail else "fits only in the typical case" if low <= avail else "does not fit"
        lines.append(f"{_n(workers)} need {fs(low)}–{fs(high)} against {fs(avail)}: {verdict}.")
    if max_workers == 0:
        lines.append(
            "Recommendation: no worker fits in the worst case; shrink a sidecar (quantise the model), cap "
            "each worker lower, or use a bigger machine."
        )
    else:
        lines.append(f"Recommendation: launch at most {_n(max_workers)}, each capped at {fs(worker[1])}.")
    return plan
