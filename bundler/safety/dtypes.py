"""numpy dtypes as a pickle spells them, shared by the static scan and the restricted unpickler.

A dtype is pickled as ``numpy.dtype(spec, align, copy)`` followed by ``BUILD`` with a state tuple
``(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])``. Two things follow from it:

* **Layout** (``symbolic_layout``): how many raw bytes a joblib array of this dtype occupies, and whether it holds
  Python objects (then joblib writes a nested pickle instead of raw bytes). The scan needs this to know where array
  data ends and opcodes resume, without importing numpy.
* **Canonical state** (``dtype_state_problem``): ``__setstate__`` accepts states that no real dtype has, for example
  kind ``O`` with the "holds objects" flag cleared. Such a forged dtype lets an allowed array constructor turn raw
  bytes into an array of attacker-chosen object pointers. The unpickler therefore refuses any dtype state that
  differs from the state numpy itself gives the canonical dtype of the same description, before it is applied.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["DtypeLayoutError", "dtype_state_problem", "symbolic_layout"]

_FIXED_KINDS: Final = frozenset("biufcmM?")
_MAX_DEPTH: Final = 32


class DtypeLayoutError(ValueError):
    """The dtype's size is not statically known (the caller refuses the stream)."""


def symbolic_layout(args: Any, state: Any, depth: int = 0) -> tuple[int, bool]:
    """``(itemsize, hasobject)`` of a dtype pickled as ``numpy.dtype(*args)`` + BUILD ``state``.

    Nested dtypes (fields, subarrays) are symbolic objects with ``args`` and ``state`` attributes and
    ``kind == "dtype"``; a fields mapping is a symbolic dict with ``items`` and ``overflow``. Raises
    ``DtypeLayoutError`` whenever the layout is not statically known.
    """
    if depth > _MAX_DEPTH:
        raise DtypeLayoutError("dtype nested too deeply")
    if not isinstance(args, tuple) or not args or type(args[0]) is not str:
        raise DtypeLayoutError("dtype spelled in an unsupported way")
    spec = args[0].lstrip("<>|=")
    if not spec:
        raise DtypeLayoutError("empty dtype spec")
    kind, digits = spec[0], spec[1:]
    elsize: Any = -1
    fields = None
    subarray = None
    if state is not None:
        if not isinstance(state, tuple) or len(state) < 8:
            raise DtypeLayoutError("dtype state of an unsupported version")
        subarray, fields, elsize = state[2], state[4], state[5]
        if type(elsize) is not int:
            raise DtypeLayoutError("dtype elsize is not an int")
    itemsize = _itemsize(kind, digits, spec, elsize)
    hasobject = _nested_hasobject(fields, subarray, depth) or kind == "O"  # nested dtypes checked in every case
    if itemsize < 0:
        raise DtypeLayoutError("negative itemsize")
    return itemsize, hasobject


def _itemsize(kind: str, digits: str, spec: str, elsize: int) -> int:
    """The item size a type string names (``elsize`` from the BUILD state when it is >= 0, for S/U/V)."""
    if kind == "O":
        if digits not in ("", "8", "4"):
            raise DtypeLayoutError("odd object dtype")
        return int(digits or 8)
    if kind in _FIXED_KINDS:
        if not digits.isdigit() or len(digits) > 2:
            raise DtypeLayoutError(f"dtype {spec!r} has no size")
        return int(digits)
    if kind in "SUV":
        if elsize >= 0:
            return elsize
        if digits.isdigit() and len(digits) <= 12:
            return int(digits) * (4 if kind == "U" else 1)
        raise DtypeLayoutError(f"dtype {spec!r} has no size")
    raise DtypeLayoutError(f"dtype kind {kind!r} not supported in joblib arrays")


def _nested_hasobject(fields: Any, subarray: Any, depth: int) -> bool:
    """Whether any field or the subarray's base holds objects (each nested dtype must be statically known)."""
    hasobject = False
    if fields is not None:
        if getattr(fields, "overflow", True) or not isinstance(getattr(fields, "items", None), dict):
            raise DtypeLayoutError("dtype fields not statically known")
        for value in fields.items.values():
            if not isinstance(value, tuple) or not value or getattr(value[0], "kind", None) != "dtype":
                raise DtypeLayoutError("dtype field not statically known")
            hasobject = symbolic_layout(value[0].args, value[0].state, depth + 1)[1] or hasobject
    if subarray is not None:
        if not isinstance(subarray, tuple) or len(subarray) != 2 or getattr(subarray[0], "kind", None) != "dtype":
            raise DtypeLayoutError("dtype subarray not statically known")
        hasobject = symbolic_layout(subarray[0].args, subarray[0].state, depth + 1)[1] or hasobject
    return hasobject


def _canonical(np: Any, dt: Any, depth: int = 0) -> Any:
    """The dtype numpy builds from ``dt``'s description alone (names, formats, offsets, byte order, shape)."""
    if depth > _MAX_DEPTH:
        raise ValueError("dtype nested too deeply")
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return np.dtype((_canonical(np, base, depth + 1), shape))
    if dt.names is not None:
        fields = dt.fields
        spec: dict[str, Any] = {
            "names": list(dt.names),
            "formats": [_canonical(np, fields[n][0], depth + 1) for n in dt.names],
            "offsets": [fields[n][1] for n in dt.names],
            "itemsize": dt.itemsize,
        }
        titles = [fields[n][2] if len(fields[n]) > 2 else None for n in dt.names]
        if any(t is not None for t in titles):
            spec["titles"] = titles
        return np.dtype(spec, align=dt.isalignedstruct)
    return np.dtype(dt.str)


def dtype_state_problem(np: Any, args: Any, state: Any) -> str | None:
    """Why ``numpy.dtype(*args)`` + ``__setstate__(state)`` is not a canonical dtype, or None when it is.

    The state is applied to a throw-away dtype (numpy validates its shape), whose canonical twin is then rebuilt
    from its description; every element of the two pickled states (flags included) must be equal.
    """
    if not isinstance(args, tuple) or not 1 <= len(args) <= 3:
        return "dtype arguments are not numpy.dtype(spec, align, copy)"
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        return "dtype state is not a numpy dtype state tuple"
    try:
        candidate = np.dtype(*args)
        candidate.__setstate__(state)
        canonical = _canonical(np, candidate)
        wanted = canonical.__reduce__()[2]
    except Exception as exc:  # noqa: BLE001 - numpy refused the description: not a dtype numpy itself would pickle
        return f"dtype state is invalid ({type(exc).__name__}: {exc})"
    got = candidate.__reduce__()[2]
    if len(got) != len(wanted):
        return "dtype state differs from the canonical state of its description"
    for index, (a, b) in enumerate(zip(got, wanted, strict=True)):
        if index == 4 and a is not None and b is not None:
            if a.keys() != b.keys() or any(a[k][1:] != b[k][1:] or a[k][0] != b[k][0] for k in a):
                return "dtype fields differ from the canonical state of its description"
        elif a != b:
            what = ("version", "byte order", "subarray", "names", "fields", "element size", "alignment", "flags",
                    "metadata")[index]
            return f"dtype {what} ({a!r}) differs from the canonical state of its description ({b!r})"
    if candidate.hasobject != canonical.hasobject or candidate.itemsize != canonical.itemsize:
        return "dtype layout differs from the canonical state of its description"
    return None
