"""Decision trees, tree ensembles and histogram gradient boosting: what their Cython prediction loops trust.

* ``sklearn.tree._tree.Tree``: ``apply``/``predict``/``decision_path`` follow ``left_child``/``right_child`` and index
  ``X[:, feature]`` and ``value[node]`` without bounds checks, and ``decision_path`` sizes a buffer from
  ``max_depth``. Valid means: ``node_count == capacity >= 1``; a node is a leaf iff both children are ``-1``; every
  split node's children lie in ``(own index, node_count)`` (so every path ends, and no node is its own ancestor;
  scikit-learn always numbers children after their parent); no node is the child of two parents; split features
  in ``[0, n_features)``; ``value`` shaped ``(node_count, n_outputs, max_n_classes)``; ``n_classes`` consistent;
  ``max_depth`` equal to the real depth.
* Tree estimators (``DecisionTree*``, ``ExtraTree*``): ``n_features_in_`` an exact int equal to ``tree_.n_features``
  (an ensemble calls its trees with ``check_input=False``, so this is what bounds ``X[:, feature]``).
* Ensembles: every sub-estimator expects exactly the columns the ensemble feeds it (its own ``n_features_in_``, or
  the size of its feature subset for bagging and isolation forests, whose subsets must index the input); gradient
  boosting's ``estimators_`` is the 2-D object array of regression trees ``predict_stages`` walks, with one column
  per output it writes, into raw predictions its init estimator must make that wide; a forest's ``n_outputs_``
  (which sizes its prediction buffer) is its trees'.
* Histogram gradient boosting: every ``TreePredictor``'s node array has the installed node layout, the same child
  rule, features below ``n_features_in_``, categorical splits only on categorical features and bitset indices inside
  both bitset tables; the bin mapper's categorical tables agree with the estimator's.
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import array_ok, as_index, int_attr, is_int, n_features_of, shown
from bundler.safety.validators.registry import validates, validates_together
from bundler.safety.validators.walker import Context, Node, qualname

__all__: list[str] = []

TREE = "sklearn.tree._tree.Tree"
TREE_ESTIMATORS = (
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
)


class _Forest:
    """Several trees' node tables concatenated, so each check is a few numpy passes over all of them.

    Why this shape: a 300-tree forest has about a million nodes; per-tree (let alone per-node) Python would cost more
    than unpickling it. Children are kept as *global* indices (``gleft``/``gright``: index into the concatenation),
    so "``i < child < n`` in tree-local numbering" becomes ``i_global < child_global < end_of_tree`` without building
    local index arrays; the two are equivalent because ``i_global >= start_of_tree``.
    """

    #: Levels walked breadth-first before falling back to pointer jumping (bounded rounds for degenerate chains).
    BFS_LEVELS = 64

    def __init__(self, np: Any, lefts: list[Any], rights: list[Any], leaves: list[Any]) -> None:
        self.np = np
        self.sizes = np.array([len(x) for x in lefts], dtype=np.int64)
        self.ends = np.cumsum(self.sizes)
        self.offsets = self.ends - self.sizes
        self.total = int(self.ends[-1]) if len(lefts) else 0
        self.owner = np.repeat(np.arange(len(lefts)), self.sizes)
        base = self.offsets[self.owner]
        self.leaf = np.concatenate(leaves).astype(bool, copy=False) if lefts else np.zeros(0, dtype=bool)
        self.internal = np.flatnonzero(~self.leaf)
        self.left = np.concatenate(lefts).astype(np.int64, copy=False) if lefts else np.zeros(0, dtype=np.int64)
        self.right = np.concatenate(rights).astype(np.int64, copy=False) if lefts else np.zeros(0, dtype=np.int64)
        self.gleft = self.left + base  # a wrapped (overflowed) value is negative: it fails "after its parent"
        self.gright = self.right + base
        self._indegree: Any = None

    def bad_children(self) -> Any:
        """Per tree: split nodes whose children are not after them and inside the tree, or shared."""
        np = self.np
        ii = self.internal
        own = self.owner[ii]
        li, ri, end = self.gleft[ii], self.gright[ii], self.ends[own]
        bad = ~((li > ii) & (li < end) & (ri > ii) & (ri < end))
        per_tree = np.bincount(own[bad], minlength=len(self.sizes))
        if not bad.any() and li.size:
            self._indegree = np.bincount(np.concatenate([li, ri]), minlength=self.total)
            per_tree += np.bincount(self.owner[self._indegree > 1], minlength=len(self.sizes))
        return per_tree

    def depths(self) -> Any:
        """Per tree: the greatest distance of any of its nodes from the root of its component (node 0, and any node
        no parent points to). Call after ``bad_children`` found nothing: children after parents, none shared.

        Breadth-first from the roots, all trees at once: each level is a few numpy calls over that level's nodes,
        so a whole forest costs one pass over its nodes. A tree deeper than ``BFS_LEVELS`` (never a forest's, but a
        crafted chain could be a million levels deep) switches to pointer jumping, whose rounds are logarithmic."""
        np = self.np
        if not self.total:
            return np.zeros(len(self.sizes), dtype=np.int64)
        indegree = self._indegree
        if indegree is None:
            kids = np.concatenate([self.gleft[self.internal], self.gright[self.internal]])
            indegree = np.bincount(kids, minlength=self.total)
        frontier = np.flatnonzero(indegree == 0)
        leaf, gleft, gright = self.leaf, self.gleft, self.gright
        level_of = np.zeros(self.total, dtype=np.int8)  # every node is reached once: children after parents
        for level in range(1, self.BFS_LEVELS):
            split = frontier[~leaf[frontier]]
            if not split.size:
                return np.maximum.reduceat(level_of, self.offsets).astype(np.int64)
            frontier = np.concatenate([gleft[split], gright[split]])
            level_of[frontier] = level
        return self._jumping_depths()

    def _jumping_depths(self) -> Any:
        np = self.np
        total = self.total
        internal = self.internal
        parent = np.arange(total, dtype=np.int64)
        parent[self.gleft[internal]] = internal
        parent[self.gright[internal]] = internal
        dist = (parent != np.arange(total)).astype(np.int64)
        jump = parent
        while True:  # pointer jumping: log2(depth) rounds
            nxt = jump[jump]
            if np.array_equal(nxt, jump):
                break
            dist = dist + dist[jump]
            jump = nxt
        return np.maximum.reduceat(dist, self.offsets)


@validates_together(TREE)
def trees(items: list[tuple[Any, Node]], ctx: Context) -> None:
    """``apply``/``predict``/``decision_path`` (Cython) follow children, read ``X[:, feature]`` and ``value[node]``
    unchecked and size a buffer by ``max_depth``: ``node_count == capacity``, sizes and ``value`` consistent, leaves
    childless, children after their parent and unshared, features in ``[0, n_features)``, the real ``max_depth``."""
    np = ctx.np
    usable: list[tuple[Any, Node, Any, Any]] = []
    for obj, node in items:
        n, capacity = int(obj.node_count), int(obj.capacity)
        if n < 1 or n != capacity:
            ctx.fail(node, f"node_count {n} does not match its {capacity} allocated nodes")
            continue
        n_features, n_outputs, max_n_classes = int(obj.n_features), int(obj.n_outputs), int(obj.max_n_classes)
        if n_features < 1 or n_outputs < 1 or max_n_classes < 1:
            ctx.fail(node, "n_features, n_outputs and max_n_classes must be positive")
            continue
        n_classes = np.asarray(obj.n_classes)
        if n_classes.shape != (n_outputs,) or int(n_classes.max()) > max_n_classes or int(n_classes.min()) < 1:
            ctx.fail(node, "n_classes does not match n_outputs and max_n_classes")
        state = obj.__getstate__()
        nodes, values = state["nodes"], state["values"]
        if len(nodes) != n:
            ctx.fail(node, f"{len(nodes)} nodes for node_count {n}")
            continue
        if values.shape != (n, n_outputs, max_n_classes):
            ctx.fail(node, f"value array has shape {values.shape}, expected {(n, n_outputs, max_n_classes)}")
        usable.append((obj, node, nodes, n_features))
    if not usable:
        return
    lefts = [u[2]["left_child"] for u in usable]
    rights = [u[2]["right_child"] for u in usable]
    forest = _Forest(np, lefts, rights, [x == -1 for x in lefts])
    bad_leaf = np.bincount(forest.owner[forest.leaf & (forest.right != -1)], minlength=len(usable))
    bad_kids = forest.bad_children()
    feats = np.concatenate([u[2]["feature"] for u in usable]).astype(np.int64, copy=False)
    n_feat = np.array([u[3] for u in usable], dtype=np.int64)[forest.owner]
    split = ~forest.leaf
    bad_feat = np.bincount(forest.owner[split & ((feats < 0) | (feats >= n_feat))], minlength=len(usable))
    structurally_ok = (bad_leaf == 0) & (bad_kids == 0)
    depths = forest.depths() if structurally_ok.all() else None
    for k, (obj, node, _, n_features) in enumerate(usable):
        if bad_leaf[k]:
            ctx.fail(node, "leaf nodes with a right child")
        elif bad_kids[k]:
            ctx.fail(node, f"{int(bad_kids[k])} split node(s) have child indices out of range, not after their "
                           "parent, or shared with another parent")
        if bad_feat[k]:
            ctx.fail(node, f"split feature indices outside [0, {n_features})")
        if depths is not None and int(obj.max_depth) != int(depths[k]):
            ctx.fail(node, f"max_depth {int(obj.max_depth)} differs from the tree's real depth {int(depths[k])}")
    if depths is None:  # some tree is broken: the others still get their depth checked one by one
        for k, (obj, node, nodes, _) in enumerate(usable):
            if structurally_ok[k]:
                one = _Forest(np, [nodes["left_child"]], [nodes["right_child"]], [nodes["left_child"] == -1])
                if int(obj.max_depth) != int(one.depths()[0]):
                    ctx.fail(node, f"max_depth {int(obj.max_depth)} differs from the tree's real depth")


@validates(*TREE_ESTIMATORS)
def tree_estimator(obj: Any, node: Node, ctx: Context) -> None:
    """Ensembles call the tree's Cython ``predict`` with ``check_input=False``, so ``n_features_in_`` is what bounds
    ``X[:, feature]``: a fitted estimator needs a ``Tree`` and ``n_features_in_``/``n_outputs_`` equal to its tree's."""
    d = obj.__dict__
    if "tree_" not in d:
        return  # not fitted
    t = d["tree_"]
    if qualname(t) != TREE:
        ctx.fail(node, f"must be a sklearn.tree._tree.Tree, not {qualname(t)}", "tree_")
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is None:
        if "n_features_in_" not in d:
            ctx.fail(node, "is missing on a fitted tree", "n_features_in_")
        return
    if n_features != int(t.n_features):
        ctx.fail(node, f"is {n_features} but its tree splits on {int(t.n_features)} features", "n_features_in_")
    n_outputs = int_attr(obj, "n_outputs_", node, ctx, low=1)
    if n_outputs is not None and n_outputs != int(t.n_outputs):
        ctx.fail(node, f"is {n_outputs} but its tree has {int(t.n_outputs)} outputs", "n_outputs_")


