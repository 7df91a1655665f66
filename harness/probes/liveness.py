"""Liveness: weak references to objects that must die, and who holds the survivors.

A weak reference catches a retained evicted object on the very first eviction it
survives, where a trend test needs hundreds of steps (DESIGN.md). For each survivor we
then find the shortest chain of references from a root (a local variable of a running
frame, a module global) to it, and name each hop in words.

Why a forward search from the roots instead of ``gc.get_referrers`` from the survivor:
numpy arrays are not tracked by the cyclic gc, and CPython untracks tuples and dicts that
hold only untracked objects, so a view of an evicted episode sitting in a tuple is
invisible to ``gc.get_referrers``. ``gc.get_referents`` still walks such containers, and
an array's ``.base`` and a tensor's shared storage are followed explicitly. The search is
breadth first over all roots at once (so the first chain found is a shortest one) and is
capped by depth, object count and time. Torch's C-level references are named: a tensor's
``._backward_hooks`` and ``.grad_fn``, an autograd node's ``.next_functions`` and an
``AccumulateGrad``'s ``.variable``; an item of a hook dict is named with the call that
registered it (``Linear._forward_hooks[3] (a hook registered with register_forward_hook...)``).

A survivor no root reaches is held from outside Python's view. Then the search goes
backwards from it (``gc.get_referrers`` and the untracked containers gc objects hold) to
the nearest object whose reference count exceeds the references Python objects account
for: what holds that object is C code (an ``atexit`` registration, the hook dict of an
autograd node, a C extension's registry), and the chain from it to the survivor is named.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
import types
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from harness.errors import HarnessUsageError, ReleaseError
from harness.probes.paths import short_path

_ATOMIC = (
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    type(None),
    types.CodeType,
    types.BuiltinFunctionType,
    types.ModuleType,
    weakref.ReferenceType,
    range,
)
_HARNESS_PREFIX = "harness"
_SCENARIOS_PREFIX = "harness.scenarios"


@dataclass(frozen=True)
class Hop:
    """One reference in a chain: how ``parent`` holds the next object, and that object."""

    edge: str  # "local 'x' in f (file:12)", ".attr", "[3]", "['key']", ".base", "closure 'x'", ...
    kind: str  # "root", "attr", "item", "key", "base", "closure", "shares", "ref"
    what: str  # a description of the object reached


@dataclass(frozen=True)
class Chain:
    hops: tuple[Hop, ...]

    def __str__(self) -> str:
        parts: list[str] = []
        named = ""  # how the last part names the object it reached (without its description)
        for i, hop in enumerate(self.hops):
            registrar = _hook_registrar(self.hops, i) if hop.kind == "key" else None
            if registrar is not None:
                # "Linear._forward_hooks[3] (a hook registered with register_forward_hook: function f)"
                named = f"{named}{hop.edge}"
                parts[-1] = f"{named} (a hook registered with {registrar}: {hop.what})"
                continue
            if hop.kind == "attr" and i > 0:
                owner = self.hops[i - 1].what.removeprefix("class ").split(",")[0].split(" ")[0]
                named = f"{owner}{hop.edge}"
            else:
                named = hop.edge
            parts.append(f"{named} ({hop.what})")
        return " -> ".join(parts)


#: Hook dicts torch keeps as attributes, and the call that puts a function in each. A module
#: and a tensor both have ``_backward_hooks``; the owner's description tells them apart.
_MODULE_HOOKS = {
    "_forward_hooks": "register_forward_hook",
    "_forward_pre_hooks": "register_forward_pre_hook",
    "_backward_hooks": "register_full_backward_hook",
    "_backward_pre_hooks": "register_full_backward_pre_hook",
    "_state_dict_hooks": "_register_state_dict_hook",
    "_state_dict_pre_hooks": "register_state_dict_pre_hook",
    "_load_state_dict_pre_hooks": "register_load_state_dict_pre_hook",
    "_load_state_dict_post_hooks": "register_load_state_dict_post_hook",
    "_optimizer_step_pre_hooks": "Optimizer.register_step_pre_hook",
    "_optimizer_step_post_hooks": "Optimizer.register_step_post_hook",
    # module globals of torch.nn.modules.module and torch.optim.optimizer
    "_global_forward_hooks": "torch.nn.modules.module.register_module_forward_hook",
    "_global_forward_pre_hooks": "torch.nn.modules.module.register_module_forward_pre_hook",
    "_global_backward_hooks": "torch.nn.modules.module.register_module_full_backward_hook",
    "_global_backward_pre_hooks": "torch.nn.modules.module.register_module_full_backward_pre_hook",
    "_global_optimizer_pre_hooks": "torch.optim.optimizer.register_optimizer_step_pre_hook",
    "_global_optimizer_post_hooks": "torch.optim.optimizer.register_optimizer_step_post_hook",
}
_TENSOR_HOOKS = {
    "_backward_hooks": "Tensor.register_hook",
    "_post_accumulate_grad_hooks": "Tensor.register_post_accumulate_grad_hook",
}


def _hook_registrar(hops: tuple[Hop, ...], i: int) -> str | None:
    """The call that registered item ``i`` of a chain when its container is a torch hook dict."""
    if i == 0:
        return None
    holder = hops[i - 1]
    name = holder.edge.rsplit(".", 1)[-1]
    if holder.kind == "root" and holder.edge.startswith("module global torch."):
        return _MODULE_HOOKS.get(name) if name.startswith("_global_") else None
    if holder.kind != "attr" or i < 2:
        return None
    if hops[i - 2].what.startswith("Tensor "):
        return _TENSOR_HOOKS.get(name)
    registrar = _MODULE_HOOKS.get(name)
    if registrar is None or name.startswith("_global_"):
        return None
    return registrar


@dataclass(frozen=True)
class Survivor:
    label: str
    type_name: str
    chain: Chain | None
    note: str

    def describe(self) -> str:
        held = self.note if self.chain is None else f"held by: {self.chain}" + (f"; {self.note}" if self.note else "")
        return f"{self.label} ({self.type_name}) is still alive, {held}"


def describe(obj: object) -> str:
    """A short description of an object for a chain: type, size, shape."""
    if isinstance(obj, type):
        return f"class {obj.__qualname__}"
    tname = type(obj).__qualname__
    module = type(obj).__module__
    if module == "numpy" and hasattr(obj, "shape"):
        kind = "ndarray view" if getattr(obj, "base", None) is not None else "ndarray"
        return f"{kind} {tuple(obj.shape)} {obj.dtype}"  # type: ignore[attr-defined]
    if module == "torch" and hasattr(obj, "shape"):
        return f"Tensor {tuple(obj.shape)} {obj.dtype}".replace("torch.", "")  # type: ignore[attr-defined]
    if isinstance(obj, (list, tuple, deque, dict, set, frozenset)):
        return f"{tname}, {len(obj):,} items"
    if isinstance(obj, types.FunctionType):
        return f"function {obj.__qualname__}"
    if isinstance(obj, types.MethodType):
        return f"bound method {obj.__func__.__qualname__}"
    return tname


def _short(value: object, width: int = 30) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _frame_label(frame: types.FrameType, name: str) -> str:
    code = frame.f_code
    return f"local {name!r} in {code.co_name} ({short_path(code.co_filename)}:{frame.f_lineno})"


_THIS_FILE = os.path.abspath(__file__)


def _is_search_frame(filename: str) -> bool:
    """A frame of this module: the search's own locals (the survivors it was handed) are not
    retainers. Only this file: a caller inside the harness (``harness run replay`` drives
    the scenario from ``harness/cli``) holds the user's objects like any driver does, and
    skipping every harness frame once hid the CLI's chain behind "outside Python's view"."""
    return os.path.abspath(filename) == _THIS_FILE


