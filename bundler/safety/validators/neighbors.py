"""KDTree/BallTree, every DistanceMetric, and the neighbors estimators that hold them.

What the Cython code trusts:

* ``BinaryTree`` queries recurse through ``node_data`` (implicit children ``2i+1``, ``2i+2``), read
  ``data[idx_array[k]]`` for ``k`` in each node's ``[idx_start, idx_end)``, and bounds from ``node_bounds``; kernel
  density reads ``sample_weight[k]``. Valid: ``data`` 2-D, ``idx_array`` a 1-D index of its rows, node ranges inside
  ``[0, n]``, internal nodes with both children, ``n_nodes == 2**n_levels - 1 == len(node_data)``, ``node_bounds``
  shaped for the tree kind, ``sample_weight`` one per row, and a distance metric of a kind the tree supports whose
  parameters match the data's dimension.
* Distance metrics loop over ``size`` entries of their parameter arrays without bounds checks: Mahalanobis reads a
  ``size x size`` matrix and a ``size`` buffer, SEuclidean ``size`` variances, weighted Minkowski ``size`` weights,
  so each must match the dimension of the data it is used with (checked by the owner, which knows the data).
* The brute-force reductions (``ArgKmin``, ``RadiusNeighbors`` and their class-mode variants) read the fitted
  ``_fit_X`` with the query's column count, and scatter neighbour labels ``_y[j]`` into per-class buffers: ``_fit_X``
  must have ``n_features_in_`` columns and ``n_samples_fit_`` rows, and ``_y`` must index ``classes_``.
"""

from __future__ import annotations

import math
from typing import Any

from bundler.safety.validators.common import array_ok, as_index, int_attr, is_sparse, n_features_of
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node, qualname

__all__: list[str] = []

_METRIC_MODULE = "sklearn.metrics._dist_metrics."
_METRIC_KINDS = (
    "BrayCurtis", "Canberra", "Chebyshev", "Dice", "Euclidean", "Hamming", "Haversine", "Jaccard", "Kulsinski",
    "Mahalanobis", "Manhattan", "Matching", "Minkowski", "RogersTanimoto", "RussellRao", "SEuclidean",
    "SokalMichener", "SokalSneath", "PyFunc",
)
METRICS = (*(f"{_METRIC_MODULE}{kind}Distance{suffix}" for kind in _METRIC_KINDS for suffix in ("", "32", "64")),
           # the abstract bases: a payload may construct them, a tree must not use one (refused below)
           f"{_METRIC_MODULE}DistanceMetric", f"{_METRIC_MODULE}DistanceMetric32", f"{_METRIC_MODULE}DistanceMetric64")
_KD_METRICS = ("Euclidean", "Manhattan", "Chebyshev", "Minkowski")
#: KDTree/BallTree and their 32/64-bit variants; ``BinaryTree32/64`` of each module are that module's tree (the
#: shared .pxi is compiled into both, with the module's own bounds functions).
TREES = tuple(f"sklearn.neighbors._{mod}.{cls}{suffix}"
              for mod, names in (("kd_tree", ("KDTree", "BinaryTree")), ("ball_tree", ("BallTree", "BinaryTree")))
              for cls in names for suffix in ("", "32", "64") if not (cls == "BinaryTree" and suffix == ""))
HEAPS = tuple(f"sklearn.neighbors._{mod}.{cls}" for mod in ("kd_tree", "ball_tree")
              for cls in ("NeighborsHeap32", "NeighborsHeap64", "NodeHeap"))


def _kind(metric: Any) -> str | None:
    name = type(metric).__name__
    for suffix in ("32", "64"):
        if name.endswith(suffix):
            name = name[:-2]
    return name[:-len("Distance")] if name.endswith("Distance") else None


