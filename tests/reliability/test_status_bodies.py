"""Status bodies and the status poller: fuzzed bodies and hostile servers.

The property: a worker's reading is its status or a one-line problem; a verdict is a
ComponentsError or a pass that the metrics justify; a bad argument is a one-line
HarnessUsageError; a crashed poller is a HarnessError of its own.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_profiles import FUZZ, one_line_error

from harness.errors import ComponentsError, HarnessError, HarnessUsageError
from harness.verdicts import components
from harness.verdicts.components import _parse_body, assert_components_active, poll_status

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**400),
        st.floats(),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)
metric_names = st.sampled_from(["actions", "episodes", "rewards"])
statuses = st.one_of(
    json_values,
    st.dictionaries(metric_names, json_values, max_size=3),
    st.fixed_dictionaries({"metrics": st.dictionaries(metric_names, json_values, max_size=3)}),
)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_any_status_body_reads_as_a_json_object_or_a_one_line_problem(body):
    reading = _parse_body("http://w/status", 0.0, body)
    if reading.status is None:
        assert reading.problem and "\n" not in reading.problem
    else:
        assert isinstance(reading.status, dict) and reading.problem is None


def test_a_deeply_nested_status_is_a_problem_not_a_recursion_error():
    reading = _parse_body("http://w/status", 0.0, b"[" * 100_000 + b"]" * 100_000)
    assert reading.status is None and "nested too deeply" in (reading.problem or "")


@FUZZ
@given(st.lists(statuses, max_size=3), st.lists(metric_names, min_size=1, max_size=3, unique=True))
def test_any_statuses_pass_only_when_every_required_metric_is_positive(workers, required):
    try:
        assert_components_active(workers, required=required)
    except ComponentsError as exc:
        assert str(exc).strip()
        return
    except HarnessUsageError as exc:
        one_line_error(exc, HarnessUsageError)
        return
    assert workers, "zero workers passed"
    for status in workers:
        source = status.get("metrics", status)
        for name in required:
            value = source[name]
            assert not isinstance(value, bool) and isinstance(value, (int, float))
            assert float(value) > 0 and not math.isnan(float(value))


def test_zero_workers_fail_instead_of_passing():
    with pytest.raises(ComponentsError, match="no workers to check"):
        assert_components_active([], required=["actions"])


@pytest.mark.parametrize("required", ["actions", b"actions", 3, [3], {"": "> 0"}])
def test_a_required_that_is_not_a_list_of_names_is_refused(required):
    with pytest.raises(HarnessUsageError) as err:
        assert_components_active([{"actions": 1}], required=required)
    one_line_error(err.value, HarnessUsageError)


# -- hostile servers ---------------------------------------------------------------------


@contextmanager
def serve(handler_body):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            handler_body(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status"
    finally:
        server.shutdown()
        server.server_close()


def _trickle(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    try:
        for _ in range(400):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def _huge(handler):
    handler.send_response(200)
    handler.end_headers()
    chunk = b" " * 65536
    try:
        for _ in range(300 * 16):  # 300 MB, no Content-Length
            handler.wfile.write(chunk)
    except OSError:
        pass


def test_a_trickling_server_is_cut_off_at_the_timeout():
    with serve(_trickle) as url:
        t0 = time.monotonic()
        log = poll_status([url], every="1 s", duration="1 s", timeout="1 s")
        took = time.monotonic() - t0
    # A hang would last as long as the server trickles (minutes); 6 s leaves a loaded machine room.
    assert took < 6, f"the poll took {took:.1f} s past a 1 s timeout"
    assert "too slow" in (log.polls[0][0].problem or "")


def test_a_huge_body_is_refused_without_reading_it_all():
    with serve(_huge) as url:
        log = poll_status([url], every="1 s", duration="1 s", timeout="10 s", max_bytes=1 << 20)
    assert "too large" in (log.polls[0][0].problem or "")


def test_a_server_that_never_answers_is_too_slow_not_a_hang():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        t0 = time.monotonic()
        log = poll_status(
            [f"http://127.0.0.1:{listener.getsockname()[1]}/s"], every="1 s", duration="1 s", timeout="1 s"
        )
        assert time.monotonic() - t0 < 6  # not a hang, with room for a loaded machine
        assert log.polls[0][0].problem
    finally:
        listener.close()


def test_a_crashed_poller_is_an_error_of_its_own(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(components, "_read", crash)
    with pytest.raises(HarnessError, match="poller crashed.*RuntimeError: boom") as err:
        poll_status(["http://127.0.0.1:9/status"], every="1 s", duration="1 s", timeout="1 s")
    assert not isinstance(err.value, ComponentsError)


@pytest.mark.parametrize("urls", ["http://a/status", [b"http://a"], ["ftp://a"], [None], []])
def test_bad_urls_are_a_usage_error(urls):
    with pytest.raises(HarnessUsageError) as err:
        poll_status(urls, every="1 s", duration="1 s")
    one_line_error(err.value, HarnessUsageError)
