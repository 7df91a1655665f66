"""Allocation sites of growth: which lines made the memory that a window added and kept.

``SiteTracker`` runs memray (native traces, Python allocators traced) over a window: from
``start()`` (the window's event) to ``stop()`` (its end). At ``stop()``, while the user's
objects are still alive, it

1. reads every allocation of the window that is still alive at its end (memray's events,
   replayed: an allocation freed before the end is not growth);
2. finds who keeps them (``keepers``): Python objects allocated in the window and
   referenced by an object that existed before it (an entry into a list, a dict, a cache,
   a registry) are the *frontier*; every window allocation reachable from a frontier
   object (its referents, an array's data buffer, a tensor's storage) is charged to the
   line that made that frontier object. Memory Python cannot see (a kept tensor's autograd
   graph: nodes and saved activations made through ``torch::autograd``) is charged to
   the kept tensors that hold a graph; other memory no Python object reaches, made in the
   same Python call as objects a frontier keeps (a tensor's C++ ``TensorImpl`` beside its
   Python ``Tensor``), goes with them. What no frontier reaches keeps its own line;
3. names each allocation by the *user's frame*: the first frame, from the innermost,
   outside the harness, pytest, the standard library and installed packages (torch,
   numpy, ...), keeping the native leaf as context; a line that returns what it made
   (``return x``, or a ``def``/assignment whose name the function returns) hands it to
   its caller, and a constructor's ``self.x = ...`` to the line that constructs the object;
4. names the holder of each frontier object (``harness.probes.keepers``: ``Trainer._inflight``,
   ``ListSumTree.sum_tree``, a closure variable, an ``lru_cache``) and the user's line that
   stored it there, when the source shows one. A site is that *keeping line* (else the line
   that made the frontier object); under it, as context, who keeps it and the line that
   allocated most of its bytes when that is another (``kept by ListSumTree.sum_tree (list);
   allocated at replay_cases.py:83 in update_priorities``). A user needs both: the
   allocating line is often in a helper or a library call, the storing line is what to change.

The result is a tuple of :class:`harness.analysis.growth.Site`, largest first, and a
self-contained HTML icicle graph of the kept allocations (``write_flamegraph``).
"""

from __future__ import annotations

import ast
import gc
import html
import linecache
import os
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.analysis.growth import Site
from harness.probes.keepers import Keeper, Namer, parse_source
from harness.probes.paths import short_path

#: memray allocator kinds that free (PYMALLOC_FREE, FREE, MUNMAP).
_FREES = {1, 5, 15}
#: Frames that never count as the user's: the harness (but its built-in scenarios are
#: code under test), pytest and its plumbing, importlib and frozen modules.
_HARNESS_DIR = str(Path(__file__).resolve().parent.parent) + os.sep
_SCENARIOS_DIR = _HARNESS_DIR + "scenarios" + os.sep
_LIBRARY_DIRS = tuple(
    {p + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(key))}
)
#: Native frames that mark memory made by torch's autograd (graph nodes, saved tensors).
_AUTOGRAD = "torch::autograd"
#: Most sites named, and most frames per stack kept for the flamegraph.
MAX_SITES = 8
MAX_FRAMES = 40


def is_user_file(filename: str) -> bool:
    """True for code the user wrote (or the code under test), not libraries or the harness."""
    if not filename or filename.startswith("<"):
        return False
    path = filename if os.path.isabs(filename) else os.path.abspath(filename)
    if path.startswith(_HARNESS_DIR):
        return path.startswith(_SCENARIOS_DIR)
    if "site-packages" in path or "dist-packages" in path:
        return False
    return not path.startswith(_LIBRARY_DIRS)


def _is_harness_internal(filename: str) -> bool:
    path = filename if os.path.isabs(filename) else os.path.abspath(filename)
    return path.startswith(_HARNESS_DIR) and not path.startswith(_SCENARIOS_DIR)


Frame = tuple[str, str, int]  # function, filename, line


@dataclass
class _Block:
    size: int
    key: tuple[int, int]  # (python stack id, native stack id)
    index: int  # order of the allocation among the window's events


@dataclass
class _Stack:
    """One distinct stack of the window's kept allocations."""

    python: tuple[Frame, ...]  # innermost first
    native: tuple[str, ...]  # native function names between the user frame and the allocator
    autograd: bool
    user: int | None  # index into python of the user's frame (after hand-off to callers)
    harness: bool  # the harness's own memory (trace rows...): not the user's growth


Charge = tuple[tuple[int, int], tuple[int, int], int]  # (origin stack, frontier stack, keeper index or -1)


