"""The child side of ``harness.run_isolated``: a supervisor and the worker that runs the target.

``python -m harness.isolation.child SPEC.json``. The process the parent starts is a small
supervisor; it forks the worker, which caps its own memory (cgroup or rlimit, as the
parent decided), imports and calls the target, streams a trace and writes a small JSON
result. A kill by the kernel leaves no result: the parent reads the exit signal (relayed
by the supervisor as its own) and the trace instead.

Why a supervisor: nothing the target starts may outlive the run, not even a grandchild
that calls ``setsid()`` to leave the process group, and not when the parent pytest is
itself SIGKILLed. The supervisor is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so
every orphaned descendant is re-parented to it and stays in its tree; it stays outside
the memory cap, so the OOM killer takes the worker and not it; and it watches its parent.
When the worker ends, when the parent asks (SIGTERM), or when the parent is gone, it
freezes (SIGSTOP) and then kills (SIGKILL) every descendant and every process in the
cgroup; when the parent is gone it also removes the cgroup and the run's folder. The
worker has ``PR_SET_PDEATHSIG`` = SIGKILL, so a SIGKILLed supervisor takes it along; what
the worker started outlives a SIGKILLed supervisor only until the parent returns, which
kills every process carrying the run's mark in its environment (``run.kill_marked``).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import inspect
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.isolation import reserve

#: Exit status for "the target ran out of memory and we caught it" (MemoryError).
EXIT_OOM = 3
EXIT_ERROR = 1

# Allocation failures as numpy, torch and the dynamic loader word them: under RLIMIT_DATA a
# later import can fail to map a shared object once the cap is reached.
OOM_TEXT = (
    "can't allocate memory",
    "cannot allocate memory",
    "out of memory",
    "unable to allocate",
    "failed to map segment",
)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def is_allocation_failure(text: str) -> bool:
    """Does an error text read as running out of memory (a MemoryError, a refused mmap)?"""
    lowered = text.lower()
    return "memoryerror" in lowered or any(marker in lowered for marker in OOM_TEXT)


def ran_out_of_memory(exc: BaseException | None) -> bool:
    """Is ``exc`` running out of memory: a ``MemoryError``, or an error worded as one (numpy's,
    torch's "can't allocate memory")?"""
    return isinstance(exc, MemoryError) or (exc is not None and is_allocation_failure(str(exc)))


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _cap(spec: dict[str, Any]) -> None:
    cgroup = spec.get("cgroup")
    if cgroup:
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    rlimit = spec.get("rlimit")
    if rlimit:
        import resource

        cap = int(rlimit) + reserve.RESERVE_BYTES
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
        reserve.hold()


def _write(path: str, payload: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, default=repr)
    os.replace(tmp, path)


# -- worker -----------------------------------------------------------------------------


def _adopt_recorders(spec: dict[str, Any], adopted: list[Any]) -> None:
    """Make the target's own ``harness.record(...)`` stream where the parent reads.

    A target without a ``rec`` parameter that records with its own recorder: its first
    recorder without a path streams to the run's trace file; one with a path of its own is
    named in ``traces.json`` (written at once, so a kill keeps it) for the parent to read.
    """
    import harness
    import harness.recording.recorder as recorder_module

    original = recorder_module.record
    index = Path(spec["result_path"]).with_name("traces.json")

    def record(name: str, path: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        if path is None and not adopted:
            path = spec["trace_path"]
        rec = original(name, path, **options)
        adopted.append(rec)
        if path is not None:
            with contextlib.suppress(OSError):
                _write(str(index), {"paths": [str(r.path) for r in adopted if r.path is not None]})
        return rec

    setattr(harness, "record", record)  # noqa: B010 (a module attribute wins over harness's lazy __getattr__)
    setattr(recorder_module, "record", record)  # noqa: B010


def _work(spec: dict[str, Any]) -> int:
    _cap(spec)
    module_name, _, func_name = spec["target"].partition(":")
    result: dict[str, Any] = {"outcome": "error"}
    rec = None
    adopted: list[Any] = []
    try:
        import harness

        func = getattr(importlib.import_module(module_name), func_name)
        kwargs = dict(spec.get("kwargs") or {})
        if "rec" in inspect.signature(func).parameters:
            rec = harness.record(spec["name"], spec["trace_path"], gc_types=False, progress=False)
            with rec:
                kwargs["rec"] = rec
                value = func(**kwargs)
        else:
            _adopt_recorders(spec, adopted)
            value = func(**kwargs)
        result = {"outcome": "ok", "value": value}
    except MemoryError as exc:
        reserve.release()
        result = {"outcome": "oom", "error": f"MemoryError: {exc}".rstrip(": ")}
    except Exception as exc:
        oom = ran_out_of_memory(exc)  # numpy's and torch's allocation failures are worded, not typed
        if oom:
            reserve.release()
        text = f"{type(exc).__name__}: {exc}"
        result = {"outcome": "oom" if oom else "error", "error": text, "traceback": traceback.format_exc()}
    steps = [r.step for r in ([rec] if rec is not None else adopted) if r.step >= 0]
    if steps:
        result["last_step"] = max(steps)
    _write(spec["result_path"], result)
    return {"ok": 0, "oom": EXIT_OOM}.get(result["outcome"], EXIT_ERROR)


def _worker(spec: dict[str, Any], supervisor: int) -> int:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:  # the supervisor died before the line above
        return EXIT_ERROR
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return _work(spec)


# -- supervisor -------------------------------------------------------------------------


def _descendants(root: int) -> set[int]:
    """Every live descendant of ``root`` (from /proc; psutil where /proc lacks it)."""
    try:
        import psutil

        return {p.pid for p in psutil.Process(root).children(recursive=True)}
    except Exception:
        return set()


def _cgroup_pids(spec: dict[str, Any]) -> set[int]:
    cgroup = spec.get("cgroup")
    if not cgroup:
        return set()
    try:
        return {int(p) for p in Path(cgroup, "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def kill_tree(root: int, spec: dict[str, Any] | None = None) -> None:
    """Freeze, then kill, every descendant of ``root`` and every process in the run's cgroup.

    Frozen first, so none can fork a new process between being listed and being killed.
    """
    me = os.getpid()
    frozen: set[int] = set()
    for _ in range(100):
        found = (_descendants(root) | (_cgroup_pids(spec) if spec else set())) - {me, root}
        new = found - frozen
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= new
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _reap_all(worker: int, status: dict[str, int]) -> None:
    """Reap every exited child (orphans re-parented to us included); note the worker's status."""
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == worker:
            status["worker"] = code


def _supervise(spec: dict[str, Any], spec_path: str) -> int:
    parent = int(spec.get("parent_pid") or os.getppid())
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    with contextlib.suppress(ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a relayed SIGSEGV dumps no core here
    stop: list[str] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append("asked"))
    sys.stdout.flush()
    sys.stderr.flush()
    worker = os.fork()
    if worker == 0:
        code = EXIT_ERROR
        try:
            code = _worker(spec, supervisor=os.getppid())
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    status: dict[str, int] = {}
    orphaned = False
    while "worker" not in status:
        _reap_all(worker, status)
        if "worker" in status:
            break
        if os.getppid() != parent:
            orphaned = True
            break
        if stop:
            break
        time.sleep(0.02)
    kill_tree(os.getpid(), spec)
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        _reap_all(worker, status)
        if not _descendants(os.getpid()):
            break
        kill_tree(os.getpid(), spec)
        time.sleep(0.01)
    if orphaned or os.getppid() != parent:
        _clean_up_after_parent(spec, spec_path)
        return EXIT_ERROR
    if "worker" not in status:
        return EXIT_ERROR
    code = status["worker"]
    if os.WIFSIGNALED(code):
        sig = os.WTERMSIG(code)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), sig)  # relay: the parent reads the worker's signal as ours
        return 128 + sig
    return os.WEXITSTATUS(code) if os.WIFEXITED(code) else EXIT_ERROR


def _clean_up_after_parent(spec: dict[str, Any], spec_path: str) -> None:
    """The parent is gone: nobody else will remove the cgroup and the run's folder."""
    cgroup = spec.get("cgroup")
    if cgroup:
        for _ in range(100):
            try:
                os.rmdir(cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
    if spec.get("remove_work_dir"):
        shutil.rmtree(Path(spec_path).parent, ignore_errors=True)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if not spec.get("supervise", True):
        return _work(spec)
    return _supervise(spec, spec_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
