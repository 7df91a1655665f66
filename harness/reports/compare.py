"""Run-to-run comparison: per-test memory figures, ``--leak-compare-fail`` rules, deltas.

Pure: figures (dicts of numbers) in, deltas and failures out; no I/O, no numpy.

pytest-benchmark compares timings with ``min:5%`` (relative) or ``min:0.001`` (absolute).
Memory figures need rules of their own, so each figure here has a kind:

- **rates** (``slope``, ``allocated``, ``tree``: bytes per step in the steady window) come
  with a confidence interval. A rate regresses only when tonight's *lower* bound lies
  above last night's slope plus the allowance: a clean loop's slope is noise around zero
  (±20 B/step on this machine), and ``+50%`` of noise is noise. A relative allowance is
  taken of ``max(|slope|, half the saved interval)`` for the same reason, and is never
  less than 20 B/step: a run's own interval does not hold the wander between runs (the
  same flat loop measured 7.9–11.3 B/step on three runs, each interval ±0.1).
  Absolute allowances are rates: ``slope:+5 KB/1k steps``.
- **sizes** (``level``: the steady-state median of the judged signal in the window;
  ``peak``: a peak check's rise over its baseline, else the trace's highest RSS above
  its first sample; levels too are taken above the trace's start, since what earlier
  tests left in the process would otherwise move every later test's figures;
  ``allocated_level``, ``tree_level``) regress when tonight's figure exceeds last night's
  by more than the allowance: ``level:+100MB``, ``peak:+10%``. A relative allowance is
  never less than 1 MB: a small test's RSS rise moved 1.4 → 1.8 MB between identical runs.

Only growth fails: memory that went down is good news, so an allowance is written with
``+`` (or no sign) and a ``-`` is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import HarnessUsageError
from harness.units import format_rate, format_size, parse_rate, parse_size

FigureKind = Literal["rate", "size"]

#: figure -> (kind, what it is). Rates are bytes per step; sizes are bytes.
FIGURES: dict[str, tuple[FigureKind, str]] = {
    "slope": ("rate", "slope of the judged signal in the steady window"),
    "level": ("size", "steady-state level: median of the judged signal in the window, above the trace's start"),
    "peak": ("size", "peak over baseline of a peak check, else the trace's highest RSS above its start"),
    "allocated": ("rate", "slope of the allocator's live bytes in the window"),
    "allocated_level": ("size", "median of the allocator's live bytes in the window"),
    "tree": ("rate", "slope of the process tree's PSS in the window"),
    "tree_level": ("size", "median of the process tree's PSS in the window"),
}

#: A relative allowance on a rate is never less than this (20 KB per 1k steps): below it
#: the figure wanders between identical runs.
RATE_FLOOR = 20.0
#: A relative allowance on a size is never less than this.
SIZE_FLOOR = 1_000_000.0

_RULE_START = re.compile(r",\s*(?=[A-Za-z_]\w*\s*:)")
_PERCENT = re.compile(r"^\+?\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*%$")


@dataclass(frozen=True)
class Rule:
    """One ``--leak-compare-fail`` rule: ``FIGURE:+N%`` or ``FIGURE:+AMOUNT``."""

    figure: str
    percent: float | None  # relative allowance, in percent
    amount: float | None  # absolute allowance, bytes or bytes per step
    text: str

    def allowance(self, old: float, noise: float = 0.0) -> float:
        """How much above the saved figure tonight's may go."""
        if self.amount is not None:
            return self.amount
        assert self.percent is not None
        floor = RATE_FLOOR if FIGURES[self.figure][0] == "rate" else SIZE_FLOOR
        return max(self.percent / 100.0 * max(abs(old), noise), floor)


def parse_compare_fail(value: object, source: str = "--leak-compare-fail") -> tuple[Rule, ...]:
    """Rules from ``"slope:+50%,peak:+10%,level:+100MB"``; a bad one is a one-line error."""
    if not isinstance(value, str) or not value.strip():
        raise HarnessUsageError(
            f"{source} {value!r} is empty: give FIGURE:+N% or FIGURE:+AMOUNT, e.g. 'slope:+50%' or 'level:+100MB'"
        )
    rules: list[Rule] = []
    seen: set[str] = set()
    for part in _RULE_START.split(value.strip()):
        rule = _parse_rule(part.strip(), source)
        if rule.figure in seen:
            raise HarnessUsageError(f"{source} {_one(value)!r} gives {rule.figure!r} twice: keep one rule per figure")
        seen.add(rule.figure)
        rules.append(rule)
    return tuple(rules)


