"""Who keeps what a window allocated: the holder that existed before it, and the line that stored.

A leak is an allocation that is kept. The allocating line is often in a library or a
helper (``for idx, p in zip(idxs, priorities)`` makes 0-d tensors inside torch), while the
line the user has to change is the one that stores the reference (``self.sum_tree[index]
= value``). ``harness.probes.sites`` finds the *frontier* objects (made in the window,
referenced by an object that existed before it) and their holders; this module names a
holder the way the user's code does (``ListSumTree.sum_tree``, ``Trainer._inflight``, a
closure variable, a module global, the cache of an ``lru_cache``) and searches the user's
source for the statements that store into it:

- into a container: ``<holder>[k] = v``, ``<holder>.append(v)`` (``appendleft``, ``extend``,
  ``insert``, ``add``, ``setdefault``, ``put``...);
- as the value itself: ``self.<name> = v``, ``<name> = v``.

A statement on the line that allocated the object wins; otherwise the one statement that
passes an existing object along (``= value``, ``.append(item)``), since a statement whose
value is a new expression (``a + b``, ``f(x)``) stores what that line itself made. Two
such statements or none: no line is named, only the holder.
"""

from __future__ import annotations

import ast
import functools
import gc
import inspect
import linecache
import os
import sys
import types
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from harness.probes.paths import short_path

#: Methods that put an argument into a container, and which argument is the value.
_ADDERS = {
    "append": 0,
    "appendleft": 0,
    "extend": 0,
    "extendleft": 0,
    "add": 0,
    "put": 0,
    "put_nowait": 0,
    "push": 0,
    "insert": 1,
    "setdefault": 1,
    "__setitem__": 1,
}


@dataclass(frozen=True)
class Keeper:
    """Who keeps a frontier object: the container or owner that existed before the window
    (``held_by``, in words) and, when the user's source shows it, the line that stored it."""

    held_by: str  # "ListSumTree.sum_tree (list)", "closure variable 'losses' of make_eval (list)"
    location: str = ""  # the storing line, "replay_cases.py:33"; "" when no line of the user's stores it
    function: str = ""
    code: str = ""


@dataclass(frozen=True)
class _Ref:
    """How the user's code names a holder: ``kind`` "item" (stores into it) or "value" (binds
    the object itself to ``name``), ``name`` an attribute (``attr``) or a variable, and the
    files to search."""

    kind: str
    name: str
    attr: bool
    files: tuple[str, ...]


