"""Linear models' coefficient widths (bundler.safety.validators.linear), on real fitted models.

The crafted cases are the shapes that make a gradient boosting ``init_`` predict narrower than its stages write
(fixtures/hostile/native/gradient_boosting_*_init*.joblib run them end to end in child processes); the honest
cases are the legitimate variants of the same attributes that must keep loading.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.svm import LinearSVC

from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.validators import validate_model

RNG = np.random.RandomState(0)
X = RNG.uniform(size=(90, 4))
Y3 = (X[:, 0] * 3).astype(int)
Y2 = (X[:, 1] > 0.5).astype(int)


def _logistic_three_classes_two_rows() -> object:
    m = LogisticRegression().fit(X, Y3)
    m.coef_, m.intercept_ = m.coef_[:2].copy(), m.intercept_[:2].copy()
    return m


def _logistic_intercept_short() -> object:
    m = LogisticRegression().fit(X, Y3)
    m.intercept_ = m.intercept_[:1].copy()
    return m


def _logistic_columns() -> object:
    m = LogisticRegression().fit(X, Y2)
    m.coef_ = np.ascontiguousarray(m.coef_[:, :3])
    return m


def _regression_no_target() -> object:
    m = LinearRegression().fit(X, X[:, 0])
    m.coef_, m.intercept_ = np.zeros((0, 4)), np.zeros(0)
    return m


def _regression_integer_coef() -> object:
    m = LinearRegression().fit(X, X[:, 0])
    m.coef_ = np.zeros(4, dtype=np.int64)
    return m


def _sparsified() -> object:
    return SGDClassifier(random_state=0).fit(X, Y3).sparsify()


def _ridge_multilabel_two() -> object:
    return RidgeClassifier().fit(X, np.c_[Y2, 1 - Y2])


CASES: dict[str, tuple[Callable[[], object], list[str]]] = {
    "logistic-binary": (lambda: LogisticRegression().fit(X, Y2), []),
    "logistic-multiclass": (lambda: LogisticRegression().fit(X, Y3), []),
    "linear-svc-no-intercept": (lambda: LinearSVC(fit_intercept=False).fit(X, Y2), []),
    "sgd-sparsified": (_sparsified, []),
    "ridge-multilabel-two-labels": (_ridge_multilabel_two, []),
    "regression-one-target": (lambda: LinearRegression().fit(X, X[:, 0]), []),
    "regression-two-targets": (lambda: LinearRegression().fit(X, X[:, :2]), []),
    "logistic-three-classes-two-rows": (_logistic_three_classes_two_rows, ["model.coef_"]),
    "logistic-intercept-short": (_logistic_intercept_short, ["model.intercept_"]),
    "logistic-columns": (_logistic_columns, ["model.coef_"]),
    "regression-no-target": (_regression_no_target, ["model.coef_"]),
    "regression-integer-coef": (_regression_integer_coef, ["model.coef_"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_linear_widths(case: str) -> None:
    make, expected = CASES[case]
    problems = validate_model(make(), handed=None, allow=DEFAULT_ALLOWLIST)
    assert [p.path for p in problems] == expected, problems
