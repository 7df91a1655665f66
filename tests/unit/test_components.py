"""Component verdicts on plain dicts, on traces, and on endpoints that misbehave."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
from harness.errors import ComponentsError, HarnessUsageError
from harness.units import parse_threshold

REQUIRED = {"ui_exploration_actions": "> 50", "intrinsic_reward_total": "> 1.0", "system2_engagements": "> 10"}


def test_active_workers_pass_and_thresholds_are_read_once():
    status = [
        {
            "worker": f"w{i}",
            "metrics": {"ui_exploration_actions": 60, "intrinsic_reward_total": 1.5, "system2_engagements": 11},
        }
        for i in range(3)
    ]
    harness.assert_components_active(status, REQUIRED)
    assert parse_threshold("sum > 10").scope == "sum"
    with pytest.raises(HarnessUsageError, match=r"cannot read threshold 'lots' \(from required\['x'\]\)"):
        harness.assert_components_active(status, {"x": "lots"})


def test_zero_metrics_are_named_in_a_table():
    status = {
        "w1": {"metrics": {"ui_exploration_actions": 0, "intrinsic_reward_total": 0, "system2_engagements": 12}},
        "w2": {"metrics": {"ui_exploration_actions": 0, "intrinsic_reward_total": 0, "system2_engagements": 5}},
    }
    with pytest.raises(ComponentsError) as err:
        harness.assert_components_active(status, REQUIRED)
    text = str(err.value)
    assert text.startswith("2 of 3 metrics are zero on all 2 workers: ui_exploration_actions, intrinsic_reward_total.")
    assert "1 more metric miss their thresholds: system2_engagements (> 10)." in text
    assert "*5 (not > 10)" in text and "*0 (zero)" in text


def test_sum_scope_totals_over_workers():
    status = [{"metrics": {"meta": 2}}, {"metrics": {"meta": 2}}]
    harness.assert_components_active(status, {"meta": "sum > 3"})
    with pytest.raises(ComponentsError):
        harness.assert_components_active(status, {"meta": "sum > 4"})
    harness.assert_components_active(status, {"meta": "1..3"})


class _Bad(BaseHTTPRequestHandler):
    def do_GET(self):
        bodies = {
            "/text": (200, b"<html>oops</html>"),
            "/missing": (200, json.dumps({"metrics": {"other": 1}}).encode()),
            "/negative": (200, json.dumps({"metrics": {"m": -1}}).encode()),
            "/nan": (200, b'{"metrics": {"m": NaN}}'),
            "/zero": (200, json.dumps({"metrics": {"m": 0}}).encode()),
            "/boom": (500, b"error"),
        }
        code, body = bodies[self.path]
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def bad_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_each_kind_of_bad_answer_is_reported_distinctly_and_none_reads_as_zero(bad_server):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/status"
    urls = [dead, *(f"{bad_server}/{p}" for p in ("text", "missing", "negative", "nan", "zero", "boom"))]
    log = harness.poll_status(urls, every="0.2 s", duration="0.3 s", timeout="5 s")
    with pytest.raises(ComponentsError) as err:
        harness.assert_components_active(log, {"m": "> 0"})
    text = str(err.value)
    assert "unreachable (" in text and "not JSON (b'<html>oops</html>')" in text and "HTTP 500" in text
    assert "missing" in text and "negative (-1)" in text and "NaN" in text
    rows = [line for line in text.splitlines() if line.startswith("m ")]
    assert rows and rows[0].count("(zero)") == 1  # only the endpoint that really says 0


def test_a_trace_says_still_zero_or_stopped_increasing():
    # every=1: the wording names sample counts and steps, so no time budget may thin them.
    with harness.record("workers", every=1) as rec:
        for step in rec.steps(300):
            rec.metrics(ui_actions=min(step, 120), system2=0)
    with pytest.raises(ComponentsError) as err:
        harness.assert_components_active(rec.trace, {"ui_actions": "> 200", "system2": "> 0"})
    text = str(err.value)
    assert "ui_actions: 120, not > 200; stopped increasing after step 120" in text
    assert "system2: still zero after 300 samples (steps 0–299)" in text
    harness.assert_components_active(rec.trace, {"ui_actions": "> 100"})
