"""Run history: what a run was (time, commit, machine, options) and the log of past runs.

``reports/runs.jsonl`` is append-only, one line per pytest session that wrote reports;
``reports/runs/<run id>/`` keeps that run's index and its test pages, so the next run,
which rewrites ``reports/<test>/``, never loses an earlier one. The index lists the log
newest first.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUNS_LOG = "runs.jsonl"
RUNS_DIR = "runs"


def machine_info() -> dict[str, Any]:
    """The machine as a report names it (host, system, Python, CPUs, memory)."""
    info: dict[str, Any] = {
        "node": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count() or 0,
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory"] = int(pages * size)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def machine_id(info: Mapping[str, Any]) -> str:
    """pytest-benchmark's machine id (system-implementation-python-arch), plus memory in GB:
    a memory figure from a 16 GB runner says little about a 64 GB one."""
    python = ".".join(str(info.get("python", "")).split(".")[:2])
    gb = f"-{round(int(info['memory']) / 1e9)}GB" if info.get("memory") else ""
    return f"{info.get('system')}-{info.get('implementation')}-{python}-{info.get('machine')}{gb}"


def commit_info(root: Path) -> dict[str, Any]:
    """The git commit of ``root`` (id, branch, uncommitted changes); {} outside git."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False)
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {}
    info: dict[str, Any] = {"id": commit}
    try:
        info["branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
        info["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def now() -> datetime:
    return datetime.now(timezone.utc)


def run_id(started: datetime) -> str:
    """A folder name that sorts by time and stays unique between concurrent sessions."""
    return f"{started.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def append_run(report_dir: Path, entry: Mapping[str, Any]) -> None:
    """Append one run to the log (one write of one line: concurrent sessions interleave
    whole lines)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
    fd = os.open(report_dir / RUNS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def read_runs(report_dir: Path) -> list[dict[str, Any]]:
    """Past runs, newest first; unreadable lines (a run killed mid-write) are skipped."""
    try:
        text = (report_dir / RUNS_LOG).read_text(encoding="utf-8")
    except OSError:
        return []
    runs = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "id" in entry:
            runs.append(entry)
    runs.sort(key=lambda e: str(e.get("started", "")), reverse=True)
    return runs
