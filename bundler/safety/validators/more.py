"""Validators found by fuzzing the fitted state of every estimator of the sweep: each guards one native read, one
division, one loop bound or one allocation that prediction code takes from the model's state without checking.

* numpy bit generators and RandomState: ``pos`` (MT19937) and ``buffer_pos`` (Philox) index their key and buffer
  arrays when drawing, unchecked (a model's ``random_state`` is drawn from at predict time by DummyClassifier).
* FeatureHasher/HashingVectorizer: ``n_features`` is a modulus in the hashing loop (0 is a division by zero).
* The text vectorizers: ``ngram_range`` bounds a loop per document (a huge negative start loops for hours).
* OneHotEncoder: ``_n_features_outs`` sizes the output matrix its column indices go into; recomputed here with
  the encoder's own method from ``categories_`` and the drop/infrequent bookkeeping.
* FeatureAgglomeration: ``labels_`` index the pooled features in ``inverse_transform``.
* Random projections: ``components_`` must have ``n_features_in_`` columns (a sparse one is validated as sparse).
* Forests: ``n_estimators`` sizes the job partition of every prediction; it must be the number of trees held.
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import array_ok, as_index, int_attr, is_int, n_features_of, shown
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node

__all__: list[str] = []

_BITGEN = "numpy.random._{}.{}"


def _state_of(obj: Any) -> dict[str, Any]:
    state = obj.state
    if not isinstance(state, dict):
        raise TypeError("bit generator state is not a dict")
    return state


@validates("numpy.random._mt19937.MT19937")
def mt19937(obj: Any, node: Node, ctx: Context) -> None:
    """``mt19937_next`` (C) reads ``key[pos]`` and refills the key only when ``pos`` reaches 624, so any other
    position reads outside it: the key must be 624 unsigned words and ``pos`` an integer in ``[0, 624]``."""
    inner = _state_of(obj).get("state", {})
    key, pos = inner.get("key"), inner.get("pos")
    if not array_ok(ctx, node, "state.key", key, ndim=1, kinds="u", shape=(624,)):
        return
    if not is_int(pos) or not 0 <= int(pos) <= 624:
        ctx.fail(node, f"position {shown(pos)} outside the 624-word key", "state.pos")


@validates("numpy.random._philox.Philox")
def philox(obj: Any, node: Node, ctx: Context) -> None:
    """``philox_next`` (C) returns ``buffer[buffer_pos]`` while ``buffer_pos < 4`` (a negative one reads before the
    buffer): counter, key and buffer must be 4, 2 and 4 unsigned words and ``buffer_pos`` an integer in ``[0, 4]``."""
    state = _state_of(obj)
    inner = state.get("state", {})
    array_ok(ctx, node, "state.counter", inner.get("counter"), ndim=1, kinds="u", shape=(4,))
    array_ok(ctx, node, "state.key", inner.get("key"), ndim=1, kinds="u", shape=(2,))
    buffer, pos = state.get("buffer"), state.get("buffer_pos")
    array_ok(ctx, node, "buffer", buffer, ndim=1, kinds="u", shape=(4,))
    if not is_int(pos) or not 0 <= int(pos) <= 4:
        ctx.fail(node, f"buffer position {shown(pos)} outside the 4-word buffer", "buffer_pos")


@validates("numpy.random._sfc64.SFC64")
def sfc64(obj: Any, node: Node, ctx: Context) -> None:
    """SFC64's C generator steps four 64-bit state words: the state it reports must be exactly 4 unsigned words."""
    array_ok(ctx, node, "state.state", _state_of(obj).get("state", {}).get("state"), ndim=1, kinds="u", shape=(4,))


@validates("numpy.random._pcg64.PCG64", "numpy.random._pcg64.PCG64DXSM")
def pcg64(obj: Any, node: Node, ctx: Context) -> None:
    """The PCG64 and PCG64DXSM C generators step a 128-bit state by a 128-bit increment, reported as two Python
    integers: both must be exact integers."""
    inner = _state_of(obj).get("state", {})
    if not is_int(inner.get("state")) or not is_int(inner.get("inc")):
        ctx.fail(node, "state and increment must be integers", "state")


