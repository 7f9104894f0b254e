"""Validators for the smaller native-backed classes: scipy's BSpline, numpy's SeedSequence, libsvm models, the
k-means family, and the checks every fitted scikit-learn object gets (exact integer sizes, sane thread counts)."""

from __future__ import annotations

import os
from typing import Any

from bundler.safety.validators.common import array_ok, as_index, int_attr, is_int, is_sparse, n_features_of
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node

__all__ = ["generic_sklearn"]

#: Thread and job counts above this are refused: OpenMP and joblib create that many threads or processes.
MAX_WORKERS = max(1024, 4 * (os.cpu_count() or 1))


def generic_sklearn(obj: Any, node: Node, ctx: Context) -> None:
    """Every scikit-learn object: ``n_features_in_`` an exact integer, thread and job counts within bounds."""
    d = getattr(obj, "__dict__", None)
    if not isinstance(d, dict):
        return
    if "n_features_in_" in d:
        n_features_of(obj, node, ctx)
    if "_n_threads" in d:
        int_attr(obj, "_n_threads", node, ctx, low=1, high=MAX_WORKERS + 1)
    n_jobs = d.get("n_jobs")
    if n_jobs is not None and (not is_int(n_jobs) or int(n_jobs) == 0 or abs(int(n_jobs)) > MAX_WORKERS):
        ctx.fail(node, f"must be None or a non-zero integer within +-{MAX_WORKERS}", "n_jobs")
    verbose = d.get("verbose")
    if verbose is not None and (not (is_int(verbose) or type(verbose) is bool) or not 0 <= int(verbose) <= 1000):
        ctx.fail(node, "must be an integer in [0, 1000]", "verbose")
    if "classes_" in d:
        from bundler.safety.validators.sizes import class_counts

        class_counts(obj, node, ctx)


@validates("scipy.interpolate._bsplines.BSpline")
def bspline(obj: Any, node: Node, ctx: Context) -> None:
    """Rebuilt through ``BSpline(t, c, k)``, whose constructor checks what ``evaluate_spline`` (Cython) trusts:
    ``k >= 0``, sorted knots, at least ``2k + 2`` of them, and at least ``len(t) - k - 1`` coefficients."""
    from scipy.interpolate import BSpline

    d = obj.__dict__
    t = d.get("_t", d.get("t"))
    c = d.get("_c", d.get("c"))
    k = d.get("k")
    extrapolate = d.get("extrapolate")
    axis = d.get("axis", 0)
    if not is_int(k) or extrapolate not in (True, False, "periodic") or not is_int(axis):
        ctx.fail(node, "k and axis must be integers and extrapolate True, False or 'periodic'")
        return
    try:
        rebuilt = BSpline(t, c, int(k), extrapolate=extrapolate, axis=0)
    except Exception as exc:  # noqa: BLE001 - scipy refusing crafted knots, whatever it raises, is a refusal
        ctx.fail(node, f"scipy refuses its knots and coefficients ({type(exc).__name__}: {str(exc)[:120]})")
        return
    if len(t) < 2 * int(k) + 2:
        ctx.fail(node, f"needs at least {2 * int(k) + 2} knots for degree {int(k)}", "t")
        return
    if not 0 <= int(axis) < max(rebuilt.c.ndim, 1):
        ctx.fail(node, "axis out of range", "axis")
        return
    holder = d.get("_asarray")
    d.clear()
    d.update(rebuilt.__dict__)
    d["axis"] = int(axis)
    if holder is not None and "_asarray" in d:
        ctx.enqueue(node.child(holder, "._asarray"))


@validates("numpy.random.bit_generator.SeedSequence", holds_children=True)
def seed_sequence(obj: Any, node: Node, ctx: Context) -> None:
    """``generate_state`` mixes ``pool`` over ``pool_size`` words without bounds checks."""
    np = ctx.np
    pool = obj.pool
    size = int(obj.pool_size)
    if not isinstance(pool, np.ndarray) or pool.dtype != np.uint32 or pool.shape != (size,) or not 1 <= size <= 4096:
        ctx.fail(node, "pool must be a uint32 array of pool_size words", "pool")
    if int(obj.n_children_spawned) < 0:
        ctx.fail(node, "n_children_spawned must be non-negative", "n_children_spawned")


