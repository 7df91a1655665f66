"""The child side of ``harness.run_isolated``: a fresh interpreter running one target.

``python -m harness._child SPEC.json``. It caps its own memory first (cgroup or rlimit,
as the parent decided), then imports and calls the target, streaming a trace, and writes
a small JSON result. A kill by the kernel leaves no result: the parent reads the exit
signal and the trace instead.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

#: Exit status for "the target ran out of memory and we caught it" (MemoryError).
EXIT_OOM = 3
EXIT_ERROR = 1

# Allocation failures as numpy, torch and the dynamic loader word them: under RLIMIT_DATA a
# later import can fail to map a shared object once the cap is reached.
_OOM_TEXT = (
    "can't allocate memory",
    "cannot allocate memory",
    "out of memory",
    "unable to allocate",
    "failed to map segment",
)


def _cap(spec: dict[str, Any]) -> None:
    cgroup = spec.get("cgroup")
    if cgroup:
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    rlimit = spec.get("rlimit")
    if rlimit:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (int(rlimit), int(rlimit)))


def _write(path: str, payload: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, default=repr)
    os.replace(tmp, path)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    _cap(spec)
    module_name, _, func_name = spec["target"].partition(":")
    result: dict[str, Any] = {"outcome": "error"}
    rec = None
    try:
        import harness

        func = getattr(importlib.import_module(module_name), func_name)
        kwargs = dict(spec.get("kwargs") or {})
        rec = harness.record(spec["name"], spec["trace_path"], gc_types=False, progress=False)
        with rec:
            if "rec" in inspect.signature(func).parameters:
                kwargs["rec"] = rec
            value = func(**kwargs)
        result = {"outcome": "ok", "value": value}
    except MemoryError as exc:
        result = {"outcome": "oom", "error": f"MemoryError: {exc}".rstrip(": ")}
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        oom = any(marker in str(exc).lower() for marker in _OOM_TEXT)
        result = {"outcome": "oom" if oom else "error", "error": text, "traceback": traceback.format_exc()}
    if rec is not None:
        result["last_step"] = rec.step
    _write(spec["result_path"], result)
    return {"ok": 0, "oom": EXIT_OOM}.get(result["outcome"], EXIT_ERROR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
