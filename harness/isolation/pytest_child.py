"""The isolated-test target: run one test with pytest inside ``harness.run_isolated``'s child."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


def run(args: list[str], junit: str) -> dict[str, object]:
    """Run pytest on ``args``; return its exit code and the failure text of the test, if any.

    The first failure or error, unless one of them reads as running out of memory: under
    RLIMIT_DATA what the test does after its ``MemoryError`` (a teardown, a report) may fail
    too, and only the allocation failure says what happened.
    """
    from harness.isolation.child import is_allocation_failure

    code = int(pytest.main([*args, f"--junitxml={junit}"]))
    failures: list[str] = []
    path = Path(junit)
    if path.exists():
        for node in ET.parse(path).iter():
            if node.tag in ("failure", "error"):
                failures.append(((node.get("message") or "") + "\n" + (node.text or "")).strip())
    failure = next((f for f in failures if is_allocation_failure(f)), failures[0] if failures else "")
    return {"exitcode": code, "failure": failure}
