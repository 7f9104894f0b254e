"""The input kinds of a stored sample: what a model is fed, stored without pickle and rebuilt as the same type.

``encode_input(sample)`` returns the members, the JSON description (the manifest's ``sample.input``) and the layout
version it needs; ``decode_input(read_member, description, version)`` rebuilds the input. The layout is documented
in ``bundler/pipelines/sample/__init__.py`` and in the README; reading format-1 descriptions (bundles made before
format 2) is kept here too.

pandas and scipy are imported only when the sample is a DataFrame/Series or a sparse matrix, and only if the caller
already has them imported (an object cannot be a DataFrame when pandas was never imported). Rebuilding an input
that needs a package this environment lacks raises :class:`~bundler.pipelines.sample.storage.MissingPackage`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from bundler.errors import UsageError
from bundler.pipelines.sample.storage import (
    MAX_ROWS,
    MemberReader,
    MemberWriter,
    decode_values,
    encode_values,
    one_line,
    require,
)

__all__ = ["MAX_COLUMNS", "MAX_ELEMENTS", "decode_column", "decode_input", "encode_column", "encode_input"]

#: The sparse formats stored part by part as they are; any other format is stored as CSR and converted back.
_NATIVE_SPARSE = {"csr": ("data", "indices", "indptr"), "csc": ("data", "indices", "indptr"),
                  "coo": ("data", "row", "col")}
_SPARSE_FORMATS = ("csr", "csc", "coo", "bsr", "lil", "dok", "dia")
#: Largest number of columns a stored sample may declare (bounds what a crafted description can make us build).
MAX_COLUMNS = 1 << 20
MAX_ELEMENTS = 64 << 20
#: pandas extension dtypes a stored column may name (by class): nullable numbers and booleans, strings, zoned
#: datetimes, and Arrow-backed columns (which need pyarrow to rebuild). Nothing else is resolved from a manifest.
_EXTENSION_DTYPES = frozenset({
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype",
    "Float32Dtype", "Float64Dtype", "BooleanDtype", "StringDtype", "DatetimeTZDtype", "ArrowDtype",
})


def encode_input(sample: Any) -> tuple[dict[str, bytes], dict[str, Any], int]:
    """``(members, description, layout version)`` for ``sample``; a UsageError says why a sample cannot be stored."""
    if sample is None:
        raise UsageError("no behaviour sample given")
    writer = MemberWriter()
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(sample, pd.DataFrame):
        return writer.members, _encode_dataframe(writer, sample), 2
    if pd is not None and isinstance(sample, pd.Series):
        rows = _check_rows(len(sample))
        return writer.members, {"kind": "series", "rows": rows, "name": _label(sample.name, "the Series name"),
                                "column": encode_column(writer, "input", sample, "the sample Series"),
                                "index": _encode_index(writer, sample.index)}, 2
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(sample):
        return writer.members, _encode_sparse(writer, sample, sparse), 2
    import numpy as np

    if isinstance(sample, (list, tuple)):
        container = "list" if isinstance(sample, list) else "tuple"
        if sample and all(isinstance(v, str) for v in sample):
            array = np.empty(len(sample), dtype=object)
            array[:] = sample
        else:
            try:
                array = np.asarray(sample)
            except ValueError as exc:  # ragged rows
                raise UsageError(f"the sample {container} is not rectangular: {one_line(exc)}") from None
        _check_array_shape(array, f"the sample {container}")
        values = encode_values(writer, "input", array, f"the sample {container}")
        return writer.members, {"kind": container, "rows": int(array.shape[0]), "values": values}, 2
    array = np.asarray(sample)
    _check_array_shape(array, "the sample")
    if array.ndim == 2 and array.dtype.kind in "biufcUSMm":
        # Exactly the format-1 layout: bundlers that predate format 2 can still check such a bundle.
        spec = writer.array("input", array)
        return writer.members, {"kind": "array", "rows": int(array.shape[0]), **spec}, 1
    values = encode_values(writer, "input", array, "the sample")
    return writer.members, {"kind": "ndarray", "rows": int(array.shape[0]), "values": values}, 2


def decode_input(read_member: Callable[[str], bytes], spec: Any, version: int) -> Any:
    """Rebuild the input ``spec`` describes (layout ``version`` 1 or 2) from its members."""
    reader = MemberReader(read_member)
    if not isinstance(spec, Mapping):
        raise UsageError("no input description")
    kind = spec.get("kind")
    if version == 1:
        return _decode_v1(reader, spec)
    if kind == "array":  # written as format 1 is also valid inside format 2
        return _decode_v1(reader, spec)
    if kind in ("ndarray", "list", "tuple"):
        array = decode_values(reader, spec.get("values"), "the stored input", max_elements=MAX_ELEMENTS)
        _check_array_shape(array, "the stored input")
        if kind == "ndarray":
            return array
        items = array.tolist()
        return items if kind == "list" else tuple(items)
    if kind == "series":
        pd = require("pandas", "pandas", "a pandas Series")
        index = _decode_index(reader, spec.get("index"), pd)
        series = decode_column(reader, spec.get("column"), pd, "the stored Series", rows=len(index))
        series.index = index
        series.name = _label(spec.get("name"), "the Series name")
        return series
    if kind == "dataframe":
        return _decode_dataframe(reader, spec)
    if kind == "sparse":
        return _decode_sparse(reader, spec)
    raise UsageError(f"unknown input kind {kind!r}")


# ------------------------------------------------------------------------------------------------------ helpers


def _check_rows(rows: int) -> int:
    if rows < 1:
        raise UsageError("the behaviour sample has no rows")
    if rows > MAX_ROWS:
        raise UsageError(f"the behaviour sample has {rows} rows; the limit is {MAX_ROWS}")
    return int(rows)


def _check_array_shape(array: Any, what: str) -> None:
    if array.ndim not in (1, 2):
        raise UsageError(f"{what} must be 1-D (e.g. texts) or 2-D (rows x features); got shape {array.shape}")
    _check_rows(array.shape[0])


def _label(value: Any, what: str) -> str | int | None:
    """Column and index names are stored as JSON: strings, integers or null."""
    import numbers

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise UsageError(f"{what} {value!r} is neither a string nor an integer; it cannot be stored")


# ---------------------------------------------------------------------------------------------- pandas columns


def encode_column(writer: MemberWriter, stem: str, series: Any, what: str) -> dict[str, Any]:
    """One pandas column (a Series or an Index turned into one): its dtype name and its values."""
    import pandas as pd

    dtype = series.dtype
    name = str(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = pd.Series(dtype.categories)
        if isinstance(categories.dtype, pd.CategoricalDtype):
            raise UsageError(f"{what}: categories that are themselves categorical cannot be stored")
        return {"dtype": "category", "ordered": bool(dtype.ordered),
                "codes": writer.array(f"{stem}.codes", series.cat.codes.to_numpy()),
                "categories": encode_column(writer, f"{stem}.categories", categories, f"{what} categories")}
    try:
        same = pd.api.types.pandas_dtype(name) == dtype
    except (TypeError, ValueError, ImportError):
        same = False
    if not same:
        raise UsageError(f"{what} has dtype {name}, which cannot be rebuilt from its name; convert it first")
    if isinstance(dtype, pd.DatetimeTZDtype):
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        return {"dtype": name, "values": encode_values(writer, stem, utc, what)}
    if getattr(dtype, "kind", "O") in "biufcmM" and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
        values = series.to_numpy()
    else:  # object, strings, nullable integers/booleans/floats, Arrow-backed: element by element
        values = series.astype(object).to_numpy()
    return {"dtype": name, "values": encode_values(writer, stem, values, what)}


def decode_column(reader: MemberReader, spec: Any, pd: Any, what: str, *, rows: int,
                  categories_allowed: bool = True) -> Any:
    """The pandas Series :func:`encode_column` stored (default RangeIndex, no name)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("dtype"), str):
        raise UsageError(f"{what}: no column description")
    name = spec["dtype"]
    if name == "category":
        if not categories_allowed:
            raise UsageError(f"{what}: nested categories")
        codes = reader.array(spec.get("codes"), kinds="i", what=f"{what} codes")
        if codes.ndim != 1 or codes.size != rows:
            raise UsageError(f"{what}: {codes.size} codes for {rows} rows")
        categories = decode_column(reader, spec.get("categories"), pd, f"{what} categories", rows=-1,
                                   categories_allowed=False)
        try:
            dtype = pd.CategoricalDtype(categories=pd.Index(categories), ordered=bool(spec.get("ordered")))
            return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{what}: categories do not rebuild: {one_line(exc)}") from None
    import numpy as np

    dtype = _pandas_dtype(pd, name, what)
    values = decode_values(reader, spec.get("values"), what, max_elements=MAX_ELEMENTS)
    if values.ndim != 1 or (rows >= 0 and values.shape[0] != rows):
        raise UsageError(f"{what}: {values.shape[0] if values.ndim == 1 else values.shape} values for {rows} rows")
    try:
        if isinstance(dtype, pd.DatetimeTZDtype):
            if values.dtype.kind != "M":
                raise UsageError(f"{what}: a {name} column must be stored as datetimes")
            return pd.Series(values).dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
        if values.dtype.kind == "O" and not (isinstance(dtype, np.dtype) and dtype.kind == "O"):
            return pd.Series(pd.array(values, dtype=dtype))
        return pd.Series(values, dtype=dtype)
    except ImportError as exc:  # an Arrow-backed dtype without pyarrow
        package = getattr(exc, "name", None) or "pyarrow"
        raise _missing(package, f"a column of dtype {name}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise UsageError(f"{what}: values do not rebuild as {name}: {one_line(exc)}") from None


def _missing(package: str, what: str) -> Exception:
    from bundler.pipelines.sample.storage import MissingPackage

    return MissingPackage(package.split(".")[0], what)


def _pandas_dtype(pd: Any, name: str, what: str) -> Any:
    """Resolve a recorded dtype name, accepting only the families a sample may hold."""
    try:
        dtype = pd.api.types.pandas_dtype(name)
    except ImportError as exc:
        raise _missing(getattr(exc, "name", None) or "pyarrow", f"a column of dtype {name}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what}: unknown dtype {name!r} ({one_line(exc)})") from None
    import numpy as np

    if isinstance(dtype, np.dtype):
        if dtype.kind not in "biufcmMO":
            raise UsageError(f"{what}: dtype {name!r} is not one a sample may hold")
        return dtype
    cls = type(dtype)
    if not (cls.__module__.startswith("pandas") and cls.__name__ in _EXTENSION_DTYPES):
        raise UsageError(f"{what}: dtype {name!r} is not one a sample may hold")
    return dtype


def _encode_index(writer: MemberWriter, index: Any) -> dict[str, Any]:
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        raise UsageError("a sample with a MultiIndex cannot be stored; use reset_index() first")
    name = _label(index.name, "the index name")
    if isinstance(index, pd.RangeIndex):
        return {"kind": "range", "start": int(index.start), "stop": int(index.stop), "step": int(index.step),
                "name": name}
    return {"kind": "values", "name": name,
            "column": encode_column(writer, "input.index", pd.Series(index), "the sample index")}


def _decode_index(reader: MemberReader, spec: Any, pd: Any) -> Any:
    if not isinstance(spec, Mapping):
        raise UsageError("the stored input has no index description")
    name = _label(spec.get("name"), "the index name")
    if spec.get("kind") == "range":
        bounds = [spec.get(k) for k in ("start", "stop", "step")]
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) or bounds[2] == 0:
            raise UsageError("the stored index range is malformed")
        index = pd.RangeIndex(*bounds, name=name)
        if len(index) > MAX_ROWS:
            raise UsageError(f"the stored index has {len(index)} rows, more than {MAX_ROWS}")
        return index
    if spec.get("kind") == "values":
        column = decode_column(reader, spec.get("column"), pd, "the stored index", rows=-1)
        if len(column) > MAX_ROWS:
            raise UsageError(f"the stored index has {len(column)} rows, more than {MAX_ROWS}")
        return pd.Index(column, name=name)
    raise UsageError(f"unknown index kind {spec.get('kind')!r}")


