"""Reading ``pack --sample FILE``: the file formats a command-line user has a model's input in.

The format comes from the file name, since each one is read differently and none can be told apart reliably by
content (a CSV and a text file are both text):

* ``.csv`` / ``.tsv``: a table with a header, read by pandas as a DataFrame (pandas infers and the sample records
  every column's dtype);
* ``.parquet`` / ``.pq``: a DataFrame with its stored dtypes (categories, datetimes...), read with pyarrow, which is
  optional: without it this is a usage error saying so;
* ``.npy``: one numpy array, read with ``allow_pickle=False`` (an object array is refused, never unpickled);
* ``.npz``: a scipy sparse matrix written by ``scipy.sparse.save_npz`` (read by ``load_npz``, which does not unpickle);
* ``.txt``: one text per line, read as a list of str (what a text pipeline such as TF-IDF + a linear model takes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bundler.errors import UsageError

__all__ = ["SUFFIXES", "read_sample"]

SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".npy", ".npz", ".txt")


def read_sample(path: str | Path) -> Any:
    """The sample stored in ``path``; a UsageError (one line) for a file that cannot be read as its format."""
    from bundler.container.archive import check_input_file

    p = check_input_file(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"{p}: a sample file must be one of {', '.join(SUFFIXES)} (by its name)")
    try:
        if suffix in (".csv", ".tsv"):
            pd = _pandas(p, "a CSV sample")
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            pd = _pandas(p, "a Parquet sample")
            try:
                import pyarrow  # noqa: F401  (pandas reads Parquet with it; the error must say so, not pandas')
            except ImportError:
                raise UsageError(f"{p}: reading a Parquet sample needs pyarrow, which is not installed "
                                 "(pip install pyarrow, or give the sample as .csv or .npy)") from None
            return pd.read_parquet(p, engine="pyarrow")
        if suffix == ".npy":
            import numpy as np

            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            import scipy.sparse

            return scipy.sparse.load_npz(p)
        text = p.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        return [line.removesuffix("\r") for line in lines]
    except UsageError:
        raise
    except UnicodeDecodeError as exc:
        raise UsageError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except Exception as exc:  # noqa: BLE001 - each reader has its own errors; all mean "this file is not a sample of its kind"
        text = " ".join(str(exc).split())[:300]
        raise UsageError(f"{p}: cannot read the sample as {suffix} ({type(exc).__name__}: {text})") from None


def _pandas(p: Path, what: str) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise UsageError(f"{p}: {what} is read as a DataFrame, which needs pandas (pip install pandas)") from None
    return pd
