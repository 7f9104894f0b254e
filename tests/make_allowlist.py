"""Generate ``bundler/_allowlist_data.py``: the default allowlist as a static, reviewable list of names.

Run from the repository root:  ``python tests/make_allowlist.py``  (never imported at runtime).

Where the names come from, so that nothing is a guess:
1. every class ``sklearn.utils.all_estimators()`` yields (by its pickled ``__module__.__qualname__``);
2. a sweep: every estimator that fits with default parameters, plus ``VARIANTS`` below (other algorithms,
   meta-estimators around simple bases), dumped with joblib and pickle protocols 0, 2, 4, 5 and statically scanned:
   called globals become constructible, globals only referenced become referable;
3. enumerations of the installed modules whose classes fitted models hold (GP kernels, losses, links, distance
   metrics, KD/Ball trees, SGD losses, optimizers, scipy.sparse containers, numpy scalar types, ufuncs, bit
   generators, metric and score functions);
4. ``OLDER_VERSIONS``: the same objects under the module paths older numpy / scipy / scikit-learn releases (1.2+)
   pickle them with, each line documented with the release that used it.
Every name is checked against ``bundler.safety.allowlist.is_dangerous`` and the generator aborts if one slips in.
"""

from __future__ import annotations

import inspect
import io
import pickle
import sys
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import estimator_zoo  # noqa: E402
import joblib  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bundler.safety.allowlist import is_dangerous  # noqa: E402
from bundler.safety.scan import scan_bytes  # noqa: E402

EXCLUDE = {
    # Holds an arbitrary Python callable and calls it at query time: keep it out of the default.
    "sklearn.metrics._dist_metrics.PyFuncDistance64", "sklearn.metrics._dist_metrics.PyFuncDistance32",
}


def qual(obj: object) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]


