"""Markers from a table: one documented parser per marker, unknown arguments rejected.

``@pytest.mark.leak(max_growth="1 MB/1k steps", after="eviction")`` marks a quick leak
test and, when it carries ``max_growth``, has its ``memory_trace`` checked automatically
once the test body returns. ``@pytest.mark.soak(...)`` takes the same arguments for long
runs and is deselected unless ``-m`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from harness import signals
from harness.errors import HarnessUsageError


# This module loads in every project that merely has the plugin installed (``pytest --help``
# included), so its import does only what the marker table needs. NamedTuples, not frozen
# dataclasses: the two dataclasses cost ~2 ms of its ~3.5 ms (their methods are generated
# with exec), and a NamedTuple is as immutable.
class LeakSpec(NamedTuple):
    """A validated leak/soak marker."""

    marker: str
    max_growth: float | None = None
    max_growth_text: str | None = None
    after: str | None = None
    signal: str = "auto"
    children: bool = False
    settle: object = None
    budget: float | None = None
    confidence: float = 0.95
    heap: bool = False
    memray: bool = False
    every: int | None = None  # None: sample on the recorder's time budget
    max_peak: float | None = None  # bytes over the test's baseline, resolved against payload
    max_peak_text: str | None = None
    payload: float | None = None
    isolate: bool = False
    memory_limit: float | None = None
    timeout: float | None = None

    @property
    def checks_peak(self) -> bool:
        return self.max_peak is not None

    @property
    def checks_growth(self) -> bool:
        return self.max_growth is not None


class Argument(NamedTuple):
    name: str
    default: object
    help: str


#: The arguments of ``leak`` and ``soak``: what parse_marker validates and what
#: ``pytest --markers`` shows are both made from this one table.
ARGUMENT_TABLE: tuple[Argument, ...] = (
    Argument("max_growth", None, "growth limit, e.g. '1 MB/1k steps' (checked on memory_trace after the test)"),
    Argument("after", None, "event name the window starts at, e.g. 'eviction'"),
    Argument(
        "signal",
        "auto",
        "what is judged: 'auto' (the allocator's live bytes, RSS, and the process tree when recorded), or one of "
        + ", ".join(signals.NAMES),
    ),
    Argument(
        "children", False, "also record descendant processes (DataLoader workers, a Pool): signals tree, children"
    ),
    Argument("settle", None, "steps or fraction skipped after the event, e.g. 500 or '10%'"),
    Argument("budget", None, "memory the projection runs out of, e.g. '24 GiB'"),
    Argument("confidence", 0.95, "confidence of the slope interval, between 0 and 1"),
    Argument("heap", False, "trace the Python heap with tracemalloc (slower)"),
    Argument("memray", False, "capture the test with memray and write a flamegraph"),
    Argument("every", None, "sample every N steps (default: on a time budget)"),
    Argument("max_peak", None, "peak of the whole test over its starting RSS: '256 MB', or '1.25x' with payload="),
    Argument("payload", None, "bytes the test handles, for a ratio max_peak, e.g. '807 MB'"),
    Argument(
        "isolate", False, "run the test in a fresh child process (pytest) so an OOM there cannot take this run down"
    ),
    Argument("memory_limit", None, "memory cap of the isolated child, e.g. '1 GB'"),
    Argument("timeout", None, "time limit of the isolated child, e.g. '120 s'"),
)

#: argument -> what it takes (shown when an unknown argument is given).
ARGUMENTS: Mapping[str, str] = {a.name: a.help for a in ARGUMENT_TABLE}

_SIGNATURE = ", ".join(f"{a.name}={a.default!r}" for a in ARGUMENT_TABLE)
_HELP = "; ".join(f"{a.name}: {a.help}" for a in ARGUMENT_TABLE)

MARKERS: Mapping[str, str] = {
    "leak": f"leak({_SIGNATURE}): a quick memory-leak test; with max_growth, its memory_trace is checked for "
    "linear growth after the event `after`; with max_peak, the test's peak RSS over its baseline; with isolate, "
    f"it runs in a child process under memory_limit. Arguments: {_HELP}",
    "soak": "soak(...same arguments as leak...): a long memory test, deselected unless -m selects soak",
}

SIGNALS = ("auto", *signals.NAMES)


def parse_marker(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> LeakSpec:
    # The parsers load with the first marked test, not with the plugin (see the note above).
    from harness.units import parse_duration, parse_limit, parse_rate, parse_settle, parse_size

    where = f"@pytest.mark.{name}"
    if args:
        raise HarnessUsageError(f"{where} takes keyword arguments only, got positional {args!r}")
    unknown = sorted(set(kwargs) - set(ARGUMENTS))
    if unknown:
        raise HarnessUsageError(
            f"{where} got unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"allowed: {', '.join(ARGUMENTS)}"
        )
    spec: dict[str, Any] = {"marker": name}
    if kwargs.get("max_growth") is not None:
        spec["max_growth"] = parse_rate(kwargs["max_growth"], f"{where}(max_growth=)")
        spec["max_growth_text"] = str(kwargs["max_growth"])
    if "after" in kwargs and kwargs["after"] is not None:
        if not isinstance(kwargs["after"], str) or not kwargs["after"]:
            raise HarnessUsageError(f"{where}(after={kwargs['after']!r}) must be an event name")
        spec["after"] = kwargs["after"]
    if "signal" in kwargs:
        if kwargs["signal"] not in SIGNALS:
            raise HarnessUsageError(f"{where}(signal={kwargs['signal']!r}) is not one of {', '.join(SIGNALS)}")
        spec["signal"] = kwargs["signal"]
    if kwargs.get("settle") is not None:
        parse_settle(kwargs["settle"], f"{where}(settle=)")
        spec["settle"] = kwargs["settle"]
    if kwargs.get("budget") is not None:
        spec["budget"] = parse_size(kwargs["budget"], f"{where}(budget=)")
    if "confidence" in kwargs:
        conf = kwargs["confidence"]
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 < conf < 1:
            raise HarnessUsageError(f"{where}(confidence={conf!r}) must be between 0 and 1, e.g. 0.95")
        spec["confidence"] = float(conf)
    for flag in ("heap", "memray", "isolate", "children"):
        if flag in kwargs:
            if not isinstance(kwargs[flag], bool):
                raise HarnessUsageError(f"{where}({flag}={kwargs[flag]!r}) must be True or False")
            spec[flag] = kwargs[flag]
    if "every" in kwargs:
        every = kwargs["every"]
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise HarnessUsageError(f"{where}(every={every!r}) must be a whole number of steps >= 1")
        spec["every"] = every
    if kwargs.get("payload") is not None:
        spec["payload"] = parse_size(kwargs["payload"], f"{where}(payload=)")
    if kwargs.get("max_peak") is not None:
        limit = parse_limit(kwargs["max_peak"], f"{where}(max_peak=)")
        spec["max_peak"] = limit.resolve(spec.get("payload"), f"{where}(max_peak=)")
        spec["max_peak_text"] = str(kwargs["max_peak"])
    if kwargs.get("memory_limit") is not None:
        spec["memory_limit"] = parse_size(kwargs["memory_limit"], f"{where}(memory_limit=)")
    if kwargs.get("timeout") is not None:
        spec["timeout"] = parse_duration(kwargs["timeout"], f"{where}(timeout=)")
    if (spec.get("memory_limit") or spec.get("timeout")) and not spec.get("isolate"):
        raise HarnessUsageError(f"{where}: memory_limit= and timeout= apply to isolated tests; add isolate=True")
    return LeakSpec(**spec)
