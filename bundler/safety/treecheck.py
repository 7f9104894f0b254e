"""Validate the node arrays of scikit-learn tree structures in a loaded model before anyone calls ``predict``.

Why: ``sklearn.tree._tree.Tree.__setstate__`` checks array shapes and dtypes but not the *contents*; the Cython
prediction loops then follow ``children_left/right`` and index ``X[:, feature]`` without bounds checks.  A crafted
node array therefore makes ``predict`` read out of bounds (a crash at best).  That is why skops refuses ``Tree`` by
default; checking the arrays here is what lets tree models load by default.

What "valid" means (all vectorized, a few microseconds per tree):
* ``Tree``: ``node_count`` >= 1 and equal to the node array length; a node is a leaf iff ``left == -1`` and then
  ``right == -1``; every split node's children are in ``(own index, node_count)`` - strictly increasing indices, so
  every path from the root terminates and no node is its own ancestor (scikit-learn always numbers children after
  their parent); split features in ``[0, n_features)`` and ``n_features`` equal to the owning estimator's
  ``n_features_in_``; ``value`` shaped ``(node_count, n_outputs, max_n_classes)``.
* ``KDTree``/``BallTree``: ``idx_array`` indexes rows of ``data``; every node's ``[idx_start, idx_end]`` lies
  within it; the implicit children ``2i+1, 2i+2`` of internal nodes exist; bounds match nodes and features.
* HistGradientBoosting ``TreePredictor``: the same child rule on ``left``/``right`` with ``is_leaf``;
  ``feature_idx`` in ``[0, n_features_in_)``; categorical splits only on categorical features and with
  ``bitset_idx`` inside both bitset tables.
Problems are returned as lines; the caller raises ``UnsafeContent`` with them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["validate_trees"]

MAX_OBJECTS = 1_000_000  # bound on the object-graph walk


def validate_trees(obj: object) -> list[str]:
    """Walk ``obj`` (estimators, their attributes, containers, object arrays) and validate every tree found."""
    import numpy as np

    atoms = {str, bytes, int, float, complex, bool, type(None), np.float64, np.int64, np.bool_}
    ndarray = np.ndarray
    problems: list[str] = []
    seen: set[int] = set()
    # (object, path parent entry, path key, owning estimator); paths are only formatted when a problem is found.
    queue: deque[tuple[Any, Any, Any, Any]] = deque([(obj, None, "model", None)])
    visited = 0
    while queue:
        entry = queue.popleft()
        item, _parent, _key, owner = entry
        if id(item) in seen:
            continue
        seen.add(id(item))
        visited += 1
        if visited > MAX_OBJECTS:
            problems.append(f"model object graph has more than {MAX_OBJECTS} objects; refusing to validate it")
            break
        t = type(item)
        if t is ndarray:
            if item.dtype.hasobject:
                for i, v in enumerate(item.ravel().tolist()):
                    if type(v) not in atoms:
                        queue.append((v, entry, f"[{i}]", owner))
            continue
        if t is dict:
            for k, v in item.items():
                if type(v) not in atoms:
                    queue.append((v, entry, f"[{k!r}]", owner))
            continue
        if t in (list, tuple, set, frozenset):
            for i, v in enumerate(item):
                if type(v) not in atoms:
                    queue.append((v, entry, f"[{i}]", owner))
            continue
        module = t.__module__
        if not module.startswith("sklearn."):
            continue
        tname = f"{module}.{t.__qualname__}"
        if tname == "sklearn.tree._tree.Tree":
            problems += _check_tree(np, item, _path(entry), owner)
        elif tname == "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor":
            problems += _check_predictor(np, item, _path(entry), owner)
        elif tname.startswith(("sklearn.neighbors._kd_tree.", "sklearn.neighbors._ball_tree.")) and \
                hasattr(item, "get_arrays"):
            problems += _check_binary_tree(np, item, _path(entry), owner)
        elif hasattr(item, "__dict__"):
            for k, v in vars(item).items():
                tv = type(v)
                if tv not in atoms and (tv is not ndarray or v.dtype.hasobject):
                    queue.append((v, entry, f".{k}", item))
    return problems


def _path(entry: tuple[Any, Any, Any, Any]) -> str:
    parts = []
    node: Any = entry
    while node is not None:
        parts.append(str(node[2]))
        node = node[1]
    return "".join(reversed(parts))


def _n_features_of(owner: object | None) -> int | None:
    n: Any = getattr(owner, "n_features_in_", None)
    return int(n) if n is not None and (isinstance(n, int) or type(n).__name__.startswith("int")) else None


def _children_problems(np: Any, left: Any, right: Any, is_leaf: Any, n: int, where: str) -> list[str]:
    problems = []
    idx = np.arange(n)
    internal = ~is_leaf
    if internal.any():
        li, ri, ii = left[internal], right[internal], idx[internal]
        bad = ~((li > ii) & (li < n) & (ri > ii) & (ri < n))
        if bad.any():
            first = int(ii[bad][0])
            problems.append(f"{where}: {int(bad.sum())} split node(s) have child indices out of range or not after "
                            f"their parent (first: node {first})")
    return problems


def _check_tree(np: Any, tree: Any, path: str, owner: object | None) -> list[str]:
    where = f"{path} (sklearn.tree._tree.Tree)"
    try:
        state = tree.__getstate__()
        nodes = state["nodes"]
        values = state["values"]
        n = int(state["node_count"])
        n_features = int(tree.n_features)
        n_outputs = int(tree.n_outputs)
        max_n_classes = int(tree.max_n_classes)
        n_classes = np.asarray(tree.n_classes)
    except Exception as exc:
        return [f"{where}: cannot read the tree arrays: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    if n < 1 or len(nodes) != n:
        return [f"{where}: node_count {n} does not match {len(nodes)} nodes"]
    if n_features < 1 or n_outputs < 1 or max_n_classes < 1:
        problems.append(f"{where}: n_features/n_outputs/max_n_classes must be positive")
    if n_classes.shape != (n_outputs,) or (n_classes.size and int(n_classes.max()) > max_n_classes):
        problems.append(f"{where}: n_classes does not match n_outputs/max_n_classes")
    if values.shape != (n, n_outputs, max_n_classes):
        problems.append(f"{where}: value array has shape {values.shape}, expected {(n, n_outputs, max_n_classes)}")
    left = nodes["left_child"]
    right = nodes["right_child"]
    leaf = left == -1
    if (right[leaf] != -1).any():
        problems.append(f"{where}: leaf nodes with a right child")
    problems += _children_problems(np, left, right, leaf, n, where)
    feat = nodes["feature"][~leaf]
    if feat.size and (int(feat.min()) < 0 or int(feat.max()) >= n_features):
        problems.append(f"{where}: split feature indices outside [0, {n_features})")
    expected = _n_features_of(owner)
    if expected is not None and getattr(owner, "tree_", None) is tree and expected != n_features:
        problems.append(f"{where}: tree has {n_features} features but its estimator expects {expected}")
    return problems


def _check_predictor(np: Any, pred: Any, path: str, owner: object | None) -> list[str]:
    where = f"{path} (TreePredictor)"
    try:
        nodes = pred.nodes
        n = len(nodes)
        left = nodes["left"].astype(np.int64)
        right = nodes["right"].astype(np.int64)
        is_leaf = nodes["is_leaf"].astype(bool)
        feat = nodes["feature_idx"].astype(np.int64)
        is_cat = nodes["is_categorical"].astype(bool)
        bitset = nodes["bitset_idx"].astype(np.int64)
        n_binned = len(pred.binned_left_cat_bitsets)
        n_raw = len(pred.raw_left_cat_bitsets)
    except Exception as exc:
        return [f"{where}: cannot read the predictor arrays: {type(exc).__name__}: {exc}"]
    if n < 1:
        return [f"{where}: no nodes"]
    problems = _children_problems(np, left, right, is_leaf, n, where)
    internal = ~is_leaf
    f = feat[internal]
    n_features = _n_features_of(owner)
    if f.size:
        if int(f.min()) < 0 or (n_features is not None and int(f.max()) >= n_features):
            problems.append(f"{where}: split feature indices outside [0, {n_features})")
        cat = internal & is_cat
        if cat.any():
            b = bitset[cat]
            if int(b.min()) < 0 or int(b.max()) >= min(n_binned, n_raw):
                problems.append(f"{where}: categorical split bitset index out of range")
            if owner is not None and hasattr(owner, "is_categorical_"):
                is_categorical = getattr(owner, "is_categorical_", None)
                cat_feats = feat[cat]
                if is_categorical is None:
                    problems.append(f"{where}: categorical split but the estimator has no categorical features")
                else:
                    mask = np.asarray(is_categorical, dtype=bool)
                    if int(cat_feats.max()) >= mask.size or not mask[cat_feats].all():
                        problems.append(f"{where}: categorical split on a feature that is not categorical")
    return problems


def _check_binary_tree(np: Any, tree: Any, path: str, owner: object | None) -> list[str]:
    where = f"{path} ({type(tree).__name__})"
    try:
        data, idx_array, node_data, node_bounds = (np.asarray(a) for a in tree.get_arrays())
        n, d = data.shape
        n_nodes = len(node_data)
        start = node_data["idx_start"].astype(np.int64)
        end = node_data["idx_end"].astype(np.int64)
        is_leaf = node_data["is_leaf"].astype(bool)
    except Exception as exc:
        return [f"{where}: cannot read the tree arrays: {type(exc).__name__}: {exc}"]
    problems = []
    if idx_array.shape != (n,) or (n and (int(idx_array.min()) < 0 or int(idx_array.max()) >= n)):
        problems.append(f"{where}: idx_array does not index the {n} data rows")
    if n_nodes < 1 or (start < 0).any() or (end < start).any() or (end > n).any():
        problems.append(f"{where}: node index ranges outside [0, {n}]")
    internal = np.flatnonzero(~is_leaf)
    if internal.size and int(internal.max()) * 2 + 2 >= n_nodes:
        problems.append(f"{where}: internal nodes without children")
    if node_bounds.ndim != 3 or node_bounds.shape[1] != n_nodes or node_bounds.shape[2] != d:
        problems.append(f"{where}: node_bounds shape {node_bounds.shape} does not match {n_nodes} nodes, {d} features")
    expected = _n_features_of(owner)
    if expected is not None and expected != d:
        problems.append(f"{where}: tree has {d} features but its estimator expects {expected}")
    return problems
