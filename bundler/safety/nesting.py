"""Containers whose C deallocation recurses without CPython's "trashcan": a payload must not nest them deeply.

CPython frees a list, tuple, dict, set or instance nested a million levels deep without trouble: their deallocators
use the trashcan mechanism, which defers freeing past a fixed nesting level. ``collections.deque``,
``collections.defaultdict`` and numpy object arrays do not: freeing a chain of a few hundred thousand of them
nested in one another recurses in C until the stack overflows and the process dies by SIGSEGV. A payload of a few
MB (``deque() APPEND`` repeated) builds such a chain, and it is freed whenever the loader drops it: when a later
check refuses the payload, when the unpickler fails half-way, or at interpreter exit. Refusing it is not enough:
the refusal itself would free it.

So the restricted unpickler records every such container it builds (``record``). Once the payload is loaded it
measures the longest chain of them nested in one another (through any plain containers and instance dicts in
between, counting only the unprotected ones) and refuses the payload beyond ``MAX_UNGUARDED_NESTING``; and whenever
it refuses or fails, it first empties every recorded container while holding a reference to each (``defuse``),
so that nothing is freed recursively. No real model nests deques or object arrays more than a few levels deep.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Final

__all__ = ["MAX_UNGUARDED_NESTING", "deepest_chain", "defuse", "is_unguarded"]

#: Longest chain of deques, defaultdicts and object arrays nested in one another that a payload may hold.
MAX_UNGUARDED_NESTING: Final = 100


def is_unguarded(np: Any, obj: Any) -> bool:
    """True for the containers whose deallocation recurses in C without the trashcan."""
    return isinstance(obj, (deque, defaultdict)) or (isinstance(obj, np.ndarray) and obj.dtype.hasobject)


def _children(np: Any, obj: Any) -> list[Any]:
    if isinstance(obj, np.ndarray):
        return obj.reshape(-1).tolist() if obj.dtype.hasobject else []
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        out = list(obj)
    elif isinstance(obj, dict):
        out = [*obj.keys(), *obj.values()]
    else:
        out = []
    if type(obj) in _PLAIN:
        return out
    try:
        d = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        d = None
    if type(d) is dict:
        out.extend(d.values())
    return out


#: Containers without an instance dict (looking one up would raise for each of them).
_PLAIN: Final = frozenset({list, tuple, set, frozenset, deque, dict})


_LEAVES: Final = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None)})


def deepest_chain(np: Any, roots: list[Any], limit: int) -> int:
    """The length of the longest chain of unguarded containers nested in one another, reachable from ``roots``
    (linear in what is reachable: every object is expanded once; a cycle counts once around). Returns as soon as
    it exceeds ``limit``."""
    done: dict[int, int] = {}
    active: set[int] = set()
    for root in roots:
        if id(root) in done:
            continue
        # frames: [object, its children, next child to look at, deepest chain below it so far]
        stack: list[list[Any]] = [[root, None, 0, 0]]
        while stack:
            frame = stack[-1]
            obj = frame[0]
            if frame[1] is None:
                active.add(id(obj))
                frame[1] = [k for k in _children(np, obj) if type(k) not in _LEAVES]
            kids = frame[1]
            pushed = False
            while frame[2] < len(kids):
                kid = kids[frame[2]]
                frame[2] += 1
                kid_id = id(kid)
                if kid_id in done:
                    frame[3] = max(frame[3], done[kid_id])
                elif kid_id not in active:  # an active one is an ancestor: a cycle, counted once around
                    stack.append([kid, None, 0, 0])
                    pushed = True
                    break
            if pushed:
                continue
            depth: int = frame[3] + (1 if is_unguarded(np, obj) else 0)
            done[id(obj)] = depth
            active.discard(id(obj))
            stack.pop()
            if stack:
                stack[-1][3] = max(stack[-1][3], depth)
            if depth > limit:
                return depth
    return max(done.values(), default=0)


def defuse(np: Any, recorded: list[Any]) -> None:
    """Empty every recorded container while ``recorded`` still holds each of them, so that dropping the payload
    afterwards frees them one by one instead of recursively."""
    for obj in recorded:
        try:
            if isinstance(obj, deque):
                deque.clear(obj)
            elif isinstance(obj, dict):
                dict.clear(obj)
            elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
                obj.fill(None)
        except Exception:  # noqa: BLE001, S112 - defusing is best effort: an object that refuses stays as it is
            continue
