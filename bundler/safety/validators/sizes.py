"""Integer sizes that prediction code allocates or loops by: each must agree with the arrays it describes.

A fitted model's state carries counts next to the arrays they count (``n_outputs_`` next to ``constant_``,
``n_features_out_`` next to the splines, ``_n_out_full`` next to the degree). Prediction code trusts the count:
``np.full((n_samples, n_outputs_), ...)``, ``np.zeros((n_samples, n_features_out_))``, a loop over
``range(_max_degree)``. A crafted count allocates terabytes, loops for hours or indexes past the arrays, from a few
bytes. These validators recompute each count from the arrays (or from scikit-learn's own formula) and require
equality, so the count can never say more than the payload holds. Found by fuzzing the state of every estimator
of the sweep (each a crash, hang or runaway allocation in the unchecked version).
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import array_ok, int_attr, is_int, n_features_of, shown
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node

__all__ = ["class_counts", "isolation_forest_sizes"]


def _equal(ctx: Context, node: Node, attr: str, value: Any, expected: int) -> None:
    if not is_int(value) or int(value) != expected:
        ctx.fail(node, f"is {shown(value)} but the state it counts says {expected}", attr)


@validates("sklearn.dummy.DummyRegressor")
def dummy_regressor(obj: Any, node: Node, ctx: Context) -> None:
    """``predict`` fills an ``(n_samples, n_outputs_)`` array with ``constant_``."""
    d = obj.__dict__
    constant = d.get("constant_")
    if constant is None or "n_outputs_" not in d:
        return
    if array_ok(ctx, node, "constant_", constant, ndim=2, kinds="fiub"):
        _equal(ctx, node, "n_outputs_", d["n_outputs_"], int(constant.shape[1]))


@validates("sklearn.dummy.DummyClassifier")
def dummy_classifier(obj: Any, node: Node, ctx: Context) -> None:
    """``predict`` loops over ``range(n_outputs_)`` through ``classes_`` (a list of one array per output, or a single
    array): ``n_outputs_`` must be the number of class arrays it holds."""
    d = obj.__dict__
    classes = d.get("classes_")
    if classes is None or "n_outputs_" not in d:
        return
    outputs = len(classes) if type(classes) is list else 1
    _equal(ctx, node, "n_outputs_", d["n_outputs_"], outputs)


@validates("sklearn.preprocessing._polynomial.PolynomialFeatures")
def polynomial_features(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` allocates ``_n_out_full`` columns and loops up to ``_max_degree``: recomputed here with
    scikit-learn's own formula from ``n_features_in_`` and the degrees."""
    d = obj.__dict__
    if "_n_out_full" not in d:
        return
    n_features = n_features_of(obj, node, ctx)
    low = int_attr(obj, "_min_degree", node, ctx, low=0, high=65, required=True)
    high = int_attr(obj, "_max_degree", node, ctx, low=0, high=65, required=True)
    if n_features is None or low is None or high is None or low > high:
        if low is not None and high is not None and low > high:
            ctx.fail(node, "exceeds _max_degree", "_min_degree")
        return
    interaction, bias = d.get("interaction_only"), d.get("include_bias")
    if interaction not in (True, False) or bias not in (True, False):
        ctx.fail(node, "interaction_only and include_bias must be booleans")
        return
    full = type(obj)._num_combinations(n_features=n_features, min_degree=low, max_degree=high,
                                        interaction_only=interaction, include_bias=bias)
    _equal(ctx, node, "_n_out_full", d["_n_out_full"], int(full))
    if "n_output_features_" in d:
        _equal(ctx, node, "n_output_features_", d["n_output_features_"], int(full))


