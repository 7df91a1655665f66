"""Component activity: are the parts of a run actually switched on?

Incident 3: every "game-agnostic" component of a 24-hour run read zero on every worker,
and nobody looked until the post-mortem. ``poll_status`` reads workers' JSON status
endpoints concurrently; ``assert_components_active`` fails with a table of workers ×
metrics when a required metric does not meet its threshold, and says whether it was
"still zero after N polls" or "stopped increasing after poll K". A worker that cannot be
read, answers with something that is not JSON, lacks a field, or reports a negative or
NaN value is reported as exactly that: none of these reads as "zero".
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ComponentsError, HarnessError, HarnessUsageError
from harness.recording.trace import Trace
from harness.units import Threshold, parse_duration, parse_threshold


@dataclass(frozen=True)
class Reading:
    """One poll of one worker: its status, or what went wrong reading it."""

    worker: str
    t: float
    status: dict[str, Any] | None = None
    problem: str | None = None  # "unreachable: ...", "not JSON: ...", "HTTP 500"


@dataclass
class StatusLog:
    """Every poll of every worker, in order."""

    workers: list[str]
    polls: list[list[Reading]] = field(default_factory=list)
    duration_s: float = 0.0

    def latest(self, worker: str) -> Reading | None:
        for poll in reversed(self.polls):
            for reading in poll:
                if reading.worker == worker:
                    return reading
        return None


#: Largest status body read; a status endpoint answers with a few KB of JSON.
MAX_BODY = 1 << 20
_CHUNK = 1 << 16


def _read(url: str, timeout: float, t0: float, max_bytes: int = MAX_BODY) -> Reading:
    """One bounded read: at most ``timeout`` seconds in all (not per socket read) and ``max_bytes``."""
    t = time.monotonic() - t0
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                return Reading(url, t, problem=f"status too large ({int(length):,} bytes, limit {max_bytes:,})")
            parts: list[bytes] = []
            size = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Reading(url, t, problem=f"too slow: no complete answer within {timeout:g} s")
                sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
                if sock is not None:
                    sock.settimeout(remaining)
                part = resp.read1(_CHUNK)
                if not part:
                    break
                size += len(part)
                if size > max_bytes:
                    return Reading(url, t, problem=f"status too large (over {max_bytes:,} bytes)")
                parts.append(part)
            body = b"".join(parts)
    except urllib.error.HTTPError as exc:
        return Reading(url, t, problem=f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline:
            return Reading(url, t, problem=f"too slow: no complete answer within {timeout:g} s")
        reason = getattr(exc, "reason", exc)
        return Reading(url, t, problem=_one_line(f"unreachable ({reason})"))
    return _parse_body(url, t, body)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_body(url: str, t: float, body: bytes) -> Reading:
    try:
        status = json.loads(body)
    except RecursionError:
        return Reading(url, t, problem="not JSON this harness reads (nested too deeply)")
    except ValueError:
        return Reading(url, t, problem=f"not JSON ({body[:40]!r})")
    if not isinstance(status, dict):
        return Reading(url, t, problem=f"not a JSON object ({type(status).__name__})")
    return Reading(url, t, status=status)


def _read_all(urls: Sequence[str], timeout: float, t0: float, max_bytes: int) -> list[Reading]:
    """Read every URL concurrently, each in a daemon thread; never wait past the deadline.

    A reader that is still blocked at the deadline is abandoned (it is a daemon thread and
    gives up at its own deadline) and reported as too slow. A reader that crashes is an
    error of the poller, raised here: never reported as a quiet worker.
    """
    results: list[Reading | None] = [None] * len(urls)
    crashes: list[BaseException | None] = [None] * len(urls)

    def work(i: int, url: str) -> None:
        try:
            results[i] = _read(url, timeout, t0, max_bytes)
        except BaseException as exc:  # reported below, in the caller's thread
            crashes[i] = exc

    threads = [
        threading.Thread(target=work, args=(i, url), name=f"harness-poll-{i}", daemon=True)
        for i, url in enumerate(urls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    out: list[Reading] = []
    for i, url in enumerate(urls):
        crash = crashes[i]
        if crash is not None:
            raise HarnessError(
                f"poll_status: the poller crashed reading {url!r}: " + _one_line(f"{type(crash).__name__}: {crash}")
            ) from crash
        reading = results[i]
        if reading is None:
            reading = Reading(url, time.monotonic() - t0, problem=f"too slow: no answer within {timeout:g} s")
        out.append(reading)
    return out


def poll_status(
    urls: Sequence[str],
    *,
    every: object = "5 s",
    duration: object = "30 s",
    timeout: object = "2 s",
    until: Mapping[str, object] | None = None,
    max_bytes: int = MAX_BODY,
) -> StatusLog:
    """Poll every URL each ``every`` for ``duration``, concurrently, each read with ``timeout``.

    ``timeout`` bounds each whole read (connect, headers and body), ``max_bytes`` its size.
    With ``until`` (required metrics and thresholds), stop early once all are met.
    """
    if isinstance(urls, (str, bytes)) or not isinstance(urls, Sequence):
        raise HarnessUsageError(f"poll_status urls={urls!r} must be a list of status URLs")
    if not urls:
        raise HarnessUsageError("poll_status got no URLs to poll")
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise HarnessUsageError(f"poll_status URL {url!r} must be an http:// or https:// URL")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise HarnessUsageError(f"poll_status max_bytes={max_bytes!r} must be a whole number of bytes >= 1")
    period = parse_duration(every, "poll_status every=")
    total = parse_duration(duration, "poll_status duration=")
    limit = parse_duration(timeout, "poll_status timeout=")
    stop_when = _thresholds(until) if until is not None else None
    log = StatusLog(list(urls))
    t0 = time.monotonic()
    while True:
        log.polls.append(_read_all(urls, limit, t0, max_bytes))
        elapsed = time.monotonic() - t0
        if stop_when is not None and not _failures(log, stop_when):
            break
        if elapsed + period > total:
            break
        time.sleep(max(0.0, period - (time.monotonic() - t0 - elapsed)))
    log.duration_s = time.monotonic() - t0
    return log


def _thresholds(required: object) -> dict[str, Threshold]:
    if isinstance(required, Mapping):
        pairs = list(required.items())
    elif isinstance(required, Sequence) and not isinstance(required, (str, bytes)):
        pairs = [(name, "> 0") for name in required]
    else:
        raise HarnessUsageError(
            f"required={required!r} must be a list of metric names or a mapping name -> threshold, "
            "e.g. ['ui_exploration_actions'] or {'ui_exploration_actions': '> 0'}"
        )
    out: dict[str, Threshold] = {}
    for name, threshold in pairs:
        if not isinstance(name, str) or not name:
            raise HarnessUsageError(f"required metric name {name!r} must be a non-empty string")
        out[name] = parse_threshold(threshold, f"required[{name!r}]")
    return out


def _metric(status: Mapping[str, Any], name: str) -> tuple[float | None, str | None]:
    """(value, problem) of a metric in a status (top level or under "metrics")."""
    source = status.get("metrics", status)
    if not isinstance(source, Mapping) or name not in source:
        return None, "missing"
    raw = source[name]
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None, _one_line(f"not a number ({raw!r})", 60)
    try:
        value = float(raw)
    except OverflowError:
        return None, "out of range"
    if math.isnan(value):
        return None, "NaN"
    if value < 0:
        return value, f"negative ({value:g})"
    return value, None


@dataclass(frozen=True)
class Cell:
    value: float | None
    ok: bool
    mark: str  # "", "zero", "below", "missing", "NaN", "negative (-1)", "unreachable ...", ...


def _table(log: StatusLog, required: dict[str, Threshold]) -> dict[str, dict[str, Cell]]:
    table: dict[str, dict[str, Cell]] = {}
    for worker in log.workers:
        reading = log.latest(worker)
        row: dict[str, Cell] = {}
        for name, threshold in required.items():
            if reading is None or reading.status is None:
                row[name] = Cell(None, False, _problem(log, worker))
                continue
            value, problem = _metric(reading.status, name)
            if problem is not None:
                row[name] = Cell(value, False, problem)
            elif threshold.scope == "sum":
                row[name] = Cell(value, True, "")
            else:
                ok = threshold.holds(value if value is not None else math.nan)
                row[name] = Cell(value, ok, "" if ok else "zero" if value == 0 else f"not {threshold.text}")
        table[worker] = row
    return table


def _failures(log: StatusLog, required: dict[str, Threshold]) -> list[str]:
    table = _table(log, required)
    failing = [name for name in required if any(not table[w][name].ok for w in log.workers)]
    for name, threshold in required.items():
        if threshold.scope == "sum" and name not in failing:
            total = sum(table[w][name].value or 0.0 for w in log.workers)
            if not threshold.holds(total):
                failing.append(name)
    return failing


def _history(log: StatusLog, worker: str, name: str) -> str:
    """'still zero after 7 polls' or 'stopped increasing after poll 3 (12.0 s)'."""
    values = []
    for poll in log.polls:
        for reading in poll:
            if reading.worker == worker and reading.status is not None:
                values.append((reading.t, _metric(reading.status, name)[0]))
    seen = [(t, v) for t, v in values if v is not None]
    if not seen:
        return ""
    if all(v == 0 for _, v in seen):
        return f"still zero after {len(seen)} poll{'s' if len(seen) != 1 else ''}"
    last_change = max(i for i in range(len(seen)) if i == 0 or seen[i][1] != seen[i - 1][1])
    if last_change < len(seen) - 1:
        return f"stopped increasing after poll {last_change + 1} ({seen[last_change][0]:.1f} s)"
    return ""


def _short(worker: str) -> str:
    return worker.replace("http://", "").replace("/status", "")


def _render(log: StatusLog, required: dict[str, Threshold], table: dict[str, dict[str, Cell]]) -> str:
    names = list(required)
    short = {w: _short(w) for w in log.workers}
    width = max(len(n) for n in names)
    head = " " * width + " | " + " | ".join(f"{short[w]:>16}" for w in log.workers)
    lines = [head, "-" * len(head)]
    for name in names:
        cells = []
        for w in log.workers:
            cell = table[w][name]
            text = "" if cell.value is None else f"{cell.value:g}"
            if cell.mark:
                text = f"{text} ({cell.mark})".strip() if cell.value is not None else cell.mark
            cells.append(f"{('*' if not cell.ok else '') + text:>16}")
        lines.append(f"{name:<{width}} | " + " | ".join(cells))
    return "\n".join(lines)


def assert_components_active(
    status: StatusLog | Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]] | Trace,
    required: Mapping[str, object] | Sequence[str],
) -> None:
    """Fail with a workers × metrics table when a required metric misses its threshold.

    ``status``: a :class:`StatusLog` from ``poll_status``, your own dicts (one per worker,
    or a mapping worker -> status), or a Trace whose metric columns (``rec.metrics()``)
    hold the components' counters.
    """
    thresholds = _thresholds(required)
    if not thresholds:
        raise HarnessUsageError("assert_components_active needs at least one required metric")
    if isinstance(status, Trace):
        _check_trace(status, thresholds)
        return
    log = _as_log(status)
    if not log.workers:
        raise ComponentsError(
            f"no workers to check: the status names 0 workers, so none of {', '.join(thresholds)} can be active. "
            "Next: check that the workers started and that their status URLs were found."
        )
    failing = _failures(log, thresholds)
    if not failing:
        return
    table = _table(log, thresholds)
    unread = [w for w in log.workers if (r := log.latest(w)) is None or r.status is None]
    zero_everywhere = [n for n in failing if all(table[w][n].mark == "zero" for w in log.workers)]
    polls = len(log.polls)
    after = f" after {log.duration_s:.0f} s ({polls} poll{'s' if polls != 1 else ''})" if log.duration_s else ""
    lines = []
    if zero_everywhere:
        lines.append(
            f"{len(zero_everywhere)} of {len(thresholds)} metrics are zero on all {len(log.workers)} workers{after}: "
            + ", ".join(zero_everywhere)
            + "."
        )
    others = [n for n in failing if n not in zero_everywhere]
    if others:
        lines.append(
            f"{len(others)} more metric{'s' if len(others) != 1 else ''} miss their thresholds: "
            + ", ".join(f"{n} ({thresholds[n].text})" for n in others)
            + "."
        )
    if unread:
        lines.append("Could not read: " + "; ".join(f"{_short(w)}: {_problem(log, w)}" for w in unread) + ".")
    lines.append(_render(log, thresholds, table))
    if len(log.polls) > 1:
        for worker in log.workers:
            texts = {n: h for n in failing if (h := _history(log, worker, n))}
            if len(set(texts.values())) == 1 and len(texts) > 1:
                lines.append(f"{_short(worker)}: all {len(texts)} {next(iter(texts.values()))}.")
            elif texts:
                lines.append(f"{_short(worker)}: " + "; ".join(f"{n} {h}" for n, h in texts.items()) + ".")
    evidence = _config_evidence(log, failing)
    if evidence:
        lines.append(evidence)
    lines.append(
        "Next: check that the config is sourced and its variables exported to the workers, that defaults do not "
        "override it, that the feature flags are on, and that the components are called in the worker loop."
    )
    raise ComponentsError("\n".join(lines))


def _problem(log: StatusLog, worker: str) -> str:
    reading = log.latest(worker)
    return (reading.problem or "no status") if reading is not None else "never polled"


def _config_evidence(log: StatusLog, failing: list[str]) -> str:
    for worker in log.workers:
        reading = log.latest(worker)
        if reading is None or reading.status is None:
            continue
        config = reading.status.get("config")
        if not isinstance(config, Mapping):
            continue
        sources = reading.status.get("config_sources")
        sources = sources if isinstance(sources, Mapping) else {}
        parts = [f"{k}={v}" + (f" ({sources[k]})" if k in sources else "") for k, v in config.items()]
        return f"Worker {_short(worker)} reports config keys " + ", ".join(parts) + "."
    return ""


def _as_log(status: object) -> StatusLog:
    if isinstance(status, StatusLog):
        return status
    if isinstance(status, Mapping):
        items = [(str(k), v) for k, v in status.items()]
    elif isinstance(status, Sequence) and not isinstance(status, (str, bytes)):
        items = [(str(s.get("worker", i)) if isinstance(s, Mapping) else str(i), s) for i, s in enumerate(status)]
    else:
        raise HarnessUsageError(
            f"assert_components_active cannot read status of type {type(status).__name__}: "
            "give poll_status()'s result, a list of status dicts, a mapping worker -> status, or a Trace"
        )
    readings = [
        Reading(name, 0.0, status=dict(s)) if isinstance(s, Mapping) else Reading(name, 0.0, problem="not a mapping")
        for name, s in items
    ]
    return StatusLog([r.worker for r in readings], [readings])


def _check_trace(trace: Trace, thresholds: dict[str, Threshold]) -> None:
    lines = []
    for name, threshold in thresholds.items():
        if name not in trace.metrics_columns:
            lines.append(f"{name}: never recorded (call rec.metrics({name}=...))")
            continue
        values = trace.metrics_columns[name]
        finite = [(trace.steps[i], v) for i, v in enumerate(values) if not math.isnan(v)]
        last = finite[-1][1] if finite else math.nan
        if threshold.holds(last):
            continue
        if finite and all(v == 0 for _, v in finite):
            lines.append(f"{name}: still zero after {len(finite):,} samples (steps {finite[0][0]:,}–{finite[-1][0]:,})")
            continue
        change = max((i for i in range(1, len(finite)) if finite[i][1] != finite[i - 1][1]), default=0)
        lines.append(f"{name}: {last:g}, not {threshold.text}; stopped increasing after step {finite[change][0]:,}")
    if lines:
        raise ComponentsError(
            f"{len(lines)} of {len(thresholds)} component metrics are inactive in trace {trace.name!r}:\n  - "
            + "\n  - ".join(lines)
        )
