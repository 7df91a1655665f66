"""A memory-leak regression harness for training loops.

Drive the code past the point where it should reach steady state, record memory the
whole way, and fail with a message that says what grows, how fast, since when, when it
will run out, and who is holding it. See DESIGN.md for the contract of these names.
"""

from __future__ import annotations

from harness.analysis.growth import Diagnosis, GrowthVerdict, PeakVerdict, diagnose, growth_verdict, peak_verdict
from harness.analysis.stats import Growth, robust_growth
from harness.errors import (
    ComponentsError,
    GrowthError,
    HarnessError,
    HarnessUsageError,
    LeakError,
    PeakError,
    ReleaseError,
    TraceError,
)
from harness.isolation.budget import WorkerPlan, plan_workers
from harness.isolation.guard import GuardEvent, MemoryGuard
from harness.isolation.run import IsolatedResult, run_isolated
from harness.probes.liveness import ReleaseTracker, Survivor, find_chains, track_release
from harness.recording.peak import PeakMeter, PeakResult, peak
from harness.recording.recorder import Recorder, record
from harness.recording.soak import SoakBudget, soak_gate
from harness.recording.trace import Event, Trace
from harness.units import format_rate, format_size, parse_rate, parse_size
from harness.verdicts.assertions import assert_no_linear_growth, assert_peak_within
from harness.verdicts.components import StatusLog, assert_components_active, poll_status

__version__ = "0.1.0"

__all__ = [
    "ComponentsError",
    "Diagnosis",
    "Event",
    "Growth",
    "GrowthError",
    "GrowthVerdict",
    "GuardEvent",
    "HarnessError",
    "HarnessUsageError",
    "IsolatedResult",
    "LeakError",
    "MemoryGuard",
    "PeakError",
    "PeakMeter",
    "PeakResult",
    "PeakVerdict",
    "Recorder",
    "ReleaseError",
    "ReleaseTracker",
    "SoakBudget",
    "StatusLog",
    "Survivor",
    "Trace",
    "TraceError",
    "WorkerPlan",
    "assert_components_active",
    "assert_no_linear_growth",
    "assert_peak_within",
    "diagnose",
    "find_chains",
    "format_rate",
    "format_size",
    "growth_verdict",
    "parse_rate",
    "parse_size",
    "peak",
    "peak_verdict",
    "plan_workers",
    "poll_status",
    "record",
    "robust_growth",
    "run_isolated",
    "soak_gate",
    "track_release",
]
