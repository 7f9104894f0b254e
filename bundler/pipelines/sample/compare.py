"""Comparing a stored output with a new one: what "the same prediction" means, with explicit, recorded tolerances.

Floating-point outputs (``predict_proba``, ``decision_function``, ``transform``, float ``predict`` of a regressor)
are compared with ``|new - old| <= atol + rtol * |old|`` (NaN equals NaN at the same position); labels, integers,
booleans and strings must be exactly equal. The tolerance in force is written into the manifest so that a reader
knows what "the same" meant; a recorded tolerance looser than :data:`MAX_TOLERANCE` is ignored (a crafted manifest
must not be able to switch the check off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Relative tolerance for floating-point outputs (numpy's ``allclose`` default; it absorbs BLAS and summation-order
#: noise while still catching any change a person would call "a different prediction").
DEFAULT_RTOL = 1e-5
#: Absolute tolerance for floating-point outputs (numpy's ``allclose`` default).
DEFAULT_ATOL = 1e-8
#: Recorded tolerances above this are not believed.
MAX_TOLERANCE = 1e-2

TOLERANCE_RULE = (
    "floats: |new - old| <= atol + rtol * |old| elementwise (NaN == NaN); "
    "labels, integers, booleans and strings: exact equality"
)


def compare_arrays(label: str, old: Any, new: Any, *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                   np: Any = None) -> str | None:
    """Compare a stored output with a new one; return a one-line description of the difference or ``None``.

    Floats (either side) use the tolerance; everything else is compared exactly. Rows are counted along the first
    axis: a row differs if any of its entries does.
    """
    if np is None:
        import numpy as np
    old = np.asarray(old)
    new = np.asarray(new)
    if old.shape != new.shape:
        return f"{label}: shape {tuple(new.shape)} now, {tuple(old.shape)} at pack time"
    rows = old.shape[0] if old.ndim else 1
    if old.size == 0:
        return None
    floating = old.dtype.kind in "fc" or new.dtype.kind in "fc"
    if floating and old.dtype.kind in "biufc" and new.dtype.kind in "biufc":
        old_f = old.astype(np.complex128 if "c" in (old.dtype.kind, new.dtype.kind) else np.float64)
        new_f = new.astype(old_f.dtype)
        bad = ~np.isclose(new_f, old_f, rtol=rtol, atol=atol, equal_nan=True)
        if not bad.any():
            return None
        both_finite = np.isfinite(old_f) & np.isfinite(new_f)
        diff = np.abs(new_f - old_f)
        max_abs = float(diff[both_finite].max()) if both_finite.any() else math.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = diff / np.abs(old_f)
        rel_ok = both_finite & np.isfinite(rel)
        max_rel = float(rel[rel_ok].max()) if rel_ok.any() else math.inf
        nrows = int(bad.reshape(rows, -1).any(axis=1).sum()) if old.ndim else 1
        return (f"{label}: {nrows} of {rows} rows differ beyond rtol={rtol:g}, atol={atol:g} "
                f"(max abs diff {max_abs:.3g}, max rel diff {max_rel:.3g})")
    if old.dtype.kind != new.dtype.kind and {old.dtype.kind, new.dtype.kind} - set("biu"):
        # e.g. labels stored as strings now come back as integers: never equal, say why
        return f"{label}: values are of kind {new.dtype.kind!r} now, {old.dtype.kind!r} at pack time"
    bad = old != new
    if not np.any(bad):
        return None
    nrows = int(np.asarray(bad).reshape(rows, -1).any(axis=1).sum()) if old.ndim else 1
    return f"{label}: {nrows} of {rows} rows differ (exact comparison)"


def tolerance(spec: Any) -> tuple[float, float]:
    """Tolerance recorded at pack time, falling back to the defaults for anything missing or not a sane number."""
    rtol, atol = DEFAULT_RTOL, DEFAULT_ATOL
    if isinstance(spec, Mapping):
        for key in ("rtol", "atol"):
            value = spec.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_TOLERANCE:
                if key == "rtol":
                    rtol = float(value)
                else:
                    atol = float(value)
    return rtol, atol


__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "MAX_TOLERANCE", "TOLERANCE_RULE", "compare_arrays", "tolerance"]
