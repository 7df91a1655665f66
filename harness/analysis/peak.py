"""Peak verdicts: did a block's peak stay within its limit over the baseline?

Pure: a PeakResult (``harness.peak()``) and a limit in, a frozen PeakVerdict out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessUsageError
from harness.units import format_size, parse_limit, parse_size


@dataclass(frozen=True)
class PeakVerdict:
    """The answer to "did the block's peak stay within ``limit`` over its baseline?"."""

    label: str
    over_baseline: float
    baseline: float
    payload: float | None
    limit: float
    limit_text: str  # as the user wrote it: "1.25x", "256 MB"
    passed: bool
    duration_s: float
    peak_at_s: float | None
    method: str
    sites: tuple[str, ...]
    children_peak: float | None

    @property
    def ratio(self) -> float | None:
        return self.over_baseline / self.payload if self.payload else None

    def message(self) -> str:
        from harness.verdicts.render import peak_message

        return peak_message(self)


def peak_verdict(result: Any, limit: object, payload: object = None, source: str = "assert_peak_within") -> PeakVerdict:
    """Compare a :class:`harness.recording.peak.PeakResult` with a limit ("1.25x" of ``payload`` or "256 MB")."""
    if not all(hasattr(result, name) for name in ("over_baseline", "baseline", "sites", "label")):
        raise HarnessUsageError(
            f"{source} got {type(result).__name__} {result!r:.60}, not a peak result; "
            "measure with `with harness.peak() as pk:` and pass pk"
        )
    parsed = parse_limit(limit, f"{source} limit")
    payload_bytes = parse_size(payload, f"{source} payload=") if payload is not None else None
    limit_bytes = parsed.resolve(payload_bytes, f"{source} limit {limit!r}")
    text = limit.strip() if isinstance(limit, str) else format_size(limit_bytes)
    sites = tuple(
        f"{s.where} `{s.code}` {format_size(s.size)}" if s.code else f"{s.where} {format_size(s.size)}"
        for s in result.sites
    )
    return PeakVerdict(
        label=result.label,
        over_baseline=float(result.over_baseline),
        baseline=float(result.baseline),
        payload=payload_bytes,
        limit=limit_bytes,
        limit_text=text,
        passed=result.over_baseline <= limit_bytes,
        duration_s=result.duration_s,
        peak_at_s=result.peak_at_s,
        method=result.method,
        sites=sites,
        children_peak=float(result.children_peak) if result.children_peak else None,
    )