@validates("sklearn.preprocessing._polynomial.SplineTransformer")
def spline_transformer(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` allocates ``(n_samples, n_features_out_)`` and writes each feature's spline columns."""
    d = obj.__dict__
    splines = d.get("bsplines_")
    if splines is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if type(splines) is not list or n_features is None or len(splines) != n_features:
        ctx.fail(node, "must hold one BSpline per input feature", "bsplines_")
        return
    widths: set[int] = set()
    for spl in splines:
        state = getattr(spl, "__dict__", {})
        c: Any = state.get("_c", state.get("c"))
        widths.add(int(c.shape[0]) if isinstance(c, ctx.np.ndarray) and c.ndim >= 1 else -1)
    if len(widths) != 1 or -1 in widths:
        ctx.fail(node, "splines of different sizes", "bsplines_")
        return
    n_splines = widths.pop()
    bias = d.get("include_bias")
    per_feature = n_splines if bias is True else n_splines - 1
    if "n_features_out_" in d:
        _equal(ctx, node, "n_features_out_", d["n_features_out_"], n_features * per_feature)


@validates("sklearn.kernel_approximation.PolynomialCountSketch")
def polynomial_count_sketch(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` allocates ``(n_samples, degree, n_components)`` and scatters by ``indexHash_``."""
    d = obj.__dict__
    index, bits = d.get("indexHash_"), d.get("bitHash_")
    if index is None:
        return
    n_features = n_features_of(obj, node, ctx)
    degree = int_attr(obj, "degree", node, ctx, low=1, high=65, required=True)
    n_components = int_attr(obj, "n_components", node, ctx, low=1, high=1 << 26, required=True)
    if n_features is None or degree is None or n_components is None:
        return
    if array_ok(ctx, node, "indexHash_", index, ndim=2, kinds="iu", shape=(degree, n_features)) and index.size and \
            (int(index.min()) < 0 or int(index.max()) >= n_components):
        ctx.fail(node, f"hashes outside [0, {n_components})", "indexHash_")
    array_ok(ctx, node, "bitHash_", bits, ndim=2, shape=(degree, n_features))


@validates("sklearn.decomposition._nmf.MiniBatchNMF", "sklearn.decomposition._nmf.NMF")
def nmf(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` allocates ``W`` with ``_n_components`` columns and ``_update_cdnmf_fast`` (Cython) loops over them,
    indexing ``components_ @ components_.T`` unchecked: ``components_`` must be a 2-D float array with
    ``n_features_in_`` columns and ``_n_components`` its row count."""
    d = obj.__dict__
    components = d.get("components_")
    if components is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if array_ok(ctx, node, "components_", components, ndim=2, kinds="f", shape=(None, n_features)) and \
            "_n_components" in d:
        _equal(ctx, node, "_n_components", d["_n_components"], int(components.shape[0]))


@validates("sklearn.manifold._locally_linear.LocallyLinearEmbedding")
def locally_linear_embedding(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` allocates ``np.empty((n_samples, n_components))`` and fills each row with a combination of rows of
    ``embedding_`` (broadcast: a one-column embedding fills all of it): ``n_components`` must be the embedding's
    width."""
    d = obj.__dict__
    embedding = d.get("embedding_")
    if embedding is None:
        return
    if array_ok(ctx, node, "embedding_", embedding, ndim=2, kinds="f"):
        _equal(ctx, node, "n_components", d.get("n_components"), int(embedding.shape[1]))


def isolation_forest_sizes(obj: Any, node: Node, ctx: Context) -> None:
    """``score_samples`` sizes its chunks from ``_max_features`` (a negative one loops forever)."""
    if "_max_features" not in obj.__dict__:
        return
    n_features = n_features_of(obj, node, ctx)
    if n_features is not None:
        int_attr(obj, "_max_features", node, ctx, low=1, high=n_features + 1)
    int_attr(obj, "max_samples_", node, ctx, low=1, high=1 << 40)


def class_counts(obj: Any, node: Node, ctx: Context) -> None:
    """``n_classes_`` and ``n_outputs_`` of classifiers size probability buffers: they must match ``classes_``."""
    d = obj.__dict__
    classes = d.get("classes_")
    if classes is None:
        return
    if "n_classes_" in d:
        n = d["n_classes_"]
        if type(classes) is list:
            expected = [len(c) for c in classes]
            if not (isinstance(n, (list, tuple)) or hasattr(n, "__len__")) or \
                    [int(v) if is_int(v) else -1 for v in n] != expected:
                ctx.fail(node, "does not match the classes of each output", "n_classes_")
        elif hasattr(classes, "__len__"):
            _equal(ctx, node, "n_classes_", n, len(classes))
    if "n_outputs_" in d:
        outputs = len(classes) if type(classes) is list else 1
        n = d["n_outputs_"]
        if not is_int(n) or int(n) < 1 or (type(classes) is list and int(n) != outputs):
            ctx.fail(node, f"is {shown(n)} for {outputs} output(s)", "n_outputs_")