class Namer:
    """Names holders and finds the lines that stored into them, for one analysis.

    ``is_user(file)`` tells the user's files; ``frames`` are the running frames whose locals
    count as holders; ``ignore`` are ids of the caller's own containers (which reference
    holders too and must not be taken for their owners). A holder's name costs a scan of
    the gc heap (``gc.get_referrers``) and is kept per holder.
    """

    def __init__(self, is_user: Any, frames: Iterable[types.FrameType] = (), ignore: Iterable[int] = ()) -> None:
        self.is_user = is_user
        self.ignore = set(ignore)
        self._locals: dict[int, tuple[str, types.CodeType]] = {}
        for frame in frames:
            for name, value in list(frame.f_locals.items()):
                self._locals.setdefault(id(value), (name, frame.f_code))
        self._containers: dict[int, tuple[str, _Ref | None]] = {}

    def keeper(self, holder: object, child: object, alloc: tuple[str, int] | None) -> Keeper:
        """Name ``holder`` (which references ``child``) and find the user's line that stored
        ``child`` in it; ``alloc`` is the (file, line) that allocated ``child``."""
        held_by, ref = self._name(holder, child)
        if ref is None:
            return Keeper(held_by)
        alloc = (os.path.abspath(alloc[0]), alloc[1]) if alloc else None
        files = [os.path.abspath(f) for f in (*ref.files, *([alloc[0]] if alloc else [])) if f]
        files = [f for f in dict.fromkeys(files) if self.is_user(f)]
        found = _pick(list(_stores(ref, files)), alloc)
        if found is None:
            return Keeper(held_by)
        filename, line, function, code = found
        return Keeper(held_by, f"{short_path(filename)}:{line}", function, code)

    # -- naming a holder -------------------------------------------------------------------
    def _referrers(self, obj: object) -> list[object]:
        return [r for r in gc.get_referrers(obj) if not isinstance(r, types.FrameType) and id(r) not in self.ignore]

    def _name(self, holder: object, child: object) -> tuple[str, _Ref | None]:
        """(the holder in words, how code names it) for ``holder`` that references ``child``."""
        if isinstance(holder, types.FrameType):  # a local variable of a running function
            name = _key_of(holder.f_locals, child)
            if name is not None:
                return self._local(name, holder.f_code, "value", child)
            return f"a local variable of {holder.f_code.co_name}", None
        if isinstance(holder, types.CellType):
            return self._closure(holder, "value", child)
        if isinstance(holder, dict):
            owner = self._dict_owner(holder)
            if owner is not None:  # an instance's or a module's namespace: ``child`` is a value in it
                name = _key_of(holder, child)
                if isinstance(name, str):
                    return self._attribute(owner, name, "value", child)
        if _has_vars(holder):  # an instance: ``child`` is one of its attributes
            name = _key_of(_vars(holder), child)
            if isinstance(name, str):
                return self._attribute(holder, name, "value", child)
        if id(holder) not in self._containers:
            self._containers[id(holder)] = self._container(holder)
        return self._containers[id(holder)]

    def _dict_owner(self, d: dict[Any, Any]) -> object | None:
        """The instance, class or module whose namespace ``d`` is, if any."""
        name = d.get("__name__")
        if isinstance(name, str):
            module = sys.modules.get(name)
            if module is not None and getattr(module, "__dict__", None) is d:
                return module
        for r in self._referrers(d):
            if getattr(r, "__dict__", None) is d:
                return r
        return None

    def _local(self, name: str, code: types.CodeType, kind: str, child: object) -> tuple[str, _Ref | None]:
        what = f"local variable {name!r} of {code.co_name} ({_kind(child)})"
        return what, _Ref(kind, name, False, (code.co_filename,))

    def _attribute(self, owner: object, name: str, kind: str, child: object) -> tuple[str, _Ref | None]:
        if isinstance(owner, types.ModuleType):
            where = f"module global {owner.__name__}.{name}"
            ref = _Ref(kind, name, False, (getattr(owner, "__file__", None) or "",))
        elif isinstance(owner, type):
            where = f"{owner.__qualname__}.{name} (a class attribute)"
            ref = _Ref(kind, name, True, self._class_files(owner))
        else:
            where = f"{type(owner).__qualname__}.{name}"
            ref = _Ref(kind, name, True, self._class_files(type(owner)))
        return f"{where} ({_kind(child)})", ref

    def _class_files(self, cls: type) -> tuple[str, ...]:
        return tuple(f for c in cls.__mro__ if (f := _file_of(c)) and self.is_user(f))

    def _closure(self, cell: types.CellType, kind: str, child: object) -> tuple[str, _Ref | None]:
        for f in self._referrers(cell):
            if isinstance(f, tuple):  # a function's __closure__ tuple
                for fn in self._referrers(f):
                    if isinstance(fn, types.FunctionType) and fn.__closure__ is f:
                        name = fn.__code__.co_freevars[f.index(cell)]
                        what = f"closure variable {name!r} of {fn.__qualname__}"
                        return f"{what} ({_kind(child)})", _Ref(kind, name, False, (fn.__code__.co_filename,))
        return f"a closure cell ({_kind(child)})", None

    def _container(self, holder: object, depth: int = 0) -> tuple[str, _Ref | None]:
        """A list, dict, deque, set... that existed before the window: named by what holds
        it; else, once, as an item of a container that is named (an episode dict in a deque)."""
        if id(holder) in self._locals:
            local, frame_code = self._locals[id(holder)]
            return self._local(local, frame_code, "item", holder)
        referrers = self._referrers(holder)
        for r in referrers:
            if isinstance(r, types.CellType):
                return self._closure(r, "item", holder)
            if isinstance(r, dict):
                owner = self._dict_owner(r)
                name = _key_of(r, holder)
                if owner is not None and isinstance(name, str):
                    return self._attribute(owner, name, "item", holder)
            elif _has_vars(r) or isinstance(r, type):
                name = _key_of(_vars(r), holder)
                if isinstance(name, str):
                    return self._attribute(r, name, "item", holder)
            wrapped = getattr(r, "__wrapped__", None)
            if wrapped is not None and hasattr(r, "cache_info"):  # functools.lru_cache / cache
                return f"the cache of functools.lru_cache on {_function_words(wrapped)}", None
        if depth == 0:
            for r in referrers:
                if isinstance(r, (list, dict, set, deque)):
                    words, _ref = self._container(r, depth + 1)
                    if _ref is not None:
                        return f"a {_kind(holder)} in {words}", None
        return f"a {_kind(holder)} (its owner not found)", None