def variants() -> list[object]:
    """Estimators in configurations the default-parameter sweep does not reach."""
    from sklearn import (
        calibration,
        compose,
        decomposition,
        ensemble,
        feature_selection,
        linear_model,
        model_selection,
        multiclass,
        multioutput,
        neighbors,
        pipeline,
        preprocessing,
        random_projection,
        semi_supervised,
        svm,
        tree,
    )
    from sklearn.frozen import FrozenEstimator
    from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor, kernels

    lr = linear_model.LogisticRegression(max_iter=200)
    est: list[object] = [
        neighbors.KNeighborsClassifier(algorithm="kd_tree"), neighbors.KNeighborsClassifier(algorithm="ball_tree"),
        neighbors.KNeighborsRegressor(algorithm="ball_tree", metric="manhattan"),
        neighbors.KNeighborsClassifier(algorithm="brute", metric="cosine"),
        neighbors.KernelDensity(algorithm="ball_tree"), neighbors.NearestNeighbors(algorithm="kd_tree", p=3),
        pipeline.make_pipeline(preprocessing.StandardScaler(), lr),
        pipeline.make_union(preprocessing.StandardScaler(), decomposition.PCA(2)),
        compose.ColumnTransformer([("s", preprocessing.StandardScaler(), [0, 1]), ("p", "passthrough", [2])]),
        compose.TransformedTargetRegressor(regressor=linear_model.Ridge(), func=np.log, inverse_func=np.exp),
        model_selection.GridSearchCV(lr, {"C": [0.5, 1.0]}, cv=3),
        model_selection.RandomizedSearchCV(lr, {"C": [0.5, 1.0, 2.0]}, n_iter=2, cv=3, random_state=0),
        ensemble.VotingClassifier([("a", lr), ("b", tree.DecisionTreeClassifier())], voting="soft"),
        ensemble.StackingClassifier([("a", lr), ("b", tree.DecisionTreeClassifier())], cv=3),
        ensemble.StackingRegressor([("a", linear_model.Ridge()), ("b", tree.DecisionTreeRegressor())], cv=3),
        ensemble.VotingRegressor([("a", linear_model.Ridge()), ("b", tree.DecisionTreeRegressor())]),
        ensemble.BaggingClassifier(svm.SVC(), n_estimators=3, random_state=0),
        ensemble.AdaBoostClassifier(n_estimators=5, random_state=0),
        ensemble.GradientBoostingClassifier(n_estimators=5, loss="log_loss", init="zero"),
        ensemble.GradientBoostingRegressor(n_estimators=5, loss="huber"),
        ensemble.GradientBoostingRegressor(n_estimators=5, loss="quantile"),
        ensemble.GradientBoostingRegressor(n_estimators=5, loss="absolute_error"),
        ensemble.HistGradientBoostingClassifier(max_iter=5, categorical_features=[3]),
        ensemble.HistGradientBoostingRegressor(max_iter=5, loss="poisson"),
        ensemble.HistGradientBoostingRegressor(max_iter=5, loss="quantile", quantile=0.3),
        ensemble.HistGradientBoostingRegressor(max_iter=5, loss="gamma"),
        ensemble.HistGradientBoostingRegressor(max_iter=5, loss="absolute_error"),
        ensemble.IsolationForest(n_estimators=5, max_features=2, random_state=0),
        calibration.CalibratedClassifierCV(lr, method="isotonic", cv=3),
        calibration.CalibratedClassifierCV(lr, method="sigmoid", cv=3),
        multiclass.OneVsRestClassifier(lr), multiclass.OneVsOneClassifier(lr),
        multiclass.OutputCodeClassifier(lr, random_state=0),
        multioutput.MultiOutputRegressor(linear_model.Ridge()), multioutput.RegressorChain(linear_model.Ridge()),
        feature_selection.RFE(lr, n_features_to_select=2), feature_selection.RFECV(lr, cv=3),
        feature_selection.SelectFromModel(lr), feature_selection.SequentialFeatureSelector(lr, n_features_to_select=2),
        feature_selection.SelectKBest(feature_selection.f_regression, k=2),
        feature_selection.SelectKBest(feature_selection.chi2, k=2),
        feature_selection.SelectKBest(feature_selection.mutual_info_classif, k=2),
        feature_selection.SelectPercentile(feature_selection.r_regression),
        semi_supervised.SelfTrainingClassifier(lr),
        random_projection.GaussianRandomProjection(n_components=2, random_state=0),
        random_projection.SparseRandomProjection(n_components=2, random_state=0),
        FrozenEstimator(linear_model.Ridge().fit([[0.0], [1.0]], [0.0, 1.0])),
        decomposition.SparseCoder(dictionary=np.eye(4)),
        preprocessing.FunctionTransformer(np.log1p, inverse_func=np.expm1),
        preprocessing.KBinsDiscretizer(n_bins=3, encode="onehot"),
        preprocessing.OneHotEncoder(handle_unknown="ignore"),
        linear_model.SGDClassifier(loss="log_loss"), linear_model.SGDClassifier(loss="modified_huber"),
        linear_model.SGDClassifier(loss="squared_hinge"), linear_model.SGDClassifier(loss="perceptron"),
        linear_model.SGDRegressor(loss="huber"), linear_model.SGDRegressor(loss="epsilon_insensitive"),
        linear_model.SGDRegressor(loss="squared_epsilon_insensitive"),
        linear_model.LogisticRegression(solver="newton-cholesky"),
        GaussianProcessRegressor(kernels.Matern() + kernels.WhiteKernel() + kernels.DotProduct()),
        GaussianProcessRegressor(kernels.RationalQuadratic() * kernels.ExpSineSquared() ** 2),
        GaussianProcessClassifier(kernels.RBF([1.0] * 4)),
    ]
    from sklearn.neural_network import MLPClassifier

    est.append(MLPClassifier(solver="sgd", max_iter=20, random_state=0))
    est.append(np.random.RandomState(0))
    est.append(np.random.default_rng(0))
    for bitgen in (np.random.MT19937, np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64):
        est.append(np.random.Generator(bitgen(0)))
    return est