@dataclass
class Tracked:
    """What a window of site tracking found (before grouping)."""

    steps: int
    seconds: float
    stacks: dict[tuple[int, int], _Stack] = field(default_factory=dict)
    #: per (stack key, charged-to stack key, keeper): [bytes kept from the window's first
    #: half, from its second half, blocks, bytes kept in all]. Growth keeps bytes from both
    #: halves alike, while one-off allocations of the first steps (caches, optimizer state)
    #: sit in the first and a ring buffer's current contents or the last step's temporaries
    #: in the second: see :func:`_kept_per_half`.
    charges: dict[Charge, list[int]] = field(default_factory=dict)
    keepers: list[Keeper] = field(default_factory=list)
    kept_by_frontier: int = 0
    total: int = 0


class SiteTracker:
    """Track allocation sites over a window with memray; see the module docstring."""

    def __init__(self, capture: str | os.PathLike[str] | None = None, *, native: bool = True) -> None:
        self._own_file = capture is None
        self.capture = Path(capture) if capture is not None else None
        self.native = native
        self._tracker: Any = None
        self._t0 = 0.0
        self.start_step = 0
        self.after: str | None = None
        self.tracked: Tracked | None = None
        self.error: str | None = None

    @property
    def active(self) -> bool:
        return self._tracker is not None

    def start(self, step: int = 0, after: str | None = None) -> None:
        """Start (or restart, at a later event) tracking; the window runs from here."""
        if self._tracker is not None:
            self._close_tracker()
        try:
            import memray
        except ImportError:
            self.error = "site tracking needs memray: pip install memray"
            return
        if self.capture is None or self._own_file:
            fd, name = tempfile.mkstemp(prefix="harness-where-", suffix=".bin")
            os.close(fd)
            self.capture = Path(name)
        self.capture.parent.mkdir(parents=True, exist_ok=True)
        if self.capture.exists():
            self.capture.unlink()
        tracker = memray.Tracker(
            str(self.capture), native_traces=self.native, trace_python_allocators=True, follow_fork=False
        )
        try:
            tracker.__enter__()
        except RuntimeError as exc:  # another memray Tracker (pytest-memray, --leak-memray) is active
            self.error = f"site tracking skipped: {exc}"
            return
        self.error = None
        self._tracker = tracker
        self.start_step, self.after = step, after
        self._t0 = time.perf_counter()

    def _close_tracker(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.__exit__(None, None, None)

    def stop(self, end_step: int) -> tuple[Site, ...]:
        """Stop tracking at ``end_step`` and name the sites (the user's objects must still be alive)."""
        if self._tracker is None:
            return ()
        seconds = time.perf_counter() - self._t0
        self._close_tracker()
        assert self.capture is not None
        steps = max(1, end_step - self.start_step)
        try:
            self.tracked = analyse(self.capture, steps, seconds)
        finally:
            if self._own_file:
                self.capture.unlink(missing_ok=True)
        return group(self.tracked)

    def finish(
        self, end_step: int, trace_path: str | os.PathLike[str] | None = None, title: str = "growth"
    ) -> dict[str, Any]:
        """Stop, name the sites and write the growth flamegraph next to the trace: the
        metadata the recorder keeps (``sites``, ``sites_window``, ``growth_flamegraph``...)."""
        if self._tracker is None:
            return {"sites_error": self.error} if self.error else {}
        try:
            sites = self.stop(end_step)
        except Exception as exc:  # site tracking must never break the recording
            self._close_tracker()
            return {"sites_error": f"site tracking failed: {type(exc).__name__}: {exc}"}
        out = self.meta(sites, end_step)
        if trace_path is not None and self.tracked is not None:
            trace = Path(trace_path)
            stem = trace.name.split(".")[0]
            name = "growth.flamegraph.html" if stem == "trace" else f"{stem}.growth.flamegraph.html"
            try:
                out["growth_flamegraph"] = str(write_flamegraph(self.tracked, sites, trace.with_name(name), title))
            except OSError as exc:
                out["sites_error"] = f"growth flamegraph not written: {exc}"
        return out

    def meta(self, sites: tuple[Site, ...], end_step: int) -> dict[str, Any]:
        """What the recorder keeps in the trace's metadata."""
        from dataclasses import asdict

        out: dict[str, Any] = {
            "sites": [asdict(s) for s in sites],
            "sites_window": [self.start_step, end_step],
            "sites_after": self.after,
        }
        if self.tracked is not None:
            out["sites_seconds"] = round(self.tracked.seconds, 3)
            out["sites_detail"] = details(self.tracked)
        if self.error:
            out["sites_error"] = self.error
        return out


# -- reading a capture ---------------------------------------------------------------------
def _live_blocks(reader: Any) -> tuple[dict[int, _Block], dict[tuple[int, int], Any], int]:
    """Replay the capture's events: the allocations still alive at its end, by address,
    and how many allocations the window made. A block's ``index`` counts the code under
    test's allocations only: counting frees too put the "half" of the window at a quarter
    of it (the smaller half read a 65 KB/step leak as 40 KB/step), and the harness's own
    samples are denser early in a window."""
    live: dict[int, _Block] = {}
    records: dict[tuple[int, int], Any] = {}
    harness: dict[int, bool] = {}  # Python stack id -> made by the harness (not counted)
    index = 0
    for rec in reader.get_allocation_records():
        kind = int(rec.allocator)
        if kind in _FREES:
            live.pop(rec.address, None)
            continue
        if rec.size <= 0:
            continue
        key = (rec.stack_id, rec.native_stack_id)
        live[rec.address] = _Block(rec.size, key, index)
        own = harness.get(rec.stack_id)
        if own is None:
            own = harness[rec.stack_id] = _harness_made(rec)
        index += not own
        if key not in records:
            records[key] = rec
    return live, records, index


def _harness_made(record: Any) -> bool:
    """The allocation's innermost frame outside libraries is the harness's own (its samples)."""
    for _fn, filename, _ln in record.stack_trace(max_stacks=MAX_FRAMES * 2):
        if is_user_file(filename):
            return False
        if _is_harness_internal(filename):
            return True
    return False


def _stack(record: Any) -> _Stack:
    python: tuple[Frame, ...] = tuple((f, fn, ln) for f, fn, ln in record.stack_trace(max_stacks=MAX_FRAMES * 2))
    native: list[str] = []
    autograd = False
    try:
        hybrid = record.hybrid_stack_trace(max_stacks=MAX_FRAMES * 4)
    except Exception:  # no native traces in this capture
        hybrid = []
    for name, filename, _line in hybrid:
        if filename.endswith(".py"):
            break
        if _AUTOGRAD in name:
            autograd = True
        if not name.startswith(("_Py", "Py", "_PyEval", "cfunction", "method_vectorcall", "vectorcall")):
            native.append(name)
    user: int | None = None
    harness = False
    for i, (_fn, filename, _ln) in enumerate(python):
        if is_user_file(filename):
            user = i
            break
        if _is_harness_internal(filename):
            harness = True
            break
    if user is not None:
        user = _hand_off(python, user)
    return _Stack(python, tuple(native), autograd, user, harness)


def _hand_off(python: tuple[Frame, ...], index: int) -> int:
    """Move from a line that returns what it made to the user frame that called it."""
    while True:
        _fn, filename, line = python[index]
        if not _returns_what_it_makes(filename, line):
            return index
        caller = next((j for j in range(index + 1, len(python)) if is_user_file(python[j][1])), None)
        if caller is None or caller != index + 1:
            return index  # called through library code: the library kept it, not the caller
        index = caller


@lru_cache(maxsize=4096)
def _returns_what_it_makes(filename: str, line: int) -> bool:
    tree = _parse(filename)
    if tree is None:
        return False
    func = _innermost_function(tree, line)
    if func is None:
        return False
    stmt = next(
        (
            s
            for s in ast.walk(func)
            if isinstance(s, ast.stmt) and s.lineno <= line <= (s.end_lineno or s.lineno) and s is not func
        ),
        None,
    )
    if stmt is None:
        return False
    # the innermost statement holding the line
    for s in ast.walk(stmt):
        if isinstance(s, ast.stmt) and s.lineno <= line <= (s.end_lineno or s.lineno):
            stmt = s
    if isinstance(stmt, ast.Return):
        return True
    if func.name == "__init__" and _builds_self(stmt):
        return True
    names: set[str] = set()
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(stmt.name)
    elif isinstance(stmt, ast.Assign):
        names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and isinstance(stmt.target, ast.Name):
        names.add(stmt.target.id)
    if not names:
        return False
    own_returns = [
        r for r in ast.walk(func) if isinstance(r, ast.Return) and _innermost_function(func, r.lineno) is func
    ]
    return any(isinstance(r.value, ast.Name) and r.value.id in names for r in own_returns)


def _writes_tuple(stack: _Stack) -> bool:
    """The stack's user line builds a tuple in its source (``(view, tensor)``, ``a, b``)."""
    if stack.user is None:
        return False
    _fn, filename, line = stack.python[stack.user]
    return _line_builds_tuple(filename, line)


@lru_cache(maxsize=4096)
def _line_builds_tuple(filename: str, line: int) -> bool:
    tree = _parse(filename)
    if tree is None:
        return True  # no source: keep the tuple as it is
    return any(
        isinstance(node, ast.Tuple)
        and isinstance(node.ctx, ast.Load)
        and node.lineno <= line <= (node.end_lineno or node.lineno)
        for node in ast.walk(tree)
    )


def _builds_self(stmt: ast.stmt) -> bool:
    """``self.x = ...`` or ``super().__init__(...)``: in a constructor, what it stores on the
    object belongs to the line that constructs the object."""
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return any(
            isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self" for t in targets
        )
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "__init__"
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "super"
        )
    return False


