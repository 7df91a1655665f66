"""One place for settings: command line, environment and ini resolved by one function.

Precedence, highest first: command-line option, environment variable, ini key, default.
Every value passes through the same parser whichever way it came, and a bad value names
the option, variable or ini key it came from. (pytest-memray's ini settings are silently
ignored, its issue #135; ours are tested.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from harness.errors import HarnessUsageError

#: How an option's value is read; "bool" and "name" take an optional value after "=".
OptionKind = Literal["path", "bool", "size", "number", "count", "name", "rules", "where"]
#: --leak-where: rerun a failed growth check with site tracking, track every test, or never.
WhereMode = Literal["auto", "always", "no"]


# A NamedTuple, not a frozen dataclass: as immutable, and a fifth of the cost to define
# (0.1 ms against 0.8 ms), paid by every pytest run of every project with the plugin.
# Settings and ItemSettings below stay frozen dataclasses: they are the values code reads.
class Option(NamedTuple):
    name: str  # attribute of Settings
    flag: str  # command-line flag
    ini: str
    env: str
    help: str
    kind: OptionKind
    default: Any

    @property
    def dest(self) -> str:
        # Prefixed: pytest-memray's own option is stored as "memray", and two plugins
        # sharing a dest silently switch each other on.
        return self.name if self.name.startswith("soak") else f"leak_{self.name}"


OPTIONS: tuple[Option, ...] = (
    Option(
        "report_dir",
        "--leak-report-dir",
        "leak_report_dir",
        "HARNESS_REPORT_DIR",
        "directory for per-test traces and reports (default: reports/ under the rootdir)",
        "path",
        "reports",
    ),
    Option(
        "memray",
        "--leak-memray",
        "leak_memray",
        "HARNESS_MEMRAY",
        "capture every memory_trace test with memray and write a flamegraph next to its trace (a value goes "
        "after '=': --leak-memray=no)",
        "bool",
        False,
    ),
    Option(
        "budget",
        "--leak-budget",
        "leak_budget",
        "HARNESS_BUDGET",
        "memory budget for projections in growth messages, e.g. '6 GiB' (default: this machine's memory)",
        "size",
        None,
    ),
    Option(
        "soak_minutes",
        "--soak-minutes",
        "soak_minutes",
        "HARNESS_SOAK_MINUTES",
        "time budget of each soak test in minutes (default 10)",
        "number",
        10.0,
    ),
    Option(
        "soak_steps",
        "--soak-steps",
        "soak_steps",
        "HARNESS_SOAK_STEPS",
        "step budget of each soak test (default: none; the time budget ends it)",
        "count",
        None,
    ),
    Option(
        "save",
        "--leak-save",
        "leak_save",
        "HARNESS_SAVE",
        "save each test's memory figures under --leak-storage as run NNNN_NAME (bare flag: commit and time; "
        "write it as --leak-save=NAME)",
        "name",
        None,
    ),
    Option(
        "compare",
        "--leak-compare",
        "leak_compare",
        "HARNESS_COMPARE",
        "compare each test's memory figures with a saved run: its number, name, or the latest (bare flag; "
        "write a run as --leak-compare=NAME)",
        "name",
        None,
    ),
    Option(
        "compare_fail",
        "--leak-compare-fail",
        "leak_compare_fail",
        "HARNESS_COMPARE_FAIL",
        "fail tests whose figures regressed against the compared run, e.g. 'slope:+50%,peak:+10%,level:+100MB' "
        "(figures: slope, level, peak, allocated, allocated_level, tree, tree_level); compares with the latest "
        "saved run unless --leak-compare names one",
        "rules",
        None,
    ),
    Option(
        "storage",
        "--leak-storage",
        "leak_storage",
        "HARNESS_STORAGE",
        "directory of saved runs, one folder per machine (default: .leak-harness/ under the rootdir)",
        "path",
        ".leak-harness",
    ),
    Option(
        "where",
        "--leak-where",
        "leak_where",
        "HARNESS_WHERE",
        "name the lines that allocate what grows (memray sites): 'auto' reruns a test whose growth check failed "
        "once with site tracking and adds the sites to its failure (default); 'always' tracks every memory_trace "
        "test; 'no' never",
        "where",
        "auto",
    ),
    Option(
        "reports",
        "--leak-reports",
        "leak_reports",
        "HARNESS_REPORTS",
        "write per-test JSON and HTML reports (default yes; --leak-reports=no turns them off)",
        "bool",
        True,
    ),
)


@dataclass(frozen=True)
class Settings:
    report_dir: Path
    memray: bool
    budget: float | None
    soak_minutes: float
    soak_steps: float | None
    reports: bool
    sources: dict[str, str]  # where each value came from, for messages
    # Runs over time (harness.plugin.reporting): a save name or "auto", a saved run to
    # compare with or "auto" (the latest), the rules that fail a regression, where runs live.
    save: str | None = None
    compare: str | None = None
    compare_fail: tuple[Any, ...] = ()
    storage: Path = Path(".leak-harness")
    where: WhereMode = "auto"  # --leak-where


def _parse_bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise HarnessUsageError(f"cannot read {value!r} from {source} as yes/no: use true/false, yes/no, 1/0")


def parse_where(value: object, source: str) -> WhereMode:
    """--leak-where: "auto", "always" (also yes/true/1) or "no" (also never/false/0)."""
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return "auto"
    if text in ("always", "yes", "true", "1", "on"):
        return "always"
    if text in ("no", "never", "false", "0", "off"):
        return "no"
    raise HarnessUsageError(f"cannot read {value!r} from {source} as a site-tracking mode: use auto, always or no")


def _parse_name(value: object, source: str) -> str | None:
    """A saved run's name: "auto" (bare flag, yes/true/1), None (no/false/0), or the name."""
    text = str(value).strip()
    if text.lower() in ("0", "false", "no", "off"):
        return None
    if text.lower() in ("1", "true", "yes", "on", "auto"):
        return "auto"
    if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,80}", text):
        raise HarnessUsageError(
            f"cannot read {value!r} from {source} as a run name: use 1-80 letters, digits, '_', '.', '+' or '-'"
        )
    return text