def _expect_features(ctx: Context, node: Node, sub: Any, key: str, expected: int) -> None:
    d = getattr(sub, "__dict__", None)
    if not isinstance(d, dict) or "n_features_in_" not in d:
        return
    value = d["n_features_in_"]
    if not is_int(value) or int(value) != expected:
        ctx.fail(node, f"sub-estimator expects {shown(value)} features, but is fed {expected}", key)


def _expect_outputs(ctx: Context, node: Node, obj: Any, subs: list[Any]) -> None:
    """The ensemble's ``n_outputs_``, which sizes its prediction buffers, is the outputs its trees predict."""
    d = obj.__dict__
    if "n_outputs_" not in d:
        return
    value = d["n_outputs_"]
    if not is_int(value) or int(value) < 1:
        ctx.fail(node, f"must be a positive integer, not {shown(value)}", "n_outputs_")
        return
    for i, sub in enumerate(subs):
        own = getattr(sub, "__dict__", {}).get("n_outputs_")
        if is_int(own) and int(own) != int(value):
            ctx.fail(node, f"is {int(value)} but estimators_[{i}] predicts {int(own)} output(s) (it sizes every "
                           "prediction's buffer)", "n_outputs_")
            return


def _sub_estimators(ctx: Context, node: Node, obj: Any, attr: str) -> list[Any] | None:
    subs = obj.__dict__.get(attr)
    if subs is None:
        return None
    if type(subs) is not list:
        ctx.fail(node, f"must be a list, not {type(subs).__name__}", attr)
        return None
    return subs