_parse = parse_source  # one cache of parsed user files for both modules


def _innermost_function(tree: ast.AST, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    best: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body[0].lineno <= line <= (node.end_lineno or node.lineno)  # its body, not its def
            and (best is None or node.lineno >= best.lineno)
        ):
            best = node
    return best


# -- who keeps it --------------------------------------------------------------------------
_GC_FLAG = 1 << 14  # Py_TPFLAGS_HAVE_GC
_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT (3.11+): two pointers before the GC header


def _block_of(obj: object) -> int:
    """Address of the allocation holding ``obj`` (its id less the headers before it)."""
    flags = type(obj).__flags__
    start = id(obj)
    if flags & _GC_FLAG:
        start -= 2 * 8
    if sys.version_info >= (3, 11) and flags & _MANAGED_DICT:
        start -= 2 * 8
    return start


def _buffers(obj: object) -> Iterator[int]:
    """Addresses of native buffers an object owns (numpy data, torch storage)."""
    module = type(obj).__module__
    try:
        if module == "numpy" and getattr(obj, "base", 1) is None:
            yield int(obj.__array_interface__["data"][0])  # type: ignore[attr-defined]
        elif module == "torch" and hasattr(obj, "untyped_storage"):
            yield int(obj.untyped_storage().data_ptr())
    except Exception:  # pragma: no cover - exotic arrays
        return