def metric_matches(ctx: Context, node: Node, attr: str, metric: Any, dim: int) -> None:
    """The relational check: a metric's parameter arrays must match the dimension of the data it measures."""
    kind = _kind(metric)
    state = metric.__getstate__()
    vec, mat = state[1], state[2]
    if kind == "Mahalanobis" and mat.shape != (dim, dim):
        ctx.fail(node, f"Mahalanobis matrix has shape {mat.shape} for {dim}-dimensional data", attr)
    elif kind == "SEuclidean" and vec.shape != (dim,):
        ctx.fail(node, f"SEuclidean variances have shape {vec.shape} for {dim}-dimensional data", attr)
    elif kind == "Minkowski" and vec.size not in (0, dim):
        ctx.fail(node, f"Minkowski weights have shape {vec.shape} for {dim}-dimensional data", attr)
    elif kind == "Haversine" and dim != 2:
        ctx.fail(node, f"haversine distance needs 2-dimensional data, not {dim}", attr)


@validates(*METRICS, holds_children=True)
def distance_metric(obj: Any, node: Node, ctx: Context) -> None:
    """The metrics (Cython) read ``vec`` and ``mat`` without bounds checks: both must be C-contiguous float arrays
    (1-D, 2-D), ``p`` positive (finite for Minkowski), a Mahalanobis matrix square, SEuclidean variances positive,
    Minkowski weights non-negative and a PyFunc's ``func`` callable; sizes against the data are the owner's check."""
    np = ctx.np
    kind = _kind(obj)
    if kind is None:
        ctx.fail(node, f"unknown distance metric {type(obj).__name__}")
        return
    state = obj.__getstate__()
    p, vec, mat = state[0], state[1], state[2]
    if not array_ok(ctx, node, "vec", vec, ndim=1, kinds="f", contiguous=True) or \
            not array_ok(ctx, node, "mat", mat, ndim=2, kinds="f", contiguous=True):
        return
    if not isinstance(p, float) or math.isnan(p) or p <= 0:
        ctx.fail(node, "p must be a positive number", "p")
    elif kind != "Chebyshev" and math.isinf(p) and kind == "Minkowski":
        ctx.fail(node, "Minkowski p must be finite", "p")
    if kind == "Mahalanobis":
        if mat.shape[0] != mat.shape[1] or mat.shape[0] < 1:
            ctx.fail(node, f"Mahalanobis matrix must be square, is {mat.shape}", "mat")
    elif kind == "SEuclidean":
        if vec.size < 1 or not np.all(vec > 0):
            ctx.fail(node, "SEuclidean variances must be positive", "vec")
    elif kind == "Minkowski" and vec.size and np.any(vec < 0):
        ctx.fail(node, "Minkowski weights must be non-negative", "vec")
    if kind == "PyFunc":
        ctx.enqueue(node.child(state[3], ".func"))
        ctx.enqueue(node.child(state[4], ".kwargs"))
        if not callable(state[3]):
            ctx.fail(node, "func must be callable", "func")