@validates(
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomTreesEmbedding",
)
def forest(obj: Any, node: Node, ctx: Context) -> None:
    """Prediction feeds every tree the forest's input with ``check_input=False``, sizes its jobs by ``n_estimators``
    and its output by ``n_outputs_`` (``np.zeros((n_samples, n_outputs_))`` for a regressor, ``np.empty`` for a
    classifier: a crafted count asks for terabytes, or fills them on a one-row input): ``estimators_`` must be a list
    of tree estimators expecting the forest's ``n_features_in_``, ``n_estimators`` their number and ``n_outputs_``
    their outputs."""
    subs = _sub_estimators(ctx, node, obj, "estimators_")
    if subs is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is None:
        ctx.fail(node, "must be an integer on a fitted forest", "n_features_in_")
        return
    for i, sub in enumerate(subs):
        if qualname(sub) not in TREE_ESTIMATORS:
            ctx.fail(node, f"holds a {qualname(sub)}, not a tree", f"estimators_[{i}]")
            continue
        _expect_features(ctx, node, sub, f"estimators_[{i}].n_features_in_", n_features)
    _expect_outputs(ctx, node, obj, subs)
    count = obj.__dict__.get("n_estimators")
    if not is_int(count) or int(count) != len(subs):
        ctx.fail(node, f"is {shown(count)} but the forest holds {len(subs)} trees (it sizes every prediction's jobs)",
                 "n_estimators")