def _user_frames() -> list[Any]:
    """Running frames but the harness's own."""
    return [f for f in _running_frames() if not _is_harness_internal(f.f_code.co_filename)]


def _running_frames() -> Iterator[Any]:
    for top in sys._current_frames().values():
        frame: Any = top
        while frame is not None:
            yield frame
            frame = frame.f_back


def _referents(obj: object) -> list[object]:
    """What ``obj`` holds: gc's referents, and an array's ``.base`` (arrays are not gc objects)."""
    try:
        out = list(gc.get_referents(obj))
    except Exception:  # pragma: no cover
        return []
    if type(obj).__module__ == "numpy":
        base = getattr(obj, "base", None)
        if base is not None:
            out.append(base)
    return out


def _holds_graph(obj: object) -> bool:
    return type(obj).__module__ == "torch" and getattr(obj, "grad_fn", None) is not None


def _graph_shares(graphs: list[tuple[int, object]], live: dict[int, _Block]) -> list[tuple[tuple[int, int], float]]:
    """Split memory made by autograd among the kept tensors holding a graph, by the graph
    nodes each one reaches that no larger graph reaches (``total`` keeps the nodes of every
    ``loss`` added to it; the last ``loss`` alone keeps none of its own)."""
    reach: list[tuple[int, int, list[object]]] = []
    for block, tensor in graphs:
        nodes: list[object] = []
        seen: set[int] = set()
        stack = [getattr(tensor, "grad_fn", None)]
        while stack and len(nodes) < 1_000_000:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)  # kept alive for the walk, so ids stay unique
            for nxt, _ in getattr(node, "next_functions", ()):
                stack.append(nxt)
        reach.append((len(nodes), block, nodes))
    reach.sort(key=lambda r: -r[0])
    claimed: set[int] = set()
    counts: dict[tuple[int, int], int] = {}
    for _n, block, nodes in reach:
        own = [n for n in nodes if id(n) not in claimed]
        claimed.update(id(n) for n in own)
        if own and block in live:
            counts[live[block].key] = counts.get(live[block].key, 0) + len(own)
    total = sum(counts.values())
    return [(key, count / total) for key, count in counts.items()] if total else []


Held = dict[int, tuple[object, object]]  # frontier block -> (the old object holding it, the frontier object)


