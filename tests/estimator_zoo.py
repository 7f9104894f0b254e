"""Every scikit-learn estimator fitted on tiny data, shared by the estimator sweep test, the allowlist generator
(``tests/make_allowlist.py``) and ``benchmarks/allowlist_coverage.py``.

``fit_default(name, cls)`` returns a ``Fitted`` (the estimator, the input to compare predictions on) or a ``Skip``
with an honest reason.  Estimators whose constructor needs arguments (meta-estimators such as ``Pipeline`` or
``GridSearchCV``) are skipped: they do not "fit with default parameters".  Estimators that need a special kind of
input (text, dicts, labels only, images) get that input, since that *is* their default use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils import all_estimators

METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")


@dataclass
class Fitted:
    name: str
    estimator: Any
    inputs: Any  # what to call the prediction methods with


@dataclass
class Skip:
    name: str
    reason: str


def data() -> dict[str, Any]:
    rng = np.random.RandomState(0)
    n = 45
    y_clf = np.arange(n) % 3
    X = rng.uniform(0.0, 1.0, (n, 4))
    X[:, 0] += y_clf * 0.7  # learnable, non-negative (MultinomialNB, chi2, NMF...)
    y_reg = 1.0 + X @ np.array([1.0, 2.0, 0.5, 0.0]) + rng.uniform(0, 0.1, n)
    y_reg2 = np.c_[y_reg, y_reg * 0.5 + 1.0]
    docs = ["the cat sat", "the dog ran fast", "a cat and a dog", "fast cats run", "dogs sit"] * 3
    dicts = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "c": 1.0}, {"b": 1.0, "c": 4.0}] * 3
    return {
        "X": X, "y_clf": y_clf, "y_bin": (y_clf > 0).astype(int), "y_reg": y_reg, "y_reg2": y_reg2,
        "docs": docs, "dicts": dicts, "images": rng.uniform(0, 1, (3, 8, 8)),
    }


def _special(name: str, d: dict[str, Any]) -> tuple[Callable[[Any], Any], Any] | None:
    """(fit function, prediction input) for estimators whose natural input is not a numeric matrix."""
    X = d["X"]
    if name in ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer"):
        return (lambda est: est.fit(d["docs"])), d["docs"]
    if name in ("DictVectorizer", "FeatureHasher"):
        return (lambda est: est.fit(d["dicts"])), d["dicts"]
    if name in ("LabelEncoder", "LabelBinarizer"):
        return (lambda est: est.fit(d["y_clf"])), d["y_clf"]
    if name == "MultiLabelBinarizer":
        labels = [[1, 2], [3], [2, 3]]
        return (lambda est: est.fit(labels)), labels
    if name == "PatchExtractor":
        return (lambda est: est.fit(d["images"])), d["images"]
    if name == "IsotonicRegression":
        return (lambda est: est.fit(X[:, 0], d["y_reg"])), X[:, 0]
    if name == "KernelCenterer":
        K = X @ X.T
        return (lambda est: est.fit(K)), K
    return None


def fit_default(name: str, cls: type, d: dict[str, Any] | None = None) -> Fitted | Skip:
    """Fit ``cls()`` (default parameters, ``random_state=0`` when it has one) on tiny data."""
    d = d or data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _fit_default(name, cls, d)


def _fit_default(name: str, cls: type, d: dict[str, Any]) -> Fitted | Skip:
    try:
        est = cls()
    except TypeError as exc:
        return Skip(name, f"needs constructor arguments ({exc})")
    if "random_state" in est.get_params():
        est.set_params(random_state=0)
    X = d["X"]
    special = _special(name, d)
    if True:
        if special is not None:
            fit, inputs = special
            try:
                fit(est)
                return Fitted(name, est, inputs)
            except Exception as exc:
                return Skip(name, f"does not fit its natural input: {type(exc).__name__}: {exc}")
        if issubclass(cls, ClassifierMixin):
            attempts = [d["y_clf"], d["y_bin"]]
        elif issubclass(cls, RegressorMixin):
            attempts = [d["y_reg"], d["y_reg2"]]
        else:
            attempts = [None, d["y_clf"], d["y_reg2"]]
        last: Exception | None = None
        for y in attempts:
            try:
                if y is None:
                    est.fit(X)
                else:
                    est.fit(X, y)
                return Fitted(name, est, X)
            except Exception as exc:
                last = exc
                try:
                    est = cls(**({"random_state": 0} if "random_state" in cls().get_params() else {}))
                except Exception:
                    est = cls()
    return Skip(name, f"does not fit tiny default data: {type(last).__name__}: {last}")


def fit_all() -> list[Fitted | Skip]:
    d = data()
    return [fit_default(name, cls, d) for name, cls in all_estimators()]


def outputs(est: Any, inputs: Any) -> list[tuple[str, Any]]:
    """What the estimator predicts for ``inputs``, via every prediction method it has that works."""
    res: list[tuple[str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for meth in METHODS:
            fn = getattr(est, meth, None)
            if fn is None:
                continue
            try:
                out = fn(inputs)
            except Exception:
                continue
            if hasattr(out, "toarray"):
                out = out.toarray()
            res.append((meth, np.asarray(out)))
    return res


def same_outputs(a: list[tuple[str, Any]], b: list[tuple[str, Any]], *, exact: bool = True) -> bool:
    """Equal outputs; ``exact=False`` allows float round-off (1e-12 relative), e.g. BLAS nondeterminism."""
    if [m for m, _ in a] != [m for m, _ in b]:
        return False
    for (_, x), (_, y) in zip(a, b, strict=True):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind in "fc":
            ok = np.array_equal(x, y, equal_nan=True) if exact else np.allclose(x, y, rtol=1e-12, atol=1e-12,
                                                                                   equal_nan=True)
            if not ok:
                return False
        elif not np.array_equal(x, y):
            return False
    return True
