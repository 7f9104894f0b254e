"""Small checks the family validators share: exact integer types, array shapes and dtypes, owners."""

from __future__ import annotations

from typing import Any, SupportsInt, TypeGuard

from bundler.safety.validators.walker import Context, Node

__all__ = ["array_ok", "as_index", "estimator_owner", "int_attr", "is_int", "is_sparse", "n_features_of", "shown"]

MAX_DIM = 1 << 31


def is_int(value: Any) -> TypeGuard[SupportsInt]:
    """An exact integer (Python or numpy), never a float such as ``4.0`` that scikit-learn's input check accepts."""
    import numpy as np

    return (type(value) is int or isinstance(value, np.integer)) and not isinstance(value, bool)


def is_sparse(value: Any) -> bool:
    """A scipy sparse matrix or array (its own validator checks its internals)."""
    return type(value).__module__.startswith("scipy.sparse")


def shown(value: Any) -> str:
    """A payload value in a message, without calling its ``__repr__`` (a crafted one would run, or raise)."""
    if type(value) in (int, float, bool, type(None)):
        return repr(value)
    if type(value) is str:
        return repr(value[:40])
    return f"<{type(value).__name__}>"


def int_attr(obj: Any, name: str, node: Node, ctx: Context, *, low: int = 0, high: int = MAX_DIM,
             required: bool = False) -> int | None:
    """The integer attribute ``name`` of ``obj`` in ``[low, high)``, or None (reported) when it is not one."""
    d = getattr(obj, "__dict__", {})
    if name not in d:
        if required:
            ctx.fail(node, "is missing", name)
        return None
    value = d[name]
    if not is_int(value):
        ctx.fail(node, f"must be an integer, not {type(value).__name__}", name)
        return None
    if not low <= int(value) < high:
        ctx.fail(node, f"{int(value)} is outside [{low}, {high})", name)
        return None
    return int(value)


def n_features_of(obj: Any, node: Node, ctx: Context) -> int | None:
    """``n_features_in_`` of a fitted estimator: required to be an exact integer when present."""
    return int_attr(obj, "n_features_in_", node, ctx)


def array_ok(ctx: Context, node: Node, attr: str, value: Any, *, ndim: int | None = None,
             kinds: str | None = None, shape: tuple[int | None, ...] | None = None,
             contiguous: bool = False) -> bool:
    """Check one array attribute; report and return False when it is not an ndarray of the expected form."""
    np = ctx.np
    if not isinstance(value, np.ndarray):
        ctx.fail(node, f"must be a numpy array, not {type(value).__name__}", attr)
        return False
    if ndim is not None and value.ndim != ndim:
        ctx.fail(node, f"must have {ndim} dimension(s), has {value.ndim}", attr)
        return False
    if kinds is not None and value.dtype.kind not in kinds:
        ctx.fail(node, f"has dtype {value.dtype}, expected kind {kinds!r}", attr)
        return False
    if shape is not None and (len(shape) != value.ndim or
                              any(s is not None and s != v for s, v in zip(shape, value.shape, strict=False))):
        want = tuple("?" if s is None else s for s in shape)
        ctx.fail(node, f"has shape {value.shape}, expected {want}", attr)
        return False
    if contiguous and not value.flags.c_contiguous:
        ctx.fail(node, "must be C-contiguous", attr)
        return False
    return True


def as_index(ctx: Context, node: Node, attr: str, value: Any, bound: int) -> bool:
    """An integer array whose values all lie in ``[0, bound)``."""
    np = ctx.np
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        ctx.fail(node, "must be an integer array", attr)
        return False
    if value.size and (int(value.min()) < 0 or int(value.max()) >= bound):
        ctx.fail(node, f"has indices outside [0, {bound})", attr)
        return False
    return True


def estimator_owner(node: Node, attr: str) -> Node | None:
    """The parent node when ``node`` was reached as ``parent.<attr>`` (a tree as its estimator's ``tree_``)."""
    if node.parent is not None and node.key == f".{attr}":
        return node.parent
    return None