def keepers(
    live: dict[int, _Block],
    wrote_tuple: Callable[[int], bool] = lambda block: True,
    exclude: set[int] | frozenset[int] = frozenset(),
) -> tuple[dict[int, int], list[tuple[int, object]], Held]:
    """Charge window allocations to the frontier object that keeps them.

    Returns ``charged`` (block address -> frontier block address), the frontier blocks of
    kept tensors that hold an autograd graph, and ``held`` (frontier block -> (the object
    that existed before the window and references it, the frontier object)).
    ``wrote_tuple(block)``: the user's line that made a new tuple wrote it (see
    :func:`_look_through_tuples`); ``exclude``: ids of the caller's objects, not holders.
    """
    offsets: dict[type, int] = {}

    def block_of(obj: object) -> int:
        tp = type(obj)
        off = offsets.get(tp)
        if off is None:
            off = offsets[tp] = id(obj) - _block_of(obj)
        return id(obj) - off

    # Old gc objects, then the old untracked containers they hold (a dict of numbers, a
    # tuple of strings): whatever new they reference is a frontier object. Referents are
    # read a chunk of parents at a time; a chunk that holds a new frontier object is read
    # again one parent at a time, to know which old object holds it.
    old = batch = [o for o in gc.get_objects() if block_of(o) not in live and id(o) not in exclude]
    frontier: list[tuple[int, object]] = []
    held: Held = {}
    found: set[int] = set()
    visited: set[int] = set()
    containers = (dict, list, tuple, set, frozenset)
    while batch:
        later = []
        for start in range(0, len(batch), 512):
            chunk = batch[start : start + 512]
            new = False
            for child in gc.get_referents(*chunk):
                cblock = block_of(child)
                if cblock in live:
                    if cblock not in found:
                        found.add(cblock)
                        frontier.append((cblock, child))
                        new = True
                elif type(child) in containers and not gc.is_tracked(child) and id(child) not in visited:
                    visited.add(id(child))
                    later.append(child)
            if new:
                for parent in chunk:
                    for child in gc.get_referents(parent):
                        cblock = block_of(child)
                        if cblock in live and cblock not in held:
                            held[cblock] = (parent, child)
        batch = later
    # Running frames are roots too (their locals are not gc objects until looked at).
    for frame in _user_frames():
        for value in list(frame.f_locals.values()):
            vblock = _block_of(value)
            if vblock in live:
                frontier.append((vblock, value))
                held.setdefault(vblock, (frame, value))
    frontier, wrappers = _look_through_tuples(frontier, held, old, live, block_of, wrote_tuple)
    charged: dict[int, int] = {}
    graphs: list[tuple[int, object]] = []
    queue: list[tuple[int, object, int]] = []
    for block, obj in frontier:
        if block not in charged:
            charged[block] = block
            queue.append((block, obj, block))
            if _holds_graph(obj):
                graphs.append((block, obj))
    while queue:
        block, obj, owner = queue.pop()
        for buf in _buffers(obj):
            if buf in live and buf not in charged:
                charged[buf] = owner
        for child in _referents(obj):
            cblock = _block_of(child)
            if cblock in live and cblock not in charged:
                charged[cblock] = owner
                queue.append((cblock, child, owner))
    for tblock, first in wrappers.items():  # a looked-through tuple goes with its first new item
        if tblock not in charged and first in charged:
            charged[tblock] = charged[first]
    return charged, graphs, held


def _look_through_tuples(
    frontier: list[tuple[int, object]],
    held: Held,
    old: list[object],
    live: dict[int, _Block],
    block_of: Callable[[object], int],
    wrote_tuple: Callable[[int], bool],
) -> tuple[list[tuple[int, object]], dict[int, int]]:
    """Frontier tuples nobody wrote are looked through: their new items are what is kept.

    A tuple is immutable, so an "old" tuple that references new objects was made in the
    window too: CPython recycled it from its free list, where memray sees no allocation.
    A new tuple that the user's line did not write (the argument tuple an ``lru_cache``
    keeps as its key, a library's record) is plumbing as well. Either way its new items are
    the frontier, kept by the tuple's holder; the tuple goes with its first new item. A
    tuple the user wrote (``queue.append((view, tensor))``) stays what is kept.
    Returns the new frontier and {tuple block: block of its first new item}.
    """
    recycled: dict[int, object] = {id(h): h for h, _c in held.values() if type(h) is tuple}
    parents = _holders_of(recycled, old) if recycled else {}
    for block, (holder, child) in list(held.items()):
        if id(holder) in parents:
            held[block] = (parents[id(holder)], child)
    out: list[tuple[int, object]] = []
    wrappers: dict[int, int] = {}
    todo = list(reversed(frontier))
    while todo:
        block, obj = todo.pop()
        if type(obj) is tuple and not wrote_tuple(block):
            inner = [(b, item) for item in obj if (b := block_of(item)) in live]
            if inner:
                holder = held.get(block, (None, None))[0]
                wrappers[block] = inner[0][0]
                for b, item in inner:
                    if holder is not None and (b not in held or held[b][0] is obj):
                        held[b] = (holder, item)
                todo.extend(reversed(inner))
                continue
        out.append((block, obj))
    return out, wrappers


