"""The behaviour check: store what a model predicted for a small sample at pack time, compare at load time.

A hash proves the payload bytes are the ones that were packed; it says nothing about whether *this* environment turns
those bytes into a model that behaves the same. scikit-learn does not promise that a model pickled under one version
predicts the same under another, so the only evidence worth having is to re-run the model on inputs it saw at pack
time and compare. That is what this module does.

Design points (each one is a reason, not a preference):

* **No pickle, ever.** The sample and the outputs are ``.npy`` members written and read with ``allow_pickle=False``
  (the layout is documented in :mod:`bundler.pipelines.sample`). Anything that cannot be represented that way is
  refused at pack time with a :class:`UsageError`, so that the check can never become a second, unaudited
  deserialization path.
* **The model is run on what load will rebuild.** At pack time the sample is stored, read back, and the model is
  run on the copy that was read back; load rebuilds the same copy. A type that would not survive the round trip
  is caught at pack time, never reported as drift later.
* **Small by construction.** A sample is at most :data:`MAX_ROWS` rows and all its members together at most
  :data:`MAX_BYTES` bytes; the check re-runs the model, so it must stay cheap at deploy time.
* **numpy is imported lazily.** ``bundler verify`` must never import numpy (it is meant to run in a small, fast
  process); only ``pack`` and ``load`` call into the functions below.
* **A missing package is not drift.** A stored input that needs a package this environment lacks (pandas for a
  DataFrame, pyarrow for an Arrow column), or a method that now fails to import a module, raises
  :class:`~bundler.errors.EnvironmentMismatch` (exit 4, naming it), never :class:`~bundler.errors.BehaviourDrift`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bundler.errors import EnvironmentMismatch, UsageError
from bundler.pipelines.sample.compare import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    TOLERANCE_RULE,
    compare_arrays,
    tolerance,
)
from bundler.pipelines.sample.storage import MAX_BYTES, MAX_ROWS, PREFIX, MemberReader, MemberWriter, one_line

#: Methods re-run at load time, in this order. ``predict`` is always attempted; the others where the model has them.
METHODS = ("predict", "predict_proba", "decision_function", "transform")
#: Layout versions this bundler reads (see :mod:`bundler.pipelines.sample`).
INFO_FORMATS = (1, 2)


def sample_members(model: Any, sample: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Run ``model`` on ``sample`` and return the archive members to store and the info for the manifest.

    ``sample`` is what the model takes: a numpy array (2-D, or 1-D such as texts), a list of str or of rows, a
    pandas DataFrame or Series (any dtype pandas can name: numbers, strings, categories with missing values,
    datetimes, booleans, nullable types) or a scipy sparse matrix. Returns ``(members, info)`` where ``members``
    maps archive names below ``sample/`` to ``.npy`` bytes and ``info`` is JSON-able and recorded in the manifest
    under ``sample``. Methods that the model lacks, that raise on this sample or whose output is too large, are
    skipped and listed in ``info["skipped"]``; ``predict`` must work and return one result per row.

    Raises :class:`UsageError` for a sample that is too large, has no rows, or holds values that cannot be stored
    without pickle.
    """
    import numpy as np

    from bundler.pipelines.sample.inputs import decode_input, encode_input

    members, input_info, version = encode_input(sample)
    try:
        model_input = decode_input(members.__getitem__, input_info, version)
    except (UsageError, EnvironmentMismatch) as exc:  # a bug of ours, never the user's: say so plainly
        raise UsageError(f"the sample does not read back as it was stored: {exc.problems[0]}") from exc
    rows = int(input_info["rows"])
    outputs = MemberWriter()
    methods: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    budget = MAX_BYTES - sum(len(d) for d in members.values())
    if budget < 0:
        raise UsageError(f"the behaviour sample takes {MAX_BYTES - budget} bytes; the limit is {MAX_BYTES} "
                         f"(use fewer rows)")
    for method in METHODS:
        func = _get_method(model, method)
        if func is None:
            if method == "predict":
                raise UsageError("the model has no predict method; a behaviour sample needs one")
            continue
        try:
            parts = _output_arrays(func(model_input))
        except Exception as exc:  # any failure means "not recordable", reported in info
            if method == "predict":
                raise UsageError(f"the model's predict failed on the sample: {one_line(exc)}") from exc
            skipped[method] = one_line(exc)
            continue
        if method == "predict" and parts[0].ndim >= 1 and parts[0].shape[0] != rows:
            raise UsageError(
                f"the model's predict returned {parts[0].shape[0]} results for a sample of {rows} rows; a text "
                "model takes a 1-D sample (a list of str, a Series, a .txt file with one document per line), "
                "not a table")
        size = sum(part.nbytes for part in parts)
        if size > budget:
            if method == "predict":
                raise UsageError(f"the sample's predict output takes {size} bytes; the limit is {MAX_BYTES} "
                                 f"(use fewer rows)")
            skipped[method] = f"output of {size} bytes exceeds what is left of the {MAX_BYTES}-byte sample limit"
            continue
        budget -= size
        entries = []
        for index, part in enumerate(parts):
            stem = method if len(parts) == 1 else f"{method}.{index}"
            entries.append({**outputs.array(stem, part), "compare": "allclose" if part.dtype.kind in "fc" else "exact"})
        methods[method] = {"outputs": entries}

    members.update(outputs.members)
    info: dict[str, Any] = {
        "format": version,
        "rows": rows,
        "input": input_info,
        "methods": methods,
        "skipped": skipped,
        "tolerance": {"rtol": DEFAULT_RTOL, "atol": DEFAULT_ATOL, "rule": TOLERANCE_RULE},
        "numpy_version": np.__version__,
    }
    if version >= 2:
        for module, key in (("pandas", "pandas_version"), ("scipy", "scipy_version")):
            if module in sys.modules and _uses(input_info, module):
                info[key] = str(getattr(sys.modules[module], "__version__", "unknown"))
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

    Raises :class:`EnvironmentMismatch` when the stored input needs a package this environment lacks, or a method
    now fails because a module cannot be imported: the environment is the problem, not the model's behaviour.
    """
    return [finding.message for finding in behaviour_findings(model, read_member, info)]


def behaviour_findings(model: Any, read_member: Callable[[str], bytes], info: Mapping[str, Any]) -> list[Finding]:
    """:func:`check_behaviour` as findings, so that a caller can tell silently changed outputs from a method that
    now raises (the cross-version matrix counts them apart: the silent kind is the dangerous one)."""
    import numpy as np

    from bundler.pipelines.sample.inputs import decode_input

    version = info.get("format") if isinstance(info, Mapping) else None
    if version not in INFO_FORMATS:
        return [Finding("sample", SAMPLE, "sample: unknown sample info format "
                        f"{version if isinstance(info, Mapping) else info!r} "
                        f"(this bundler reads {', '.join(map(str, INFO_FORMATS))})")]
    rtol, atol = tolerance(info.get("tolerance"))
    try:
        model_input = decode_input(read_member, info.get("input"), int(version))
    except UsageError as exc:
        return [Finding("sample", SAMPLE, f"sample: stored input unreadable: {exc.problems[0]}")]

    problems: list[Finding] = []
    methods = info.get("methods")
    if not isinstance(methods, Mapping) or "predict" not in methods:
        return [Finding("sample", SAMPLE, "sample: no stored predict output")]
    reader = MemberReader(read_member)
    missing: list[str] = []
    # the manifest is canonical JSON (sorted keys): report in the fixed METHODS order, predict first
    for method in sorted(methods, key=lambda m: (METHODS.index(m) if m in METHODS else len(METHODS), m)):
        spec = methods[method]
        if method not in METHODS:
            problems.append(Finding(method, SAMPLE, f"{method}: not a method the behaviour check runs; ignored"))
            continue
        outputs = spec.get("outputs", []) if isinstance(spec, Mapping) else []
        if not isinstance(outputs, list):
            problems.append(Finding(method, SAMPLE, f"{method}: stored outputs unreadable: not a list of arrays"))
            continue
        func = _get_method(model, method)
        if func is None:
            problems.append(Finding(method, RAISES, f"{method}: the loaded model no longer has this method"))
            continue
        try:
            parts = _output_arrays(func(model_input))
        except ModuleNotFoundError as exc:  # the environment lacks a module the method needs: not drift
            missing.append(f"{method}: needs module {exc.name or exc}, which this environment lacks ({one_line(exc)})")
            continue
        except Exception as exc:  # noqa: BLE001 - a method that now raises is a behaviour difference
            problems.append(Finding(method, RAISES, f"{method}: now raises {one_line(exc)}"))
            continue
        if len(parts) != len(outputs):
            problems.append(Finding(method, DIFFERS, f"{method}: returned {len(parts)} arrays, {len(outputs)} were "
                                                     "stored"))
            continue
        for index, (entry, new) in enumerate(zip(outputs, parts, strict=True)):
            label = method if len(outputs) == 1 else f"{method}[{index}]"
            try:
                old = reader.array(entry, what=f"stored {label}")
            except UsageError as exc:
                problems.append(Finding(method, SAMPLE, f"{label}: stored output unreadable: {exc.problems[0]}"))
                continue
            line = compare_arrays(label, old, new, rtol=rtol, atol=atol, np=np)
            if line:
                problems.append(Finding(method, DIFFERS, line))
    if missing:
        raise EnvironmentMismatch(missing[0], problems=missing)
    return problems


# --------------------------------------------------------------------------------------------------- helpers


def _uses(spec: Any, module: str) -> bool:
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    return (module == "pandas" and kind in ("series", "dataframe")) or (module == "scipy" and kind == "sparse")


def _get_method(model: Any, name: str) -> Callable[[Any], Any] | None:
    """Return ``model.<name>`` if it exists; scikit-learn's ``available_if`` raises AttributeError when absent."""
    try:
        func = getattr(model, name)
    except AttributeError:
        return None
    except Exception:  # noqa: BLE001 - a property that raises something else is just as unavailable
        return None
    return func if callable(func) else None


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


__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "MAX_BYTES", "MAX_ROWS", "METHODS", "PREFIX", "check_behaviour",
           "compare_arrays", "sample_members"]