@validates("numpy.random.mtrand.RandomState", holds_children=True)
def random_state(obj: Any, node: Node, ctx: Context) -> None:
    """A RandomState draws from its MT19937 at ``pos``: the same check, through ``get_state``."""
    name, key, pos = obj.get_state()[:3]
    if name != "MT19937":
        ctx.fail(node, f"unknown bit generator {shown(name)}")
        return
    if not array_ok(ctx, node, "key", key, ndim=1, kinds="u", shape=(624,)):
        return
    if not is_int(pos) or not 0 <= int(pos) <= 624:
        ctx.fail(node, f"position {shown(pos)} outside the 624-word key", "pos")


@validates("numpy.random._generator.Generator", holds_children=True)
def generator(obj: Any, node: Node, ctx: Context) -> None:
    """A Generator draws from its ``bit_generator``'s C state (key, buffer, position): the bit generator is enqueued
    here (the walker does not descend into a Generator) so that its own validator checks that state."""
    ctx.enqueue(node.child(obj.bit_generator, ".bit_generator"))


@validates("sklearn.feature_extraction._hash.FeatureHasher", "sklearn.feature_extraction.text.HashingVectorizer")
def hasher(obj: Any, node: Node, ctx: Context) -> None:
    """``_hashing_transform`` (Cython) takes ``n_features`` as the modulus of every hashed index (0 divides by zero):
    it must be an integer in ``[1, 2**31)``, ``alternate_sign`` a bool, and a HashingVectorizer's ``ngram_range``
    within ``1 <= min_n <= max_n <= 64`` (it bounds the n-gram loop over every document)."""
    int_attr(obj, "n_features", node, ctx, low=1, high=1 << 31, required=True)
    if obj.__dict__.get("alternate_sign") not in (True, False):
        ctx.fail(node, "must be a bool", "alternate_sign")
    _ngrams(obj, node, ctx)


@validates("sklearn.feature_extraction.text.CountVectorizer", "sklearn.feature_extraction.text.TfidfVectorizer")
def vectorizer(obj: Any, node: Node, ctx: Context) -> None:
    """``ngram_range`` bounds the n-gram loop over every document (``1 <= min_n <= max_n <= 64``), and the values of
    ``vocabulary_`` become CSR column indices, unchecked, that scipy's C++ kernels then index by: they must map
    strings to exactly ``0..n-1``."""
    _ngrams(obj, node, ctx)
    _index_map(obj, node, ctx, "vocabulary_", None)


