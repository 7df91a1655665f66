"""One exception hierarchy for every failure the harness reports.

``LeakError`` is an ``AssertionError`` so pytest reports a verdict as a test failure,
not as an internal error. ``HarnessUsageError`` is for bad input (a bad size string,
an unknown marker argument, an event that was never marked): it is a ``ValueError``
whose message is one line naming the value and where it came from.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of everything the harness raises on purpose."""


class LeakError(HarnessError, AssertionError):
    """A memory verdict failed: the message states figure, limit, window and next step.

    ``verdict`` is the verdict object the message was rendered from (a GrowthVerdict,
    PeakVerdict, ...), so code that catches the error can read the figures.
    """

    def __init__(self, message: str = "", verdict: object = None) -> None:
        super().__init__(message)
        self.verdict = verdict


class GrowthError(LeakError):
    """Memory grows linearly past its limit."""


class PeakError(LeakError):
    """A block's peak memory rose past its budget."""


class ComponentsError(LeakError):
    """Components that should be active report zero (or cannot be read)."""


class ReleaseError(LeakError):
    """Objects that had to die are still alive."""


class RetentionWarning(UserWarning):
    """RSS grows while the allocators' live bytes do not: the process keeps memory it freed
    (allocator retention, fragmentation). Not a leak in the user's code, so a warning."""


class HarnessUsageError(HarnessError, ValueError):
    """Bad input to the harness: a one-line message naming the value and its source."""


class TraceError(HarnessUsageError):
    """A trace cannot be analysed as asked (empty, too short, unknown event or signal)."""


class TooFewSamples(TraceError):
    """The window holds too few samples of a signal for a slope (a short run, a sparse
    probe): the trace itself is fine, and can still be drawn."""