def _feature_subsets(ctx: Context, node: Node, obj: Any, subs: list[Any], n_features: int, *,
                     required: bool) -> None:
    feats = obj.__dict__.get("estimators_features_")
    if feats is None:
        if required:
            ctx.fail(node, "is missing", "estimators_features_")
        else:
            for i, sub in enumerate(subs):
                _expect_features(ctx, node, sub, f"estimators_[{i}].n_features_in_", n_features)
        return
    if type(feats) is not list or len(feats) != len(subs):
        ctx.fail(node, "must be a list with one feature subset per estimator", "estimators_features_")
        return
    for i, (sub, f) in enumerate(zip(subs, feats, strict=True)):
        key = f"estimators_features_[{i}]"
        if not array_ok(ctx, node, key, f, ndim=1, kinds="iu") or not as_index(ctx, node, key, f, n_features):
            continue
        _expect_features(ctx, node, sub, f"estimators_[{i}].n_features_in_", int(f.shape[0]))


@validates("sklearn.ensemble._iforest.IsolationForest")
def isolation_forest(obj: Any, node: Node, ctx: Context) -> None:
    """``score_samples`` applies each tree (``check_input=False``) to its feature subset of the input, in chunks sized
    by ``_max_features``: besides those sizes, ``estimators_`` must be trees, each fed an in-range subset of the size it
    expects, and the per-tree path-length arrays one entry per node."""
    from bundler.safety.validators.sizes import isolation_forest_sizes

    isolation_forest_sizes(obj, node, ctx)
    subs = _sub_estimators(ctx, node, obj, "estimators_")
    if subs is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is None:
        ctx.fail(node, "must be an integer on a fitted forest", "n_features_in_")
        return
    for i, sub in enumerate(subs):
        if qualname(sub) not in TREE_ESTIMATORS:
            ctx.fail(node, f"holds a {qualname(sub)}, not a tree", f"estimators_[{i}]")
    _feature_subsets(ctx, node, obj, subs, n_features, required=True)
    for attr in ("_decision_path_lengths", "_average_path_length_per_tree"):
        arrays = obj.__dict__.get(attr)
        if arrays is None:
            continue
        if type(arrays) not in (list, tuple) or len(arrays) != len(subs):
            ctx.fail(node, "must be a list with one array per tree", attr)
            continue
        for i, (sub, arr) in enumerate(zip(subs, arrays, strict=True)):
            t = getattr(sub, "__dict__", {}).get("tree_")
            if t is not None and qualname(t) == TREE:
                array_ok(ctx, node, f"{attr}[{i}]", arr, ndim=1, shape=(int(t.node_count),))


