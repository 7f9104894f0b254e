"""The kinds of model people ship, each fitted on small real data with the input it takes, shared by the default
suite (``tests/test_model_kinds.py``: in process) and ``nox -s deploy`` (``tests/deploy_check.py``: in fresh virtual
environments made only from each bundle's requirements.txt plus bundler).

Every kind gives the fitted model, the sample the API packs it with (the type the model takes: a list of str, a
DataFrame with categories and missing values, a sparse matrix...) and a function writing that sample to the file a
command-line user would pass to ``bundler pack --sample`` (.txt, .parquet, .csv, .npz, .npy).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Kind:
    name: str
    model: Any
    sample: Any
    write_sample: Callable[[Path], Path]
    dataframe: bool = False


def _rng() -> np.random.RandomState:
    return np.random.RandomState(0)


def _xy(n: int = 120, features: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng()
    X = rng.normal(size=(n, features))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return X, y


def _npy(array: np.ndarray) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "sample.npy"
        np.save(path, array, allow_pickle=False)
        return path

    return write


def _frame(n: int = 160) -> tuple[Any, np.ndarray]:
    """A table as a business exports it: a categorical column with missing values, text, numbers, a flag, dates."""
    import pandas as pd

    rng = _rng()
    city = rng.choice(np.array(["paris", "lyon", "nice", None], dtype=object), size=n, p=[0.4, 0.3, 0.2, 0.1])
    frame = pd.DataFrame({
        "city": pd.Categorical(city, categories=["lyon", "nice", "paris"]),
        "plan": rng.choice(["basic", "pro"], size=n),
        "age": rng.randint(18, 80, size=n),
        "income": np.round(rng.lognormal(10, 0.5, size=n), 2),
        "member": rng.rand(n) > 0.5,
        "since": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.randint(0, 1500, size=n), unit="D"),
    })
    frame.loc[rng.rand(n) < 0.1, "income"] = np.nan
    y = ((frame["age"] > 45).astype(int) ^ (frame["plan"] == "pro").astype(int)).to_numpy()
    return frame, y


def _parquet(frame: Any) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "sample.parquet"
        frame.to_parquet(path)
        return path

    return write


def _csv(frame: Any) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "sample.csv"
        frame.to_csv(path, index=False)
        return path

    return write


def text() -> Kind:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    docs = ["the cat sat on the mat", "dogs chase cats", "a stock market rally", "markets fell sharply today",
            "my cat likes fish", "interest rates and markets", "the dog barked", "bond yields rose"] * 6
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1] * 6)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, y)
    sample = ["a cat and a dog", "markets rally on rates", "fish for the cat", "ünïcode text, too"]

    def write(folder: Path) -> Path:
        path = folder / "sample.txt"
        path.write_text("\n".join(sample) + "\n", encoding="utf-8")
        return path

    return Kind("text", model, sample, write)


def text_series() -> Kind:
    import pandas as pd

    kind = text()
    series = pd.Series(kind.sample, name="review")
    return Kind("text_series", kind.model, series, kind.write_sample, dataframe=True)


def dataframe() -> Kind:
    """ColumnTransformer over a DataFrame: a category column with NaN, a string column, numbers with NaN, a bool;
    the datetime column is in the table and dropped by the model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = _frame()
    prep = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
        ("flag", "passthrough", ["member"]),
    ], remainder="drop")
    model = make_pipeline(prep, LogisticRegression(max_iter=500)).fit(frame, y)
    return Kind("dataframe", model, frame.iloc[:40], _parquet(frame.iloc[:40]), dataframe=True)


def hist_gradient_boosting_categorical() -> Kind:
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame, y = _frame()
    table = frame[["city", "age", "income"]].assign(plan=frame["plan"].astype("category"))
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=10, random_state=0)
    model.fit(table, y)
    return Kind("hgb_categorical", model, table.iloc[:40], _parquet(table.iloc[:40]), dataframe=True)


def sparse() -> Kind:
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression

    rng = _rng()
    X = scipy.sparse.random(150, 40, density=0.1, format="csr", random_state=rng)
    totals = np.asarray(X.sum(axis=1)).ravel()
    y = (totals > np.median(totals)).astype(int)
    model = LogisticRegression().fit(X, y)
    sample = X[:30]

    def write(folder: Path) -> Path:
        path = folder / "sample.npz"
        scipy.sparse.save_npz(path, sample)
        return path

    return Kind("sparse", model, sample, write)


def grid_search() -> Kind:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _xy()
    model = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()),
                         {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    return Kind("grid_search", model, X[:30], _npy(X[:30]))


def calibrated() -> Kind:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    X, y = _xy()
    model = CalibratedClassifierCV(LinearSVC(), cv=3).fit(X, y)
    return Kind("calibrated", model, X[:30], _npy(X[:30]))


def stacking() -> Kind:
    from sklearn.ensemble import RandomForestClassifier, StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _xy()
    model = StackingClassifier([("rf", RandomForestClassifier(n_estimators=10, random_state=0)),
                                ("knn", KNeighborsClassifier())], final_estimator=LogisticRegression(), cv=3)
    model.fit(X, y)
    return Kind("stacking", model, X[:30], _npy(X[:30]))


def regressor() -> Kind:
    """A random forest regressor fitted on a numeric DataFrame, given a CSV with a header on the command line."""
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor

    X, _ = _xy(features=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).round(6)
    target = 2 * frame["a"] - frame["b"] + 0.1 * frame["c"]
    model = RandomForestRegressor(n_estimators=15, random_state=0).fit(frame, target)
    return Kind("regressor", model, frame.iloc[:30], _csv(frame.iloc[:30]), dataframe=True)


def clusterer() -> Kind:
    from sklearn.cluster import KMeans

    X, _ = _xy()
    model = KMeans(n_clusters=3, n_init=3, random_state=0).fit(X)
    return Kind("clusterer", model, X[:30], _npy(X[:30]))


def isolation_forest() -> Kind:
    from sklearn.ensemble import IsolationForest

    X, _ = _xy()
    model = IsolationForest(n_estimators=30, random_state=0).fit(X)
    return Kind("isolation_forest", model, X[:30], _npy(X[:30]))


KINDS: dict[str, Callable[[], Kind]] = {
    "text": text,
    "text_series": text_series,
    "dataframe": dataframe,
    "hgb_categorical": hist_gradient_boosting_categorical,
    "sparse": sparse,
    "grid_search": grid_search,
    "calibrated": calibrated,
    "stacking": stacking,
    "regressor": regressor,
    "clusterer": clusterer,
    "isolation_forest": isolation_forest,
}


@functools.cache
def make(name: str) -> Kind:
    """The fitted kind, made once per process (tests only read the models and samples). One native thread: these
    fits take milliseconds, and OpenMP threads fighting over two busy cores made them take seconds."""
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence chatter of tiny fits
        return KINDS[name]()