@validates("sklearn.feature_extraction._dict_vectorizer.DictVectorizer")
def dict_vectorizer(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` turns the values of ``vocabulary_`` into CSR column indices, unchecked, that scipy's C++ kernels
    then index by: ``feature_names_`` must be a list, and ``vocabulary_`` map strings to exactly ``0..n-1``, one
    per name."""
    names = obj.__dict__.get("feature_names_")
    if names is not None and type(names) is not list:
        ctx.fail(node, "must be a list of feature names", "feature_names_")
        return
    _index_map(obj, node, ctx, "vocabulary_", None if names is None else len(names))


@validates("sklearn.preprocessing._label.MultiLabelBinarizer")
def multilabel_binarizer(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` turns the values of ``_cached_dict`` (class -> column) into CSR column indices, unchecked, that
    scipy's C++ kernels then index by: they must be exactly ``0..n-1``, one per entry of ``classes_``."""
    classes = obj.__dict__.get("classes_")
    _index_map(obj, node, ctx, "_cached_dict", None if classes is None else len(classes), keys_are_str=False)


def _index_map(obj: Any, node: Node, ctx: Context, attr: str, size: int | None, *, keys_are_str: bool = True) -> None:
    """A term -> column dict the transform turns into the column indices of a CSR matrix, built without checking
    them (``csr_matrix((values, indices, indptr), shape)`` only checks index *arrays*): every value must be an
    int and together they must be exactly ``0..n-1`` (``n`` the number of feature names, when the model keeps
    them). Otherwise the matrix holds columns outside its shape and the next step (``X @ coef_.T``, ``toarray``)
    reads and writes out of bounds in scipy's C++ (SIGSEGV)."""
    mapping = obj.__dict__.get(attr)
    if mapping is None:
        return
    if type(mapping) is not dict:
        ctx.fail(node, f"must be a dict, not {type(mapping).__name__}", attr)
        return
    np = ctx.np
    n = len(mapping)
    if size is not None and n != size:
        ctx.fail(node, f"maps {n} terms, but the model has {size} columns", attr)
        return
    if keys_are_str and not all(type(k) is str for k in mapping):
        ctx.fail(node, "must map strings to column indices", attr)
        return
    values = list(mapping.values())
    if not all(type(v) is int or isinstance(v, np.integer) for v in values):
        ctx.fail(node, "must map every term to an integer column index", attr)
        return
    cols = np.sort(np.array(values, dtype=np.int64)) if n else np.zeros(0, dtype=np.int64)
    if not np.array_equal(cols, np.arange(n, dtype=np.int64)):
        ctx.fail(node, f"column indices must be exactly 0..{n - 1} (out-of-range or repeated columns)", attr)


def _ngrams(obj: Any, node: Node, ctx: Context) -> None:
    rng = obj.__dict__.get("ngram_range")
    if rng is None:
        return
    if type(rng) not in (tuple, list) or len(rng) != 2 or not all(is_int(v) for v in rng) or \
            not 1 <= int(rng[0]) <= int(rng[1]) <= 64:
        ctx.fail(node, "must be (min_n, max_n) with 1 <= min_n <= max_n <= 64", "ngram_range")


@validates("sklearn.preprocessing._encoders.OneHotEncoder")
def one_hot_encoder(obj: Any, node: Node, ctx: Context) -> None:
    """The CSR output's width is ``sum(_n_features_outs)`` and its column indices are category codes offset by
    the widths before them: a width smaller than the categories it holds writes outside the matrix."""
    d = obj.__dict__
    categories = d.get("categories_")
    if categories is None:
        return
    n_features = n_features_of(obj, node, ctx)
    if type(categories) is not list or (n_features is not None and len(categories) != n_features):
        ctx.fail(node, "must be a list with one array of categories per input feature", "categories_")
        return
    for i, cats in enumerate(categories):
        array_ok(ctx, node, f"categories_[{i}]", cats, ndim=1)
    drop = d.get("drop_idx_")
    if drop is not None:
        if not array_ok(ctx, node, "drop_idx_", drop, ndim=1, shape=(len(categories),)):
            return
        for i, (cats, idx) in enumerate(zip(categories, drop, strict=True)):
            if idx is not None and (not is_int(idx) or not 0 <= int(idx) < len(cats)):
                ctx.fail(node, f"drops category {shown(idx)} of {len(cats)}", f"drop_idx_[{i}]")
                return
    infrequent = d.get("_infrequent_indices")
    if infrequent is not None:
        if type(infrequent) is not list or len(infrequent) != len(categories):
            ctx.fail(node, "must hold one entry per input feature", "_infrequent_indices")
            return
        for i, (cats, idx) in enumerate(zip(categories, infrequent, strict=True)):
            if idx is not None and not (array_ok(ctx, node, f"_infrequent_indices[{i}]", idx, ndim=1, kinds="iu")
                                        and as_index(ctx, node, f"_infrequent_indices[{i}]", idx, len(cats))):
                return
    outs = d.get("_n_features_outs")
    if outs is None:
        return
    try:
        expected = [int(v) for v in obj._compute_n_features_outs()]
    except Exception as exc:  # noqa: BLE001 - the encoder's own bookkeeping does not add up: crafted
        ctx.fail(node, f"its category bookkeeping is inconsistent ({type(exc).__name__})", "_n_features_outs")
        return
    if type(outs) not in (list, tuple) or [int(v) if is_int(v) else -1 for v in outs] != expected:
        ctx.fail(node, f"does not match the {expected} output columns its categories make", "_n_features_outs")


@validates("sklearn.cluster._agglomerative.FeatureAgglomeration")
def feature_agglomeration(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` pools the columns by label (``np.bincount(labels_)`` sizes its output by the largest label) and
    ``inverse_transform`` maps them back: ``labels_`` must hold one integer per input feature, each in
    ``[0, n_clusters_)``, with ``n_clusters_`` a positive integer."""
    labels = obj.__dict__.get("labels_")
    if labels is None:
        return
    n_clusters = int_attr(obj, "n_clusters_", node, ctx, low=1, required=True)
    n_features = n_features_of(obj, node, ctx)
    if n_clusters is not None and array_ok(ctx, node, "labels_", labels, ndim=1, kinds="iu",
                                           shape=(n_features,) if n_features is not None else None):
        as_index(ctx, node, "labels_", labels, n_clusters)


@validates("sklearn.random_projection.GaussianRandomProjection", "sklearn.random_projection.SparseRandomProjection")
def random_projection(obj: Any, node: Node, ctx: Context) -> None:
    """``transform`` computes ``X @ components_.T`` on input checked only against ``n_features_in_`` (through scipy's
    C++ kernels when ``components_`` is sparse): ``components_`` must be ``(n_components_, n_features_in_)``."""
    components = obj.__dict__.get("components_")
    if components is None:
        return
    n_features = n_features_of(obj, node, ctx)
    n_components = int_attr(obj, "n_components_", node, ctx, low=1, required=True)
    if getattr(components, "shape", None) != (n_components, n_features):
        ctx.fail(node, f"has shape {getattr(components, 'shape', None)}, expected ({n_components}, {n_features})",
                 "components_")


_SCORERS = tuple(f"sklearn.metrics._scorer.{c}" for c in (
    "_Scorer", "_BaseScorer", "_PredictScorer", "_ProbaScorer", "_ThresholdScorer", "_CurveScorer"))
#: Keyword arguments a metric may receive from its scorer: plain settings (``average="macro"``, ``pos_label=1``,
#: ``beta=2``...). A metric's array-valued or dispatching keywords (a Mahalanobis ``VI``, a ``metric`` handing
#: arrays to scipy's C distances, ``labels`` with millions of entries sizing a square matrix) come only from data.
_SCORER_KWARG_REFUSED = frozenset({"metric", "metric_kwargs", "VI", "V", "w", "n_jobs", "sample_weight"})
_MAX_KWARG_ITEMS = 1000


@validates(*_SCORERS)
def scorer(obj: Any, node: Node, ctx: Context) -> None:
    """``score()`` calls ``_score_func(y, y_pred, **_kwargs)``: the keywords are the payload's."""
    kwargs = obj.__dict__.get("_kwargs")
    if kwargs is None:
        return
    if type(kwargs) is not dict:
        ctx.fail(node, "must be a dict", "_kwargs")
        return
    atoms = (str, int, float, bool, type(None))
    for key, value in kwargs.items():
        if type(key) is not str or key in _SCORER_KWARG_REFUSED:
            ctx.fail(node, f"passes {shown(key)} to its metric, which no scorer of a fitted model does", "_kwargs")
            continue
        if type(value) in atoms:
            continue
        if type(value) in (list, tuple) and len(value) <= _MAX_KWARG_ITEMS and all(type(v) in atoms for v in value):
            continue
        ctx.fail(node, f"passes a {type(value).__name__} as {key!r} to its metric (plain settings only)", "_kwargs")
