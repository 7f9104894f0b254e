"""The behaviour check: store what a model predicted for a small sample at pack time, compare at load time.

A hash proves the payload bytes are the ones that were packed; it says nothing about whether *this* environment turns
those bytes into a model that behaves the same. scikit-learn does not promise that a model pickled under one version
predicts the same under another, so the only evidence worth having is to re-run the model on inputs it saw at pack
time and compare. That is what this module does.

Design points (each one is a reason, not a preference):

* **No pickle, ever.** The sample and the outputs are stored as ``.npy`` files written and read with
  ``allow_pickle=False``. Object arrays are converted: strings to fixed-width unicode (``<U``), numbers to float or
  int. Anything that cannot be represented that way is refused at pack time with a :class:`UsageError`, so that the
  check can never become a second, unaudited deserialization path.
* **Small by construction.** A sample is at most :data:`MAX_ROWS` rows and all its members together at most
  :data:`MAX_BYTES` bytes; the check re-runs the model, so it must stay cheap at deploy time.
* **numpy is imported lazily.** ``bundler verify`` must never import numpy (it is meant to run in a small, fast
  process); only ``pack`` and ``load`` call into the functions below.
* **Tolerances are explicit and recorded.** Floating-point outputs (``predict_proba``, ``decision_function``,
  ``transform``, float ``predict`` of a regressor) are compared with ``|new - old| <= atol + rtol * |old|`` (NaN
  equals NaN at the same position); labels, integers, booleans and strings must be exactly equal. The tolerance in
  force is written into the manifest so that a reader knows what "the same" meant.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bundler.errors import UsageError

#: Members written by :func:`sample_members` all live below this prefix in the archive.
PREFIX = "sample/"
#: Refuse samples with more rows than this: the check re-runs the model at every load.
MAX_ROWS = 10_000
#: Refuse samples whose members (input and all outputs) add up to more than this many bytes.
MAX_BYTES = 16 * 1024 * 1024
#: Relative tolerance for floating-point outputs (numpy's ``allclose`` default; it absorbs BLAS and summation-order
#: noise while still catching any change a person would call "a different prediction").
DEFAULT_RTOL = 1e-5
#: Absolute tolerance for floating-point outputs (numpy's ``allclose`` default).
DEFAULT_ATOL = 1e-8
#: Methods re-run at load time, in this order. ``predict`` is always attempted; the others where the model has them.
METHODS = ("predict", "predict_proba", "decision_function", "transform")
#: Version of the ``sample`` info layout, so that a future layout can be told apart.
INFO_FORMAT = 1

_TOLERANCE_DOC = (
    "floats: |new - old| <= atol + rtol * |old| elementwise (NaN == NaN); "
    "labels, integers, booleans and strings: exact equality"
)


def sample_members(model: Any, sample: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Run ``model`` on ``sample`` and return the archive members to store and the info for the manifest.

    ``sample`` is a 2-D array-like (numpy array, list of lists, or a pandas DataFrame, whose columns are then stored
    one by one so that column names and per-column dtypes survive). Returns ``(members, info)`` where ``members`` maps
    archive names below ``sample/`` to ``.npy`` bytes and ``info`` is JSON-able and recorded in the manifest under
    ``sample``. Methods that the model lacks, or that raise on this sample, are skipped and listed in
    ``info["skipped"]`` (a classifier without ``transform`` is normal, not an error); ``predict`` must work.

    Raises :class:`UsageError` for a sample that is too large, not 2-D, or holds values that cannot be stored
    without pickle.
    """
    import numpy as np

    members: dict[str, bytes] = {}
    model_input, input_info = _prepare_input(sample)
    for name, array in input_info.pop("_arrays").items():
        members[name] = _to_npy(array)

    methods: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for method in METHODS:
        func = _get_method(model, method)
        if func is None:
            if method == "predict":
                raise UsageError("the model has no predict method; a behaviour sample needs one")
            continue
        try:
            output = func(model_input)
        except Exception as exc:  # any failure means "not recordable", reported in info
            if method == "predict":
                raise UsageError(f"the model's predict failed on the sample: {_one_line(exc)}") from exc
            skipped[method] = _one_line(exc)
            continue
        try:
            parts = _output_arrays(output)
        except UsageError as exc:
            if method == "predict":
                raise
            skipped[method] = exc.problems[0]
            continue
        entries = []
        for index, part in enumerate(parts):
            member = f"{PREFIX}{method}.npy" if len(parts) == 1 else f"{PREFIX}{method}.{index}.npy"
            members[member] = _to_npy(part)
            entries.append({"member": member, "shape": list(part.shape), "dtype": part.dtype.str,
                            "compare": "allclose" if part.dtype.kind in "fc" else "exact"})
        methods[method] = {"outputs": entries}

    total = sum(len(data) for data in members.values())
    if total > MAX_BYTES:
        raise UsageError(f"the behaviour sample and its outputs take {total} bytes; the limit is {MAX_BYTES} "
                         f"(use fewer rows)")
    info: dict[str, Any] = {
        "format": INFO_FORMAT,
        "rows": input_info["rows"],
        "input": input_info,
        "methods": methods,
        "skipped": skipped,
        "tolerance": {"rtol": DEFAULT_RTOL, "atol": DEFAULT_ATOL, "rule": _TOLERANCE_DOC},
        "numpy_version": np.__version__,
    }
    return members, info