def _memory_range(obj: object) -> tuple[int, int] | None:
    """(start, end) of the buffer of a numpy array, or None."""
    if type(obj).__module__ != "numpy":
        return None
    try:
        start = obj.__array_interface__["data"][0]  # type: ignore[attr-defined]
        return (int(start), int(start) + int(obj.nbytes))  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        return None


def _tensor_range(obj: object) -> tuple[int, int] | None:
    if type(obj).__module__ != "torch" or not hasattr(obj, "untyped_storage"):
        return None
    try:
        storage = obj.untyped_storage()
        if storage.device.type != "cpu":
            return None
        start = int(storage.data_ptr())
        return (start, start + int(storage.nbytes()))
    except Exception:  # sparse, meta or otherwise exotic tensors
        return None


def _children(obj: object, target_ranges: list[tuple[int, int, int]]) -> Iterator[tuple[object, str, str]]:
    """(child, edge label, edge kind) for each reference ``obj`` holds."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield value, f"[{_short(key)}]", "key"
            if not isinstance(key, _ATOMIC):
                yield key, "(a key)", "ref"
        return
    if isinstance(obj, (list, tuple, deque)):
        for i, value in enumerate(obj):
            yield value, f"[{i}]", "item"
        return
    if isinstance(obj, (set, frozenset)):
        for value in obj:
            yield value, "(a member)", "item"
        return
    if isinstance(obj, types.FunctionType):
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=False):
            with contextlib.suppress(ValueError):  # an empty cell
                yield cell.cell_contents, f"closure variable {name!r}", "closure"
        for value in obj.__defaults__ or ():
            yield value, "(a default argument)", "ref"
        for name, value in (obj.__kwdefaults__ or {}).items():
            yield value, f"(default of {name!r})", "ref"
        for name, value in obj.__dict__.items():
            yield value, f".{name}", "attr"
        return
    if isinstance(obj, types.MethodType):
        yield obj.__self__, ".__self__", "attr"
        return
    if isinstance(obj, types.FrameType):
        for name, value in obj.f_locals.items():
            yield value, _frame_label(obj, name), "root"
        return
    if isinstance(obj, (types.GeneratorType, types.CoroutineType)):
        frame = obj.gi_frame if isinstance(obj, types.GeneratorType) else obj.cr_frame
        if frame is not None:
            for name, value in frame.f_locals.items():
                yield value, f"generator local {name!r}", "attr"
        return
    if isinstance(obj, types.CellType):
        with contextlib.suppress(ValueError):
            yield obj.cell_contents, "(cell)", "closure"
        return
    if isinstance(obj, type):
        for name, value in list(vars(obj).items()):
            if not name.startswith("__"):
                yield value, f".{name}", "attr"
        return
    module = type(obj).__module__
    if module == "numpy":
        base = getattr(obj, "base", None)
        if base is not None:
            yield base, ".base", "base"
        return
    named: dict[int, str] = {}  # C-level references gc reports without a name
    if module == "torch" and hasattr(obj, "untyped_storage"):
        if target_ranges:
            span = _tensor_range(obj)
            if span is not None:
                for start, end, index in target_ranges:
                    if span[0] < end and start < span[1]:
                        yield _TargetRef(index), "shares memory (torch.from_numpy)", "shares"
        for name in _TENSOR_REFS:
            with contextlib.suppress(Exception):
                value = getattr(obj, name)
                if value is not None:
                    named[id(value)] = name
        # fall through: a tensor's Python attributes may hold more
    elif _is_autograd_node(obj):
        # A graph node holds the next nodes and (AccumulateGrad) the leaf tensor in C++,
        # where gc does not look: a hook on a leaf reached only through a kept graph.
        with contextlib.suppress(Exception):
            for i, (node, _slot) in enumerate(obj.next_functions):  # type: ignore[attr-defined]
                if node is not None:
                    yield node, f".next_functions[{i}]", "attr"
        for name in ("variable", "metadata"):
            with contextlib.suppress(Exception):
                value = getattr(obj, name)
                if value is not None and not (name == "metadata" and not value):
                    yield value, f".{name}", "attr"
        return
    handled_dict = False
    try:
        attrs = vars(obj)
    except TypeError:
        attrs = None
    if attrs is not None:
        handled_dict = True
        for name, value in list(attrs.items()):
            yield value, f".{name}", "attr"
    for cls in type(obj).__mro__:
        for slot in (
            cls.__dict__.get("__slots__", ()) if isinstance(cls.__dict__.get("__slots__", ()), (tuple, list)) else ()
        ):
            if slot in ("__dict__", "__weakref__"):
                continue
            with contextlib.suppress(AttributeError):
                yield getattr(obj, slot), f".{slot}", "attr"
    for ref in gc.get_referents(obj):
        if ref is type(obj) or (handled_dict and ref is attrs) or isinstance(ref, _ATOMIC):
            continue
        label = named.get(id(ref))
        if label is not None:
            yield ref, f".{label}", "attr"
        else:
            yield ref, "(referent)", "ref"


#: A tensor's references kept in C++ that gc reports as bare referents.
_TENSOR_REFS = ("_backward_hooks", "_post_accumulate_grad_hooks", "grad_fn")


def _is_autograd_node(obj: object) -> bool:
    """An autograd graph node (``SumBackward0``, ``AccumulateGrad``): torch defines them in C++
    with no module of their own, so they are told by the methods every node has."""
    tp = type(obj)
    return tp.__module__ == "builtins" and hasattr(tp, "next_functions") and hasattr(tp, "register_prehook")


class _TargetRef:
    """A stand-in edge to target ``index`` (memory shared through a C-level reference)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _frame_roots(skip: Callable[[types.FrameType], bool]) -> Iterator[tuple[object, str]]:
    """Locals of every frame of every thread, innermost first."""
    seen: set[int] = set()
    for frame in list(sys._current_frames().values()):
        f: types.FrameType | None = frame
        while f is not None:
            if id(f) not in seen and not skip(f):
                seen.add(id(f))
                for name, value in list(f.f_locals.items()):
                    yield value, _frame_label(f, name)
            f = f.f_back


