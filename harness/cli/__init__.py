"""The ``harness`` command: check, diagnose and render recorded traces; run a scenario.

    harness check reports/<test>/trace.jsonl --after eviction --max-growth "1 MB/1k steps"
    harness diagnose reports/<test>/trace.jsonl --after eviction
    harness report reports/<test>/trace.jsonl -o report.html
    harness run replay --variant view_leak --steps 4500
    harness plan --available "6.5 GB" --per-worker "800 MB" "1.2 GB" --sidecar vlm=4GB..6GB \
        --system "1 GB" "2 GB" --workers 5

Exit status: 0 pass, 1 a verdict failed, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import HarnessUsageError, LeakError


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
    check.add_argument("--signal", default="rss", help="rss, unaccounted or heap")
    verdict_args(check)
    diag = sub.add_parser("diagnose", help="incident 1's cases A-D on a trace file")
    diag.add_argument("trace", type=Path)
    verdict_args(diag)
    report = sub.add_parser("report", help="render a trace file as a self-contained HTML page")
    report.add_argument("trace", type=Path)
    report.add_argument("-o", "--output", type=Path)
    report.add_argument("--after")
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
        return _dispatch(args)
    except LeakError as exc:
        print(exc)
        return 1
    except HarnessUsageError as exc:
        print(f"harness {args.command}: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    import harness

    if args.command == "run":
        return _run(args)
    if args.command == "plan":
        return _plan(args)
    trace = harness.Trace.load(args.trace)
    if args.command == "check":
        checked = harness.assert_no_linear_growth(
            trace,
            after=args.after,
            max_growth=args.max_growth,
            signal=args.signal,
            settle=args.settle,
            budget=args.budget,
        )
        print(checked.message())
        return 0
    if args.command == "diagnose":
        print(harness.diagnose(trace, after=args.after, max_growth=args.max_growth, settle=args.settle))
        return 0
    from harness.reports.html import write_test_report

    verdict: harness.GrowthVerdict | None = harness.growth_verdict(trace, after=args.after) if args.after else None
    directory = args.output.parent if args.output else args.trace.parent
    _, html_path = write_test_report(directory, trace.name, "recorded", trace, verdict, {})
    if args.output and html_path != args.output:
        html_path.replace(args.output)
        html_path = args.output
    print(html_path)
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
        if not sep or not name:
            raise HarnessUsageError(f"--sidecar {item!r} must read NAME=SIZE or NAME=MIN..MAX")
        low, _, high = sizes.partition("..")
        sidecars[name] = (low, high) if high else low
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
    try:
        from harness.scenarios.drive import BAD_STEPS, FIXED, LIMIT, drive_replay
    except ImportError as exc:
        raise HarnessUsageError(f"the replay scenario needs torch ({exc}): pip install 'leak-harness[torch]'") from None
    from dataclasses import replace

    import harness

    steps = args.steps or (FIXED.steps if args.variant == "fixed" else BAD_STEPS)
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