#: A finding's kind: the method returns values that changed (silent: nothing fails), or it raises / is gone (loud),
#: or the stored sample itself cannot be used.
DIFFERS = "differs"
RAISES = "raises"
SAMPLE = "sample"


@dataclass(frozen=True)
class Finding:
    """One behaviour difference: which method, which kind (``DIFFERS``, ``RAISES``, ``SAMPLE``), and the line."""

    method: str
    kind: str
    message: str


def check_behaviour(model: Any, read_member: Callable[[str], bytes], info: Mapping[str, Any]) -> list[str]:
    """Re-run every method recorded in ``info`` on the stored input and compare with the stored outputs.

    ``read_member`` returns the bytes of an archive member (the caller has already checked its hash). Returns one line
    per difference, naming the method, how many rows differ and the largest absolute and relative difference; an
    empty list means the model behaves as it did at pack time, within the recorded tolerance. A method that now
    raises or no longer exists counts as a difference. Only members below ``sample/`` are ever read, whatever the
    info says. :func:`behaviour_findings` gives the same as data.
    """
    return [finding.message for finding in behaviour_findings(model, read_member, info)]


def behaviour_findings(model: Any, read_member: Callable[[str], bytes], info: Mapping[str, Any]) -> list[Finding]:
    """:func:`check_behaviour` as findings, so that a caller can tell silently changed outputs from a method that
    now raises (the cross-version matrix counts them apart: the silent kind is the dangerous one)."""
    import numpy as np

    if not isinstance(info, Mapping) or info.get("format") != INFO_FORMAT:
        return [Finding("sample", SAMPLE, "sample: unknown sample info format "
                        f"{info.get('format') if isinstance(info, Mapping) else info!r}")]
    rtol, atol = _tolerance(info.get("tolerance"))
    try:
        model_input = _rebuild_input(read_member, info.get("input"))
    except UsageError as exc:
        return [Finding("sample", SAMPLE, f"sample: stored input unreadable: {exc.problems[0]}")]

    problems: list[Finding] = []
    methods = info.get("methods")
    if not isinstance(methods, Mapping) or "predict" not in methods:
        return [Finding("sample", SAMPLE, "sample: no stored predict output")]
    # the manifest is canonical JSON (sorted keys): report in the fixed METHODS order, predict first
    for method in sorted(methods, key=lambda m: (METHODS.index(m) if m in METHODS else len(METHODS), m)):
        spec = methods[method]
        if method not in METHODS:
            problems.append(Finding(method, SAMPLE, f"{method}: not a method the behaviour check runs; ignored"))
            continue
        func = _get_method(model, method)
        if func is None:
            problems.append(Finding(method, RAISES, f"{method}: the loaded model no longer has this method"))
            continue
        try:
            output = func(model_input)
            parts = _output_arrays(output)
        except Exception as exc:  # a method that now raises is a behaviour difference
            problems.append(Finding(method, RAISES, f"{method}: now raises {_one_line(exc)}"))
            continue
        outputs = spec.get("outputs", []) if isinstance(spec, Mapping) else []
        if len(parts) != len(outputs):
            problems.append(Finding(method, DIFFERS, f"{method}: returned {len(parts)} arrays, {len(outputs)} were "
                                                     "stored"))
            continue
        for index, (entry, new) in enumerate(zip(outputs, parts, strict=True)):
            label = method if len(outputs) == 1 else f"{method}[{index}]"
            try:
                old = _load_npy(read_member, entry.get("member") if isinstance(entry, Mapping) else None)
            except UsageError as exc:
                problems.append(Finding(method, SAMPLE, f"{label}: stored output unreadable: {exc.problems[0]}"))
                continue
            line = compare_arrays(label, old, new, rtol=rtol, atol=atol, np=np)
            if line:
                problems.append(Finding(method, DIFFERS, line))
    return problems


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