def _module_roots() -> Iterator[tuple[object, str]]:
    """Globals of every imported module but the harness's own (its scenarios are code under test)."""
    for modname, mod in list(sys.modules.items()):
        if mod is None or (modname.split(".")[0] == _HARNESS_PREFIX and not modname.startswith(_SCENARIOS_PREFIX)):
            continue
        try:
            items = list(vars(mod).items())
        except TypeError:
            continue
        for attr, value in items:
            if not attr.startswith("__"):
                yield value, f"module global {modname}.{attr}"


def find_chains(
    targets: list[object],
    *,
    max_depth: int = 1_000,
    max_objects: int = 2_000_000,
    time_budget_s: float = 10.0,
    roots: Iterable[tuple[object, str]] | None = None,
) -> tuple[list[Chain | None], str]:
    """Shortest reference chain from a root to each target (None where none was found).

    The roots are the locals of running frames, then module globals; ``roots`` (object,
    label) pairs replace them. Returns the chains and a note on how the search ended
    ("complete", or which cap hit).

    The walk is bounded by objects and time, not by depth: a long-lived process (a pytest
    worker 400 tests in) holds chains deeper than 20 hops from a root, and a search cut at
    depth 20 there was incomplete, so a survivor held from outside Python's view was never
    searched for its holder. Everything reachable there (~200,000 objects) takes ~1.6 s.
    """
    target_index = {id(t): i for i, t in enumerate(targets)}
    target_ranges = [(r[0], r[1], i) for i, t in enumerate(targets) if (r := _memory_range(t)) is not None]
    found: list[Chain | None] = [None] * len(targets)
    remaining = len(targets)
    # parent[id(obj)] = (parent id or None, edge, kind); objects are kept alive in `seen`
    # until the end so ids stay unique, and are only described for the chains reported.
    parent: dict[int, tuple[int | None, str, str]] = {}
    seen: dict[int, object] = {}
    queue: deque[tuple[object, int]] = deque()
    internal = {id(parent), id(seen), id(queue), id(targets), id(found), id(target_index)}
    deadline = time.perf_counter() + time_budget_s

    def skip_frame(frame: types.FrameType) -> bool:
        return _is_search_frame(frame.f_code.co_filename)

    def chain_to(oid: int) -> Chain:
        hops: list[Hop] = []
        cur: int | None = oid
        while cur is not None:
            up, edge, kind = parent[cur]
            hops.append(Hop(edge, kind, describe(seen[cur])))
            cur = up
        return Chain(tuple(reversed(hops)))

    def visit(child: object, parent_id: int | None, edge: str, kind: str, depth: int) -> None:
        nonlocal remaining
        if type(child) is _TargetRef:
            child = targets[child.index]
        cid = id(child)
        if cid in parent or cid in internal or (isinstance(child, _ATOMIC) and cid not in target_index):
            return
        parent[cid] = (parent_id, edge, kind)
        seen[cid] = child
        if cid in target_index:
            idx = target_index[cid]
            if found[idx] is None:
                found[idx] = chain_to(cid)
                remaining -= 1
            return
        queue.append((child, depth))

    status = "complete"
    visited = 0
    with warnings.catch_warnings():
        # Module attributes can warn when read (deprecated aliases); the search only looks.
        warnings.simplefilter("ignore")
        # Two phases: what running frames hold first (the usual owner of a leak in a test,
        # and a small part of the heap), then module globals (caches, registries), which
        # reach most of a torch process.
        phases = (_frame_roots(skip_frame), _module_roots()) if roots is None else (roots,)
        for phase in phases:
            for value, label in phase:
                visit(value, None, label, "root", 1)
            while queue and remaining:
                obj, depth = queue.popleft()
                visited += 1
                if depth >= max_depth:
                    status = f"stopped at depth {max_depth}"
                    continue
                if visited >= max_objects:
                    status = f"stopped after {max_objects:,} objects"
                    break
                if visited % 4096 == 0 and time.perf_counter() > deadline:
                    status = f"stopped after {time_budget_s:g} s ({visited:,} objects)"
                    break
                try:
                    for child, edge, kind in _children(obj, target_ranges):
                        visit(child, id(obj), edge, kind, depth + 1)
                except Exception:  # a hostile __getattr__ or a broken extension type: skip it
                    continue
            if not remaining or (status != "complete" and not status.startswith("stopped at depth")):
                break
    queue.clear()
    seen.clear()
    return found, status


