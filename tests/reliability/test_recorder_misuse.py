"""A recorder used wrongly: from two threads at once, with a non-string event name.

The property: columns stay aligned (analysis never hits an IndexError) or the misuse is a
one-line HarnessUsageError.
"""

from __future__ import annotations

import threading

import pytest
from reliability_profiles import one_line_error

import harness
from harness.errors import HarnessError, HarnessUsageError


def test_two_threads_sampling_one_recorder_leave_aligned_columns():
    errors: list[BaseException] = []
    with harness.record("threads", progress=False) as rec:

        def sample(offset: int) -> None:
            try:
                for i in range(2_000):
                    rec.account(buffer=float(i + offset))
                    rec.sample(i)
            except HarnessError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sample, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    trace = rec.trace
    for name, column in trace.columns.items():
        assert len(column) == len(trace.steps), name
    for name, column in trace.accounting.items():
        assert len(column) == len(trace.steps), name


@pytest.mark.parametrize("name", [123, None, "", b"eviction"])
def test_marking_an_event_with_a_name_that_is_not_text_is_a_usage_error(name):
    with harness.record("marks", progress=False) as rec, pytest.raises(HarnessUsageError) as err:
        rec.mark(name)
    one_line_error(err.value, HarnessUsageError)
