"""Isolated runs: a scenario in a fresh child interpreter under a memory cap.

A leak test that reproduces an OOM must not take the test runner down with it. The target
(``"pkg.module:function"``) runs in a new interpreter (not a fork of the test process, so
none of the parent's heap is inherited), under a cap:

1. cgroup v2 ``memory.max``, where a child group can be created (the kernel kills);
2. cgroup v1 ``memory.limit_in_bytes`` likewise;
3. ``RLIMIT_DATA`` otherwise (allocations fail: MemoryError).

The result says which applied. The trace streams to disk per sample, so a kill keeps every
sample before it; the outcome comes from the child's own report, or from its exit signal
when the kernel killed it. The child leads its own process group and everything in it (and
in its cgroup) is killed on the way out, so nothing is left behind: the child's supervisor
(``harness.isolation.child``) is a subreaper that kills every descendant, a ``setsid()``
grandchild included, also when this process is SIGKILLed; should the supervisor itself be
SIGKILLed, every process of the run still carries the run's mark in its environment
(``HARNESS_ISOLATED_RUN``), and this process kills what carries it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from harness.errors import HarnessError, HarnessUsageError
from harness.recording.trace import Trace
from harness.units import format_rate, format_size, format_step, parse_duration, parse_size

#: How an isolated run ended (``IsolatedResult.outcome``).
Outcome = Literal["ok", "oom", "error", "timeout"]
#: Which memory cap applied (``IsolatedResult.cap``).
CapKind = Literal["cgroup v2 memory.max", "cgroup v1 memory.limit_in_bytes", "RLIMIT_DATA", "none"]
#: How a cap is chosen (``run_isolated(cap=...)``, HARNESS_ISOLATION_CAP).
Mechanism = Literal["auto", "cgroup", "rlimit"]
#: The environment variable that marks every process of an isolated run (its value: the run).
RUN_MARK = "HARNESS_ISOLATED_RUN"

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


@dataclass
class _Cap:
    kind: CapKind
    cgroup: Path | None = None
    rlimit: int | None = None

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer acted inside our cgroup."""
        if self.cgroup is None:
            return False
        try:
            if self.kind.startswith("cgroup v2"):
                for line in (self.cgroup / "memory.events").read_text().splitlines():
                    key, _, count = line.partition(" ")
                    if key in ("oom_kill", "oom") and int(count) > 0:
                        return True
                return False
            with contextlib.suppress(OSError, ValueError):
                for line in (self.cgroup / "memory.oom_control").read_text().splitlines():
                    key, _, count = line.partition(" ")
                    if key == "oom_kill":  # kernels since 4.13 count the kills themselves
                        return int(count) > 0
            return int((self.cgroup / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def kill_all(self) -> None:
        if self.cgroup is None:
            return
        with contextlib.suppress(OSError):
            for pid in (self.cgroup / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        if self.cgroup is None:
            return
        for _ in range(50):  # the kernel releases the group once its last task is reaped
            try:
                self.cgroup.rmdir()
                return
            except OSError:
                time.sleep(0.02)


CAP_MECHANISMS: tuple[Mechanism, ...] = get_args(Mechanism)


def _make_cap(limit: int | None, name: str, mechanism: Mechanism = "auto") -> _Cap:
    if limit is None:
        return _Cap("none")
    if mechanism == "rlimit":
        return _Cap("RLIMIT_DATA", rlimit=limit)
    try:
        controllers = (_CGROUP_V2 / "cgroup.controllers").read_text().split()
    except OSError:
        controllers = []
    if "memory" in controllers:
        group = _CGROUP_V2 / name
        try:
            group.mkdir()
            (group / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (group / "memory.swap.max").write_text("0")
            return _Cap("cgroup v2 memory.max", cgroup=group)
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
    if (_CGROUP_V1 / "memory.limit_in_bytes").exists():
        group = _CGROUP_V1 / name
        try:
            group.mkdir()
            (group / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):
                (group / "memory.memsw.limit_in_bytes").write_text(str(limit))
            return _Cap("cgroup v1 memory.limit_in_bytes", cgroup=group)
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
    if mechanism == "cgroup":
        raise HarnessUsageError("run_isolated cap='cgroup': no writable cgroup memory controller here")
    return _Cap("RLIMIT_DATA", rlimit=limit)


@dataclass(frozen=True)
class IsolatedResult:
    """What happened to an isolated run. ``outcome`` is "ok", "oom", "error" or "timeout"."""

    outcome: Outcome
    target: str
    cap: CapKind
    memory_limit: float | None
    returncode: int | None
    signal_name: str | None
    duration_s: float
    trace_path: Path | None  # None where no trace_path= was given (the run's folder is removed)
    trace: Trace | None
    last_step: int | None
    error: str | None = None
    traceback: str | None = None
    value: Any = None

    @property
    def peak_rss(self) -> float | None:
        if self.trace is None or not len(self.trace):
            return None
        return self.trace.peak("rss")

    def growth_text(self) -> str:
        """'growing 4.1 MB/1k steps since step 20,000' from the second half of the trace."""
        trace = self.trace
        if trace is None or len(trace) < 20:
            return ""
        from harness.analysis.window import growth_since

        event = trace.events[0] if trace.events else None
        start = event.step if event else trace.steps[len(trace) // 2]
        growth = growth_since(trace, start)
        if growth is None or growth.slope <= 0:
            return ""
        since = f"'{event.name}' (step {format_step(event.step)})" if event else f"step {format_step(start)}"
        return f"growing {format_rate(growth.slope)} since {since}"

    def message(self) -> str:
        where = f"at step {format_step(self.last_step)}" if self.last_step is not None else "with no step recorded"
        rss = f"RSS {format_size(self.peak_rss)}" if self.peak_rss is not None else "no samples"
        growth = self.growth_text()
        detail = f"({rss}{', ' + growth if growth else ''})"
        limit = format_size(self.memory_limit) if self.memory_limit else "no"
        if self.outcome == "oom":
            how = "killed by" if self.signal_name == "SIGKILL" else "ran out of memory under"
            return f"{self.target} {how} the {limit} memory cap ({self.cap}) {where} {detail}"
        if self.outcome == "timeout":
            return f"{self.target} timed out after {self.duration_s:.1f} s {where} {detail}"
        if self.outcome == "error":
            cause = self.error or (f"killed by {self.signal_name}" if self.signal_name else f"exit {self.returncode}")
            return f"{self.target} failed {where}: {cause} {detail}"
        return f"{self.target} finished {where} {detail}"


def run_isolated(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    memory_limit: object = None,
    timeout: object = "600 s",
    trace_path: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    cap: str | None = None,
    output: str | os.PathLike[str] | None = None,
) -> IsolatedResult:
    """Run ``target`` ("pkg.module:function") in a fresh interpreter under a memory cap.

    A ``rec`` parameter of the function receives a Recorder streaming to ``trace_path``.
    ``kwargs`` must be JSON-serialisable. ``cap`` picks the mechanism: "auto" (cgroup where
    one can be created, else RLIMIT_DATA), "cgroup" or "rlimit"; the environment variable
    HARNESS_ISOLATION_CAP sets the default. Never raises for what the target does: the
    outcome says it. With ``output``, the child's stdout and stderr go to that file instead
    of this process's.
    """
    env_cap = os.environ.get("HARNESS_ISOLATION_CAP")
    chosen = cap or env_cap or "auto"
    if chosen not in CAP_MECHANISMS:
        given = f"cap={chosen!r}" if cap else f"HARNESS_ISOLATION_CAP={chosen!r} (environment)"
        raise HarnessUsageError(f"run_isolated {given} is not one of {', '.join(CAP_MECHANISMS)}")
    mechanism: Mechanism = chosen
    if not isinstance(target, str) or not re.fullmatch(r"[\w.]+:\w+", target):
        raise HarnessUsageError(f"run_isolated target {target!r} must be 'package.module:function'")
    limit = int(parse_size(memory_limit, "run_isolated memory_limit=")) if memory_limit is not None else None
    if limit is not None and limit < 1:
        raise HarnessUsageError(
            f"run_isolated memory_limit={memory_limit!r} is no memory at all; give a cap like '1 GB' (or None for none)"
        )
    seconds = parse_duration(timeout, "run_isolated timeout=")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise HarnessUsageError(f"run_isolated kwargs={kwargs!r} must be a dict of keyword arguments")
    try:
        json.dumps(kwargs or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise HarnessUsageError(f"run_isolated kwargs must be JSON-serialisable: {exc}") from None
    work = Path(tempfile.mkdtemp(prefix="harness-isolated-"))
    try:
        return _run_in(work, target, kwargs, limit, seconds, trace_path, env, cwd, mechanism, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_in(
    work: Path,
    target: str,
    kwargs: dict[str, Any] | None,
    limit: int | None,
    seconds: float,
    trace_path: str | os.PathLike[str] | None,
    env: dict[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    mechanism: Mechanism,
    output: str | os.PathLike[str] | None,
) -> IsolatedResult:
    trace_file = Path(trace_path) if trace_path is not None else work / "trace.jsonl"
    trace_file.parent.mkdir(parents=True, exist_ok=True)
    name = f"harness-{os.getpid()}-{time.monotonic_ns()}"
    applied = _make_cap(limit, name, mechanism)
    spec = {
        "parent_pid": os.getpid(),
        "remove_work_dir": True,
        "target": target,
        "kwargs": kwargs or {},
        "name": target,
        "trace_path": str(trace_file),
        "result_path": str(work / "result.json"),
        "cgroup": str(applied.cgroup) if applied.cgroup else None,
        "rlimit": applied.rlimit,
    }
    (work / "spec.json").write_text(json.dumps(spec))
    child_env = dict(os.environ if env is None else env)
    # The child imports the target the way this process would.
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
    child_env[RUN_MARK] = name  # inherited by every process of the run, however it detaches
    start = time.perf_counter()
    sink = open(output, "wb") if output is not None else None  # noqa: SIM115 (closed below)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.isolation.child", str(work / "spec.json")],
            cwd=cwd,
            env=child_env,
            start_new_session=True,
            stdout=sink,
            stderr=subprocess.STDOUT if sink is not None else None,
        )
    finally:
        if sink is not None:
            sink.close()
    timed_out = False
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # The run's own time: a timeout reads as its limit, not the limit plus the cleanup.
        duration = time.perf_counter() - start
        _stop(proc)
        applied.kill_all()
        kill_marked(name)
    oom_by_kernel = applied.oom_killed()
    applied.remove()
    result: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        result = json.loads((work / "result.json").read_text())
    trace = _load_trace(trace_file, work)
    rc = proc.returncode
    sig = signal.Signals(-rc).name if rc is not None and rc < 0 else None
    outcome: Outcome
    if timed_out:
        outcome = "timeout"
    elif result:
        reported = result.get("outcome")
        outcome = reported if reported in ("ok", "oom") else "error"
    elif sig == "SIGKILL" and oom_by_kernel:  # a SIGKILL from anyone else is no OOM
        outcome = "oom"
    else:
        outcome = "error"
    last_step = result.get("last_step")
    if last_step is None and trace is not None and len(trace):
        last_step = int(trace.steps[-1])
    return IsolatedResult(
        outcome=outcome,
        target=target,
        cap=applied.kind,
        memory_limit=limit,
        returncode=rc,
        signal_name=sig,
        duration_s=duration,
        trace_path=trace_file if trace_path is not None else None,
        trace=trace,
        last_step=int(last_step) if last_step is not None and last_step >= 0 else None,
        error=result.get("error"),
        traceback=result.get("traceback"),
        value=result.get("value"),
    )


def _load_trace(trace_file: Path, work: Path) -> Trace | None:
    """The run's trace; or, where the target recorded with its own recorder and path, that one."""
    candidates = [trace_file]
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        candidates += [Path(p) for p in json.loads((work / "traces.json").read_text())["paths"]]
    best: Trace | None = None
    for path in candidates:
        try:
            trace = Trace.load(path)
        except HarnessError:
            continue
        if best is None or len(trace) > len(best):
            best = trace
    return best


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask the supervisor to kill everything the run started; force it after a grace period."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if proc.poll() is None:
        from harness.isolation.child import kill_tree

        kill_tree(proc.pid)
        _kill_group(proc.pid)
    _kill_group(proc.pid)
    proc.wait()


def kill_marked(run: str) -> list[int]:
    """Kill every process that carries ``RUN_MARK=run`` in its environment; return their pids.

    The supervisor takes the whole run along however it ends, except when it is SIGKILLed
    itself: then its worker dies of PR_SET_PDEATHSIG, but a grandchild that called
    ``setsid()`` is re-parented to init and, without a cgroup, nothing else holds it
    (issue 11). It inherited the mark, so it is found by that. Frozen before killed, so
    none forks a new one in between. Linux only (/proc); costs a read of /proc/*/environ.
    """
    mark = f"{RUN_MARK}={run}".encode()
    me = os.getpid()
    killed: set[int] = set()
    for _ in range(10):
        try:
            entries = os.listdir("/proc")
        except OSError:
            break
        found = set()
        for entry in entries:
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:  # gone, or another user's
                continue
            if mark in environ.split(b"\0"):
                found.add(int(entry))
        if not found - killed:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        killed |= found
    return sorted(killed)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