def _holders_of(targets: dict[int, object], old: list[object]) -> dict[int, object]:
    """id(target) -> an old object that references it (one bulk pass over ``old``)."""
    out: dict[int, object] = {}
    for start in range(0, len(old), 512):
        chunk = old[start : start + 512]
        if any(id(child) in targets for child in gc.get_referents(*chunk)):
            for parent in chunk:
                if id(parent) in targets:
                    continue
                for child in gc.get_referents(parent):
                    if id(child) in targets and id(child) not in out:
                        out[id(child)] = parent
    return out


def _name_keepers(
    held: Held,
    weight: dict[int, int],
    live: dict[int, _Block],
    stacks: dict[tuple[int, int], _Stack],
) -> tuple[list[Keeper], dict[int, int]]:
    """Keepers of the frontier blocks whose holders keep the most bytes (``weight``: kept
    bytes per frontier block), as a list and frontier block -> index into it. Naming a
    holder costs a scan of the gc heap, so only the largest few are named."""
    by_holder: dict[int, list[int]] = {}
    for block, (holder, _child) in held.items():
        by_holder.setdefault(id(holder), []).append(block)
    ranked = sorted(by_holder.values(), key=lambda blocks: -sum(weight.get(b, 0) for b in blocks))
    out: list[Keeper] = []
    index: dict[tuple[int, str], int] = {}
    of_block: dict[int, int] = {}
    own = [held, by_holder, *by_holder.values(), *held.values()]  # this analysis's containers
    namer = Namer(is_user_file, _user_frames(), ignore=map(id, own))
    for blocks in ranked[: 2 * MAX_SITES]:
        # one name per holder and allocating line (what line stored it can differ by line)
        for block in blocks:
            holder, child = held[block]
            stack = stacks[live[block].key]
            frame = stack.python[stack.user] if stack.user is not None else None
            alloc = (frame[1], frame[2]) if frame is not None else None
            slot = (id(holder), f"{alloc}")
            if slot not in index:
                index[slot] = len(out)
                out.append(namer.keeper(holder, child, alloc))
            of_block[block] = index[slot]
    return out, of_block


def analyse(capture: Path, steps: int, seconds: float) -> Tracked:
    """Read a window's capture and charge each kept allocation to a site (see module doc)."""
    from memray import FileReader

    reader = FileReader(str(capture))
    try:
        live, records, allocations = _live_blocks(reader)
        half = allocations // 2
    finally:
        reader.close()
    keys = {b.key for b in live.values()}
    stacks = {key: _stack(rec) for key, rec in records.items() if key in keys}
    # The harness's own allocations (trace rows) are not the user's growth.
    live = {a: b for a, b in live.items() if not stacks[b.key].harness}
    # This analysis's own objects are not old objects that could hold the window's memory
    # (a block the code under test freed after the window ended can be reused by them).
    own = [stacks, records, *stacks.values()]
    own += [part for st in stacks.values() for part in (st.python, st.native, *st.python)]
    charged, graphs, held = keepers(
        live, lambda block: _writes_tuple(stacks[live[block].key]), exclude={id(o) for o in own}
    )
    del own
    tracked = Tracked(steps=steps, seconds=seconds, stacks=stacks)
    graph_owners = _graph_shares(graphs, live)
    weight: dict[int, int] = {}
    for addr, block in live.items():
        owner = charged.get(addr)
        if owner is not None and owner in live:
            weight[owner] = weight.get(owner, 0) + block.size
        elif graph_owners and stacks[block.key].autograd:  # a kept graph: its tensors' holders come first
            for graph_block, _tensor in graphs:
                weight[graph_block] = weight.get(graph_block, 0) + block.size
    tracked.keepers, keeper_index = _name_keepers(held, weight, live, stacks)

    def site_of(owner: int) -> tuple[tuple[int, int], int]:
        return live[owner].key, keeper_index.get(owner, -1)

    graph_keepers = {live[b].key: keeper_index.get(b, -1) for b, _t in graphs if b in live}

    # Memory made in the same Python call as objects a frontier keeps, which no Python
    # object reaches (a tensor's TensorImpl and storage bookkeeping, made in C++ beside the
    # Python Tensor), goes with those objects: by Python stack, in the share of bytes kept.
    follows: dict[int, dict[tuple[tuple[int, int], int], int]] = {}
    for addr, block in live.items():
        owner = charged.get(addr)
        if owner is not None and owner in live:
            shares = follows.setdefault(block.key[0], {})
            site = site_of(owner)
            shares[site] = shares.get(site, 0) + block.size
    for addr, block in live.items():
        tracked.total += block.size
        owner = charged.get(addr)
        targets: list[tuple[tuple[int, int], int, float]]
        if owner is not None and owner in live:
            key, keeper = site_of(owner)
            targets = [(key, keeper, 1.0)]
            tracked.kept_by_frontier += block.size
        elif graph_owners and stacks[block.key].autograd:
            targets = [(key, graph_keepers.get(key, -1), part) for key, part in graph_owners]
            tracked.kept_by_frontier += block.size
        elif block.key[0] in follows:
            shares = follows[block.key[0]]
            total = sum(shares.values())
            targets = [(key, keeper, size / total) for (key, keeper), size in shares.items()]
            tracked.kept_by_frontier += block.size
        else:
            targets = [(block.key, -1, 1.0)]
        late = 1 if block.index >= half else 0
        for target, keeper, part in targets:
            slot = tracked.charges.setdefault((block.key, target, keeper), [0, 0, 0, 0])
            slot[late] += int(block.size * part)
            slot[2] += 1
            slot[3] += int(block.size * part)
    return tracked