# -- holders outside Python's view ---------------------------------------------------------
_CONTAINERS = (dict, list, tuple, set, frozenset)


def _refs(obj: object) -> list[object]:
    """What ``obj`` references as gc sees it, plus an array's ``.base`` (arrays are not gc objects)."""
    if type(obj).__module__ == "numpy":
        base = getattr(obj, "base", None)
        return [base] if base is not None else []
    return list(gc.get_referents(obj))


def _untracked(deadline: float) -> list[object]:
    """Containers gc does not track (a tuple or dict of numbers and arrays) and numpy arrays,
    reachable from gc objects: ``gc.get_referrers`` cannot return them, so they are searched
    by hand."""
    out: list[object] = []
    seen: set[int] = set()
    batch: list[object] = gc.get_objects()
    while batch and time.perf_counter() < deadline:
        later: list[object] = []
        for start in range(0, len(batch), 8192):
            for child in gc.get_referents(*batch[start : start + 8192]):
                tp = type(child)
                if tp.__module__ == "numpy" and hasattr(child, "base"):
                    pass
                elif tp not in _CONTAINERS or gc.is_tracked(child):
                    continue
                if id(child) not in seen:
                    seen.add(id(child))
                    out.append(child)
                    later.append(child)
        batch = later
    return out


def _unaccounted(box: list[object], extra: list[object], skip: set[int]) -> tuple[int, list[object]]:
    """(references to ``box[0]`` no object that Python can see accounts for, plus a constant
    for this call's own references; the holders Python can see, but for ``skip``)."""
    holders = [h for h in gc.get_referrers(box[0]) if h is not box]
    holders += [e for e in extra if any(r is box[0] for r in _refs(e))]
    known = sum(sum(1 for r in _refs(h) if r is box[0]) for h in holders)
    return sys.getrefcount(box[0]) - known, [h for h in holders if id(h) not in skip]