def fit_variant(est: object, d: dict) -> object:
    if not hasattr(est, "fit"):
        return est
    X = d["X"]
    name = type(est).__name__
    from sklearn.base import RegressorMixin

    y = d["y_reg"] if isinstance(est, RegressorMixin) else d["y_clf"]
    if name in ("MultiOutputRegressor", "RegressorChain"):
        y = d["y_reg2"]
    if name == "SelfTrainingClassifier":
        y = d["y_clf"].copy()
        y[::3] = -1
    if name == "HistGradientBoostingClassifier":
        X = X.copy()
        X[:, 3] = np.arange(len(X)) % 4
    if name == "SelectKBest" and getattr(est, "score_func", None) is not None and \
            est.score_func.__name__ in ("f_regression",):
        y = d["y_reg"]
    for args in ((X, y), (X,)):
        try:
            return est.fit(*args)
        except Exception:
            continue
    print(f"note: {name} did not fit; its unfitted form is swept", file=sys.stderr)
    return est


def sweep_names() -> tuple[set[str], set[str]]:
    calls: set[str] = set()
    refs: set[str] = set()
    d = estimator_zoo.data()
    objs = [f.estimator for f in estimator_zoo.fit_all() if isinstance(f, estimator_zoo.Fitted)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in variants():
            objs.append(fit_variant(est, d))
    for obj in objs:
        payloads = [pickle.dumps(obj, p) for p in (0, 2, 4, 5)]
        bio = io.BytesIO()
        joblib.dump(obj, bio)
        payloads.append(bio.getvalue())
        for data in payloads:
            res = scan_bytes(data)
            calls |= set(res.calls)
            refs |= set(res.globals) - set(res.calls)
    return calls, refs - calls


def module_classes(modname: str, base: type | None = None) -> list[str]:
    mod = __import__(modname, fromlist=["_"])
    out = []
    for obj in vars(mod).values():
        if isinstance(obj, type) and obj.__module__ == modname and (base is None or issubclass(obj, base)):
            out.append(qual(obj))
    return out


def enumerated() -> tuple[set[str], set[str]]:
    """Classes fitted models hold and functions they reference, enumerated from the installed packages."""
    from sklearn import metrics
    from sklearn._loss import loss
    from sklearn.feature_selection import (
        chi2,
        f_classif,
        f_oneway,
        f_regression,
        mutual_info_classif,
        mutual_info_regression,
        r_regression,
    )
    from sklearn.gaussian_process import kernels
    from sklearn.metrics import pairwise

    cons: set[str] = set()
    refs: set[str] = set()
    for _name, cls in __import__("sklearn.utils", fromlist=["all_estimators"]).all_estimators():
        cons.add(qual(cls))
    cons |= set(module_classes("sklearn.gaussian_process.kernels", kernels.Kernel))
    cons.add(qual(kernels.Hyperparameter))
    cons |= set(module_classes("sklearn._loss.loss", loss.BaseLoss))
    cons |= set(module_classes("sklearn._loss.link"))
    cons |= set(module_classes("sklearn._loss._loss"))
    cons |= set(module_classes("sklearn.linear_model._sgd_fast"))
    cons |= set(module_classes("sklearn.neural_network._stochastic_optimizers"))
    cons |= {c for c in module_classes("sklearn.metrics._dist_metrics") if "Distance" in c}
    cons |= set(module_classes("sklearn.neighbors._kd_tree")) | set(module_classes("sklearn.neighbors._ball_tree"))
    cons |= {"sklearn.neighbors._kd_tree.newObj", "sklearn.neighbors._ball_tree.newObj",
             "sklearn.metrics._dist_metrics.newObj"}
    cons |= {"sklearn.tree._tree.Tree", "sklearn.utils._bunch.Bunch",
             "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
             "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"}
    cons |= set(module_classes("sklearn.metrics._scorer"))
    cons |= set(module_classes("sklearn.calibration"))
    # scipy.sparse containers: private module (how they pickle) and public alias.
    for name in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil"):
        for suffix in ("matrix", "array"):
            cls = getattr(scipy.sparse, f"{name}_{suffix}", None)
            if cls is not None:
                cons.add(qual(cls))
                cons.add(f"scipy.sparse.{name}_{suffix}")
    # numpy: reconstructors, dtype, scalar types (values such as dtype=numpy.float64), random generators.
    cons |= {"numpy.dtype", "numpy.ndarray", "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
             "numpy._core.numeric._frombuffer", "numpy._core._ufunc_reconstruct", "numpy.ma.core._mareconstruct",
             "numpy.ma.core.MaskedArray", qual(np.ma.MaskedArray), "numpy.matrix", "numpy.matrixlib.defmatrix.matrix",
             "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
             "numpy.random._pickle.__bit_generator_ctor", "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
             "numpy.random.bit_generator.SeedSequence"}
    for bitgen in (np.random.MT19937, np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64,
                   np.random.RandomState, np.random.Generator):
        cons.add(qual(bitgen))
    for t in set(np.sctypeDict.values()):
        refs.add(f"numpy.{t.__name__}")
    for name in dir(np):
        obj = getattr(np, name, None)
        if isinstance(obj, np.ufunc):
            refs.add(f"numpy.{name}")
    refs |= {f"numpy.{f}" for f in ("mean", "median", "average", "sum", "min", "max", "amin", "amax", "std",
                                    "var", "nanmean", "nanmedian", "nansum", "nanmin", "nanmax", "nanstd", "ptp",
                                    "prod", "argmax", "argmin", "all", "any", "percentile", "quantile")}
    # builtins and stdlib containers / reconstructors (harmless to call).
    cons |= {f"builtins.{n}" for n in ("slice", "set", "frozenset", "complex", "bytearray", "bytes", "object",
                                        "list", "dict", "tuple", "int", "float", "str", "bool", "range")}
    refs |= {"builtins.Ellipsis", "builtins.NotImplemented", "builtins.len", "builtins.abs", "builtins.round",
             "builtins.min", "builtins.max", "builtins.sum"}
    cons |= {"collections.OrderedDict", "collections.defaultdict", "collections.deque", "collections.Counter",
             "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__", "_codecs.encode",
             "functools.partial", "joblib.numpy_pickle.NumpyArrayWrapper", "datetime.datetime", "datetime.date",
             "datetime.timedelta", "datetime.timezone", "decimal.Decimal", "fractions.Fraction"}
    # Functions fitted models hold as values (score funcs, metrics, kernels): referable, never called on load.
    for fn in (chi2, f_classif, f_oneway, f_regression, mutual_info_classif, mutual_info_regression, r_regression):
        refs.add(qual(fn))
    for name in metrics.__all__:
        obj = getattr(metrics, name)
        if isinstance(obj, types.FunctionType):
            refs.add(qual(obj))
    for table in (pairwise.PAIRWISE_KERNEL_FUNCTIONS, pairwise.PAIRWISE_DISTANCE_FUNCTIONS):
        for fn in table.values():
            if inspect.isfunction(fn):
                refs.add(qual(fn))
    return cons, refs


# Names under which older releases (numpy 1.x, scipy < 1.8, scikit-learn 1.2 - 1.8) pickle the same objects.
OLDER_VERSIONS_CONSTRUCTIBLE = [
    # numpy < 2.0: numpy._core was numpy.core.
    "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar", "numpy.core.numeric._frombuffer",
    "numpy.core._ufunc_reconstruct",
    # numpy < 1.17: RandomState pickled through numpy.random.__RandomState_ctor; bit generators in numpy.random.*.
    "numpy.random.__RandomState_ctor", "numpy.random.mtrand.RandomState",
    # scipy < 1.8: sparse containers lived in public modules.
    "scipy.sparse.csr.csr_matrix", "scipy.sparse.csc.csc_matrix", "scipy.sparse.coo.coo_matrix",
    "scipy.sparse.bsr.bsr_matrix", "scipy.sparse.dia.dia_matrix", "scipy.sparse.dok.dok_matrix",
    "scipy.sparse.lil.lil_matrix",
    # scikit-learn < 1.2: Bunch in sklearn.utils.
    "sklearn.utils.Bunch",
    # scikit-learn <= 1.3: gradient-boosting losses (sklearn/ensemble/_gb_losses.py, removed in 1.4).
    "sklearn.ensemble._gb_losses.LeastSquaresError", "sklearn.ensemble._gb_losses.LeastAbsoluteError",
    "sklearn.ensemble._gb_losses.HuberLossFunction", "sklearn.ensemble._gb_losses.QuantileLossFunction",
    "sklearn.ensemble._gb_losses.BinomialDeviance", "sklearn.ensemble._gb_losses.MultinomialDeviance",
    "sklearn.ensemble._gb_losses.ExponentialLoss",
    # scikit-learn <= 1.0: histogram gradient-boosting losses before sklearn._loss.
    "sklearn.ensemble._hist_gradient_boosting.loss.LeastSquares",
    "sklearn.ensemble._hist_gradient_boosting.loss.LeastAbsoluteDeviation",
    "sklearn.ensemble._hist_gradient_boosting.loss.Poisson",
    "sklearn.ensemble._hist_gradient_boosting.loss.BinaryCrossEntropy",
    "sklearn.ensemble._hist_gradient_boosting.loss.CategoricalCrossEntropy",
    # scikit-learn < 1.6: SGD losses that were later folded into sklearn._loss.
    "sklearn.linear_model._sgd_fast.Log", "sklearn.linear_model._sgd_fast.SquaredLoss",
    "sklearn.linear_model._sgd_fast.Huber",
    # scikit-learn 1.1 - 1.2: distance metrics without the 64/32 suffix.
    "sklearn.metrics._dist_metrics.EuclideanDistance", "sklearn.metrics._dist_metrics.ManhattanDistance",
    "sklearn.metrics._dist_metrics.MinkowskiDistance", "sklearn.metrics._dist_metrics.ChebyshevDistance",
]
OLDER_VERSIONS_REFERABLE = ["numpy.bool_"]


def short_loss_names(cons: set[str]) -> set[str]:
    """scikit-learn 1.5 - 1.8 (meson builds) pickle the Cython loss objects of HistGradientBoosting with the module's
    short name: ``_loss.__pyx_unpickle_CyHalfMultinomialLoss`` (seen in fixtures/sklearn-1.5 ... 1.8). Allow the
    same classes under that name, so such a bundle is judged by whether this environment can load it (exit 4 when
    it cannot), not refused as hostile."""
    prefix = "sklearn._loss._loss."
    classes = {n[len(prefix):] for n in cons if n.startswith(prefix) and n[len(prefix):].startswith("Cy")}
    return {f"_loss.{c}" for c in classes} | {f"_loss.__pyx_unpickle_{c}" for c in classes}


def main() -> None:
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s_calls, s_refs = sweep_names()
        e_cons, e_refs = enumerated()
    cons = (s_calls | e_cons | set(OLDER_VERSIONS_CONSTRUCTIBLE)) - EXCLUDE
    cons |= short_loss_names(cons)
    refs = (s_refs | e_refs | set(OLDER_VERSIONS_REFERABLE)) - cons - EXCLUDE
    bad = sorted(n for n in cons | refs if is_dangerous(n))
    if bad:
        raise SystemExit(f"dangerous names would enter the default allowlist: {bad}")
    out = ROOT / "bundler" / "_allowlist_data.py"
    lines = ['"""The default allowlist data. GENERATED by tests/make_allowlist.py - do not edit by hand."""', "",
             "CONSTRUCTIBLE: tuple[str, ...] = ("]
    lines += [f"    {n!r}," for n in sorted(cons)]
    lines += [")", "", "REFERABLE: tuple[str, ...] = ("]
    lines += [f"    {n!r}," for n in sorted(refs)]
    lines += [")", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}: {len(cons)} constructible, {len(refs)} referable")


if __name__ == "__main__":
    main()