# -- grouping ------------------------------------------------------------------------------
def _location(stack: _Stack) -> tuple[str, str, str]:
    """(location, function, code) of a stack's user frame, or of its innermost frame."""
    if stack.user is not None:
        fn, filename, line = stack.python[stack.user]
    elif stack.python:
        fn, filename, line = stack.python[0]
    else:
        leaf = stack.native[0] if stack.native else "?"
        return "(no Python frame)", leaf, ""
    code = linecache.getline(filename, line).strip()
    return f"{short_path(filename)}:{line}", fn, code


def _native_words(stack: _Stack) -> str:
    names = [_short_native(n) for n in stack.native]
    names = [n for n in names if n]
    if not names:
        return ""
    if stack.autograd and names:
        return "torch autograd (native: " + (f"{names[-1]} … {names[0]}" if len(names) > 1 else names[0]) + ")"
    return f"{names[-1]} … {names[0]}" if len(names) > 1 else names[0]


def _short_native(name: str) -> str:
    name = name.split("(")[0]
    if name.startswith(("operator new", "operator delete")):
        return "operator new"
    return name[:60]


def _groups(tracked: Tracked) -> list[dict[str, Any]]:
    """Kept bytes per keeping line, largest first: the line that stored the frontier object
    when the user's source shows it, else the line that made it. Each group also knows the
    line that allocated most of its bytes and the holder that keeps most of them."""
    by_loc: dict[str, dict[str, Any]] = {}
    for (origin, target, keeper_index), (first, second, blocks, _all) in tracked.charges.items():
        keeper = tracked.keepers[keeper_index] if keeper_index >= 0 else None
        if keeper is not None and keeper.location:
            loc, fn, code = keeper.location, keeper.function, keeper.code
        else:
            loc, fn, code = _location(tracked.stacks[target])
        slot = by_loc.setdefault(
            loc,
            {"location": loc, "function": fn, "code": code, "halves": [0, 0], "blocks": 0}
            | {"native": {}, "allocated": {}, "held_by": {}},
        )
        slot["halves"][0] += first
        slot["halves"][1] += second
        slot["blocks"] += blocks
        size = first + second
        origin_stack = tracked.stacks[origin]
        for name, value in (
            ("native", _native_words(origin_stack)),
            ("allocated", _location(origin_stack)[:2]),
            ("held_by", keeper.held_by if keeper is not None else ""),  # "": no holder named
        ):
            if value or name == "held_by":
                slot[name][value] = slot[name].get(value, 0) + size
    groups = []
    for slot in by_loc.values():
        slot["bytes"] = _kept_per_half(*slot["halves"])
        for name in ("native", "allocated", "held_by"):  # what most of the bytes have
            slot[name] = max(slot[name], key=slot[name].get) if slot[name] else None
        slot["held_by"] = slot["held_by"] or None
        if slot["bytes"] > 0:
            groups.append(slot)
    groups.sort(key=lambda g: -g["bytes"])
    return groups[:MAX_SITES]


def _kept_per_half(first: int, second: int) -> float:
    """Bytes a site keeps per half window: their mean when the halves agree within 2x
    (growth), else the smaller half (a one-off or a ring buffer's contents sits in one).
    The halves split the window's allocations, not its steps, so a steady leak can fall
    45/55 where other allocations are uneven; the mean does not understate it."""
    low, high = min(first, second), max(first, second)
    return (first + second) / 2 if high <= 2 * low else float(low)


def _context(group: dict[str, Any]) -> str:
    """The words under a site: who keeps it, where it was allocated (when elsewhere), the native leaf."""
    parts = []
    if group["held_by"]:
        parts.append(f"kept by {group['held_by']}")
    allocated = group["allocated"]
    if allocated and allocated[0] != group["location"]:
        parts.append(f"allocated at {allocated[0]} in {allocated[1]}")
    if group["native"]:
        parts.append(group["native"])
    return "; ".join(parts)


