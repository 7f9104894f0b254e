"""The registry of state validators: exact class name -> the function that checks an object of that class.

A class is *native-backed* when native code (Cython, C, C++, Fortran) reads its state: an extension type (its
fields are C fields) or a Python class whose methods hand its attributes to compiled code (``SVC`` to libsvm,
``KMeans`` to its Cython kernels...). Every native-backed class a payload may construct must have a validator here,
or an entry in ``EXEMPT`` saying why none is needed (numpy validates a ``RandomState``'s whole state in
``__setstate__``, for example). ``tests/test_validators.py`` enumerates the allowlist and fails on a native-backed
constructible class with neither.

Validators check types, shapes, dtypes, index ranges and cross-references against their owner (``n_features_in_``
must be an ``int`` equal to the trees' ``n_features``...). They report through ``Context.fail`` with the attribute
path, never raise on purpose; an exception inside a validator is itself reported as crafted state by the walker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bundler.safety.validators.walker import Context, Node

__all__ = ["BATCH_VALIDATORS", "EXEMPT", "NATIVE_CONSUMERS", "VALIDATORS", "Validator", "validates",
           "validates_together"]

Validator = Callable[[Any, Node, Context], None]
BatchValidator = Callable[[list[tuple[Any, Node]], Context], None]

#: exact class name (module.qualname) -> validator
VALIDATORS: dict[str, Validator] = {}
#: exact class name -> validator of every object of that class at once (objects holding no Python objects)
BATCH_VALIDATORS: dict[str, BatchValidator] = {}


def validates_together(*names: str) -> Callable[[BatchValidator], BatchValidator]:
    """Register a validator that receives every ``(object, node)`` of the classes ``names`` in one call."""

    def register(func: BatchValidator) -> BatchValidator:
        for name in names:
            if name in VALIDATORS or name in BATCH_VALIDATORS:
                raise RuntimeError(f"two validators for {name}")
            BATCH_VALIDATORS[name] = func
        return func

    return register


def validates(*names: str, holds_children: bool = False) -> Callable[[Validator], Validator]:
    """Register ``func`` as the validator of the classes ``names``. With ``holds_children`` the validator itself
    enqueues the objects it holds, and the walker does not descend into the object's reduced state."""

    def register(func: Validator) -> Validator:
        if holds_children:
            func.holds_children = True  # type: ignore[attr-defined]
        for name in names:
            if name in VALIDATORS or name in BATCH_VALIDATORS:
                raise RuntimeError(f"two validators for {name}")
            VALIDATORS[name] = func
        return func

    return register


#: Native-backed classes that need no validator of ours, and why.
EXEMPT: Final[dict[str, str]] = {
    "numpy.ndarray": "numpy checks shape, strides and buffer size in __setstate__; dtypes are checked canonical "
                     "when built, and object arrays hold only objects the payload built (walked like any other)",
    "numpy.dtype": "its state is refused unless canonical before BUILD applies it (bundler.safety.dtypes)",
    "numpy.matrix": "an ndarray subclass: numpy's own checks apply",
    "numpy.matrixlib.defmatrix.matrix": "an ndarray subclass: numpy's own checks apply",
    "numpy.ma.core.MaskedArray": "an ndarray subclass rebuilt through numpy's own validated __setstate__",
    "numpy.core.multiarray.scalar": "a reconstructor function, guarded by bundler.safety.guards",
    "numpy._core.multiarray.scalar": "a reconstructor function, guarded by bundler.safety.guards",
    "builtins.bytearray": "a plain Python value",
    "builtins.complex": "a plain Python value",
    "builtins.frozenset": "a plain Python container",
    "builtins.slice": "a plain Python value",
    "builtins.range": "a plain Python value",
    "collections.deque": "a plain Python container (walked)",
    "collections.OrderedDict": "a plain Python container (walked)",
    "collections.defaultdict": "a plain Python container (walked, factory included)",
    "collections.Counter": "a plain Python container (walked)",
    "functools.partial": "walked (func, args, keywords); func must be allowed as a value",
    "datetime.date": "a plain Python value",
    "datetime.datetime": "a plain Python value",
    "datetime.timedelta": "a plain Python value",
    "datetime.timezone": "a plain Python value",
    "decimal.Decimal": "a plain Python value",
    "fractions.Fraction": "a plain Python value",
    **dict.fromkeys((f"builtins.{name}" for name in ("bool", "bytes", "dict", "float", "int", "list", "object",
                                                     "set", "str", "tuple")), "a plain Python value"),
    **dict.fromkeys((f"sklearn._loss._loss.Cy{name}" for name in (
        "AbsoluteError", "ExponentialLoss", "HalfBinomialLoss", "HalfGammaLoss", "HalfMultinomialLoss",
        "HalfPoissonLoss", "HalfSquaredError", "HalfTweedieLoss", "HalfTweedieLossIdentity", "HuberLoss",
        "LossFunction", "PinballLoss")),
        "a Cython loss holds only float parameters (a Tweedie power, a quantile, a Huber delta): no arrays, no "
        "indices; its methods loop over the arrays they are given"),
    **dict.fromkeys((f"sklearn.linear_model._sgd_fast.{name}" for name in (
        "Classification", "EpsilonInsensitive", "Hinge", "Huber", "Log", "ModifiedHuber", "Regression",
        "SquaredEpsilonInsensitive", "SquaredHinge", "SquaredLoss")),
        "an SGD loss holds only float parameters (a threshold, an epsilon): no arrays, no indices"),
}