_LIBSVM = (
    "sklearn.svm._classes.SVC", "sklearn.svm._classes.NuSVC", "sklearn.svm._classes.SVR",
    "sklearn.svm._classes.NuSVR", "sklearn.svm._classes.OneClassSVM",
)
_KERNELS = ("linear", "poly", "rbf", "sigmoid", "precomputed")
_IMPLS = ("c_svc", "nu_svc", "one_class", "epsilon_svr", "nu_svr")


@validates(*_LIBSVM)
def libsvm_model(obj: Any, node: Node, ctx: Context) -> None:
    """libsvm's ``set_model`` copies ``nSV`` counts, ``sv_coef`` rows, intercepts and probability pairs by
    the class count and support vector count it is told, without checking the arrays' lengths."""
    d = obj.__dict__
    if "support_vectors_" not in d:
        return
    impl = d.get("_impl", getattr(type(obj), "_impl", None))
    if impl not in _IMPLS:
        ctx.fail(node, f"must be one of {', '.join(_IMPLS)}", "_impl")
        return
    kernel = d.get("kernel")
    if not (callable(kernel) or kernel in _KERNELS):
        ctx.fail(node, f"must be one of {', '.join(_KERNELS)} or an allowed callable", "kernel")
    sparse = d.get("_sparse")
    if sparse not in (True, False):
        ctx.fail(node, "must be a bool", "_sparse")
        return
    sv = d["support_vectors_"]
    n_features = n_features_of(obj, node, ctx)
    shape = getattr(sv, "shape", None)
    if sparse:
        if not is_sparse(sv):
            ctx.fail(node, "must be a sparse matrix for a model fitted on sparse data", "support_vectors_")
            return
    elif not array_ok(ctx, node, "support_vectors_", sv, ndim=2, kinds="f", contiguous=True):
        return
    if shape is None or len(shape) != 2:
        ctx.fail(node, "must be 2-D", "support_vectors_")
        return
    n_sv = int(shape[0])
    precomputed = callable(kernel) or kernel == "precomputed"
    if n_features is not None and not precomputed and n_sv and int(shape[1]) != n_features:
        ctx.fail(node, f"has {shape[1]} columns, the model expects {n_features}", "support_vectors_")
    n_support = d.get("_n_support")
    if not array_ok(ctx, node, "_n_support", n_support, ndim=1, kinds="i"):
        return
    classifier = impl in ("c_svc", "nu_svc")
    n_class = len(n_support) if classifier else 2
    if classifier:
        classes = d.get("classes_")
        if classes is not None and len(classes) != n_class:
            ctx.fail(node, f"has {len(n_support)} counts for {len(classes)} classes", "_n_support")
        if int(n_support.sum()) != n_sv or (n_support < 0).any():
            ctx.fail(node, f"counts do not add up to the {n_sv} support vectors", "_n_support")
    elif n_support.shape != (2,) or (n_support < 0).any() or (n_support > n_sv).any():
        ctx.fail(node, f"must be two counts within the {n_sv} support vectors", "_n_support")
    _libsvm_coefficients(d, node, ctx, sparse=sparse, n_sv=n_sv, n_class=n_class, classifier=classifier)
    _libsvm_support(obj, node, ctx, n_sv=n_sv, n_class=n_class, classifier=classifier)