def _convert(option: Option, value: object, source: str, rootdir: Path) -> Any:
    if option.kind == "bool":
        return _parse_bool(value, source)
    if option.kind == "name":
        return _parse_name(value, source)
    if option.kind == "where":
        return parse_where(value, source)
    if option.kind == "rules":
        from harness.reports.compare import parse_compare_fail

        return parse_compare_fail(value, source)
    if option.kind == "size":
        from harness.units import parse_size  # off the plugin's load path (~2 ms of dataclasses)

        return None if value in (None, "") else parse_size(value, source)
    if option.kind == "count":
        text = str(value).strip().replace("_", "").replace(",", "")
        if not text.isdigit() or int(text) < 1:
            raise HarnessUsageError(f"cannot read {value!r} from {source} as a whole number of steps >= 1")
        return int(text)
    if option.kind == "number":
        try:
            number = float(str(value))
        except ValueError:
            number = -1.0
        if not number > 0:
            raise HarnessUsageError(f"cannot read {value!r} from {source} as a positive number")
        return number
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else rootdir / path


def resolve(
    cli: Callable[[str], object],
    ini: Callable[[str], object],
    rootdir: Path,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build Settings from ``cli(dest)`` and ``ini(key)`` lookups (None when unset)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        candidates = (
            (cli(option.dest), f"command-line option {option.flag}"),
            (env.get(option.env), f"environment variable {option.env}"),
            (ini(option.ini), f"ini key {option.ini}"),
        )
        for raw, source in candidates:
            if raw not in (None, "", []):
                values[option.name] = _convert(option, raw, source, rootdir)
                sources[option.name] = source
                break
        else:
            values[option.name] = (
                _convert(option, option.default, "default", rootdir) if option.default is not None else None
            )
            sources[option.name] = "default"
    return Settings(sources=sources, **values)


@dataclass(frozen=True)
class ItemSettings:
    """What applies to one test: its marker's values over the session's settings
    (pytest-timeout's per-item settings). Resolved in one place, read everywhere."""

    budget: float | None
    memray: bool
    heap: bool
    every: int | None
    children: bool


def for_item(spec: Any, settings: Settings) -> ItemSettings:
    """Merge a validated marker (``LeakSpec``, or None) over the session settings."""
    if spec is None:
        return ItemSettings(budget=settings.budget, memray=settings.memray, heap=False, every=None, children=False)
    return ItemSettings(
        budget=spec.budget if spec.budget is not None else settings.budget,
        memray=bool(spec.memray or settings.memray),
        heap=bool(spec.heap),
        every=spec.every,
        children=bool(spec.children),
    )
