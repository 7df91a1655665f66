"""The ``harness`` command: check, diagnose and render recorded traces; run a scenario.

    harness check reports/<test>/trace.jsonl --after eviction --max-growth "1 MB/1k steps"
    harness diagnose reports/<test>/trace.jsonl --after eviction
    harness report reports/<test>/trace.jsonl -o report.html   (default: trace.html beside the trace)
    harness run replay --variant view_leak --steps 4500
    harness plan --available "6.5 GB" --per-worker "800 MB" "1.2 GB" --sidecar vlm=4GB..6GB \
        --system "1 GB" "2 GB" --workers 5

Exit status: 0 pass, 1 a verdict failed, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import signals
from harness.errors import HarnessUsageError, LeakError, TooFewSamples

if TYPE_CHECKING:
    import harness


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="memory-leak regression harness")
    sub = parser.add_subparsers(dest="command", required=True)

    def verdict_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--after", help="event the window starts at, e.g. eviction")
        p.add_argument("--max-growth", default="1 MB/1k steps", help="growth limit (default: 1 MB/1k steps)")
        p.add_argument("--settle", help="steps or fraction skipped after the event (default 10%%)")
        p.add_argument("--budget", help="memory the projection runs out of (default: the machine's)")

    check = sub.add_parser("check", help="growth verdict on a trace file")
    check.add_argument("trace", type=Path)
    check.add_argument(
        "--signal",
        default="auto",
        help="what is judged: auto (allocator live bytes, RSS, the tree when recorded) or " + ", ".join(signals.NAMES),
    )
    verdict_args(check)
    diag = sub.add_parser("diagnose", help="incident 1's cases A-D on a trace file")
    diag.add_argument("trace", type=Path)
    verdict_args(diag)
    report = sub.add_parser("report", help="render a trace file as a self-contained HTML page")
    report.add_argument("trace", type=Path)
    report.add_argument("-o", "--output", type=Path)
    report.add_argument("--after", help="event the window starts at (default: the test's, from verdict.json)")
    report.add_argument("--max-growth", help="growth limit (default: the test's, else 1 MB/1k steps)")
    report.add_argument("--signal", help="judged signal (default: the test's, else auto)")
    plan = sub.add_parser("plan", help="how many workers fit in a memory budget (worst and typical case)")
    plan.add_argument("--available", required=True, help="memory available, e.g. '6.5 GB'")
    plan.add_argument("--per-worker", required=True, nargs="+", metavar="SIZE", help="one size, or MIN MAX")
    plan.add_argument(
        "--sidecar",
        action="append",
        default=[],
        metavar="NAME=MIN[..MAX]",
        help="an extra process, e.g. vlm=4GB..6GB (repeatable)",
    )
    plan.add_argument("--system", nargs="+", default=["0"], metavar="SIZE", help="system overhead: SIZE or MIN MAX")
    plan.add_argument("--headroom", default="0", help="memory to keep free")
    plan.add_argument("--workers", type=int, help="the worker count you intend to launch")
    run = sub.add_parser("run", help="run a built-in scenario and check it (needs torch)")
    run.add_argument("scenario", choices=["replay"])
    run.add_argument("--variant", default="fixed", choices=["fixed", "view_leak", "loss_leak"])
    run.add_argument("--steps", type=int)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=Path("reports") / "cli")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        try:
            return _dispatch(args)
        except LeakError as exc:
            print(exc)
            return 1
        except HarnessUsageError as exc:
            print(f"harness {args.command}: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            where = f" {exc.filename!r}" if exc.filename else ""
            print(f"harness {args.command}: cannot write or read{where}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    except BrokenPipeError:
        # The reader went away (`harness check ... | head -1`): stop quietly, as a pipeline expects.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _verdict_options(args: argparse.Namespace) -> dict[str, Any]:
    """Read the verdict options here, so a bad value is blamed on the option that gave it."""
    from harness.units import parse_rate, parse_settle, parse_size

    options: dict[str, Any] = {"max_growth": parse_rate(args.max_growth, "--max-growth")}
    if args.settle is not None:
        kind, value = parse_settle(args.settle, "--settle")
        options["settle"] = value if kind == "fraction" else int(value)
    if args.budget is not None:
        options["budget"] = parse_size(args.budget, "--budget")
    return options


def _dispatch(args: argparse.Namespace) -> int:
    import harness

    if args.command == "run":
        return _run(args)
    if args.command == "plan":
        return _plan(args)
    if args.command == "report" and args.trace.is_dir() and not (args.trace / "trace.jsonl").exists():
        return _trend(args)
    if args.command == "report" and args.trace.is_dir():
        args.trace = args.trace / "trace.jsonl"
    trace = harness.Trace.load(args.trace)
    if args.command == "check":
        checked = harness.assert_no_linear_growth(trace, after=args.after, signal=args.signal, **_verdict_options(args))
        print(checked.message())
        return 0
    if args.command == "diagnose":
        options = _verdict_options(args)
        options.pop("budget", None)
        print(harness.diagnose(trace, after=args.after, **options))
        return 0
    return _report(args, trace)


def _report(args: argparse.Namespace, trace: harness.Trace) -> int:
    """Render to ``-o`` (a file, or a directory: <trace>.html in it), default <trace>.html beside the trace.

    Never touches the test's own verdict.json and report.html: the page is rendered in a
    scratch directory and only the HTML is moved into place.
    """
    import tempfile

    import harness
    from harness.reports.html import write_test_report

    output: Path | None = args.output
    if output is None:
        target = args.trace.with_suffix(".html")
    elif output.is_dir() or str(output).endswith(("/", os.sep)):
        target = output / f"{args.trace.stem}.html"
    else:
        target = output
    if target.resolve() == args.trace.resolve():
        raise HarnessUsageError(f"-o {str(target)!r} is the trace itself; give another file name")
    if args.max_growth is not None:
        from harness.units import parse_rate

        parse_rate(args.max_growth, "--max-growth")  # a bad value is named by its flag
    try:
        verdict: harness.GrowthVerdict | None = harness.growth_verdict(trace, **_report_options(args))
    except TooFewSamples as exc:  # the trace is still worth a look: drawn, with no check
        verdict = None
        print(f"harness report: the page has no growth check: {exc}", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harness-report-", dir=target.parent) as scratch:
        _, html_path = write_test_report(Path(scratch), trace.name, "recorded", trace, verdict, {})
        os.replace(html_path, target)
    print(target)
    return 0


def _report_options(args: argparse.Namespace) -> dict[str, Any]:
    """The check a page shows: the options given, else the test's own (its verdict.json
    beside the trace), else the defaults (window after warm-up, 1 MB/1k steps)."""
    import json

    options: dict[str, Any] = {}
    try:
        saved = json.loads((args.trace.parent / "verdict.json").read_text(encoding="utf-8"))
        first = next(c for c in saved.get("checks", []) if c.get("kind") == "growth" and c.get("trace") is not None)
        options = {"after": first.get("after"), "max_growth": first.get("limit_text"), "signal": first.get("signal")}
    except (OSError, ValueError, StopIteration, AttributeError):
        pass
    for key, value in (("after", args.after), ("max_growth", args.max_growth), ("signal", args.signal)):
        if value is not None:
            options[key] = value
    return {k: v for k, v in options.items() if v is not None}


def _trend(args: argparse.Namespace) -> int:
    """``harness report STORAGE_DIR``: the trend page of every machine's saved runs there."""
    from harness.reports.storage import Storage, machines
    from harness.reports.trend import write_trend

    found = machines(args.trace)
    if not found:
        raise HarnessUsageError(f"{str(args.trace)!r} holds no saved runs (pytest --leak-save writes them)")
    outputs = []
    for machine in found:
        target = args.output or args.trace / "trend.html"
        if len(found) > 1:
            target = target.with_name(f"{target.stem}-{machine}{target.suffix}")
        outputs.append(write_trend(Storage(args.trace, machine), target))
    print("\n".join(str(p) for p in outputs))
    return 0