def _encode_dataframe(writer: MemberWriter, frame: Any) -> dict[str, Any]:
    import pandas as pd

    rows = _check_rows(frame.shape[0])
    if isinstance(frame.columns, pd.MultiIndex):
        raise UsageError("a sample DataFrame with MultiIndex columns cannot be stored; flatten the columns first")
    if frame.shape[1] == 0:
        raise UsageError("the sample DataFrame has no columns")
    if not frame.columns.is_unique:
        raise UsageError("the sample DataFrame has duplicate column names")
    columns = []
    for i, label in enumerate(frame.columns):
        name = _label(label, "column name")
        col = encode_column(writer, f"input.col{i}", frame.iloc[:, i], f"sample column {label!r}")
        columns.append({"name": name, **col})
    return {"kind": "dataframe", "rows": rows, "columns": columns, "index": _encode_index(writer, frame.index)}


def _decode_dataframe(reader: MemberReader, spec: Mapping[str, Any]) -> Any:
    pd = require("pandas", "pandas", "a pandas DataFrame")
    columns = spec.get("columns")
    if not isinstance(columns, list) or not columns or len(columns) > MAX_COLUMNS:
        raise UsageError("the stored DataFrame has no valid column list")
    index = _decode_index(reader, spec.get("index"), pd)
    data: dict[Any, Any] = {}
    for col in columns:
        if not isinstance(col, Mapping):
            raise UsageError("the stored DataFrame has a malformed column")
        name = _label(col.get("name"), "column name")
        if name in data:
            raise UsageError(f"the stored DataFrame names column {name!r} twice")
        data[name] = decode_column(reader, col, pd, f"stored column {name!r}", rows=len(index))
    frame = pd.DataFrame(data)
    frame.index = index
    return frame