def group(tracked: Tracked) -> tuple[Site, ...]:
    """Sites: kept bytes per keeping line (charged through keepers), largest first."""
    groups = _groups(tracked)
    total = sum(g["bytes"] for g in groups) or 1
    return tuple(
        Site(
            location=g["location"],
            function=g["function"],
            code=g["code"],
            bytes_per_step=g["bytes"] / max(tracked.steps / 2, 1),
            share=g["bytes"] / total,
            native=_context(g),
            blocks=g["blocks"],
            kept_by=g["held_by"] or "",
            allocated_at=g["allocated"][0] if g["allocated"] and g["allocated"][0] != g["location"] else "",
        )
        for g in groups
    )


def details(tracked: Tracked) -> list[dict[str, str]]:
    """Per site, in the order of :func:`group`: the line that keeps it, the line that
    allocated most of its bytes, and the holder (``sites_detail`` in the trace's metadata)."""
    return [
        {
            "location": g["location"],
            "allocated": g["allocated"][0] if g["allocated"] else "",
            "kept_by": g["held_by"] or "",
        }
        for g in _groups(tracked)
    ]


# -- the growth flamegraph -----------------------------------------------------------------
@dataclass
class _Node:
    name: str
    value: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def growth_tree(tracked: Tracked) -> _Node:
    """Kept bytes by call path (outermost user frame first), the native leaf last."""
    root = _Node("all kept allocations")
    for (origin, _target, _keeper), (_first, _second, _blocks, size) in tracked.charges.items():
        stack = tracked.stacks[origin]
        frames = list(reversed(stack.python))
        first_user = next((i for i, f in enumerate(frames) if is_user_file(f[1])), 0)
        path = [f"{fn} ({short_path(filename)}:{line})" for fn, filename, line in frames[first_user:]]
        words = _native_words(stack)
        if words:
            path.append(words)
        node = root
        node.value += size
        for name in path[:MAX_FRAMES]:
            node = node.children.setdefault(name, _Node(name))
            node.value += size
    return root


def _icicle(node: _Node, total: int, depth: int, out: list[str]) -> None:
    for child in sorted(node.children.values(), key=lambda n: -n.value):
        width = 100.0 * child.value / max(node.value, 1)
        if child.value * 1000 < total:  # thinner than 0.1%: folded into the parent
            continue
        label = html.escape(child.name)
        size = html.escape(_fmt_bytes(child.value))
        out.append(
            f'<div class="n" style="width:{width:.3f}%" title="{label} — {size}">'
            f'<div class="f d{depth % 6}">{label} <span class="b">{size}</span></div><div class="c">'
        )
        _icicle(child, total, depth + 1, out)
        out.append("</div></div>")


def _fmt_bytes(n: float) -> str:
    from harness.units import format_size

    return format_size(n)


def write_flamegraph(
    tracked: Tracked, sites: Iterable[Site], out: str | os.PathLike[str], title: str = "growth"
) -> Path:
    """A self-contained HTML icicle graph of what the window kept (no scripts, no network)."""
    from harness.units import format_rate

    path = Path(out)
    root = growth_tree(tracked)
    parts: list[str] = []
    _icicle(root, max(root.value, 1), 0, parts)
    rows = "".join(
        f"<tr><td><code>{html.escape(s.location)}</code></td><td>{html.escape(s.function)}</td>"
        f"<td><code>{html.escape(s.code)}</code></td><td>{html.escape(format_rate(s.bytes_per_step))}</td>"
        f"<td>{s.share:.0%}</td><td>{html.escape(s.native)}</td></tr>"
        for s in sites
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}: growth flamegraph</title>
<style>
body{{font:13px system-ui,sans-serif;margin:1em;color:#222}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
.g{{display:flex;flex-direction:column;width:100%}}
.n{{display:inline-flex;flex-direction:column;vertical-align:top;overflow:hidden;box-sizing:border-box}}
.c{{display:flex;flex-direction:row}}
.f{{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;border:1px solid #fff;padding:1px 3px;font-size:12px}}
.b{{color:#555}}
.d0{{background:#f8c471}}.d1{{background:#f5b041}}.d2{{background:#eb984e}}.d3{{background:#f0b27a}}
.d4{{background:#f7dc6f}}.d5{{background:#f9e79f}}
</style></head><body>
<h1>{html.escape(title)}: allocations the window kept</h1>
<p>{html.escape(_fmt_bytes(root.value))} allocated in steps {tracked.steps:,} of the window and alive at its end,
charged to the line that keeps them. Widths are bytes; hover a frame for its full name.</p>
<table><thead><tr><th>site</th><th>function</th><th>code</th><th>kept per step</th><th>share</th>
<th>kept by · allocated at · native</th></tr></thead><tbody>{rows}</tbody></table>
<div class="g"><div class="c">{"".join(parts)}</div></div>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