def _plan(args: argparse.Namespace) -> int:
    import harness

    def pair(values: list[str], source: str) -> object:
        if len(values) > 2:
            raise HarnessUsageError(f"{source} takes one size or MIN MAX, got {' '.join(values)!r}")
        return values[0] if len(values) == 1 else (values[0], values[1])

    sidecars: dict[str, object] = {}
    for item in args.sidecar:
        name, sep, sizes = item.partition("=")
        low, dots, high = sizes.partition("..")
        if not sep or not name or not low.strip() or (dots and not high.strip()):
            raise HarnessUsageError(f"--sidecar {item!r} must read NAME=SIZE or NAME=MIN..MAX")
        if name in sidecars:
            raise HarnessUsageError(f"--sidecar {name!r} is given twice")
        sidecars[name] = (low, high) if dots else low
    plan = harness.plan_workers(
        args.available,
        pair(args.per_worker, "--per-worker"),
        sidecars=sidecars,
        system=pair(args.system, "--system"),
        headroom=args.headroom,
        workers=args.workers,
    )
    print(plan.explain())
    return 0 if plan.fits and plan.max_workers > 0 else 1


def _run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 1:
        raise HarnessUsageError(f"--steps {args.steps} must be a whole number of steps >= 1")
    try:
        from harness.scenarios.drive import BAD_STEPS, FIXED, LIMIT, drive_replay
    except ImportError as exc:
        raise HarnessUsageError(f"the replay scenario needs torch ({exc}): pip install 'leak-harness[torch]'") from None
    from dataclasses import replace

    import harness

    steps = args.steps if args.steps is not None else (FIXED.steps if args.variant == "fixed" else BAD_STEPS)
    config = replace(FIXED, variant=args.variant, steps=steps, seed=args.seed)
    path = args.out / f"replay-{args.variant}-seed{args.seed}.jsonl"
    with harness.record(path.stem, path, progress=True) as rec:
        run = drive_replay(rec, config, watch_evicted=True)
    print(f"trace: {path}")
    status = 0
    try:
        print(harness.assert_no_linear_growth(rec.trace, after="eviction", max_growth=LIMIT).message())
    except LeakError as exc:
        print(exc)
        status = 1
    assert run.tracker is not None
    try:
        run.tracker.assert_released()
        print(f"liveness: all {run.tracker.watched} evicted episodes were released")
    except LeakError as exc:
        print(exc)
        status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