# --------------------------------------------------------------------------------------------------- helpers


def _get_method(model: Any, name: str) -> Callable[[Any], Any] | None:
    """Return ``model.<name>`` if it exists; scikit-learn's ``available_if`` raises AttributeError when absent."""
    try:
        func = getattr(model, name)
    except AttributeError:
        return None
    except Exception:  # a property that raises something else is just as unavailable
        return None
    return func if callable(func) else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _to_npy(array: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(read_member: Callable[[str], bytes], member: Any) -> Any:
    import numpy as np

    if not isinstance(member, str) or not member.startswith(PREFIX) or ".." in member.split("/"):
        raise UsageError(f"sample member name {member!r} is not below {PREFIX!r}")
    try:
        data = read_member(member)
    except Exception as exc:  # reported as a behaviour problem, not a crash
        raise UsageError(f"cannot read {member}: {_one_line(exc)}") from exc
    if len(data) > MAX_BYTES:
        raise UsageError(f"{member} is {len(data)} bytes, more than the {MAX_BYTES} a sample may take")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # e.g. an object array, which we refuse to unpickle
        raise UsageError(f"{member} is not a plain .npy array: {_one_line(exc)}") from exc


def _storable(array: Any, what: str) -> Any:
    """Return ``array`` converted to a dtype that ``np.save(allow_pickle=False)`` accepts, or raise UsageError."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype.kind in "biufcUSMm":
        return array
    if array.dtype.kind == "O":
        flat = array.ravel().tolist()
        if all(isinstance(v, str) for v in flat):
            return array.astype(str)
        if all(isinstance(v, (bool, np.bool_)) for v in flat):
            return array.astype(bool)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in flat):
            try:
                return array.astype(np.int64)
            except OverflowError:
                pass
        if all(isinstance(v, (int, float, np.integer, np.floating)) or v is None for v in flat):
            return array.astype(np.float64)
        kinds = sorted({type(v).__name__ for v in flat})
        raise UsageError(f"{what} holds values of mixed or unsupported types ({', '.join(kinds)}); "
                         f"it cannot be stored without pickle")
    raise UsageError(f"{what} has dtype {array.dtype}, which cannot be stored without pickle")


def _prepare_input(sample: Any) -> tuple[Any, dict[str, Any]]:
    """Validate the sample, return (what to feed the model, input info with the arrays under ``_arrays``)."""
    import numpy as np

    if sample is None:
        raise UsageError("no behaviour sample given")
    columns = getattr(sample, "columns", None)
    if columns is not None and hasattr(sample, "iloc"):  # a pandas DataFrame: keep names and per-column dtypes
        if not all(isinstance(name, str) for name in columns):
            raise UsageError("sample DataFrame column names must be strings to be stored")
        rows = int(sample.shape[0])
        _check_rows(rows)
        arrays: dict[str, Any] = {}
        cols = []
        for index, name in enumerate(columns):
            col = sample.iloc[:, index]
            pandas_dtype = str(col.dtype)
            values = _storable(col.to_numpy(), f"sample column {name!r}")
            member = f"{PREFIX}input.col{index}.npy"
            arrays[member] = values
            cols.append({"name": str(name), "member": member, "dtype": values.dtype.str, "pandas_dtype": pandas_dtype})
        info = {"kind": "dataframe", "rows": rows, "columns": cols, "_arrays": arrays}
        return sample, info
    array = _storable(sample, "the sample")
    if array.ndim != 2:
        raise UsageError(f"the sample must be 2-D (rows x features); got shape {array.shape}")
    _check_rows(array.shape[0])
    member = f"{PREFIX}input.npy"
    info = {"kind": "array", "rows": int(array.shape[0]), "member": member, "shape": list(array.shape),
            "dtype": array.dtype.str, "_arrays": {member: array}}
    return np.ascontiguousarray(array), info


def _check_rows(rows: int) -> None:
    if rows < 1:
        raise UsageError("the behaviour sample has no rows")
    if rows > MAX_ROWS:
        raise UsageError(f"the behaviour sample has {rows} rows; the limit is {MAX_ROWS}")


def _rebuild_input(read_member: Callable[[str], bytes], spec: Any) -> Any:
    if not isinstance(spec, Mapping):
        raise UsageError("no input description")
    if spec.get("kind") == "array":
        array = _load_npy(read_member, spec.get("member"))
        if array.ndim != 2 or array.shape[0] > MAX_ROWS:
            raise UsageError(f"stored input has shape {array.shape}")
        return array
    if spec.get("kind") == "dataframe":
        try:
            import pandas as pd
        except ImportError as exc:
            raise UsageError("the sample is a DataFrame but pandas is not installed") from exc
        data = {}
        for col in spec.get("columns", []):
            values = _load_npy(read_member, col.get("member"))
            series = pd.Series(values, name=col.get("name"))
            pandas_dtype = col.get("pandas_dtype")
            if isinstance(pandas_dtype, str) and pandas_dtype != str(series.dtype):
                # keep the numpy dtype if pandas refuses; a mismatch shows as a behaviour difference if it matters
                with contextlib.suppress(TypeError, ValueError):
                    series = series.astype(pandas_dtype)
            data[col.get("name")] = series
        return pd.DataFrame(data)
    raise UsageError(f"unknown input kind {spec.get('kind')!r}")


def _output_arrays(output: Any) -> list[Any]:
    """Turn a method's return value into a list of storable arrays (multi-output classifiers return lists)."""
    if isinstance(output, (list, tuple)) and output and all(hasattr(o, "shape") for o in output):
        return [_one_output(o) for o in output]
    return [_one_output(output)]


def _one_output(output: Any) -> Any:
    if hasattr(output, "toarray") and hasattr(output, "nnz"):  # scipy sparse (e.g. OneHotEncoder.transform)
        output = output.toarray()
    elif hasattr(output, "to_numpy"):  # pandas output (set_output(transform="pandas"))
        output = output.to_numpy()
    return _storable(output, "a model output")


def _tolerance(spec: Any) -> tuple[float, float]:
    """Tolerance recorded at pack time, falling back to the defaults for anything missing or not a sane number."""
    rtol, atol = DEFAULT_RTOL, DEFAULT_ATOL
    if isinstance(spec, Mapping):
        for key in ("rtol", "atol"):
            value = spec.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1e-2:
                if key == "rtol":
                    rtol = float(value)
                else:
                    atol = float(value)
    return rtol, atol


__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "MAX_BYTES", "MAX_ROWS", "check_behaviour", "compare_arrays",
           "sample_members"]