@validates("sklearn.ensemble._bagging.BaggingClassifier", "sklearn.ensemble._bagging.BaggingRegressor")
def bagging(obj: Any, node: Node, ctx: Context) -> None:
    """``predict`` hands each estimator ``X[:, estimators_features_[i]]``: each subset must be an integer index into the
    ``n_features_in_`` input columns and each estimator expect as many features as its subset holds (all of them when
    there are no subsets)."""
    subs = _sub_estimators(ctx, node, obj, "estimators_")
    if subs is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is not None:
        _feature_subsets(ctx, node, obj, subs, n_features, required=False)


@validates("sklearn.ensemble._gb.GradientBoostingClassifier", "sklearn.ensemble._gb.GradientBoostingRegressor")
def gradient_boosting(obj: Any, node: Node, ctx: Context) -> None:
    """``predict_stages`` (Cython) walks the 2-D ``estimators_``, reads ``X[:, feature]`` in every tree and writes
    ``out[:, k]`` for tree ``k`` of a stage: an object array of ``n_estimators_`` stages of ``n_trees_per_iteration_``
    single-output regression trees, all on the model's ``n_features_in_``."""
    np = ctx.np
    est = obj.__dict__.get("estimators_")
    if est is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is None:
        ctx.fail(node, "must be an integer on a fitted model", "n_features_in_")
        return
    if not array_ok(ctx, node, "estimators_", est, ndim=2, kinds="O"):
        return
    k = obj.__dict__.get("n_trees_per_iteration_", obj.__dict__.get("_n_trees_per_iteration"))
    if k is not None and (not is_int(k) or est.shape[1] != int(k)):
        ctx.fail(node, f"has {est.shape[1]} trees per stage but the model writes {shown(k)} outputs", "estimators_")
    n_stages = obj.__dict__.get("n_estimators_")
    if n_stages is not None and (not is_int(n_stages) or int(n_stages) != est.shape[0]):
        ctx.fail(node, f"has {est.shape[0]} stages, n_estimators_ says {shown(n_stages)}", "estimators_")
    _init_width(ctx, node, obj, int(est.shape[1]))
    for (i, j), sub in np.ndenumerate(est):
        key = f"estimators_[{i}, {j}]"
        if qualname(sub) != "sklearn.tree._classes.DecisionTreeRegressor":
            ctx.fail(node, f"holds a {qualname(sub)}, not a regression tree", key)
            continue
        _expect_features(ctx, node, sub, f"{key}.n_features_in_", n_features)
        t = sub.__dict__.get("tree_")
        if qualname(t) == TREE and (int(t.n_features) != n_features or int(t.n_outputs) != 1):
            ctx.fail(node, "tree does not split the model's features with one output", f"{key}.tree_")


_DUMMY_CLASSIFIER = "sklearn.dummy.DummyClassifier"
_DUMMY_REGRESSOR = "sklearn.dummy.DummyRegressor"


def _init_width(ctx: Context, node: Node, obj: Any, k: int) -> None:
    """``predict_stages`` (Cython) adds tree ``j`` of every stage into column ``j`` of the raw predictions that the
    init estimator made (``init_.predict_proba(X)`` for a multiclass classifier, one column otherwise), unchecked: a
    3-class model whose init predicts fewer columns writes past them (heap corruption). ``"zero"`` makes exactly ``k``
    columns; the init scikit-learn fits by default (a ``DummyClassifier``/``DummyRegressor``) must predict ``k`` columns
    by its own state; any other init estimator must at least say it does (``classes_`` per column, positive
    ``n_outputs_``)."""
    np = ctx.np
    d = obj.__dict__
    init = d.get("init_")
    if init is None or (type(init) is str and init == "zero"):
        return
    classifier = qualname(obj) == "sklearn.ensemble._gb.GradientBoostingClassifier"
    idict = getattr(init, "__dict__", None)
    if type(init) is str or not isinstance(idict, dict):
        ctx.fail(node, f"must be 'zero' or a fitted estimator, not {shown(init)}", "init_")
        return
    if classifier:
        multiclass = getattr(d.get("_loss"), "is_multiclass", None)
        if type(multiclass) is not bool:
            ctx.fail(node, "must be a scikit-learn loss (is_multiclass a bool)", "_loss")
            return
        if not multiclass:  # the positive class's probability: one column
            if k != 1:
                ctx.fail(node, f"a two-class loss makes one column of raw predictions, the stages write {k}", "_loss")
            return
        classes = idict.get("classes_")
        width = len(classes) if isinstance(classes, np.ndarray) and classes.ndim == 1 else None
        if qualname(init) == _DUMMY_CLASSIFIER:
            prior = idict.get("class_prior_")
            if idict.get("n_outputs_") != 1 or not isinstance(prior, np.ndarray) or prior.shape != (width,):
                width = None
        if width != k:
            ctx.fail(node, f"must predict probabilities for the {k} classes each stage writes (a narrower init "
                           "makes predict_stages write past its predictions)", "init_")
        return
    outputs = idict.get("n_outputs_", 1)
    if not is_int(outputs) or int(outputs) < 1:
        ctx.fail(node, f"init estimator predicts {shown(outputs)} outputs; the stages write {k}", "init_.n_outputs_")
        return
    if qualname(init) == _DUMMY_REGRESSOR:
        constant = idict.get("constant_")
        if not isinstance(constant, np.ndarray) or constant.shape != (1, int(outputs)):
            ctx.fail(node, f"must be one row of {int(outputs)} constant(s)", "init_.constant_")