def _callable_note(obj: object) -> str:
    import signal

    with contextlib.suppress(Exception):
        for sig in signal.valid_signals():
            if signal.getsignal(sig) is obj:
                return f"the handler of {signal.Signals(sig).name} (signal.signal): set another handler"
    return (
        "an atexit.register callback (atexit keeps its callbacks where Python cannot look), a C extension's "
        "callback registry or a torch hook: unregister it (atexit.unregister, the hook handle's .remove()) "
        "or let it hold a weak reference"
    )


def _is_hook_dict(obj: object) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, int) for k in obj)
        and all(callable(v) for v in obj.values())
    )


def _where_defined(obj: object) -> str:
    code = getattr(getattr(obj, "__func__", obj), "__code__", None)
    if not isinstance(code, types.CodeType):
        return ""
    return f" ({short_path(code.co_filename)}:{code.co_firstlineno})"


def find_outside_holder(
    target: object, *, skip: Iterable[int] = (), max_depth: int = 12, time_budget_s: float = 20.0
) -> tuple[Chain | None, str]:
    """For a survivor no root reaches: the nearest object above it (following what holds
    what, backwards) with references no Python object accounts for, and the chain from it.

    Returns (chain, note): the chain starts at that object ("a reference Python cannot
    see") and the note says what such a holder usually is (an atexit registration, a torch
    hook dict, a C extension's registry); (None, "") when none is found. ``skip`` are ids
    of the caller's own containers that hold the target. The target's own count is not
    judged: its callers hold it in local variables, which gc does not see either. It runs
    only for a survivor no root reaches, so its budget is generous (wall-clock: under
    ``pytest -n 2`` on two loaded cores a 5 s budget cut the walk short).
    """
    if not hasattr(sys, "getrefcount"):  # pragma: no cover - not CPython
        return None, ""
    deadline = time.perf_counter() + time_budget_s
    extra = _untracked(deadline)
    # Everything this search holds sits in gc-tracked lists (counted as holders) and in
    # one loop variable, as the calibration probe does: the difference is what C holds.
    kept: list[object] = [target]
    level: list[object] = [target]
    internal = {id(kept), id(level), id(extra), *skip}
    ids = {id(target)}
    base = 0
    for probe in [object()]:
        base, _ = _unaccounted([probe], [], internal)
    for depth in range(max_depth):
        upper: list[object] = []
        internal.add(id(upper))
        for x in level:
            if time.perf_counter() > deadline:
                return None, ""
            gap, holders = _unaccounted([x], extra, internal)
            if depth > 0 and gap > base:
                return _outside_chain(x, kept[0], gap - base)
            # no loop variable may outlive this line holding a holder: it would count as C's
            fresh = [h for h in holders if not isinstance(h, types.FrameType) and id(h) not in ids]
            ids.update(map(id, fresh))
            kept.extend(fresh)
            upper.extend(fresh)
            del holders, fresh
        if not upper:
            break
        level = upper
    return None, ""


