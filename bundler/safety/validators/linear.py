"""Linear models: ``coef_`` must have one row per output the model claims and one column per input feature.

A linear model predicts ``X @ coef_.T + intercept_``, so the number of rows of ``coef_`` *is* the width of what it
predicts. Most callers never notice a crafted width (numpy and scipy check the product's shapes), but some hand the
prediction to native code that trusts it: gradient boosting adds every stage's trees into the raw predictions its
``init_`` estimator made (``predict_stages``, Cython, unchecked), so a ``LogisticRegression`` init whose ``coef_``
has 2 rows for 3 classes, or a ``LinearRegression`` init with no target at all, makes it write past its buffer.
The width is checked here, where every linear model is, rather than only where one is used as an init.

Classifiers: ``coef_`` has one row for two classes, or one row per class (``RidgeClassifier`` on multilabel targets
has one per label), and ``intercept_`` one value per row (a plain number where the model fits none). Regressors: one
row (1-D) or one row per target, at least one. Columns: ``n_features_in_`` where the model records it.
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import array_ok, is_int, is_sparse
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node

__all__ = ["CLASSIFIERS", "REGRESSORS", "linear_classifier", "linear_regressor"]

_LM = "sklearn.linear_model."
CLASSIFIERS = (
    f"{_LM}_logistic.LogisticRegression", f"{_LM}_logistic.LogisticRegressionCV",
    f"{_LM}_stochastic_gradient.SGDClassifier", f"{_LM}_ridge.RidgeClassifier", f"{_LM}_ridge.RidgeClassifierCV",
    f"{_LM}_perceptron.Perceptron", f"{_LM}_passive_aggressive.PassiveAggressiveClassifier",
    "sklearn.svm._classes.LinearSVC", "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
)
REGRESSORS = (
    f"{_LM}_base.LinearRegression", f"{_LM}_ridge.Ridge", f"{_LM}_ridge.RidgeCV",
    f"{_LM}_coordinate_descent.Lasso", f"{_LM}_coordinate_descent.LassoCV",
    f"{_LM}_coordinate_descent.ElasticNet", f"{_LM}_coordinate_descent.ElasticNetCV",
    f"{_LM}_coordinate_descent.MultiTaskLasso", f"{_LM}_coordinate_descent.MultiTaskLassoCV",
    f"{_LM}_coordinate_descent.MultiTaskElasticNet", f"{_LM}_coordinate_descent.MultiTaskElasticNetCV",
    f"{_LM}_least_angle.Lars", f"{_LM}_least_angle.LarsCV", f"{_LM}_least_angle.LassoLars",
    f"{_LM}_least_angle.LassoLarsCV", f"{_LM}_least_angle.LassoLarsIC",
    f"{_LM}_omp.OrthogonalMatchingPursuit", f"{_LM}_omp.OrthogonalMatchingPursuitCV",
    f"{_LM}_bayes.BayesianRidge", f"{_LM}_bayes.ARDRegression", f"{_LM}_huber.HuberRegressor",
    f"{_LM}_quantile.QuantileRegressor", f"{_LM}_stochastic_gradient.SGDRegressor",
    f"{_LM}_passive_aggressive.PassiveAggressiveRegressor", f"{_LM}_theil_sen.TheilSenRegressor",
    f"{_LM}_glm.glm.PoissonRegressor", f"{_LM}_glm.glm.GammaRegressor", f"{_LM}_glm.glm.TweedieRegressor",
    "sklearn.svm._classes.LinearSVR",
)


def _coef_shape(ctx: Context, node: Node, coef: Any) -> tuple[int, ...] | None:
    """The shape of ``coef_`` (a numpy array, or a scipy sparse matrix after ``sparsify()``), or None (reported)."""
    if not is_sparse(coef):
        return tuple(int(s) for s in coef.shape) if array_ok(ctx, node, "coef_", coef, kinds="f") else None
    shape = getattr(coef, "shape", None)
    if type(shape) is not tuple or not all(is_int(s) for s in shape):
        ctx.fail(node, f"is a {type(coef).__name__} without a shape", "coef_")
        return None
    return tuple(int(s) for s in shape)


def _columns(ctx: Context, node: Node, obj: Any, shape: tuple[int, ...]) -> None:
    n_features = obj.__dict__.get("n_features_in_")
    if is_int(n_features) and shape[-1] != int(n_features):
        ctx.fail(node, f"has {shape[-1]} columns for {int(n_features)} input features", "coef_")


def _intercept(ctx: Context, node: Node, obj: Any, rows: int) -> None:
    np = ctx.np
    d = obj.__dict__
    if "intercept_" not in d:
        return
    value = d["intercept_"]
    if type(value) in (int, float) or isinstance(value, np.floating | np.integer):
        return  # no intercept fitted: a plain 0.0
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.shape not in ((rows,), ()):
        shape = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        ctx.fail(node, f"must be a number or hold one value per coef_ row ({rows}), not {shape}", "intercept_")


@validates(*CLASSIFIERS)
def linear_classifier(obj: Any, node: Node, ctx: Context) -> None:
    """``decision_function`` (and so ``predict_proba``) has one column per row of ``coef_``: two classes need one
    row (or two), more classes one row each."""
    d = obj.__dict__
    coef, classes = d.get("coef_"), d.get("classes_")
    if coef is None or classes is None:
        return
    shape = _coef_shape(ctx, node, coef)
    if shape is None:
        return
    n_classes = len(classes) if isinstance(classes, ctx.np.ndarray) and classes.ndim == 1 else None
    if n_classes is None:
        ctx.fail(node, "must be a 1-D array of the class labels", "classes_")
        return
    if len(shape) != 2 or shape[0] not in ({1, n_classes} if n_classes == 2 else {n_classes}):
        ctx.fail(node, f"has shape {shape} for {n_classes} classes (its rows are the columns the model predicts)",
                 "coef_")
        return
    _columns(ctx, node, obj, shape)
    _intercept(ctx, node, obj, shape[0])


@validates(*REGRESSORS)
def linear_regressor(obj: Any, node: Node, ctx: Context) -> None:
    """``predict`` is ``X @ coef_.T``: one coefficient vector, or one row per target, and at least one target."""
    coef = obj.__dict__.get("coef_")
    if coef is None:
        return
    shape = _coef_shape(ctx, node, coef)
    if shape is None:
        return
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] < 1):
        ctx.fail(node, f"has shape {shape}: one coefficient vector, or one row per target", "coef_")
        return
    _columns(ctx, node, obj, shape)
    _intercept(ctx, node, obj, shape[0] if len(shape) == 2 else 1)
