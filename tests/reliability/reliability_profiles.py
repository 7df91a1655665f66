"""Hypothesis settings of the reliability suite: moderate in CI, long at night.

Not a conftest: each fuzz test decorates itself with ``FUZZ``. ``HARNESS_FUZZ_PROFILE``
picks the profile: "ci" (default, 200 examples a test), "nightly" (20,000 a test, the
nightly job) or "smoke" (20, for a quick local look).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much]}
settings.register_profile("harness-ci", max_examples=200, **_COMMON)
settings.register_profile("harness-nightly", max_examples=20_000, **_COMMON)
settings.register_profile("harness-smoke", max_examples=20, **_COMMON)

PROFILE = os.environ.get("HARNESS_FUZZ_PROFILE", "ci")
FUZZ = settings.get_profile(f"harness-{PROFILE}")
#: For fuzzers whose every example runs a process or writes a file: a tenth as many.
FUZZ_SLOW = settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 10))


def one_line_error(exc: BaseException, kind: type[BaseException]) -> None:
    """The harness's own error, with a message that is one non-empty line."""
    assert isinstance(exc, kind), f"{type(exc).__name__} is not a {kind.__name__}: {exc!r}"
    text = str(exc)
    assert text.strip(), "empty message"
    assert "\n" not in text, f"message is not one line: {text!r}"