def _one(text: str) -> str:
    return " ".join(text.split())


def _parse_rule(text: str, source: str) -> Rule:
    where = f"{source} rule {_one(text)!r}"
    name, colon, amount = text.partition(":")
    name = name.strip().lower()
    if not colon or not name:
        raise HarnessUsageError(f"{where} must read FIGURE:+N% or FIGURE:+AMOUNT, e.g. 'slope:+50%' or 'peak:+10%'")
    if name not in FIGURES:
        raise HarnessUsageError(f"{where}: unknown figure {name!r}; use one of {', '.join(FIGURES)}")
    amount = amount.strip()
    if amount.startswith("-"):
        raise HarnessUsageError(f"{where}: only growth fails a comparison; write the allowance as +N% or +AMOUNT")
    match = _PERCENT.match(amount)
    if match is not None:
        percent = float(match.group("num"))
        if not math.isfinite(percent):
            raise HarnessUsageError(f"{where}: the percentage must be a finite number")
        return Rule(name, percent, None, f"{name}:+{percent:g}%")
    body = amount[1:].strip() if amount.startswith("+") else amount
    kind = FIGURES[name][0]
    example = "'slope:+5 KB/1k steps'" if kind == "rate" else f"'{name}:+100MB'"
    if not body or body.startswith(("+", "-")):
        raise HarnessUsageError(f"{where}: give +N% or an amount, e.g. {example}")
    try:
        allowed = parse_rate(body) if kind == "rate" else parse_size(body)
    except HarnessUsageError:
        unit = "a rate (size per steps)" if kind == "rate" else "a size"
        raise HarnessUsageError(f"{where}: {body!r} is not a percentage or {unit}, e.g. {example}") from None
    shown = format_rate(allowed) if kind == "rate" else format_size(allowed)
    return Rule(name, None, allowed, f"{name}:+{shown}")


# -- figures of one test ------------------------------------------------------------------
def figures_from(checks: Sequence[Mapping[str, Any]], trace_rise: float | None, steps: int | None) -> dict[str, Any]:
    """The comparable figures of one test from its check records (growth first judged).

    ``checks`` are the records of verdict.json (``kind`` growth, peak, release); the first
    growth record gives the rates and levels, the largest peak check the peak.
    """
    out: dict[str, Any] = {}
    growth = next((c for c in checks if c.get("kind") == "growth"), None)
    if growth is not None:
        signal = str(growth.get("signal", "rss"))
        out["signal"] = signal
        out["slope"] = float(growth["slope_bytes_per_step"])
        low, high = growth.get("interval", [math.nan, math.nan])
        out["slope_low"], out["slope_high"] = float(low), float(high)
        out["window"] = list(growth.get("window", []))
        levels = growth.get("levels") or {}
        if signal in levels:
            out["level"] = float(levels[signal])
        related = dict(growth.get("related") or {})
        for name in ("allocated", "tree"):
            if name == signal:
                out[name], out[f"{name}_low"], out[f"{name}_high"] = out["slope"], out["slope_low"], out["slope_high"]
            elif name in related:
                g = related[name]
                out[name], out[f"{name}_low"], out[f"{name}_high"] = (
                    float(g["slope"]),
                    float(g["low"]),
                    float(g["high"]),
                )
            if name in levels:
                out[f"{name}_level"] = float(levels[name])
    peaks = [float(c["over_baseline"]) for c in checks if c.get("kind") == "peak" and "over_baseline" in c]
    if peaks:
        out["peak"] = max(peaks)
        out["peak_kind"] = "over baseline"
    elif trace_rise is not None and math.isfinite(trace_rise):
        out["peak"] = float(trace_rise)
        out["peak_kind"] = "RSS rise in the trace"
    if steps is not None:
        out["steps"] = int(steps)
    return {k: v for k, v in out.items() if not (isinstance(v, float) and not math.isfinite(v))}


