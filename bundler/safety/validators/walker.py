"""Walk every object a payload built, with its attribute path, and run the validator registered for its class.

Why walk everything: native code (Cython, C, C++) trusts the state it is given, and a payload can put crafted state
anywhere the unpickler can reach: inside lists, tuples, dicts, sets, deques, ordered and default dicts, instance
dicts, ``__slots__``, object arrays, ``functools.partial`` objects, and the pickled state of extension types. A
validator that only looks where a model normally keeps its trees is bypassed by a tree kept somewhere else. So the
walk visits each object once (by identity, so shared and cyclic structures cost nothing extra), with a bound on the
number of objects, and

* refuses any class or function found in the graph that the payload could only have put there as a *value* and
  that is not allowed there (``Allowlist.may_hold``, or a placement listed in ``placements``);
* runs the validator registered for the object's exact class (``bundler.safety.validators.registry``);
* descends into the children of containers and instances, and into the reduced state of extension types that have
  no validator of their own (their validators look at what they hold).

Paths (``model.estimators_[3].tree_``) are only formatted when something is wrong. Keys are rendered without calling
``repr`` on payload objects (a crafted ``__repr__`` would run, or raise).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context", "Node", "ValidationProblem", "walk"]

_ATOMS = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None), slice, range})
#: Containers whose items hashing, comparing, ``repr`` and numpy's array conversion visit one by one.
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset, deque})
#: Values that visiting a container may reach, counting a container shared by several parents once per parent,
#: beyond which the payload is refused (above ``max_objects`` too: no payload holds more values than that
#: without sharing). ``t(i+1) = (t(i), t(i))`` built from the memo is 2**i values in a few hundred bytes:
#: ``set()``, ``==`` or ``np.asarray`` on it never ends.
MAX_EXPANDED = 1 << 22


@dataclass(frozen=True)
class ValidationProblem:
    """One finding: where (an attribute path from the model's root) and what is wrong there."""

    path: str
    message: str

    @property
    def line(self) -> str:
        return f"{self.path}: {self.message}"


class Node:
    """An object in the graph, with the parent it was reached from and the key it was reached by."""

    __slots__ = ("key", "obj", "parent")

    def __init__(self, obj: Any, parent: Node | None, key: str) -> None:
        self.obj = obj
        self.parent = parent
        self.key = key

    def path(self) -> str:
        parts = []
        node: Node | None = self
        while node is not None:
            parts.append(node.key)
            node = node.parent
        return "".join(reversed(parts))

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def child(self, obj: Any, key: str) -> Node:
        return Node(obj, self, key)


@dataclass
class Context:
    """What validators share during one walk."""

    np: Any
    handed: Mapping[int, str]
    may_hold: Callable[[str], bool]
    placements: Mapping[str, frozenset[tuple[str, str]]]
    validators: Mapping[str, Callable[[Any, Node, Context], None]]
    max_objects: int
    generic: Callable[[Any, Node, Context], None] | None = None  # runs for every scikit-learn object
    batch_validators: Mapping[str, Callable[[list[tuple[Any, Node]], Context], None]] = field(default_factory=dict)
    problems: list[ValidationProblem] = field(default_factory=list)
    batches: dict[str, list[tuple[Any, Node]]] = field(default_factory=dict)
    queue: deque[Node] = field(default_factory=deque)
    seen: set[int] = field(default_factory=set)
    visited: int = 0
    shared: dict[int, Node] = field(default_factory=dict)  # containers reached from more than one parent

    def fail(self, node: Node, message: str, attribute: str | None = None) -> None:
        path = node.path() + (f".{attribute}" if attribute else "")
        self.problems.append(ValidationProblem(path, message))

    def enqueue(self, node: Node) -> None:
        """Validate and descend into ``node`` later (validators call this for the objects they hold)."""
        obj = node.obj
        t = type(obj)
        if t in _ATOMS:
            return
        if id(obj) in self.seen:
            if t in _CONTAINERS and id(obj) not in self.shared:
                self.shared[id(obj)] = node
            return
        self.queue.append(node)


def key_text(key: Any) -> str:
    """``[key]`` for a path, never calling the key's own ``__repr__``."""
    if type(key) is str:
        shown = key if len(key) <= 40 else key[:40] + "..."
        return f"[{shown!r}]"
    if type(key) in (int, bool, float) or key is None:
        return f"[{key!r}]"
    return f"[<{type(key).__name__}>]"


def qualname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _is_extension(t: type) -> bool:
    return not t.__flags__ & (1 << 9)  # Py_TPFLAGS_HEAPTYPE: classes written in Python are heap types


def walk(root: Any, ctx: Context) -> list[ValidationProblem]:
    """Validate ``root`` and everything reachable from it; returns every problem found."""
    ctx.queue.append(Node(root, None, "model"))
    while ctx.queue:
        node = ctx.queue.popleft()
        obj = node.obj
        oid = id(obj)
        if oid in ctx.seen:
            if type(obj) in _CONTAINERS and oid not in ctx.shared:
                ctx.shared[oid] = node
            continue
        ctx.seen.add(oid)
        ctx.visited += 1
        if ctx.visited > ctx.max_objects:
            ctx.fail(node, f"the model's object graph has more than {ctx.max_objects} objects; refusing to "
                           "validate it")
            break
        _visit(obj, node, ctx)
    if ctx.shared:
        _check_expansion(ctx)
    for tname, items in ctx.batches.items():
        try:
            ctx.batch_validators[tname](items, ctx)
        except Exception as exc:  # noqa: BLE001 - a batch validator meeting state it cannot read: the state is crafted
            ctx.fail(items[0][1], f"state cannot be validated ({type(exc).__name__}: {_one_line(exc)})")
    return ctx.problems


def _visit(obj: Any, node: Node, ctx: Context) -> None:
    """One object: its validators, then what it holds (queued, so that depth never meets the recursion limit)."""
    t = type(obj)
    if t in _ATOMS:
        return
    label = ctx.handed.get(id(obj))
    if label is not None:
        _check_held(node, label, ctx)
        return
    if _global_like(obj, t):
        # Not handed out by the unpickler: library code put it there while rebuilding an object (scikit-learn's
        # IsotonicRegression rebuilds an interp1d that holds its own method), not the payload.
        return
    tname = f"{t.__module__}.{t.__qualname__}"
    if tname in ctx.batch_validators:
        # Validated together with every other object of its class once the walk is over (a forest's trees:
        # one vectorized pass instead of one per tree). They hold no Python objects of their own.
        ctx.batches.setdefault(tname, []).append((obj, node))
        return
    validator = ctx.validators.get(tname)
    if ctx.generic is not None and t.__module__.startswith("sklearn."):
        try:
            ctx.generic(obj, node, ctx)
        except Exception as exc:  # noqa: BLE001 - a generic check meeting state it cannot read: the state is crafted
            ctx.fail(node, f"state cannot be validated ({type(exc).__name__}: {_one_line(exc)})")
            return
    if validator is not None:
        try:
            validator(obj, node, ctx)
        except Exception as exc:  # noqa: BLE001 - a validator meeting state it cannot read: the state is crafted
            ctx.fail(node, f"state cannot be validated ({type(exc).__name__}: {_one_line(exc)})")
            return
    _enqueue_children(obj, t, node, ctx, has_validator=validator is not None,
                      holds_children=getattr(validator, "holds_children", False))


def _enqueue_children(obj: Any, t: type, node: Node, ctx: Context, *, has_validator: bool,
                      holds_children: bool) -> None:
    """Queue every object ``obj`` holds: array items, container items, partial parts, instance or extension state."""
    np = ctx.np
    if t is np.ndarray or isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            flat = obj.reshape(-1) if obj.flags.c_contiguous else obj.ravel()
            for i, v in enumerate(flat.tolist()):
                if type(v) not in _ATOMS:
                    ctx.enqueue(node.child(v, f"[{i}]"))
        if not has_validator and t is not np.ndarray:
            _children_of_instance(obj, node, ctx)
        return
    if isinstance(obj, (np.generic, np.dtype)):
        return
    if t in (list, tuple, set, frozenset, deque) or isinstance(obj, (list, tuple, set, frozenset, deque, dict)):
        _children_of_container(obj, node, ctx)
        _children_of_instance(obj, node, ctx)
        return
    if t.__module__ == "functools" and t.__qualname__ == "partial":
        ctx.enqueue(node.child(obj.func, ".func"))
        ctx.enqueue(node.child(obj.args, ".args"))
        ctx.enqueue(node.child(obj.keywords, ".keywords"))
        _children_of_instance(obj, node, ctx)
        return
    if holds_children:
        return  # the validator enqueued what the object holds
    if _is_extension(t) and not hasattr(obj, "__dict__"):
        _children_of_extension(obj, node, ctx)
        return
    _children_of_instance(obj, node, ctx)


def _children_of_container(obj: Any, node: Node, ctx: Context) -> None:
    """Items of a list, tuple, set, frozenset or deque; keys, values and default factory of any dict."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if type(k) not in _ATOMS:
                ctx.enqueue(node.child(k, "[<key>]"))
            if type(v) not in _ATOMS:
                ctx.enqueue(node.child(v, key_text(k)))
        factory = getattr(obj, "default_factory", None)
        if factory is not None:
            ctx.enqueue(node.child(factory, ".default_factory"))
        return
    for i, v in enumerate(obj):
        if type(v) not in _ATOMS:
            ctx.enqueue(node.child(v, f"[{i}]"))
def _check_expansion(ctx: Context) -> None:
    """Containers are shared (the memo lets a payload put one object in many places): refuse the payload when
    visiting some container item by item, as hashing, comparing or converting it to an array does, would reach
    more than ``MAX_EXPANDED`` values. Linear: each container's expanded size is computed once, depth first over
    containers only."""
    limit = max(MAX_EXPANDED, ctx.max_objects)
    np = ctx.np
    sizes: dict[int, int] = {}
    for oid, where in ctx.shared.items():
        obj = where.obj
        if oid in sizes:
            continue
        stack: list[list[Any]] = [[obj, None, 0]]  # [container, its container items, next one to expand]
        while stack:
            frame = stack[-1]
            cur = frame[0]
            cid = id(cur)
            if frame[1] is None:
                items = [*cur.keys(), *cur.values()] if isinstance(cur, dict) else \
                    (cur.reshape(-1).tolist() if isinstance(cur, np.ndarray) else list(cur))
                frame[1] = [k for k in items if type(k) in _CONTAINERS or
                            (type(k) is np.ndarray and k.dtype.hasobject)]
                sizes[cid] = -len(items) - 1  # negative while being expanded (a cycle back to it counts 0)
            kids = frame[1]
            while frame[2] < len(kids) and id(kids[frame[2]]) in sizes:
                frame[2] += 1
            if frame[2] < len(kids):
                stack.append([kids[frame[2]], None, 0])
                continue
            total = -sizes[cid] - 1 + sum(max(sizes[id(k)], 0) for k in kids)
            sizes[cid] = min(total, limit + 1)
            stack.pop()
        if sizes[oid] > limit:
            ctx.fail(where, f"nested containers shared through the memo would make hashing, comparing or converting "
                            f"it visit more than {limit} values (exponential blowup from a few bytes)")
            return


def _children_of_instance(obj: Any, node: Node, ctx: Context) -> None:
    try:
        d = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        d = None
    if isinstance(d, dict):
        for k, v in d.items():
            if type(v) not in _ATOMS:
                ctx.enqueue(node.child(v, f".{k}" if type(k) is str and k.isidentifier() else key_text(k)))
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                v = object.__getattribute__(obj, name)
            except AttributeError:
                continue
            if type(v) not in _ATOMS:
                ctx.enqueue(node.child(v, f".{name}"))


def _children_of_extension(obj: Any, node: Node, ctx: Context) -> None:
    """An extension type without a validator of its own: walk what its pickling would write (its reduced state)."""
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception as exc:  # noqa: BLE001 - an object whose state cannot be read, whatever it raises, is refused
        ctx.fail(node, f"extension object whose state cannot be read ({type(exc).__name__})")
        return
    if not isinstance(reduced, tuple):
        return
    for i, part in enumerate(reduced[1:3], start=1):
        items = part if type(part) is tuple else (part,)
        for j, item in enumerate(items):
            if type(item) in _ATOMS or isinstance(item, type):
                continue  # the class a reducer names is the object's own type, judged when it was imported
            ctx.enqueue(node.child(item, f".<{'args' if i == 1 else 'state'}[{j}]>"))


def _check_held(node: Node, label: str, ctx: Context) -> None:
    """A class or function held in the model: allowed as a value anywhere, or at its one known place."""
    if ctx.may_hold(label):
        return
    slots = ctx.placements.get(label)
    parent = node.parent
    if slots and parent is not None and node.key.startswith("."):
        where = (qualname(parent.obj), node.key[1:])
        if where in slots:
            return
    allowed = ", ".join(f"{o}.{a}" for o, a in sorted(slots)) if slots else "nowhere"
    ctx.fail(node, f"holds {label}, which may only be held as {allowed} (a model calls the functions it holds "
                   "with arguments of the payload's choosing)")


_FUNCTION_TYPES = frozenset({"function", "builtin_function_or_method", "method", "ufunc", "cython_function_or_method",
                             "method_descriptor", "wrapper_descriptor", "classmethod", "staticmethod"})


def _global_like(obj: Any, t: type) -> bool:
    """A class or a function: what only ``find_class`` (or a reducer naming one) can put into a payload's graph."""
    return isinstance(obj, type) or t.__name__ in _FUNCTION_TYPES


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")
