"""scipy sparse matrices and arrays: rebuilt through scipy's own constructors, with full index checks.

A sparse matrix is pickled as ``__newobj__(cls)`` plus its ``__dict__`` (``data``, ``indices``, ``indptr``, the
shape...), so BUILD writes the payload's arrays straight into it, and scipy's C++ kernels (``csr_matvec`` behind
``X @ coef_.T``, conversions, slicing) index ``data`` and the output through ``indices``/``indptr`` without bounds
checks. The validator rebuilds each matrix from its raw arrays through the public constructor of its format and
runs scipy's own full checks (``check_format(full_check=True)`` for CSR/CSC/BSR: index ranges, monotonic ``indptr``,
matching lengths; ``_check`` for COO; DIA, DOK and LIL by their constructors and explicit range checks); the
object's state is then replaced by the rebuilt, canonical state, so no unchecked cached flag (``has_sorted_indices``
and the like) survives.
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import is_int
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node

__all__: list[str] = []

_FORMATS = ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
SPARSE = tuple(name for f in _FORMATS for name in (
    f"scipy.sparse._{f}.{f}_matrix", f"scipy.sparse._{f}.{f}_array", f"scipy.sparse.{f}.{f}_matrix"))


def _shape(ctx: Context, node: Node, d: dict[str, Any]) -> tuple[int, ...] | None:
    shape = d.get("_shape")
    if type(shape) is not tuple or len(shape) not in (1, 2) or not all(is_int(s) and int(s) >= 0 for s in shape):
        ctx.fail(node, "must be a tuple of one or two non-negative integers", "_shape")
        return None
    return tuple(int(s) for s in shape)


@validates(*SPARSE)
def sparse_matrix(obj: Any, node: Node, ctx: Context) -> None:
    """BUILD writes the payload's arrays straight into the matrix and scipy's C++ kernels index through them
    unchecked: it is rebuilt through its format's constructor with scipy's full checks (index ranges, ``indptr``,
    lengths) and its state replaced by the rebuilt one; ``_shape`` must be one or two non-negative integers."""
    np = ctx.np
    d = obj.__dict__
    cls = type(obj)
    fmt = cls.__name__.split("_")[0]
    shape = _shape(ctx, node, d)
    if shape is None:
        return
    try:
        if fmt in ("csr", "csc", "bsr"):
            for attr in ("data", "indices", "indptr"):
                if not isinstance(d.get(attr), np.ndarray):
                    ctx.fail(node, "must be a numpy array", attr)
                    return
            if d["indices"].dtype.kind not in "iu" or d["indptr"].dtype.kind not in "iu":
                ctx.fail(node, "index arrays must be integers", "indices")
                return
            kwargs: dict[str, Any] = {"shape": shape}
            if fmt == "bsr":
                if d["data"].ndim != 3:
                    ctx.fail(node, "BSR data must be 3-D", "data")
                    return
                kwargs["blocksize"] = d["data"].shape[1:]
            rebuilt = cls((d["data"], d["indices"], d["indptr"]), **kwargs)
            rebuilt.check_format(full_check=True)
        elif fmt == "coo":
            coords = d.get("coords")
            if coords is None and "row" in d and "col" in d:
                coords = (d["row"], d["col"])
            if type(coords) is not tuple or not all(isinstance(c, np.ndarray) and c.dtype.kind in "iu"
                                                    for c in coords):
                ctx.fail(node, "must be a tuple of integer index arrays", "coords")
                return
            rebuilt = cls((d.get("data"), coords), shape=shape)
            rebuilt._check()
        elif fmt == "dia":
            offsets, data = d.get("offsets"), d.get("data")
            if not isinstance(offsets, np.ndarray) or offsets.dtype.kind not in "iu" or offsets.ndim != 1 or \
                    not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[0] != offsets.shape[0]:
                ctx.fail(node, "needs one data row per integer offset", "offsets")
                return
            rebuilt = cls((data, offsets), shape=shape)
        elif fmt == "dok":
            rebuilt = _dok(ctx, node, cls, d, shape)
            if rebuilt is None:
                return
        else:
            rebuilt = _lil(ctx, node, cls, d, shape)
            if rebuilt is None:
                return
    except Exception as exc:  # noqa: BLE001 - scipy refused the arrays: crafted
        ctx.fail(node, f"scipy refuses its arrays ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
        return
    maxprint = d.get("maxprint")
    d.clear()
    d.update(rebuilt.__dict__)
    if is_int(maxprint):
        d["maxprint"] = int(maxprint)


def _dok(ctx: Context, node: Node, cls: type, d: dict[str, Any], shape: tuple[int, ...]) -> Any:
    np = ctx.np
    store = d.get("_dict")
    if not isinstance(store, dict):
        ctx.fail(node, "must be a dict of index -> value", "_dict")
        return None
    keys = list(store)
    for key in keys:
        idx = key if type(key) is tuple else (key,)
        if len(idx) != len(shape) or not all(is_int(i) and 0 <= int(i) < s for i, s in zip(idx, shape, strict=True)):
            ctx.fail(node, f"has an index outside the shape {shape}", "_dict")
            return None
    dtype = d.get("dtype", np.float64)
    rebuilt = cls(shape, dtype=dtype)
    for key in keys:
        rebuilt[key] = store[key]
    return rebuilt


def _lil(ctx: Context, node: Node, cls: type, d: dict[str, Any], shape: tuple[int, ...]) -> Any:
    np = ctx.np
    rows, data = d.get("rows"), d.get("data")
    if len(shape) != 2 or not isinstance(rows, np.ndarray) or not isinstance(data, np.ndarray) or \
            rows.shape != (shape[0],) or data.shape != (shape[0],):
        ctx.fail(node, "needs one row list and one data list per row", "rows")
        return None
    n_cols = shape[1]
    for i in range(shape[0]):
        r, v = rows[i], data[i]
        if type(r) is not list or type(v) is not list or len(r) != len(v) or \
                not all(is_int(j) and 0 <= int(j) < n_cols for j in r) or r != sorted(r):
            ctx.fail(node, f"row {i} is not a sorted list of column indices in [0, {n_cols}) matching its data",
                     "rows")
            return None
    dtype = d.get("dtype", np.float64)
    rebuilt = cls(shape, dtype=dtype)
    for i in range(shape[0]):
        rebuilt.rows[i] = list(rows[i])
        rebuilt.data[i] = list(data[i])
    return rebuilt
