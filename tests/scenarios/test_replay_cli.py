"""`harness run replay` names the same retainer chain as the pytest scenario (incident 1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")


# A minute or so: the scenario runs past the first evictions (capacity 3,000 steps) in a
# fresh interpreter, as a user runs the command.
@pytest.mark.slow
def test_cli_view_leak_names_the_trainer_queue_that_keeps_the_evicted_episodes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "harness.cli", "run", "replay", "--variant", "view_leak"]
    cmd += ["--steps", "3300", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    out = proc.stdout
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "watched objects are still alive after a full gc pass" in out
    # the chain tests/scenarios/test_replay_leak.py finds, from the CLI's own frame
    assert "outside Python's view" not in out
    assert "held by: local 'run' in _run (harness/cli/__init__.py:" in out
    assert "ReplayRun.trainer (Trainer) -> Trainer._inflight (deque" in out
    assert "(ndarray view (8, 32, 32, 3) uint8) -> .base (ndarray (" in out