@validates(*TREES, holds_children=True)
def binary_tree(obj: Any, node: Node, ctx: Context) -> None:
    """Queries (Cython) recurse through ``node_data`` (children ``2i+1``, ``2i+2``) and read ``data[idx_array[k]]``,
    ``node_bounds`` and ``sample_weight`` unchecked: a complete node table with ranges in ``[0, n]``, ``idx_array``
    indexing the rows, bounds and weights shaped for ``data``, and a metric the tree supports matching its dimension."""
    np = ctx.np
    state = obj.__getstate__()
    data, idx_array, node_data, node_bounds = state[0], state[1], state[2], state[3]
    leaf_size, n_levels, n_nodes = state[4], state[5], state[6]
    metric, sample_weight = state[11], state[12]
    ctx.enqueue(node.child(metric, ".dist_metric"))
    if not array_ok(ctx, node, "data", data, ndim=2, kinds="f", contiguous=True):
        return
    n, d = data.shape
    if not array_ok(ctx, node, "idx_array", idx_array, ndim=1, kinds="iu", shape=(n,)) or \
            not as_index(ctx, node, "idx_array", idx_array, max(n, 1) if n else 0):
        return
    if not array_ok(ctx, node, "node_data", node_data, ndim=1) or node_data.dtype.names is None or \
            not {"idx_start", "idx_end", "is_leaf"} <= set(node_data.dtype.names):
        ctx.fail(node, "is not a node table", "node_data")
        return
    count = len(node_data)
    if count < 1 or int(n_nodes) != count or int(n_levels) < 1 or int(n_levels) > 64 or \
            count != 2 ** int(n_levels) - 1:
        ctx.fail(node, f"{count} nodes do not make a complete tree of n_levels={int(n_levels)}", "node_data")
        return
    if int(leaf_size) < 1:
        ctx.fail(node, "leaf_size must be positive", "leaf_size")
    start = node_data["idx_start"].astype(np.int64)
    end = node_data["idx_end"].astype(np.int64)
    if (start < 0).any() or (end < start).any() or (end > n).any():
        ctx.fail(node, f"node index ranges outside [0, {n}]", "node_data")
    internal = np.flatnonzero(~node_data["is_leaf"].astype(bool))
    if internal.size and int(internal.max()) * 2 + 2 >= count:
        ctx.fail(node, "internal nodes without children", "node_data")
    is_kd = type(obj).__module__ == "sklearn.neighbors._kd_tree"
    want = (2, count, d) if is_kd else (1, count, d)
    array_ok(ctx, node, "node_bounds", node_bounds, ndim=3, kinds="f", shape=want, contiguous=True)
    if sample_weight is not None:
        array_ok(ctx, node, "sample_weight", sample_weight, ndim=1, kinds="f", shape=(n,))
    if not type(metric).__module__.startswith("sklearn.metrics._dist_metrics") or _kind(metric) is None:
        ctx.fail(node, f"must be a DistanceMetric, not {qualname(metric)}", "dist_metric")
        return
    if is_kd and _kind(metric) not in _KD_METRICS:
        ctx.fail(node, f"a KDTree cannot use the {_kind(metric)} metric", "dist_metric")
    if n and d:
        metric_matches(ctx, node, "dist_metric", metric, d)


@validates(*HEAPS)
def query_heap(obj: Any, node: Node, ctx: Context) -> None:
    """Heaps are built by a tree's queries and never belong to a fitted model; a payload holding one is crafted."""
    ctx.fail(node, f"holds a {type(obj).__name__}, a query-time buffer that no fitted model keeps")


_NEIGHBORS = (
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._classification.RadiusNeighborsClassifier",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neighbors._regression.RadiusNeighborsRegressor",
    "sklearn.neighbors._unsupervised.NearestNeighbors",
    "sklearn.neighbors._graph.KNeighborsTransformer",
    "sklearn.neighbors._graph.RadiusNeighborsTransformer",
    "sklearn.neighbors._lof.LocalOutlierFactor",
)

_METRIC_PARAM_SHAPES = {"VI": 2, "V": None, "w": 1}


