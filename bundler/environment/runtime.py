"""What a live model needs at run time beyond the modules its payload names.

A pickle names each class it rebuilds, never the classes those inherit from: an ``XGBClassifier`` payload names
``xgboost.sklearn.XGBClassifier`` and nothing of scikit-learn, yet scikit-learn's code runs every time it predicts.
And a model fitted on a DataFrame names no pandas class, yet a deploy image without pandas cannot feed it the
DataFrame it expects. The facts here come from objects already in memory at pack time (the model just serialized,
or the copy of a file just loaded restrictedly); nothing is imported for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GraphFacts", "base_modules", "graph_facts", "resolve_loaded"]

#: Objects visited at most while walking a model's attributes (a 1,000-tree forest is far below this).
MAX_OBJECTS = 500_000
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None))


def resolve_loaded(name: str) -> Any:
    """The object a payload global names (``module.qualname`` or ``module:qual.name``), looked up in modules that
    are already imported; None when its module is not imported or the name does not resolve. Never imports."""
    if name.startswith("<"):
        return None
    if ":" in name:
        module, _, qualname = name.partition(":")
        candidates = [(module, qualname)]
    else:
        parts = name.split(".")
        candidates = [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]
    for module, qualname in candidates:
        obj = sys.modules.get(module)
        if obj is None:
            continue
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def base_modules(globals_: Iterable[str]) -> set[str]:
    """Top-level modules that define the bases (the MRO) of every class among ``globals_``."""
    tops: set[str] = set()
    for name in globals_:
        cls = resolve_loaded(name)
        if not isinstance(cls, type):
            continue
        for base in cls.__mro__:
            module = getattr(base, "__module__", None)
            if isinstance(module, str) and module:
                tops.add(module.split(".", 1)[0])
    tops.discard("builtins")
    return tops


@dataclass(frozen=True)
class GraphFacts:
    """What a walk over a model's attributes found."""

    fitted_on_dataframe: bool
    holds_pandas: bool
    array_bytes: int


def graph_facts(model: Any) -> GraphFacts:
    """Walk ``model``'s attributes (instance dicts, containers, object arrays): was any part fitted on a DataFrame
    (scikit-learn sets ``feature_names_in_`` then), does it hold pandas objects, and how many bytes of numpy array
    data does it hold (the size of a joblib payload, within a few percent, for progress)."""
    seen: set[int] = set()
    stack: list[Any] = [model]
    fitted = holds = False
    nbytes = 0
    while stack and len(seen) < MAX_OBJECTS:
        obj = stack.pop()
        if isinstance(obj, _ATOMS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        cls = type(obj)
        module = getattr(cls, "__module__", "") or ""
        if module.startswith("pandas"):
            holds = True
            continue
        if module == "numpy" and cls.__name__ == "ndarray":
            nbytes += int(obj.nbytes)
            if obj.dtype.kind == "O" and obj.size <= 100_000:
                stack.extend(obj.ravel().tolist())
            continue
        if isinstance(obj, dict):
            stack.extend(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except (AttributeError, TypeError):
            continue
        if isinstance(attrs, dict):
            if "feature_names_in_" in attrs:
                fitted = True
            stack.extend(attrs.values())
    return GraphFacts(fitted_on_dataframe=fitted, holds_pandas=holds, array_bytes=nbytes)