def _key_of(mapping: Mapping[Any, Any], obj: object) -> Any:
    """The key under which ``mapping`` holds ``obj``, or None. (A loop, not a generator
    expression: one would close over ``obj`` and put it in a cell, which the holder search
    would then find as the holder of ``obj``.)"""
    for key, value in mapping.items():
        if value is obj:
            return key
    return None


def _function_words(fn: object) -> str:
    code = getattr(fn, "__code__", None)
    at = f" ({short_path(code.co_filename)}:{code.co_firstlineno})" if isinstance(code, types.CodeType) else ""
    return f"{getattr(fn, '__qualname__', fn)}{at}"


def _file_of(obj: object) -> str:
    try:
        return inspect.getsourcefile(obj) or ""  # type: ignore[arg-type]
    except (TypeError, OSError):
        return ""


def _kind(obj: object) -> str:
    return type(obj).__name__


def _has_vars(obj: object) -> bool:
    return not isinstance(obj, (type, types.ModuleType, dict)) and hasattr(obj, "__dict__")


def _vars(obj: object) -> dict[str, Any]:
    try:
        return dict(vars(obj))
    except TypeError:
        return {}


# -- the storing line ------------------------------------------------------------------------
Store = tuple[str, int, str, str, bool]  # file, line, function, code, passes an existing object


@functools.lru_cache(maxsize=256)
def parse_source(filename: str) -> ast.Module | None:
    """The parsed source of a file (None when it has none or does not parse), cached."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _names_holder(node: ast.expr, ref: _Ref) -> bool:
    if ref.attr:
        return isinstance(node, ast.Attribute) and node.attr == ref.name
    return isinstance(node, ast.Name) and node.id == ref.name


def _passes(value: ast.expr | None) -> bool:
    """A value that is an existing object (``value``, ``self.x``, ``batch[i]``), not a new
    one, or a tuple of such (``(view, tensor)``: its items are what is kept)."""
    if isinstance(value, ast.Starred):
        value = value.value
    if isinstance(value, ast.Tuple):
        return bool(value.elts) and all(_passes(e) or isinstance(e, ast.Constant) for e in value.elts)
    return isinstance(value, (ast.Name, ast.Attribute, ast.Subscript))


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """(function name, node) for every function, and the module body as "<module>"."""
    yield "<module>", tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function or module, not those of the functions inside it."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _stores(ref: _Ref, files: Iterable[str]) -> Iterator[Store]:
    for filename in files:
        tree = parse_source(filename)
        if tree is None:
            continue
        for function, scope in _functions(tree):
            for node in _own_nodes(scope):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(_stores_into(target, ref) for target in targets):
                        passes = _passes(node.value) and not isinstance(node, ast.AugAssign)
                        yield filename, node.lineno, function, _code(filename, node.lineno), passes
                elif ref.kind == "item" and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    index = _ADDERS.get(node.func.attr)
                    if index is not None and _names_holder(node.func.value, ref):
                        value = node.args[index] if len(node.args) > index else None
                        yield filename, node.lineno, function, _code(filename, node.lineno), _passes(value)


def _stores_into(target: ast.expr, ref: _Ref) -> bool:
    """``target`` of an assignment stores into the holder (``h[k] = v``) or binds its name (``h = v``)."""
    if ref.kind == "item":
        return isinstance(target, ast.Subscript) and _names_holder(target.value, ref)
    return _names_holder(target, ref)


def _code(filename: str, line: int) -> str:
    return linecache.getline(filename, line).strip()


def _pick(stores: list[Store], alloc: tuple[str, int] | None) -> tuple[str, int, str, str] | None:
    """The statement that stored an object allocated at ``alloc`` (see the module docstring)."""
    stores = sorted(set(stores), key=lambda s: (s[0], s[1]))
    if alloc is not None:
        for filename, line, function, code, _passes_it in stores:
            if line == alloc[1] and filename == alloc[0]:
                return filename, line, function, code
    passing = [s for s in stores if s[4]]
    if len(passing) == 1:
        return passing[0][:4]
    return None