@validates(*_NEIGHBORS)
def neighbors_estimator(obj: Any, node: Node, ctx: Context) -> None:
    """The pairwise reductions (Cython) read ``_fit_X`` with the query's width, divide by its row count and scatter
    ``_y`` into per-class buffers: ``_fit_X`` needs ``n_features_in_`` columns and ``n_samples_fit_`` (>= 1) rows,
    the tree the same data, metric parameters that width, and ``_y`` must index ``classes_``."""
    np = ctx.np
    d = obj.__dict__
    if "_fit_X" not in d:
        return
    n_features = n_features_of(obj, node, ctx)
    fit_x = d["_fit_X"]
    if n_features is None:
        ctx.fail(node, "must be an integer on a fitted model", "n_features_in_")
        return
    shape = getattr(fit_x, "shape", None)
    if not (isinstance(fit_x, np.ndarray) and fit_x.ndim == 2) and not is_sparse(fit_x):
        ctx.fail(node, f"must be a 2-D array or sparse matrix, not {type(fit_x).__name__}", "_fit_X")
        return
    if shape is None or len(shape) != 2 or shape[1] != n_features:
        ctx.fail(node, f"has shape {shape}, not {n_features} columns", "_fit_X")
        return
    if shape[0] < 1:
        ctx.fail(node, "must hold at least one fitted row (the reductions divide by it)", "_fit_X")
        return
    n_samples = int_attr(obj, "n_samples_fit_", node, ctx, required=True)
    if n_samples is not None and n_samples != shape[0]:
        ctx.fail(node, f"is {n_samples} but _fit_X has {shape[0]} rows", "n_samples_fit_")
    method = d.get("_fit_method")
    if method not in ("brute", "kd_tree", "ball_tree"):
        ctx.fail(node, "must be 'brute', 'kd_tree' or 'ball_tree'", "_fit_method")
    tree = d.get("_tree")
    if method in ("kd_tree", "ball_tree"):
        if qualname(tree) not in TREES:
            ctx.fail(node, f"must be a KDTree or BallTree, not {qualname(tree)}", "_tree")
        else:
            data = tree.__getstate__()[0]
            if getattr(data, "shape", None) != tuple(shape):
                ctx.fail(node, f"tree data has shape {getattr(data, 'shape', None)}, _fit_X {shape}", "_tree")
    params = d.get("effective_metric_params_")
    if isinstance(params, dict):
        for key, ndim in _METRIC_PARAM_SHAPES.items():
            value = params.get(key)
            if value is None:
                continue
            arr = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple)) else None
            if arr is None or (ndim == 2 and arr.shape != (n_features, n_features)) or \
                    (ndim != 2 and arr.shape != (n_features,)):
                ctx.fail(node, f"metric parameter {key!r} does not match {n_features} features",
                         "effective_metric_params_")
    y = d.get("_y")
    classes = d.get("classes_")
    if y is not None and classes is not None:
        _labels_index_classes(ctx, node, y, classes, shape[0])


def _labels_index_classes(ctx: Context, node: Node, y: Any, classes: Any, n_rows: int) -> None:
    """``_y`` holds, per fitted row (and output), an index into ``classes_`` (scattered into class buffers)."""
    np = ctx.np
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.ndim not in (1, 2) or y.shape[0] != n_rows:
        ctx.fail(node, f"must be an integer array with one label per fitted row ({n_rows})", "_y")
        return
    columns = [y] if y.ndim == 1 else [y[:, k] for k in range(y.shape[1])]
    class_lists = [classes] if y.ndim == 1 else classes
    if type(class_lists) is not list and y.ndim == 2:
        ctx.fail(node, "must be a list of class arrays for multi-output labels", "classes_")
        return
    if len(class_lists) != len(columns):
        ctx.fail(node, "does not match the label outputs", "classes_")
        return
    for col, cls in zip(columns, class_lists, strict=True):
        count = len(cls) if hasattr(cls, "__len__") else 0
        if col.size and (int(col.min()) < 0 or int(col.max()) >= count):
            ctx.fail(node, f"labels outside [0, {count}) (the classes)", "_y")
            return


@validates("sklearn.neighbors._kde.KernelDensity")
def kernel_density(obj: Any, node: Node, ctx: Context) -> None:
    """``score_samples`` hands the query, checked against ``n_features_in_``, and ``bandwidth_`` to ``tree_``'s
    ``kernel_density`` (Cython): ``tree_`` must be a KDTree or BallTree over that many columns and ``bandwidth_`` a
    positive, finite float."""
    d = obj.__dict__
    tree = d.get("tree_")
    if tree is None:
        return
    if qualname(tree) not in TREES:
        ctx.fail(node, f"must be a KDTree or BallTree, not {qualname(tree)}", "tree_")
        return
    n_features = n_features_of(obj, node, ctx)
    data = tree.__getstate__()[0]
    if n_features is None or getattr(data, "ndim", 0) != 2 or data.shape[1] != n_features:
        ctx.fail(node, "tree data does not have n_features_in_ columns", "tree_")
    bandwidth = d.get("bandwidth_")
    if not isinstance(bandwidth, float) or not bandwidth > 0 or math.isinf(bandwidth):
        ctx.fail(node, "must be a positive, finite float", "bandwidth_")
