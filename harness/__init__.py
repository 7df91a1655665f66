"""A memory-leak regression harness for training loops.

Drive the code past the point where it should reach steady state, record memory the
whole way, and fail with a message that says what grows, how fast, since when, when it
will run out, and who is holding it. See DESIGN.md for the contract of these names.

The names below are loaded on first use (PEP 562), so ``import harness`` (and the pytest
plugin, which every project that has it installed loads) costs nothing until a test
records, judges or reports: numpy, scipy and psutil are imported only then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: public name -> module that defines it. The flow: probes -> recording -> analysis ->
#: verdicts -> reports; isolation and the plugin/CLI are adapters over them.
_EXPORTS: dict[str, str] = {
    # probes
    "ReleaseTracker": "harness.probes.liveness",
    "Survivor": "harness.probes.liveness",
    "find_chains": "harness.probes.liveness",
    "track_release": "harness.probes.liveness",
    # recording
    "Event": "harness.recording.trace",
    "Trace": "harness.recording.trace",
    "Recorder": "harness.recording.recorder",
    "record": "harness.recording.recorder",
    "PeakMeter": "harness.recording.peak",
    "PeakResult": "harness.recording.peak",
    "peak": "harness.recording.peak",
    "SoakBudget": "harness.recording.soak",
    "soak_gate": "harness.recording.soak",
    # analysis
    "Growth": "harness.analysis.stats",
    "robust_growth": "harness.analysis.stats",
    "GrowthVerdict": "harness.analysis.growth",
    "growth_verdict": "harness.analysis.growth",
    "PeakVerdict": "harness.analysis.peak",
    "peak_verdict": "harness.analysis.peak",
    "Diagnosis": "harness.analysis.diagnose",
    "diagnose": "harness.analysis.diagnose",
    # verdicts
    "assert_no_linear_growth": "harness.verdicts.assertions",
    "assert_peak_within": "harness.verdicts.assertions",
    "StatusLog": "harness.verdicts.components",
    "assert_components_active": "harness.verdicts.components",
    "poll_status": "harness.verdicts.components",
    # isolation and guards
    "IsolatedResult": "harness.isolation.run",
    "run_isolated": "harness.isolation.run",
    "WorkerPlan": "harness.isolation.budget",
    "plan_workers": "harness.isolation.budget",
    "GuardEvent": "harness.isolation.guard",
    "MemoryGuard": "harness.isolation.guard",
    # errors and units (light)
    "ComponentsError": "harness.errors",
    "GrowthError": "harness.errors",
    "RetentionWarning": "harness.errors",
    "HarnessError": "harness.errors",
    "HarnessUsageError": "harness.errors",
    "LeakError": "harness.errors",
    "PeakError": "harness.errors",
    "ReleaseError": "harness.errors",
    "TraceError": "harness.errors",
    "format_rate": "harness.units",
    "format_size": "harness.units",
    "parse_rate": "harness.units",
    "parse_size": "harness.units",
}

__all__ = sorted(_EXPORTS)


#: Subpackages reachable as attributes (``harness.probes.read_rss()``), loaded on first use.
_SUBMODULES = frozenset(
    {"analysis", "cli", "errors", "isolation", "plugin", "probes", "recording", "reports", "scenarios", "signals"}
    | {"units", "verdicts"}
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"harness.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from harness.analysis.diagnose import (
        Diagnosis as Diagnosis,
    )
    from harness.analysis.diagnose import (
        diagnose as diagnose,
    )
    from harness.analysis.growth import (
        GrowthVerdict as GrowthVerdict,
    )
    from harness.analysis.growth import (
        growth_verdict as growth_verdict,
    )
    from harness.analysis.peak import (
        PeakVerdict as PeakVerdict,
    )
    from harness.analysis.peak import (
        peak_verdict as peak_verdict,
    )
    from harness.analysis.stats import (
        Growth as Growth,
    )
    from harness.analysis.stats import (
        robust_growth as robust_growth,
    )
    from harness.errors import (
        ComponentsError as ComponentsError,
    )
    from harness.errors import (
        GrowthError as GrowthError,
    )
    from harness.errors import (
        HarnessError as HarnessError,
    )
    from harness.errors import (
        HarnessUsageError as HarnessUsageError,
    )
    from harness.errors import (
        LeakError as LeakError,
    )
    from harness.errors import (
        PeakError as PeakError,
    )
    from harness.errors import (
        ReleaseError as ReleaseError,
    )
    from harness.errors import (
        RetentionWarning as RetentionWarning,
    )
    from harness.errors import (
        TraceError as TraceError,
    )
    from harness.isolation.budget import (
        WorkerPlan as WorkerPlan,
    )
    from harness.isolation.budget import (
        plan_workers as plan_workers,
    )
    from harness.isolation.guard import (
        GuardEvent as GuardEvent,
    )
    from harness.isolation.guard import (
        MemoryGuard as MemoryGuard,
    )
    from harness.isolation.run import (
        IsolatedResult as IsolatedResult,
    )
    from harness.isolation.run import (
        run_isolated as run_isolated,
    )
    from harness.probes.liveness import (
        ReleaseTracker as ReleaseTracker,
    )
    from harness.probes.liveness import (
        Survivor as Survivor,
    )
    from harness.probes.liveness import (
        find_chains as find_chains,
    )
    from harness.probes.liveness import (
        track_release as track_release,
    )
    from harness.recording.peak import (
        PeakMeter as PeakMeter,
    )
    from harness.recording.peak import (
        PeakResult as PeakResult,
    )
    from harness.recording.peak import (
        peak as peak,
    )
    from harness.recording.recorder import (
        Recorder as Recorder,
    )
    from harness.recording.recorder import (
        record as record,
    )
    from harness.recording.soak import (
        SoakBudget as SoakBudget,
    )
    from harness.recording.soak import (
        soak_gate as soak_gate,
    )
    from harness.recording.trace import (
        Event as Event,
    )
    from harness.recording.trace import (
        Trace as Trace,
    )
    from harness.units import (
        format_rate as format_rate,
    )
    from harness.units import (
        format_size as format_size,
    )
    from harness.units import (
        parse_rate as parse_rate,
    )
    from harness.units import (
        parse_size as parse_size,
    )
    from harness.verdicts.assertions import (
        assert_no_linear_growth as assert_no_linear_growth,
    )
    from harness.verdicts.assertions import (
        assert_peak_within as assert_peak_within,
    )
    from harness.verdicts.components import (
        StatusLog as StatusLog,
    )
    from harness.verdicts.components import (
        assert_components_active as assert_components_active,
    )
    from harness.verdicts.components import (
        poll_status as poll_status,
    )