# ---------------------------------------------------------------------------------------------------- sparse


def _encode_sparse(writer: MemberWriter, matrix: Any, sparse: Any) -> dict[str, Any]:
    fmt = matrix.format
    if fmt not in _SPARSE_FORMATS:
        raise UsageError(f"sparse format {fmt!r} cannot be stored")
    rows = _check_rows(matrix.shape[0])
    container = "matrix" if isinstance(matrix, sparse.spmatrix) else "array"
    if matrix.dtype.kind not in "biufc":
        raise UsageError(f"a sparse sample of dtype {matrix.dtype} cannot be stored")
    stored = matrix if fmt in _NATIVE_SPARSE else matrix.tocsr()
    parts = {}
    for part in _NATIVE_SPARSE[stored.format]:
        parts[part] = writer.array(f"input.{part}", getattr(stored, part))
    return {"kind": "sparse", "rows": rows, "format": fmt, "stored_as": stored.format, "container": container,
            "shape": [int(n) for n in matrix.shape], "parts": parts}


def _decode_sparse(reader: MemberReader, spec: Mapping[str, Any]) -> Any:
    sparse = require("scipy.sparse", "scipy", "a scipy sparse matrix")
    import numpy as np

    fmt, stored_as, container = spec.get("format"), spec.get("stored_as"), spec.get("container")
    shape = spec.get("shape")
    if fmt not in _SPARSE_FORMATS or stored_as not in _NATIVE_SPARSE or container not in ("matrix", "array"):
        raise UsageError(f"the stored sparse input has an unknown format {fmt!r}/{stored_as!r}/{container!r}")
    if not (isinstance(shape, list) and len(shape) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
            and 1 <= shape[0] <= MAX_ROWS and 0 <= shape[1] <= 2**31 - 1):
        raise UsageError(f"the stored sparse input has a bad shape {shape!r}")
    given = spec.get("parts")
    raw: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    names = _NATIVE_SPARSE[stored_as]
    parts = {name: reader.array(raw.get(name), kinds="biufc" if name == "data" else "iu",
                                what=f"sparse {name}") for name in names}
    if any(p.ndim != 1 or p.size > MAX_ELEMENTS for p in parts.values()):
        raise UsageError("the stored sparse parts are not 1-D or too large")
    cls = getattr(sparse, f"{stored_as}_{container}")
    try:
        if stored_as == "coo":
            row, col = parts["row"], parts["col"]
            if not (row.size == col.size == parts["data"].size):
                raise ValueError("row, col and data differ in length")
            if row.size and (row.min() < 0 or col.min() < 0 or row.max() >= shape[0] or col.max() >= shape[1]):
                raise ValueError("an index lies outside the shape")
            matrix = cls((parts["data"], (row, col)), shape=tuple(shape))
        else:
            matrix = cls((parts["data"], parts["indices"], parts["indptr"]), shape=tuple(shape))
            # Native code trusts these arrays: every index and pointer must be in bounds before anyone uses them.
            matrix.check_format(full_check=True)
            if matrix.indices.dtype != np.int32 and matrix.indices.dtype != np.int64:
                raise ValueError("indices must be int32 or int64")
        return matrix if fmt == stored_as else matrix.asformat(fmt)
    except (ValueError, TypeError, IndexError) as exc:
        raise UsageError(f"the stored sparse input is malformed: {one_line(exc)}") from None


# ------------------------------------------------------------------------------------------------ format 1


def _decode_v1(reader: MemberReader, spec: Mapping[str, Any]) -> Any:
    """Inputs as bundlers before format 2 stored them: a 2-D array, or a DataFrame of one ``.npy`` per column."""
    kind = spec.get("kind")
    if kind == "array":
        array = reader.array(spec, what="the stored input")
        if array.ndim != 2 or array.shape[0] > MAX_ROWS:
            raise UsageError(f"stored input has shape {array.shape}")
        return array
    if kind == "dataframe":
        import contextlib

        pd = require("pandas", "pandas", "a pandas DataFrame")
        data = {}
        for col in spec.get("columns", []):
            values = reader.array(col, what="a stored column")
            series = pd.Series(values, name=col.get("name"))
            pandas_dtype = col.get("pandas_dtype")
            if isinstance(pandas_dtype, str) and pandas_dtype != str(series.dtype):
                # format 1 kept the numpy dtype when pandas refused; a mismatch shows as a behaviour difference
                with contextlib.suppress(TypeError, ValueError):
                    series = series.astype(pandas_dtype)
            data[col.get("name")] = series
        return pd.DataFrame(data)
    raise UsageError(f"unknown input kind {kind!r}")
