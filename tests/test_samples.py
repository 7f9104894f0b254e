"""The stored sample layout (``bundler.pipelines.sample``): every input kind comes back as the same type, nothing is
ever pickled, format-1 bundles still read, and a crafted description is refused without crashing anything."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from bundler.errors import UsageError
from bundler.pipelines.sample.inputs import decode_input, encode_input
from bundler.pipelines.sample.storage import MAX_ROWS


def roundtrip(sample: Any) -> tuple[Any, dict[str, Any], dict[str, bytes], int]:
    members, spec, version = encode_input(sample)
    spec = json.loads(json.dumps(spec))  # what the manifest holds
    for name, data in members.items():
        assert name.startswith("sample/input")
        np.load(io.BytesIO(data), allow_pickle=False)  # every member is a plain .npy
    return decode_input(members.__getitem__, spec, version), spec, members, version


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "city": pd.Categorical(["paris", None, "lyon", "paris"], categories=["lyon", "paris", "nice"]),
        "rank": pd.Categorical([3, 1, None, 2], ordered=True),
        "text": ["a", "bb", None, "ünï"],
        "n": [1, 2, 3, 4],
        "u8": np.array([1, 2, 3, 250], dtype=np.uint8),
        "f32": np.array([1.5, np.nan, 2.5, -0.0], dtype=np.float32),
        "flag": [True, False, True, False],
        "when": pd.to_datetime(["2020-01-01 00:00", None, "2021-06-30 12:00", "1999-12-31 23:59"]),
        "zoned": pd.to_datetime(["2020-01-01 00:00", None, "2021-06-30 00:00", "2022-03-27 01:30"]).tz_localize("UTC")
                   .tz_convert("Europe/Paris"),
        "delta": pd.to_timedelta([1, None, 3, 4], unit="h"),
        "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
        "maybe": pd.array([True, None, False, True], dtype="boolean"),
        "string": pd.array(["x", None, "z", ""], dtype="string"),
        "mixed": pd.Series(["a", 1, 2.5, None], dtype=object),
        7: [0.1, 0.2, 0.3, 0.4],
    }, index=pd.Index([10, 20, 30, 40], name="row"))


def test_dataframe_comes_back_with_the_same_dtypes_index_and_missing_values() -> None:
    frame = table()
    back, spec, _, version = roundtrip(frame)
    assert version == 2
    assert spec["kind"] == "dataframe"
    pd.testing.assert_frame_equal(back, frame)
    assert [c["dtype"] for c in spec["columns"]][:3] == ["category", "category", str(frame["text"].dtype)]
    assert back["city"].isna().tolist() == [False, True, False, False]  # NaN in a category survives


def test_dataframe_with_a_range_index_and_arrow_strings() -> None:
    frame = pd.DataFrame({"s": pd.array(["a", None], dtype="str"), "x": [1.0, 2.0]})
    back, spec, _, _ = roundtrip(frame)
    assert spec["index"] == {"kind": "range", "start": 0, "stop": 2, "step": 1, "name": None}
    pd.testing.assert_frame_equal(back, frame)


def test_series_list_tuple_and_text_arrays() -> None:
    texts = ["the cat", "", "ünïcode 🐍", "trailing nul\x00", "a\nnewline"]
    series = pd.Series(texts, name="review", index=[5, 6, 7, 8, 9])
    back, spec, _, _ = roundtrip(series)
    assert spec["kind"] == "series"
    pd.testing.assert_series_equal(back, series)
    back, spec, _, _ = roundtrip(texts)
    assert spec["kind"] == "list"
    assert type(back) is list
    assert back == texts
    back, spec, _, _ = roundtrip(tuple(texts))
    assert type(back) is tuple
    assert back == tuple(texts)
    rows = [[1, 2.5], [3, 4.0]]
    back, spec, _, _ = roundtrip(rows)
    assert back == rows
    assert spec["values"]["encoding"] == "npy"
    fixed = np.array(["x", "yy"])
    back, spec, _, _ = roundtrip(fixed)
    assert back.dtype == fixed.dtype
    assert (back == fixed).all()
    objects = np.array([["a", 1.0], [None, np.nan]], dtype=object)
    back, spec, _, _ = roundtrip(objects)
    assert back.dtype == object
    assert back[0, 0] == "a"
    assert back[1, 0] is None
    assert np.isnan(back[1, 1])


def test_a_2d_numeric_array_keeps_the_format_1_layout() -> None:
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    back, spec, members, version = roundtrip(X)
    assert version == 1
    assert set(members) == {"sample/input.npy"}
    assert spec == {"kind": "array", "rows": 4, "member": "sample/input.npy", "dtype": "<f8", "shape": [4, 3]}
    np.testing.assert_array_equal(back, X)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "lil", "dok", "dia"])
@pytest.mark.parametrize("container", ["matrix", "array"])
def test_sparse_comes_back_in_the_same_format(fmt: str, container: str) -> None:
    dense = np.zeros((6, 5))
    dense[0, 1], dense[2, 4], dense[5, 0], dense[3, 3] = 1.5, -2.0, 3.0, 0.25
    matrix = getattr(sp, f"{fmt}_{container}")(dense)
    back, spec, _, _ = roundtrip(matrix)
    assert spec["kind"] == "sparse"
    assert spec["format"] == fmt
    assert spec["container"] == container
    assert type(back) is type(matrix)
    assert back.dtype == matrix.dtype
    np.testing.assert_array_equal(back.toarray(), dense)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (np.array([[__import__("datetime").date(2020, 1, 1)]], dtype=object), "datetime.date"),
        (pd.DataFrame({"p": pd.period_range("2020-01", periods=2, freq="M")}), "Period"),
        (pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])), "MultiIndex"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names"),
        (pd.DataFrame({True: [1]}), "neither a string nor an integer"),
        (pd.DataFrame({"a": range(MAX_ROWS + 1)}), "limit is 10000"),
        (pd.DataFrame(index=range(3)), "no columns"),
        (np.zeros((2, 2, 2)), "must be 1-D"),
        ([[1, 2], [3]], "not rectangular"),
        (np.array([2**70], dtype=object), "does not fit in 64 bits"),
        (sp.csr_matrix(np.zeros((0, 3))), "no rows"),
    ],
)
def test_what_cannot_be_stored_without_pickle_is_refused(sample: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        encode_input(sample)


# -- reading what others wrote -------------------------------------------------------------------------------------
def test_format_1_dataframe_is_still_read() -> None:
    """The layout bundlers wrote before format 2: one .npy per column and a ``pandas_dtype``."""
    members = {"sample/input.col0.npy": _npy(np.array([1.0, 2.0])),
               "sample/input.col1.npy": _npy(np.array(["a", "b"]))}
    spec = {"kind": "dataframe", "rows": 2, "columns": [
        {"name": "x", "member": "sample/input.col0.npy", "dtype": "<f8", "pandas_dtype": "float64"},
        {"name": "c", "member": "sample/input.col1.npy", "dtype": "<U1", "pandas_dtype": "category"}]}
    frame = decode_input(members.__getitem__, spec, 1)
    assert list(frame.columns) == ["x", "c"]
    assert str(frame["c"].dtype) == "category"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _crafted(change: Callable[[dict[str, Any], dict[str, bytes]], None], sample: Any) -> tuple[Any, Any]:
    members, spec, _ = encode_input(sample)
    spec = json.loads(json.dumps(spec))
    change(spec, members)
    return (members.__getitem__, spec)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any], dict[str, bytes]], None]:
    def change(spec: dict[str, Any], members: dict[str, bytes]) -> None:  # noqa: ARG001 - one mutation signature
        target: Any = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _replace(member: str, array: np.ndarray) -> Callable[[dict[str, Any], dict[str, bytes]], None]:
    def change(spec: dict[str, Any], members: dict[str, bytes]) -> None:  # noqa: ARG001 - one mutation signature
        members[member] = _npy(array)

    return change


CSR = sp.csr_matrix(np.eye(4))
TEXT = ["ab", "c", "def"]
FRAME = pd.DataFrame({"c": pd.Categorical(["x", "y", None])})


@pytest.mark.parametrize(
    ("sample", "change", "message"),
    [
        (TEXT, _set(["values", "codes", "member"], "model/model.joblib"), "not below 'sample/'"),
        (TEXT, _set(["values", "codes", "member"], "sample/../model.joblib"), "not below 'sample/'"),
        (TEXT, _replace("sample/input.offsets.npy", np.array([0, 3, 1, 6])), "offsets"),
        (TEXT, _replace("sample/input.codes.npy", np.array([0, 9, 0], dtype=np.uint8)), "unknown element codes"),
        (TEXT, _set(["values", "shape"], [4]), "codes do not match the shape"),
        (TEXT, _replace("sample/input.utf8.npy", np.frombuffer(b"\xff\xfe\xfd\xfc\xfb\xfa", dtype=np.uint8)),
         "not UTF-8"),
        (CSR, _replace("sample/input.indices.npy", np.array([0, 1, 2, 99], dtype=np.int32)), "malformed"),
        (CSR, _replace("sample/input.indptr.npy", np.array([0, 3, 1, 3, 4], dtype=np.int32)), "malformed"),
        (CSR, _set(["shape"], [10**6, 4]), "bad shape"),
        (CSR, _set(["stored_as"], "lil"), "unknown format"),
        (FRAME, _replace("sample/input.col0.codes.npy", np.array([0, 5, -1], dtype=np.int8)), "categories"),
        (FRAME, _set(["columns", 0, "categories", "dtype"], "category"), "nested categories"),
        (FRAME, _set(["columns", 0, "dtype"], "period[D]"), "not one a sample may hold|unknown dtype"),
        (FRAME, _set(["index", "stop"], 10**9), "more than 10000"),
        (FRAME, _set(["kind"], "pickle"), "unknown input kind"),
        (np.zeros((3, 2)), _set(["shape"], [3, 3]), "shape"),
        (np.zeros((3, 2)), _set(["dtype"], "|O"), "dtype"),
    ],
)
def test_crafted_descriptions_are_refused(sample: Any, change: Callable[..., None], message: str) -> None:
    read, spec = _crafted(change, sample)
    with pytest.raises(UsageError, match=message):
        decode_input(read, spec, 1 if spec.get("kind") == "array" else 2)


def test_a_pickled_member_is_never_unpickled() -> None:
    members, spec, version = encode_input(TEXT)
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()] * 3, dtype=object), allow_pickle=True)
    members["sample/input.codes.npy"] = buffer.getvalue()
    with pytest.raises(UsageError, match=r"not a plain \.npy array"):
        decode_input(members.__getitem__, spec, version)


DECODE_WITHOUT_PYARROW = """
import json, sys
from pathlib import Path
sys.modules["pyarrow"] = None  # as in an environment without pyarrow; pandas itself works without it
from bundler.pipelines.sample.inputs import decode_input
from bundler.pipelines.sample.storage import MissingPackage
folder = Path(sys.argv[1])
spec = json.loads((folder / "spec.json").read_text())
try:
    decode_input(lambda name: (folder / name.replace("/", "_")).read_bytes(), spec, 2)
except MissingPackage as exc:
    print(json.dumps({"package": exc.package, "exit_code": exc.exit_code, "message": str(exc)}))
"""


def test_an_arrow_column_needs_pyarrow(tmp_path: Any) -> None:
    import subprocess
    import sys

    import pyarrow  # noqa: F401  (in the test extra: the Arrow column is written where pyarrow is installed)

    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype="int64[pyarrow]")})
    back, spec, members, _ = roundtrip(frame)
    pd.testing.assert_frame_equal(back, frame)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    for name, data in members.items():
        (tmp_path / name.replace("/", "_")).write_bytes(data)
    result = subprocess.run([sys.executable, "-c", DECODE_WITHOUT_PYARROW, str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["package"] == "pyarrow"
    assert found["exit_code"] == 4
    assert "int64[pyarrow]" in found["message"]
    assert "pyarrow is not installed" in found["message"]
