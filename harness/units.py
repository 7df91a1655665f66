"""Units parsed once: sizes, growth rates and payload ratios.

Every option, marker argument and API argument that takes a size or a rate goes through
these functions, so "512 MB" means the same thing everywhere and a bad value names where
it came from (``source``).

Decimal prefixes are decimal and binary prefixes are binary, as in IEC 80000-13:
"1 MB" is 1,000,000 bytes and "1 MiB" is 1,048,576 bytes. The incidents quote both
("53 MB per 1,000 steps", "a 6 GiB card"), so both are accepted exactly as written.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from harness.errors import HarnessUsageError

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    # Single letters are read as binary, like `free -h`, `ulimit` and docker's "512m".
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
}

_NUMBER = r"[+-]?(?:\d+(?:[_,]\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
#: Patterns are compiled on first use, not at import: every project that has the plugin
#: installed imports this module, and compiling these cost ~10 ms there.
_PATTERNS = {
    "size": rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[A-Za-z]*)\s*$",
    "per": rf"^\s*(?P<size>.+?)\s*(?:/|\bper\b)\s*(?P<count>{_NUMBER})?\s*(?P<mult>[kKmM])?\s*"
    r"(?P<steps>steps?)?\s*$",
    "ratio": rf"^\s*(?P<num>{_NUMBER})\s*[x×]\s*$",
    "threshold": rf"^\s*(?P<scope>sum\s+|each\s+)?(?:(?P<op>>=|<=|==|>|<)\s*(?P<num>{_NUMBER})|"
    rf"(?P<lo>{_NUMBER})\s*\.\.\s*(?P<hi>{_NUMBER}))\s*$",
}


@functools.cache
def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(_PATTERNS[name])


def _where(source: str | None) -> str:
    return f" (from {source})" if source else ""


def _number(text: str) -> float:
    return float(text.replace("_", "").replace(",", ""))


def _float(value: int | float) -> float:
    """float(value), with an int too large for a float reported as infinite (not OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def parse_size(value: object, source: str | None = None) -> float:
    """Bytes in ``value``: a number of bytes, or a string like "512 MB" or "1.5 GiB"."""
    if isinstance(value, bool):
        raise HarnessUsageError(f"size {value!r}{_where(source)} is a bool; give bytes or a string like '512 MB'")
    if isinstance(value, (int, float)):
        size = _float(value)
    elif isinstance(value, str):
        match = _pattern("size").match(value)
        if match is None:
            raise HarnessUsageError(
                f"cannot read size {value!r}{_where(source)}: expected a number with a unit, like '512 MB' or '1.5 GiB'"
            )
        unit = match.group("unit").lower()
        if unit not in _UNITS:
            raise HarnessUsageError(
                f"unknown unit {match.group('unit')!r} in size {value!r}{_where(source)}: "
                "use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            )
        size = _number(match.group("num")) * _UNITS[unit]
    else:
        raise HarnessUsageError(
            f"size {value!r}{_where(source)} is a {type(value).__name__}; give bytes or a string like '512 MB'"
        )
    if not math.isfinite(size) or size < 0:
        raise HarnessUsageError(f"size {value!r}{_where(source)} must be a finite number of bytes >= 0")
    return size


def parse_rate(value: object, source: str | None = None) -> float:
    """Bytes per step in ``value``: a number, or "53 MB/1k steps", "4 KB/step", "1 MB per 1000 steps"."""
    if isinstance(value, bool):
        raise HarnessUsageError(f"rate {value!r}{_where(source)} is a bool; give bytes/step or '1 MB/1k steps'")
    if isinstance(value, (int, float)):
        rate = _float(value)
        if not math.isfinite(rate) or rate < 0:
            raise HarnessUsageError(f"rate {value!r}{_where(source)} must be a finite number of bytes per step >= 0")
        return rate
    if not isinstance(value, str):
        raise HarnessUsageError(
            f"rate {value!r}{_where(source)} is a {type(value).__name__}; "
            "give bytes/step or a string like '1 MB/1k steps'"
        )
    match = _pattern("per").match(value)
    if match is None or not (match.group("count") or match.group("mult") or match.group("steps")):
        raise HarnessUsageError(
            f"cannot read rate {value!r}{_where(source)}: "
            "expected a size per steps, like '1 MB/1k steps' or '4 KB/step'"
        )
    try:
        size = parse_size(match.group("size"))
    except HarnessUsageError:
        raise HarnessUsageError(
            f"cannot read the size {match.group('size')!r} in rate {value!r}{_where(source)}: use e.g. '1 MB/1k steps'"
        ) from None
    count = _number(match.group("count")) if match.group("count") else 1.0
    mult = (match.group("mult") or "").lower()
    count *= {"": 1, "k": 1_000, "m": 1_000_000}[mult]
    if not math.isfinite(count) or count <= 0:
        raise HarnessUsageError(
            f"rate {value!r}{_where(source)} divides by {count:g} steps; use a finite positive count"
        )
    rate = size / count
    if not math.isfinite(rate) or (rate == 0 and size != 0):
        raise HarnessUsageError(
            f"rate {value!r}{_where(source)} is {rate:g} bytes per step, out of range; use e.g. '1 MB/1k steps'"
        )
    return rate


def parse_ratio(value: object, source: str | None = None) -> float:
    """A multiple of a payload: "1.25x" -> 1.25."""
    if isinstance(value, str):
        match = _pattern("ratio").match(value)
        if match is not None:
            ratio = _number(match.group("num"))
            if math.isfinite(ratio) and ratio >= 0:
                return ratio
    raise HarnessUsageError(f"cannot read ratio {value!r}{_where(source)}: expected a multiple like '1.25x'")


def parse_settle(value: object, source: str = "settle=") -> tuple[str, float]:
    """("fraction", 0.1) for 0.1, "0.1" or "10%"; ("steps", 500) for 500, "500" or "500 steps"."""
    number: float | None = None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                frac = float(text[:-1]) / 100
            except ValueError:
                frac = -1.0
            if 0 <= frac < 1:
                return ("fraction", frac)
        else:
            text = re.sub(r"\s*steps?$", "", text)
            if re.fullmatch(_NUMBER, text):
                number = _number(text)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _float(value)
    if number is not None and math.isfinite(number) and number >= 0:
        if number < 1:
            return ("fraction", number)
        if number == int(number):
            return ("steps", number)
    raise HarnessUsageError(
        f"cannot read {source} {value!r}: give a whole step count like 500 or a fraction like 0.1 or '10%'"
    )


def parse_duration(value: object, source: str) -> float:
    """Seconds in ``value``: a number, or "120 s", "2 min", "1.5 h"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < _float(value) < math.inf:
        return float(value)
    if isinstance(value, str):
        parts = value.strip().split()
        text, unit = (parts[0], parts[1] if len(parts) > 1 else "s") if parts else ("", "")
        if len(parts) == 1:
            for suffix in ("min", "ms", "s", "m", "h"):
                if text.endswith(suffix) and text[: -len(suffix)]:
                    text, unit = text[: -len(suffix)], suffix
                    break
        scale = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}.get(unit)
        try:
            seconds = float(text) * scale if scale and re.fullmatch(_NUMBER, text) else -1.0
        except ValueError:
            seconds = -1.0
        if 0 < seconds < math.inf:
            return seconds
    raise HarnessUsageError(f"cannot read duration {value!r} (from {source}): use seconds or e.g. '120 s', '2 min'")


@dataclass(frozen=True)
class Limit:
    """A memory limit: absolute bytes, or a ratio of a payload given later."""

    bytes: float | None = None
    ratio: float | None = None

    def resolve(self, payload: float | None, source: str | None = None) -> float:
        if self.bytes is not None:
            return self.bytes
        assert self.ratio is not None
        if payload is None:
            raise HarnessUsageError(
                f"limit {self.ratio:g}x{_where(source)} is relative to a payload, but no payload= was given"
            )
        return self.ratio * payload


def parse_limit(value: object, source: str | None = None) -> Limit:
    """A size ("256 MB", bytes) or a payload ratio ("1.25x")."""
    if isinstance(value, str) and _pattern("ratio").match(value):
        return Limit(ratio=parse_ratio(value, source))
    return Limit(bytes=parse_size(value, source))


def format_size(nbytes: float) -> str:
    """'4.1 MB', '812 KB', '-3.0 MB', decimal prefixes, three significant figures."""
    n = abs(nbytes)
    sign = "-" if nbytes < 0 and n >= 0.5 else ""  # no "-0 B"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale * 0.9995:
            return f"{sign}{_three(n / scale)} {unit}"
    return f"{sign}{n:.0f} B"


def format_rate(bytes_per_step: float) -> str:
    """A growth rate per 1,000 steps, the unit the incidents use: '4.1 MB/1k steps'."""
    return f"{format_size(bytes_per_step * 1_000)}/1k steps"


def format_rate_short(bytes_per_step: float) -> str:
    return format_size(bytes_per_step * 1_000)


def format_step(step: float) -> str:
    if not math.isfinite(step):
        return "never" if step > 0 else "?"
    return f"{round(step):,}"


def _three(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}"


@dataclass(frozen=True)
class Threshold:
    """A condition on a metric: "> 0", ">= 50", "1..10" (inclusive), optionally "sum > 10".

    ``scope`` is "each" (every worker must meet it, the default) or "sum" (the total over
    workers must).
    """

    op: str  # ">", ">=", "<", "<=", "==", "range"
    value: float
    high: float | None = None
    scope: str = "each"
    text: str = ""

    def holds(self, x: float) -> bool:
        if x != x:  # NaN meets nothing
            return False
        if self.op == "range":
            assert self.high is not None
            return self.value <= x <= self.high
        return {
            ">": x > self.value,
            ">=": x >= self.value,
            "<": x < self.value,
            "<=": x <= self.value,
            "==": x == self.value,
        }[self.op]


def parse_threshold(value: object, source: str | None = None) -> Threshold:
    """One parser for component thresholds: "> 0", ">= 50", "1..10", "sum > 10", or a number (">= n")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(_float(value)):
            return Threshold(">=", float(value), text=f">= {value:g}")
    elif isinstance(value, str):
        match = _pattern("threshold").match(value)
        if match is not None:
            scope = (match.group("scope") or "each").strip()
            text = " ".join(value.split())
            if match.group("op"):
                num = _number(match.group("num"))
                if math.isfinite(num):
                    return Threshold(match.group("op"), num, scope=scope, text=text)
            else:
                lo, hi = _number(match.group("lo")), _number(match.group("hi"))
                if math.isfinite(lo) and math.isfinite(hi) and lo <= hi:
                    return Threshold("range", lo, hi, scope=scope, text=text)
    raise HarnessUsageError(
        f"cannot read threshold {value!r}{_where(source)}: use '> 0', '>= 50', '1..10' or 'sum > 10'"
    )