# -- comparing --------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    figure: str
    old: float
    new: float

    @property
    def percent(self) -> float | None:
        return (self.new - self.old) / abs(self.old) * 100.0 if self.old else None

    def words(self) -> str:
        fmt = format_rate if FIGURES[self.figure][0] == "rate" else format_size
        pct = self.percent
        rel = f" ({pct:+.0f}%)" if pct is not None and abs(pct) < 10_000 else ""
        if pct is not None and abs(pct) >= 10_000:
            rel = f" (×{self.new / self.old:,.0f})" if self.old > 0 and self.new > 0 else ""
        return f"{self.figure} {fmt(self.old)} → {fmt(self.new)}{rel}"


@dataclass(frozen=True)
class Delta:
    """One test tonight against the saved run."""

    test: str
    changes: tuple[Change, ...] = ()
    failures: tuple[str, ...] = ()
    note: str = ""  # "new test: not in the saved run", "peak kinds differ", ...

    @property
    def regressed(self) -> bool:
        return bool(self.failures)

    def line(self) -> str:
        parts = [c.words() for c in self.changes] or [self.note or "no comparable figures"]
        text = "; ".join(parts)
        if self.note and self.changes:
            text += f" ({self.note})"
        if self.failures:
            text += " — REGRESSED: " + "; ".join(self.failures)
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line(),
            "regressed": self.regressed,
            "failures": list(self.failures),
            "changes": [{"figure": c.figure, "old": c.old, "new": c.new, "percent": c.percent} for c in self.changes],
            "note": self.note,
        }


#: Figures shown in a delta line, in this order.
SHOWN = ("slope", "level", "peak", "allocated", "tree")


def compare(test: str, old: Mapping[str, Any] | None, new: Mapping[str, Any], rules: tuple[Rule, ...] = ()) -> Delta:
    """Tonight's figures of ``test`` against the saved ones, judged by ``rules``."""
    if old is None:
        return Delta(test, note="new test: not in the saved run")
    notes: list[str] = []
    comparable = {f for f in FIGURES if _number(old.get(f)) is not None and _number(new.get(f)) is not None}
    if old.get("signal") and new.get("signal") and old["signal"] != new["signal"]:
        notes.append(f"judged signal changed {old['signal']} → {new['signal']}: slopes not compared")
        comparable -= {"slope", "level"}
    if old.get("peak_kind") != new.get("peak_kind") and "peak" in old and "peak" in new:
        notes.append(f"peak was {old.get('peak_kind')}, now {new.get('peak_kind')}: not compared")
        comparable.discard("peak")
    changes = tuple(Change(f, float(old[f]), float(new[f])) for f in SHOWN if f in comparable)
    failures: list[str] = []
    for rule in rules:
        if rule.figure not in comparable:
            continue
        failure = _judge(rule, old, new)
        if failure:
            failures.append(failure)
    return Delta(test, changes, tuple(failures), "; ".join(notes))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _judge(rule: Rule, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    figure = rule.figure
    before = float(old[figure])
    fmt: Callable[[float], str]
    if FIGURES[figure][0] == "rate":
        fmt = format_rate
        low = _number(new.get(f"{figure}_low"))
        now = low if low is not None else float(new[figure])
        o_low, o_high = _number(old.get(f"{figure}_low")), _number(old.get(f"{figure}_high"))
        noise = (o_high - o_low) / 2 if o_low is not None and o_high is not None else 0.0
        allowed = before + rule.allowance(before, noise)
        what = f"{figure} interval low {fmt(now)}" if low is not None else f"{figure} {fmt(now)}"
    else:
        fmt = format_size
        now = float(new[figure])
        allowed = before + rule.allowance(before)
        what = f"{figure} {fmt(now)}"
    if now > allowed:
        return f"{what} > {fmt(allowed)} allowed by {rule.text} (saved {fmt(before)})"
    return ""


@dataclass
class Comparison:
    """Tonight's run against one saved run."""

    against: str  # the saved run's name, e.g. "0003_nightly"
    saved: Mapping[str, Any]
    rules: tuple[Rule, ...] = ()
    deltas: dict[str, Delta] = field(default_factory=dict)

    def judge(self, test: str, figures: Mapping[str, Any]) -> Delta:
        tests = self.saved.get("tests", {})
        old = tests.get(test, {}).get("figures") if test in tests else None
        delta = compare(test, old, figures, self.rules)
        self.deltas[test] = delta
        return delta

    def describe(self) -> str:
        commit = (self.saved.get("commit") or {}).get("id", "")
        when = str(self.saved.get("datetime", ""))[:19].replace("T", " ")
        return f"{self.against} ({when}{', commit ' + commit[:10] if commit else ''})"