# -- histogram gradient boosting -------------------------------------------------------------------------------------

PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
BIN_MAPPER = "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"


def _record_dtype() -> Any:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    return PREDICTOR_RECORD_DTYPE


@validates(PREDICTOR)
def tree_predictor(obj: Any, node: Node, ctx: Context) -> None:
    """The predictor loops (Cython) follow ``left``/``right``, read ``X[:, feature_idx]`` and row ``bitset_idx`` of both
    bitset tables unchecked: at least one node, children after their parent, inside and unshared, non-negative split
    features (the owner bounds them above), 8-column unsigned tables holding every categorical split's bitset index."""
    np = ctx.np
    d = obj.__dict__
    nodes = d.get("nodes")
    if not array_ok(ctx, node, "nodes", nodes, ndim=1):
        return
    if nodes.dtype != _record_dtype():
        return  # the installed predictor's typed memoryviews refuse any other layout (a Python exception)
    n = len(nodes)
    if n < 1:
        ctx.fail(node, "has no nodes", "nodes")
        return
    tables = []
    for attr in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        table = d.get(attr)
        if array_ok(ctx, node, attr, table, ndim=2, kinds="u", contiguous=True) and table.shape[1] != 8:
            ctx.fail(node, f"must have 8 columns, has {table.shape[1]}", attr)
        tables.append(table if isinstance(table, np.ndarray) and table.ndim == 2 else None)
    is_leaf = nodes["is_leaf"].astype(bool)
    forest = _Forest(np, [nodes["left"]], [nodes["right"]], [is_leaf])
    if forest.bad_children()[0]:
        ctx.fail(node, "split nodes have child indices out of range, not after their parent, or shared", "nodes")
        return
    internal = ~is_leaf
    feat = nodes["feature_idx"].astype(np.int64)[internal]
    if feat.size and int(feat.min()) < 0:
        ctx.fail(node, "negative split feature index", "nodes")
    cat = internal & nodes["is_categorical"].astype(bool)
    if cat.any():
        rows = min(t.shape[0] for t in tables if t is not None) if all(t is not None for t in tables) else 0
        b = nodes["bitset_idx"].astype(np.int64)[cat]
        if int(b.min()) < 0 or int(b.max()) >= rows:
            ctx.fail(node, "categorical split bitset index out of range", "nodes")