def _outside_chain(top: object, target: object, missing: int) -> tuple[Chain | None, str]:
    refs = f"{missing} reference{'s' if missing > 1 else ''} no Python object accounts for"
    root = f"{describe(top)}{_where_defined(top)}, {refs}"
    chains, _ = find_chains([target], roots=[(top, "a reference Python cannot see")], time_budget_s=2.0)
    chain = chains[0]
    if chain is not None:  # name the top object with where it was defined and the missing count
        first = chain.hops[0]
        chain = Chain((Hop(first.edge, first.kind, root), *chain.hops[1:]))
    if _is_hook_dict(top):
        note = (
            "the holder outside Python's view is a hook dict torch keeps in C++ (hooks registered with a "
            "grad_fn's register_hook or register_prehook live in the autograd graph, not in a Python object): "
            "call the handle's .remove() or let the graph go"
        )
    elif callable(top):
        note = "the holder outside Python's view is " + _callable_note(top)
    else:
        note = (
            "the holder outside Python's view is a C extension's registry, a pending device transfer "
            "or an autograd graph"
        )
    return chain, note


def _sync_frame_locals() -> None:
    """Make the frames' ``f_locals`` snapshots drop what the code has deleted since.

    Before Python 3.13, reading ``frame.f_locals`` (the chain search reads every frame's)
    leaves a dict on the frame holding the values the locals had; a local deleted after a
    failed check stayed alive in that dict, so the user's fix (``del obs``) failed the next
    check, "held from outside Python's view". Reading it again re-syncs it. From 3.13
    ``f_locals`` is a live view and holds nothing.
    """
    if sys.version_info >= (3, 13):
        return
    for frame in list(sys._current_frames().values()):
        f: types.FrameType | None = frame
        while f is not None:
            with contextlib.suppress(Exception):
                f.f_locals  # noqa: B018 (the read is the point)
            f = f.f_back


