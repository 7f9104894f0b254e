"""``bundler pack --sample FILE``: CSV/TSV with a header (a DataFrame, dtypes recorded), Parquet (only with pyarrow:
both cases, the second in a subprocess that cannot import it), .npy without pickle, .npz sparse, .txt texts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

import bundler
from bundler.cli import main
from bundler.cli.sample_files import read_sample
from bundler.errors import UsageError


def test_csv_and_tsv_are_dataframes_with_inferred_dtypes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"city": ["paris", "lyon"], "age": [31, 45], "income": [1.5, np.nan], "member": [True, False]})
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.to_csv(tmp_path / "s.tsv", index=False, sep="\t")
    for name in ("s.csv", "s.tsv"):
        read = read_sample(tmp_path / name)
        assert isinstance(read, pd.DataFrame)
        assert list(read.columns) == ["city", "age", "income", "member"]
        assert [read[c].dtype.kind for c in ("age", "income", "member")] == ["i", "f", "b"]


def test_parquet_keeps_categories_and_datetimes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"c": pd.Categorical(["a", None, "b"]),
                          "t": pd.to_datetime(["2020-01-01", None, "2021-01-01"])})
    frame.to_parquet(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(read_sample(tmp_path / "s.parquet"), frame)


PARQUET_WITHOUT_PYARROW = """
import sys
sys.modules["pyarrow"] = None  # as if pyarrow were not installed: every import of it fails
from bundler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_parquet_without_pyarrow_is_a_usage_error(tmp_path: Path, model: Any, data: Any) -> None:
    src = tmp_path / "m.joblib"
    joblib.dump(model, src)
    pd.DataFrame(data[0][:5]).set_axis([f"x{i}" for i in range(data[0].shape[1])], axis=1).to_parquet(
        tmp_path / "s.parquet")
    result = subprocess.run([sys.executable, "-c", PARQUET_WITHOUT_PYARROW, "pack", str(src), "-o",
                             str(tmp_path / "o.mlbundle"), "--sample", str(tmp_path / "s.parquet"), "--no-config"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "reading a Parquet sample needs pyarrow, which is not installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.mlbundle").exists()


def test_npy_npz_and_txt(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(read_sample(tmp_path / "a.npy"), np.arange(6.0).reshape(3, 2))
    matrix = sp.random(5, 4, density=0.5, format="csc", random_state=0)
    sp.save_npz(tmp_path / "m.npz", matrix)
    read = read_sample(tmp_path / "m.npz")
    assert read.format == "csc"
    assert (read != matrix).nnz == 0
    (tmp_path / "t.txt").write_text("first text\r\nsecond, with ünïcode\n\nfourth\n", encoding="utf-8")
    assert read_sample(tmp_path / "t.txt") == ["first text", "second, with ünïcode", "", "fourth"]


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("o.npy", lambda p: np.save(p, np.array([object()]), allow_pickle=True), "cannot read the sample as .npy"),
        ("d.npz", lambda p: np.savez(p, a=np.zeros(3)), "cannot read the sample as .npz"),
        ("b.txt", lambda p: p.write_bytes(b"\xff\xfe bad"), "not UTF-8 text"),
        ("s.xlsx", lambda p: p.write_bytes(b"PK"), "a sample file must be one of"),
        ("e.csv", lambda p: p.write_text(""), "cannot read the sample as .csv"),
    ],
)
def test_unreadable_sample_files(tmp_path: Path, name: str, write: Any, message: str) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(UsageError, match=message):
        read_sample(path)


def test_cli_pack_with_a_csv_of_a_dataframe_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: a CSV with a header and a text column ("could not convert string 'city' to float64")."""
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"city": ["paris", "lyon", "nice", "paris"] * 5, "age": list(range(20))})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"),
                          LogisticRegression()).fit(frame, [0, 1] * 10)
    joblib.dump(model, tmp_path / "m.joblib")
    frame[:6].to_csv(tmp_path / "sample.csv", index=False)
    out = tmp_path / "m.mlbundle"
    assert main(["pack", str(tmp_path / "m.joblib"), "-o", str(out), "--sample", str(tmp_path / "sample.csv"),
                 "--no-config"]) == 0, capsys.readouterr().err
    info = bundler.inspect(out).sample
    assert info is not None
    assert [(c["name"], c["dtype"]) for c in info["input"]["columns"]] == [("city", str(frame["city"].dtype)),
                                                                           ("age", "int64")]
    assert "pandas" in bundler.inspect(out).environment.packages
    assert main(["load", str(out), "--no-config"]) == 0
    assert "behaviour check passed" in capsys.readouterr().out


def test_a_table_given_to_a_text_model_says_what_to_give_instead(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(["a cat", "a dog", "the cat", "dogs"],
                                                                       [0, 1, 0, 1])
    joblib.dump(model, tmp_path / "m.joblib")
    pd.DataFrame({"text": ["a cat", "the dog", "cats"]}).to_csv(tmp_path / "s.csv", index=False)
    assert main(["pack", str(tmp_path / "m.joblib"), "-o", str(tmp_path / "o.mlbundle"), "--sample",
                 str(tmp_path / "s.csv"), "--no-config"]) == 2
    err = capsys.readouterr().err
    assert "predict returned 1 results for a sample of 3 rows; a text model takes a 1-D sample" in err
    assert not (tmp_path / "o.mlbundle").exists()