@validates(BIN_MAPPER)
def bin_mapper(obj: Any, node: Node, ctx: Context) -> None:
    """``make_known_categories_bitsets`` sets bit ``c`` of an 8-word bitset (Cython) for every known category ``c``
    (``bin_thresholds_``) of a categorical feature, unchecked: those must be integers in ``[0, 255]``, the thresholds
    1-D arrays, one ``is_categorical_`` and ``n_bins_non_missing_`` entry each, ``missing_values_bin_idx_`` < 2**16."""
    np = ctx.np
    d = obj.__dict__
    thresholds = d.get("bin_thresholds_")
    if thresholds is None:
        return
    if type(thresholds) is not list:
        ctx.fail(node, "must be a list of arrays", "bin_thresholds_")
        return
    n = len(thresholds)
    for i, t in enumerate(thresholds):
        array_ok(ctx, node, f"bin_thresholds_[{i}]", t, ndim=1, kinds="fiu")
    is_cat = d.get("is_categorical_")
    if is_cat is not None:
        if not array_ok(ctx, node, "is_categorical_", is_cat, ndim=1, kinds="biu", shape=(n,)):
            return
        for i in np.flatnonzero(is_cat):
            t = thresholds[int(i)]
            if isinstance(t, np.ndarray) and t.size and (not np.all(np.isfinite(t)) or t.min() < 0 or t.max() > 255
                                                         or not np.all(t == np.floor(t))):
                ctx.fail(node, "known categories must be integers in [0, 255]", f"bin_thresholds_[{int(i)}]")
    nb = d.get("n_bins_non_missing_")
    if nb is not None:
        array_ok(ctx, node, "n_bins_non_missing_", nb, ndim=1, kinds="iu", shape=(n,))
    int_attr(obj, "missing_values_bin_idx_", node, ctx, low=0, high=1 << 16)


@validates(
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
)
def hist_gradient_boosting(obj: Any, node: Node, ctx: Context) -> None:
    """The Cython predictor reads ``X[:, feature_idx]`` and, for categorical splits, the bin mapper's bitsets: stages of
    ``n_trees_per_iteration_`` TreePredictors splitting below ``n_features_in_``, categorical splits only on features
    ``_bin_mapper`` flags, one flag per feature in both ``is_categorical_``, one baseline per tree of a stage."""
    np = ctx.np
    d = obj.__dict__
    predictors = d.get("_predictors")
    if predictors is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is None:
        ctx.fail(node, "must be an integer on a fitted model", "n_features_in_")
        return
    k = int_attr(obj, "n_trees_per_iteration_", node, ctx, low=1, required=True)
    mapper = d.get("_bin_mapper")
    if qualname(mapper) != BIN_MAPPER:
        ctx.fail(node, f"must be a _BinMapper, not {qualname(mapper)}", "_bin_mapper")
        return
    mapper_cat = mapper.__dict__.get("is_categorical_")
    if mapper_cat is not None and (not isinstance(mapper_cat, np.ndarray) or mapper_cat.shape != (n_features,)):
        ctx.fail(node, f"must flag each of the {n_features} features", "_bin_mapper.is_categorical_")
        return
    own_cat = d.get("is_categorical_")
    if own_cat is not None and (not isinstance(own_cat, np.ndarray) or own_cat.shape != (n_features,)):
        ctx.fail(node, f"must flag each of the {n_features} features", "is_categorical_")
        return
    categorical = mapper_cat.astype(bool) if mapper_cat is not None else np.zeros(n_features, dtype=bool)
    baseline = d.get("_baseline_prediction")
    if k is not None and baseline is not None and (not isinstance(baseline, np.ndarray) or baseline.size != k):
        ctx.fail(node, f"must hold one value per tree of an iteration ({k})", "_baseline_prediction")
    if type(predictors) is not list:
        ctx.fail(node, "must be a list of lists", "_predictors")
        return
    dtype = _record_dtype()
    for i, stage in enumerate(predictors):
        if type(stage) is not list or (k is not None and len(stage) != k):
            ctx.fail(node, f"must hold {k} predictors", f"_predictors[{i}]")
            continue
        for j, pred in enumerate(stage):
            key = f"_predictors[{i}][{j}]"
            if qualname(pred) != PREDICTOR:
                ctx.fail(node, f"holds a {qualname(pred)}, not a TreePredictor", key)
                continue
            nodes = pred.__dict__.get("nodes")
            if not isinstance(nodes, np.ndarray) or nodes.dtype != dtype or nodes.ndim != 1:
                continue  # the predictor's own validator reports it
            internal = ~nodes["is_leaf"].astype(bool)
            feat = nodes["feature_idx"].astype(np.int64)[internal]
            if feat.size and int(feat.max()) >= n_features:
                ctx.fail(node, f"splits on features outside [0, {n_features})", key)
                continue
            cat = nodes["is_categorical"].astype(bool)[internal]
            if cat.any() and not categorical[feat[cat]].all():
                ctx.fail(node, "has a categorical split on a feature that is not categorical", key)