#: Python classes whose methods pass their attributes to compiled code, and which native code reads what.
NATIVE_CONSUMERS: Final[dict[str, str]] = {
    "scipy.interpolate._bsplines.BSpline": "evaluate_spline (Cython) indexes c and t with k",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": "the predictor loops (Cython) follow nodes "
                                                                      "and bitsets",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper": "known-category bitsets are written from its bin "
                                                                   "thresholds (Cython)",
    **dict.fromkeys((f"sklearn.svm._classes.{c}" for c in ("SVC", "NuSVC", "SVR", "NuSVR", "OneClassSVM")),
                    "libsvm's set_model copies counts, coefficients and probability pairs by the sizes it is told"),
    **dict.fromkeys((f"sklearn.cluster._kmeans.{c}" for c in ("KMeans", "MiniBatchKMeans")),
                    "the Lloyd/Elkan kernels (Cython, OpenMP) read the centers with the input's width"),
    "sklearn.cluster._bisect_k_means.BisectingKMeans": "the k-means kernels read every node's centers",
    **dict.fromkeys((f"sklearn.neighbors.{m}.{c}" for m, c in (
        ("_classification", "KNeighborsClassifier"), ("_classification", "RadiusNeighborsClassifier"),
        ("_regression", "KNeighborsRegressor"), ("_regression", "RadiusNeighborsRegressor"),
        ("_unsupervised", "NearestNeighbors"), ("_graph", "KNeighborsTransformer"),
        ("_graph", "RadiusNeighborsTransformer"), ("_lof", "LocalOutlierFactor"))),
        "the pairwise reductions (Cython) read _fit_X with the query's width and scatter _y into class buffers"),
    "sklearn.neighbors._kde.KernelDensity": "kernel_density (Cython) walks its tree and sample weights",
    **dict.fromkeys((f"sklearn.tree._classes.{c}" for c in (
        "DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor")),
        "ensembles call the tree's Cython predict with check_input=False: n_features_in_ bounds X[:, feature]"),
    **dict.fromkeys((f"sklearn.ensemble._forest.{c}" for c in (
        "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
        "RandomTreesEmbedding")), "calls its trees' Cython predict with check_input=False"),
    "sklearn.ensemble._iforest.IsolationForest": "calls its trees' apply/decision_path with check_input=False",
    **dict.fromkeys((f"sklearn.ensemble._gb.{c}" for c in ("GradientBoostingClassifier", "GradientBoostingRegressor")),
                    "predict_stages (Cython) walks estimators_ and writes one output column per tree of a stage"),
    **dict.fromkeys((f"sklearn.ensemble._hist_gradient_boosting.gradient_boosting.{c}" for c in (
        "HistGradientBoostingClassifier", "HistGradientBoostingRegressor")),
        "hands its predictors, bin mapper and feature count to the Cython predictor"),
    "sklearn.feature_extraction._hash.FeatureHasher": "_hashing_transform (Cython) takes n_features as a modulus",
    **dict.fromkeys(("sklearn.feature_extraction.text.CountVectorizer",
                     "sklearn.feature_extraction.text.TfidfVectorizer",
                     "sklearn.feature_extraction._dict_vectorizer.DictVectorizer",
                     "sklearn.preprocessing._label.MultiLabelBinarizer"),
                    "builds a CSR matrix whose column indices are its term -> column map's values, unchecked; "
                    "scipy's C++ kernels then index by them"),
    "sklearn.feature_extraction.text.HashingVectorizer": "_hashing_transform (Cython) takes n_features as a modulus",
    "sklearn.preprocessing._encoders.OneHotEncoder": "builds a CSR output from its widths, which scipy's C++ "
                                                     "kernels then index",
    "sklearn.preprocessing._polynomial.PolynomialFeatures": "_csr_polynomial_expansion (Cython) and the dense loop "
                                                            "run to _max_degree over _n_out_full columns",
    "sklearn.preprocessing._polynomial.SplineTransformer": "evaluates its BSplines into n_features_out_ columns",
    "sklearn.kernel_approximation.PolynomialCountSketch": "allocates degree x n_components per sample, scatters "
                                                          "by indexHash_",
    "sklearn.decomposition._nmf.NMF": "the coordinate-descent update (Cython) runs over _n_components",
    "sklearn.decomposition._nmf.MiniBatchNMF": "the coordinate-descent update (Cython) runs over _n_components",
}