def _libsvm_coefficients(d: dict[str, Any], node: Node, ctx: Context, *, sparse: bool, n_sv: int, n_class: int,
                         classifier: bool) -> None:
    """Dual coefficients, intercepts and probability pairs: the lengths libsvm copies by class and SV count."""
    np = ctx.np
    pairs = n_class * (n_class - 1) // 2
    coef = d.get("_dual_coef_")
    rows = max(n_class - 1, 1)
    if sparse:
        data = getattr(coef, "data", None)
        if getattr(coef, "shape", None) != (rows, n_sv) or not isinstance(data, np.ndarray) or \
                data.shape != (rows * n_sv,):
            ctx.fail(node, f"must be a sparse ({rows}, {n_sv}) matrix with every coefficient stored", "_dual_coef_")
    else:
        array_ok(ctx, node, "_dual_coef_", coef, ndim=2, kinds="f", shape=(rows, n_sv), contiguous=True)
    intercept = d.get("_intercept_")
    array_ok(ctx, node, "_intercept_", intercept, ndim=1, kinds="f", shape=(max(pairs, 1),))
    probability = d.get("_effective_probability", d.get("probability", False))
    if probability not in (True, False):
        ctx.fail(node, "must be a bool", "_effective_probability")
        probability = True
    for attr in ("_probA", "_probB"):
        arr: Any = d.get(attr)
        want = (max(pairs, 1),) if probability and classifier else None
        if array_ok(ctx, node, attr, arr, ndim=1, kinds="f") and \
                (arr.shape != want if want is not None else arr.size not in (0, max(pairs, 1))):
            ctx.fail(node, f"must have {max(pairs, 1)} entries when probabilities are computed", attr)
    if probability and not classifier:
        ctx.fail(node, "probability estimates exist only for classifiers", "_effective_probability")


def _libsvm_support(obj: Any, node: Node, ctx: Context, *, n_sv: int, n_class: int, classifier: bool) -> None:
    """Support indices within the fitted shape, the kernel degree and one class weight per class."""
    d = obj.__dict__
    support = d.get("support_")
    shape_fit = d.get("shape_fit_")
    if array_ok(ctx, node, "support_", support, ndim=1, kinds="i", shape=(n_sv,)) and \
            type(shape_fit) is tuple and shape_fit and is_int(shape_fit[0]):
        as_index(ctx, node, "support_", support, int(shape_fit[0]))
    if type(shape_fit) is not tuple or not shape_fit or not all(is_int(s) for s in shape_fit):
        ctx.fail(node, "must be a tuple of integers", "shape_fit_")
    int_attr(obj, "degree", node, ctx, low=0, high=1 << 16)
    weights = d.get("class_weight_")
    if weights is not None and array_ok(ctx, node, "class_weight_", weights, ndim=1, kinds="f") and \
            classifier and weights.size not in (0, n_class):
        ctx.fail(node, f"must have one weight per class ({n_class})", "class_weight_")


@validates(
    "sklearn.cluster._kmeans.KMeans", "sklearn.cluster._kmeans.MiniBatchKMeans",
    "sklearn.cluster._bisect_k_means.BisectingKMeans",
)
def kmeans(obj: Any, node: Node, ctx: Context) -> None:
    """The Lloyd/Elkan kernels (Cython) read ``cluster_centers_[j, f]`` for the input's ``f`` columns."""
    d = obj.__dict__
    centers = d.get("cluster_centers_")
    if centers is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is None:
        ctx.fail(node, "must be an integer on a fitted model", "n_features_in_")
        return
    array_ok(ctx, node, "cluster_centers_", centers, ndim=2, kinds="f", shape=(None, n_features),
             contiguous=True)
    tree = d.get("_bisecting_tree")
    if tree is not None:
        ctx.enqueue(node.child(tree, "._bisecting_tree"))
        _bisecting_nodes(tree, node.child(tree, "._bisecting_tree"), ctx, n_features)


def _bisecting_nodes(tree: Any, node: Node, ctx: Context, n_features: int) -> None:
    """Every node of a bisecting k-means tree predicts with its own two children's centers."""
    stack = [(tree, node)]
    count = 0
    while stack:
        current, where = stack.pop()
        count += 1
        if count > 1 << 20:
            ctx.fail(where, "bisecting tree too large")
            return
        d = getattr(current, "__dict__", {})
        left, right = d.get("left"), d.get("right")
        if left is None and right is None:
            continue
        centers = getattr(left, "__dict__", {}).get("center"), getattr(right, "__dict__", {}).get("center")
        for side, c in zip(("left", "right"), centers, strict=True):
            array_ok(ctx, where, f"{side}.center", c, ndim=1, kinds="f", shape=(n_features,))
        for side, child in (("left", left), ("right", right)):
            if child is not None:
                stack.append((child, where.child(child, f".{side}")))
