"""The globals a payload may *hold as values*, each with the reason it is safe to hold, and the few private
functions scikit-learn itself stores at one known place.

A fitted model calls the functions it holds: ``FunctionTransformer.func(X, **kw_args)``, a callable kernel or
metric, a scorer's score function, a ``defaultdict``'s factory. The arguments (``kw_args``, ``partial`` arguments)
come from the payload. So a global may be held as a value only if it is safe to call with *any* arguments: a
public function that validates its inputs in Python before any native code runs, a numpy ufunc (numpy resolves
types, broadcasting and casting in C before any loop runs), a numpy scalar type, a pure-Python builtin. Nothing here
has a private component in its public identity: scikit-learn functions are pickled under their private module path
(``sklearn.metrics._classification.f1_score``), and each is listed only because the very same object is exported
publicly (``sklearn.metrics.f1_score``); ``tests/test_referable.py`` checks that, and calls every entry with
hostile arguments in a subprocess, requiring a Python exception or a result, never a signal. The generic
dispatchers (``pairwise_distances``, ``pairwise_kernels`` and friends) are not listed: they hand a metric's keyword
arguments (a Mahalanobis ``VI`` of any shape) to scipy's C distance code, which trusts them.

``PLACEMENTS`` are private functions that scikit-learn or scipy store in a fitted object and only call with
arguments they compute themselves; each may be held at exactly the attribute listed (checked after loading by
``bundler.safety.validators``), nowhere else. Standard library only: this runs inside ``bundler verify``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PLACEMENTS", "REFERABLE"]

_BUILTIN = "pure-Python builtin or constant: operates on the values it is given, no native state"
_UFUNC = ("numpy ufunc: type resolution, broadcasting, casting and output checks happen in C before any inner loop "
          "runs; bad arguments raise")
_SCALAR = "numpy scalar type, held as a dtype parameter; calling it converts one value (numpy validates it)"
_NUMPY_FUNC = "numpy function written in Python over numpy's validated array API"
_SKLEARN = ("public scikit-learn function (score function, metric, kernel or scorer helper): validates its "
            "parameters in Python before any native code runs")
_BUILTIN_TYPE = "builtin container or number type (a defaultdict factory, a dtype): builds a plain Python value"

#: name -> why holding it is safe.
REFERABLE: Final[dict[str, str]] = {
    # pure-Python builtins and constants
    **dict.fromkeys((
        'builtins.Ellipsis', 'builtins.NotImplemented', 'builtins.abs', 'builtins.len', 'builtins.max',
        'builtins.min', 'builtins.round', 'builtins.sum',
    ), _BUILTIN),
    # numpy ufuncs
    **dict.fromkeys((
        'numpy.abs', 'numpy.absolute', 'numpy.acos', 'numpy.acosh', 'numpy.add', 'numpy.arccos', 'numpy.arccosh',
        'numpy.arcsin', 'numpy.arcsinh', 'numpy.arctan', 'numpy.arctan2', 'numpy.arctanh', 'numpy.asin',
        'numpy.asinh', 'numpy.atan', 'numpy.atan2', 'numpy.atanh', 'numpy.bitwise_and', 'numpy.bitwise_count',
        'numpy.bitwise_invert', 'numpy.bitwise_left_shift', 'numpy.bitwise_not', 'numpy.bitwise_or',
        'numpy.bitwise_right_shift', 'numpy.bitwise_xor', 'numpy.cbrt', 'numpy.ceil', 'numpy.conj',
        'numpy.conjugate', 'numpy.copysign', 'numpy.cos', 'numpy.cosh', 'numpy.deg2rad', 'numpy.degrees',
        'numpy.divide', 'numpy.divmod', 'numpy.equal', 'numpy.exp', 'numpy.exp2', 'numpy.expm1', 'numpy.fabs',
        'numpy.float_power', 'numpy.floor', 'numpy.floor_divide', 'numpy.fmax', 'numpy.fmin', 'numpy.fmod',
        'numpy.frexp', 'numpy.gcd', 'numpy.greater', 'numpy.greater_equal', 'numpy.heaviside', 'numpy.hypot',
        'numpy.invert', 'numpy.isfinite', 'numpy.isinf', 'numpy.isnan', 'numpy.isnat', 'numpy.lcm', 'numpy.ldexp',
        'numpy.left_shift', 'numpy.less', 'numpy.less_equal', 'numpy.log', 'numpy.log10', 'numpy.log1p',
        'numpy.log2', 'numpy.logaddexp', 'numpy.logaddexp2', 'numpy.logical_and', 'numpy.logical_not',
        'numpy.logical_or', 'numpy.logical_xor', 'numpy.matmul', 'numpy.matvec', 'numpy.maximum', 'numpy.minimum',
        'numpy.mod', 'numpy.modf', 'numpy.multiply', 'numpy.negative', 'numpy.nextafter', 'numpy.not_equal',
        'numpy.positive', 'numpy.pow', 'numpy.power', 'numpy.rad2deg', 'numpy.radians', 'numpy.reciprocal',
        'numpy.remainder', 'numpy.right_shift', 'numpy.rint', 'numpy.sign', 'numpy.signbit', 'numpy.sin',
        'numpy.sinh', 'numpy.spacing', 'numpy.sqrt', 'numpy.square', 'numpy.subtract', 'numpy.tan', 'numpy.tanh',
        'numpy.true_divide', 'numpy.trunc', 'numpy.vecdot', 'numpy.vecmat',
    ), _UFUNC),
    # numpy scalar types (held as dtypes)
    **dict.fromkeys((
        'numpy.bool', 'numpy.bool_', 'numpy.bytes_', 'numpy.clongdouble', 'numpy.complex128', 'numpy.complex64',
        'numpy.datetime64', 'numpy.float16', 'numpy.float32', 'numpy.float64', 'numpy.int16', 'numpy.int32',
        'numpy.int64', 'numpy.int8', 'numpy.longdouble', 'numpy.longlong', 'numpy.object_', 'numpy.str_',
        'numpy.timedelta64', 'numpy.uint16', 'numpy.uint32', 'numpy.uint64', 'numpy.uint8', 'numpy.ulonglong',
    ), _SCALAR),
    # numpy reductions written in Python over validated arrays
    **dict.fromkeys((
        'numpy.all', 'numpy.amax', 'numpy.amin', 'numpy.any', 'numpy.argmax', 'numpy.argmin', 'numpy.average',
        'numpy.ma.MaskedArray', 'numpy.max', 'numpy.mean', 'numpy.median', 'numpy.min', 'numpy.nanmax',
        'numpy.nanmean', 'numpy.nanmedian', 'numpy.nanmin', 'numpy.nanstd', 'numpy.nansum', 'numpy.percentile',
        'numpy.prod', 'numpy.ptp', 'numpy.quantile', 'numpy.std', 'numpy.sum', 'numpy.var',
    ), _NUMPY_FUNC),
    # scikit-learn public functions a model may hold anywhere (score functions, kernels, distances)
    **dict.fromkeys((
        'sklearn.feature_selection._mutual_info.mutual_info_classif',
        'sklearn.feature_selection._mutual_info.mutual_info_regression',
        'sklearn.feature_selection._univariate_selection.chi2',
        'sklearn.feature_selection._univariate_selection.f_classif',
        'sklearn.feature_selection._univariate_selection.f_oneway',
        'sklearn.feature_selection._univariate_selection.f_regression',
        'sklearn.feature_selection._univariate_selection.r_regression', 'sklearn.metrics._scorer.check_scoring',
        'sklearn.metrics._scorer.get_scorer', 'sklearn.metrics._scorer.get_scorer_names',
        'sklearn.metrics._scorer.make_scorer', 'sklearn.metrics.pairwise.additive_chi2_kernel',
        'sklearn.metrics.pairwise.chi2_kernel', 'sklearn.metrics.pairwise.cosine_distances',
        'sklearn.metrics.pairwise.cosine_similarity', 'sklearn.metrics.pairwise.euclidean_distances',
        'sklearn.metrics.pairwise.haversine_distances', 'sklearn.metrics.pairwise.laplacian_kernel',
        'sklearn.metrics.pairwise.linear_kernel', 'sklearn.metrics.pairwise.manhattan_distances',
        'sklearn.metrics.pairwise.nan_euclidean_distances', 'sklearn.metrics.pairwise.polynomial_kernel',
        'sklearn.metrics.pairwise.rbf_kernel', 'sklearn.metrics.pairwise.sigmoid_kernel',
        'sklearn.utils.validation.check_array',
    ), _SKLEARN),
    # builtin types held as values (defaultdict factories, dtype parameters)
    **dict.fromkeys((
        "builtins.bool", "builtins.dict", "builtins.float", "builtins.frozenset", "builtins.int", "builtins.list",
        "builtins.object", "builtins.set", "builtins.str", "builtins.tuple",
    ), _BUILTIN_TYPE),
}

_KMEANS = ("BisectingKMeans keeps its inner k-means routine and calls it only while fitting, with arguments it "
           "computes from the training data")
_ASARRAY = "scipy's BSpline keeps its array namespace's asarray and calls it on its own knots and coefficients"
_WRAPPER = ("joblib records numpy.ndarray as each array wrapper's subclass; the loader reads it and drops the "
            "wrapper, so it never reaches the model")

_SCORER = ("a metric is held by the scorer built for it (GridSearchCV's scorer_) and called by score() with the "
           "estimator's own predictions; anywhere else (a FunctionTransformer's func) it could be called with "
           "label sets of the payload's choosing")
_SCORER_SLOTS = frozenset((f"sklearn.metrics._scorer.{owner}", "_score_func") for owner in (
    "_Scorer", "_BaseScorer", "_PredictScorer", "_ProbaScorer", "_ThresholdScorer", "_CurveScorer"))
METRICS: Final = (
    'sklearn.metrics._classification.accuracy_score', 'sklearn.metrics._classification.balanced_accuracy_score',
    'sklearn.metrics._classification.brier_score_loss', 'sklearn.metrics._classification.class_likelihood_ratios',
    'sklearn.metrics._classification.classification_report', 'sklearn.metrics._classification.cohen_kappa_score',
    'sklearn.metrics._classification.confusion_matrix', 'sklearn.metrics._classification.d2_brier_score',
    'sklearn.metrics._classification.d2_log_loss_score', 'sklearn.metrics._classification.f1_score',
    'sklearn.metrics._classification.fbeta_score', 'sklearn.metrics._classification.hamming_loss',
    'sklearn.metrics._classification.hinge_loss', 'sklearn.metrics._classification.jaccard_score',
    'sklearn.metrics._classification.log_loss', 'sklearn.metrics._classification.matthews_corrcoef',
    'sklearn.metrics._classification.multilabel_confusion_matrix',
    'sklearn.metrics._classification.precision_recall_fscore_support',
    'sklearn.metrics._classification.precision_score', 'sklearn.metrics._classification.recall_score',
    'sklearn.metrics._classification.zero_one_loss', 'sklearn.metrics._ranking.auc',
    'sklearn.metrics._ranking.average_precision_score', 'sklearn.metrics._ranking.confusion_matrix_at_thresholds',
    'sklearn.metrics._ranking.coverage_error', 'sklearn.metrics._ranking.dcg_score',
    'sklearn.metrics._ranking.det_curve', 'sklearn.metrics._ranking.label_ranking_average_precision_score',
    'sklearn.metrics._ranking.label_ranking_loss', 'sklearn.metrics._ranking.metric_at_thresholds',
    'sklearn.metrics._ranking.ndcg_score', 'sklearn.metrics._ranking.precision_recall_curve',
    'sklearn.metrics._ranking.roc_auc_score', 'sklearn.metrics._ranking.roc_curve',
    'sklearn.metrics._ranking.top_k_accuracy_score', 'sklearn.metrics._regression.d2_absolute_error_score',
    'sklearn.metrics._regression.d2_pinball_score', 'sklearn.metrics._regression.d2_tweedie_score',
    'sklearn.metrics._regression.explained_variance_score', 'sklearn.metrics._regression.max_error',
    'sklearn.metrics._regression.mean_absolute_error', 'sklearn.metrics._regression.mean_absolute_percentage_error',
    'sklearn.metrics._regression.mean_gamma_deviance', 'sklearn.metrics._regression.mean_pinball_loss',
    'sklearn.metrics._regression.mean_poisson_deviance', 'sklearn.metrics._regression.mean_squared_error',
    'sklearn.metrics._regression.mean_squared_log_error', 'sklearn.metrics._regression.mean_tweedie_deviance',
    'sklearn.metrics._regression.median_absolute_error', 'sklearn.metrics._regression.r2_score',
    'sklearn.metrics._regression.root_mean_squared_error', 'sklearn.metrics._regression.root_mean_squared_log_error',
    'sklearn.metrics.cluster._bicluster.consensus_score',
    'sklearn.metrics.cluster._supervised.adjusted_mutual_info_score',
    'sklearn.metrics.cluster._supervised.adjusted_rand_score',
    'sklearn.metrics.cluster._supervised.completeness_score',
    'sklearn.metrics.cluster._supervised.fowlkes_mallows_score',
    'sklearn.metrics.cluster._supervised.homogeneity_completeness_v_measure',
    'sklearn.metrics.cluster._supervised.homogeneity_score', 'sklearn.metrics.cluster._supervised.mutual_info_score',
    'sklearn.metrics.cluster._supervised.normalized_mutual_info_score',
    'sklearn.metrics.cluster._supervised.pair_confusion_matrix', 'sklearn.metrics.cluster._supervised.rand_score',
    'sklearn.metrics.cluster._supervised.v_measure_score',
    'sklearn.metrics.cluster._unsupervised.calinski_harabasz_score',
    'sklearn.metrics.cluster._unsupervised.davies_bouldin_score',
    'sklearn.metrics.cluster._unsupervised.silhouette_samples',
    'sklearn.metrics.cluster._unsupervised.silhouette_score',
)

#: name -> the (owner class, attribute) slots where it may be held, and why.
PLACEMENTS: Final[dict[str, tuple[frozenset[tuple[str, str]], str]]] = {
    **{name: (_SCORER_SLOTS, _SCORER) for name in METRICS},
    "sklearn.cluster._kmeans._kmeans_single_lloyd": (
        frozenset({("sklearn.cluster._bisect_k_means.BisectingKMeans", "_kmeans_single")}), _KMEANS),
    "sklearn.cluster._kmeans._kmeans_single_elkan": (
        frozenset({("sklearn.cluster._bisect_k_means.BisectingKMeans", "_kmeans_single")}), _KMEANS),
    "scipy._lib.array_api_compat.numpy._aliases.asarray": (
        frozenset({("scipy.interpolate._bsplines.BSpline", "_asarray")}), _ASARRAY),
    "scipy._lib.array_api_compat.array_api_compat.numpy._aliases.asarray": (
        frozenset({("scipy.interpolate._bsplines.BSpline", "_asarray")}), _ASARRAY),
    "numpy.ndarray": (frozenset({("joblib.numpy_pickle.NumpyArrayWrapper", "subclass"),
                                 ("numpy.ma.MaskedArray", "_baseclass"), ("numpy.ma.core.MaskedArray", "_baseclass")}),
                      _WRAPPER + "; a masked array (GridSearchCV.cv_results_) records it as the class of the data it "
                                 "masks and only views its own data as it"),
}
