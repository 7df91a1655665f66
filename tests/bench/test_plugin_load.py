"""What merely having the plugin installed costs: ``pytest --help`` with and without it.

Interleaved runs in fresh interpreters (min of each side); the ratio goes to
reports/studies/plugin_load.json and the README. No timing assert: a loaded CI machine
would make it flaky. Round 1 measured 1.14–1.35x (the plugin imported numpy, scipy and
psutil on load); the target is within 5%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "reports" / "studies"
#: As a user's machine runs it: with bytecode caching (this sandbox sets
#: PYTHONDONTWRITEBYTECODE, which makes every import of every plugin compile again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _help(cwd: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider", *extra],
        check=True,
        capture_output=True,
        cwd=cwd,
        env=ENV,
    )
    return time.perf_counter() - t0


def test_pytest_help_with_and_without_the_plugin(tmp_path):
    # In a project of its own (this repo's conftest imports psutil for its own tests).
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    _help(tmp_path), _help(tmp_path, "-p", "no:leak_harness")  # warm the bytecode caches
    with_plugin, without = [], []
    for _ in range(10):
        with_plugin.append(_help(tmp_path))
        without.append(_help(tmp_path, "-p", "no:leak_harness"))
    ratio = min(with_plugin) / min(without)
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"with_plugin_s": min(with_plugin), "without_s": min(without), "ratio": ratio, "runs": 10}
    (OUT / "plugin_load.json").write_text(json.dumps(result, indent=2))
    print(f"\npytest --help: {min(with_plugin):.3f} s with the plugin, {min(without):.3f} s without: {ratio:.3f}x")
    assert with_plugin and without and ratio > 0
