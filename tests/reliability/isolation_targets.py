"""Targets for the isolation fault tests, run inside ``harness.run_isolated``'s child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# It calls setsid() itself (a Popen with start_new_session=True would make it a session
# leader already, and its own setsid() would then fail with EPERM and end it at once).
_ESCAPE = "import os, sys, time\nos.setsid()\nprint(os.getsid(0), flush=True)\ntime.sleep(600)\n"


def spawn_escapee(pidfile: str, then_sleep: float = 0.0) -> int:
    """Start a grandchild that leaves the process group and session (setsid), note the pids
    once it has left."""
    grandchild = subprocess.Popen([sys.executable, "-c", _ESCAPE], stdout=subprocess.PIPE)
    assert grandchild.stdout is not None
    session = grandchild.stdout.readline().strip()
    if session != str(grandchild.pid).encode():
        raise RuntimeError(f"the grandchild did not leave the session: {session!r}")
    cgroup = ""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if "memory" in parts[1].split(","):
                cgroup = parts[2]
    except (OSError, IndexError):
        pass
    info = {"worker": os.getpid(), "supervisor": os.getppid(), "grandchild": grandchild.pid, "cgroup": cgroup}
    tmp = pidfile + ".tmp"
    Path(tmp).write_text(json.dumps(info))
    os.replace(tmp, pidfile)
    time.sleep(then_sleep)
    return grandchild.pid


def slow_steps(rec, steps: int = 100_000, pause: float = 0.005) -> int:
    for _ in rec.steps(steps):
        time.sleep(pause)
    return int(rec.step)


def records_itself(steps: int = 120) -> int:
    import harness

    with harness.record("own", progress=False) as rec:
        for _ in rec.steps(steps):
            pass
    return rec.step


def records_itself_to(path: str, steps: int = 120) -> int:
    import harness

    with harness.record("own", path, progress=False) as rec:
        for _ in rec.steps(steps):
            pass
    return rec.step


def records_nan(rec) -> int:
    for _ in rec.steps(30):
        rec.metrics(loss=float("nan"))
        rec.account(x=float("inf"))
    return rec.step