class ReleaseTracker:
    """Watches objects that must die; ``assert_released`` names who holds the survivors."""

    def __init__(self) -> None:
        self._refs: list[tuple[weakref.ReferenceType[Any], str, str]] = []
        self.checks = 0
        self.released = 0

    def __enter__(self) -> ReleaseTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def watch(self, obj: object, label: str | None = None) -> None:
        """Watch ``obj`` (or, for a plain dict/list/tuple, each of its values) until it dies."""
        base = label or f"{type(obj).__qualname__} at {id(obj):#x}"
        try:
            self._refs.append((weakref.ref(obj), base, type(obj).__qualname__))
            return
        except TypeError:
            pass
        members: Iterable[tuple[str, object]]
        if isinstance(obj, dict):
            members = ((f"{base}[{k!r}]", v) for k, v in obj.items())
        elif isinstance(obj, (list, tuple)):
            members = ((f"{base}[{i}]", v) for i, v in enumerate(obj))
        else:
            members = ()
        added = 0
        for member_label, value in members:
            try:
                self._refs.append((weakref.ref(value), member_label, type(value).__qualname__))
                added += 1
            except TypeError:
                continue
        if not added:
            raise HarnessUsageError(
                f"track_release().watch({base!r}): a {type(obj).__qualname__} takes no weak references and holds "
                "nothing that does; watch the arrays or objects it owns"
            )

    @property
    def watched(self) -> int:
        return len(self._refs)

    def alive(self) -> list[tuple[object, str, str]]:
        """(object, label, type) of each watched object still alive after a full gc pass."""
        _sync_frame_locals()
        gc.collect()
        out = []
        for ref, label, tname in self._refs:
            obj = ref()
            if obj is not None:
                out.append((obj, label, tname))
        return out

    def survivors(self, *, max_report: int = 3, time_budget_s: float = 10.0) -> list[Survivor]:
        """Survivors with retainer chains (the first ``max_report`` searched)."""
        alive = self.alive()
        self.checks += 1
        self.released = len(self._refs) - len(alive)
        if not alive:
            return []
        objs = [obj for obj, _, _ in alive[:max_report]]
        chains, status = find_chains(objs, time_budget_s=time_budget_s)
        del objs
        out: list[Survivor] = []
        own = {id(alive), *(id(entry) for entry in alive)}
        for i, (obj, label, tname) in enumerate(alive):
            if i < max_report:
                chain = chains[i]
                note = ""
                if chain is None and status == "complete":
                    chain, note = find_outside_holder(obj, skip=own)
                if chain is None:
                    note = (
                        f"held from outside Python's view (no chain from a module or frame; search {status}): "
                        "a C extension, a pending device transfer, or an autograd graph may hold it"
                    )
                out.append(Survivor(label, tname, chain, note))
            else:
                out.append(Survivor(label, tname, None, "(retainers not searched)"))
        return out

    def assert_released(self, *, max_report: int = 3) -> None:
        """Raise :class:`ReleaseError` naming each survivor and its retainer chain."""
        survivors = self.survivors(max_report=max_report)
        if not survivors:
            _note_release(len(self._refs), [], f"all {len(self._refs)} watched objects were released")
            return
        total = len(self._refs)
        lines = [
            f"{len(survivors)} of {total} watched objects are still alive after a full gc pass "
            f"(they had to be released):"
        ]
        for survivor in survivors[:max_report]:
            lines.append("  - " + survivor.describe())
        if len(survivors) > max_report:
            lines.append(f"  ... and {len(survivors) - max_report} more")
        lines.append(
            "Break the first reference in the chain that should not outlive the object "
            "(copy instead of keeping a view, drain the queue, clear the cache)."
        )
        _note_release(total, survivors, "\n".join(lines))
        raise ReleaseError("\n".join(lines))


def _note_release(watched: int, survivors: list[Survivor], message: str) -> None:
    # The check reaches the test's report page (the plugin collects it); imported here
    # so that probes stay free of the verdict layer until a check is made.
    from harness.verdicts.assertions import note_release

    note_release(watched, survivors, message)


def track_release() -> ReleaseTracker:
    """Weak references to objects that must die; see :class:`ReleaseTracker`."""
    return ReleaseTracker()
