"""The isolated-test target: run one test with pytest inside ``harness.run_isolated``'s child."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


def run(args: list[str], junit: str) -> dict[str, object]:
    """Run pytest on ``args``; return its exit code and the failure text of the test, if any."""
    code = int(pytest.main([*args, f"--junitxml={junit}"]))
    failure = ""
    path = Path(junit)
    if path.exists():
        for node in ET.parse(path).iter():
            if node.tag in ("failure", "error"):
                failure = (node.get("message") or "") + "\n" + (node.text or "")
                break
    return {"exitcode": code, "failure": failure.strip()}
