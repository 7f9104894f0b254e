"""Validation of XGBoost's serialized booster (``Booster.__getstate__()["handle"]``: UBJSON ``{Config, Model}``).

``XGBoosterUnserializeFromBuffer`` (C++) rebuilds the trees from this document and prediction then follows child
indices, reads the input column a split names and looks categories up in per-node segments, none of it bounds-checked
against the document. ``check_serialized`` parses the bytes in Python (``ubjson``), checks every tree and parameter
native code reads, and returns a canonical re-encoding of the very document it checked: the bytes XGBoost parses
are never the payload's own.

What is checked (everything else is refused as not what XGBoost writes):

* the document is exactly ``{"Config", "Model"}``; config leaves are strings, numbers or booleans; thread counts
  (``nthread``, ``n_jobs``) are integers in ``[0, MAX_THREADS]``; the config's objective, booster and model
  parameters agree with the model's;
* ``learner_model_param``: ``num_feature``, ``num_class``, ``num_target`` are integers in range and
  ``base_score`` has one value per output group; ``feature_names``/``feature_types`` are empty or one per feature;
* ``gbtree`` (also inside ``dart``, whose ``weight_drop`` has one weight per tree): ``num_trees`` trees,
  ``tree_info`` (one output group per tree, each in range), ``iteration_indptr`` (0 to ``num_trees``, never
  decreasing); per tree: every node array has ``num_nodes`` entries, node 0 is the root, children are ``-1`` (leaf,
  both) or in ``[1, num_nodes)`` with ``parents`` pointing back, every node is reached exactly once (no cycles, no
  orphans), split feature indices lie in ``[0, num_feature)``, split types are 0 (numeric) or 1 (categorical),
  categorical nodes are exactly those listed in ``categories_nodes`` and their segments lie inside
  ``categories``, whose values are category codes in ``[0, 2**24)``;
* ``gblinear``: ``(num_feature + 1) * groups`` weights;
* the category recoder (``cats``): one entry per feature, offsets and ``feature_segments`` monotone and in range,
  ``sorted_idx`` a permutation of each feature's categories.

Refused although XGBoost can write them (documented in the README): vector-leaf trees (``multi_strategy=
"multi_output_tree"``), trees with deleted nodes, and boosters other than gbtree, dart and gblinear.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from bundler.safety.modelformats import FormatError, ubjson

__all__ = ["MAX_THREADS", "OBJECTIVES", "check_serialized"]

MAX_THREADS: Final = 1024
MAX_FEATURES: Final = 1 << 31
MAX_CLASSES: Final = 1 << 16
MAX_CATEGORY: Final = 1 << 24
ROOT_PARENT: Final = 2147483647
#: Objectives XGBoost ships (a name outside this set is not a model XGBoost wrote).
OBJECTIVES: Final = frozenset({
    "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror", "reg:absoluteerror",
    "reg:quantileerror", "reg:gamma", "reg:tweedie", "reg:linear", "binary:logistic", "binary:logitraw",
    "binary:hinge", "count:poisson", "survival:cox", "survival:aft", "multi:softmax", "multi:softprob",
    "rank:ndcg", "rank:map", "rank:pairwise", "reg:expectileerror",
})
_MULTI: Final = frozenset({"multi:softmax", "multi:softprob"})
_FEATURE_TYPES: Final = frozenset({"float", "int", "i", "q", "c"})
#: ``cats.enc[*].type`` codes seen for numeric categories (numpy type numbers of the category values).
_CAT_VALUE_TYPES: Final = frozenset(range(1, 24))
_NODE_ARRAYS: Final = {
    "left_children": "iu", "right_children": "iu", "parents": "iu", "split_indices": "iu",
    "split_conditions": "f", "default_left": "u", "split_type": "u", "base_weights": "f", "loss_changes": "f",
    "sum_hessian": "f",
}


def check_serialized(data: bytes | bytearray) -> bytearray:
    """Validate the serialized booster ``data``; return its canonical re-encoding (raises ``FormatError``)."""
    doc = ubjson.decode(bytes(data))
    _keys(doc, "$", required={"Config", "Model"})
    model = doc["Model"]
    _keys(model, "Model", required={"learner", "version"})
    learner = model["learner"]
    _keys(learner, "Model.learner", required={"gradient_booster", "learner_model_param", "objective"},
          optional={"attributes", "feature_names", "feature_types"})
    _version(model["version"], "Model.version")
    n_features, n_groups = _model_param(learner["learner_model_param"], "Model.learner.learner_model_param")
    objective = _objective(learner["objective"], "Model.learner.objective")
    if objective in _MULTI and n_groups < 2:
        raise FormatError("Model.learner.learner_model_param.num_class", f"{objective} needs at least 2 classes")
    _strings_map(learner.get("attributes", {}), "Model.learner.attributes")
    for key, allowed in (("feature_names", None), ("feature_types", _FEATURE_TYPES)):
        names = learner.get(key, [])
        where = f"Model.learner.{key}"
        if not isinstance(names, list) or not all(isinstance(n, str) and len(n) < 4096 for n in names):
            raise FormatError(where, "must be a list of short strings")
        if names and len(names) != n_features:
            raise FormatError(where, f"has {len(names)} entries for {n_features} features")
        if allowed is not None and not set(names) <= allowed:
            raise FormatError(where, "holds an unknown feature type")
    booster = _booster(learner["gradient_booster"], "Model.learner.gradient_booster", n_features, n_groups)
    _config(doc["Config"], learner, objective, booster)
    return bytearray(ubjson.encode(doc))


# -- pieces ------------------------------------------------------------------------------------------------------


def _keys(value: Any, path: str, *, required: set[str], optional: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    if not isinstance(value, dict):
        raise FormatError(path, "must be an object")
    missing = required - set(value)
    extra = set(value) - required - optional
    if missing:
        raise FormatError(path, f"lacks {', '.join(sorted(missing))}")
    if extra:
        raise FormatError(path, f"has unknown keys {', '.join(sorted(extra)[:5])}")


def _int_text(value: Any, path: str, low: int, high: int) -> int:
    """XGBoost writes parameters as decimal strings; accept exactly that (or a plain int) within [low, high)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 24:
        number = int(value)
    elif type(value) is int:
        number = value
    else:
        raise FormatError(path, "must be an integer")
    if not low <= number < high:
        raise FormatError(path, f"{number} is outside [{low}, {high})")
    return number


def _version(value: Any, path: str) -> None:
    if not isinstance(value, list) or len(value) != 3 or not all(type(v) is int and 0 <= v < 1000 for v in value):
        raise FormatError(path, "must be [major, minor, patch]")


def _strings_map(value: Any, path: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, str) and len(v) < 1 << 20 for v in value.values()):
        raise FormatError(path, "must map strings to strings")


def _model_param(param: Any, path: str) -> tuple[int, int]:
    _keys(param, path, required={"base_score", "num_class", "num_feature"},
          optional={"boost_from_average", "num_target"})
    n_features = _int_text(param["num_feature"], f"{path}.num_feature", 0, MAX_FEATURES)
    n_class = _int_text(param["num_class"], f"{path}.num_class", 0, MAX_CLASSES)
    n_target = _int_text(param.get("num_target", "1"), f"{path}.num_target", 1, MAX_CLASSES)
    if n_class > 1 and n_target > 1:
        raise FormatError(path, "both num_class and num_target above 1")
    n_groups = max(n_class, n_target, 1)
    if param.get("boost_from_average", "1") not in ("0", "1"):
        raise FormatError(f"{path}.boost_from_average", "must be '0' or '1'")
    base = param["base_score"]
    if not isinstance(base, str) or len(base) > 64 * n_groups + 16:
        raise FormatError(f"{path}.base_score", "must be a short string")
    values = base[1:-1].split(",") if base.startswith("[") and base.endswith("]") else [base]
    try:
        parsed = [float(v) for v in values]
    except ValueError:
        raise FormatError(f"{path}.base_score", "must hold numbers") from None
    if len(parsed) not in (1, n_groups) or not all(np.isfinite(parsed)):
        raise FormatError(f"{path}.base_score", f"must hold 1 or {n_groups} finite numbers")
    return n_features, n_groups


def _plain(value: Any, path: str, depth: int = 0) -> None:
    """Parameters: nested objects/lists whose leaves are strings, numbers or booleans."""
    if depth > 8:
        raise FormatError(path, "nested too deeply")
    if isinstance(value, dict):
        for k, v in value.items():
            _plain(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain(v, f"{path}[{i}]", depth + 1)
    elif not isinstance(value, (str, int, float, bool, np.float32)) or (isinstance(value, str) and len(value) > 4096):
        raise FormatError(path, "must be a plain parameter value")


def _objective(obj: Any, path: str) -> str:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise FormatError(path, "must be an object with a name")
    name = obj["name"]
    if name not in OBJECTIVES:
        raise FormatError(f"{path}.name", f"unknown objective {name[:40]!r}")
    _plain(obj, path)
    return str(name)


def _ints(value: Any, path: str, *, length: int | None = None) -> np.ndarray:
    if isinstance(value, list) and all(type(v) is int for v in value):
        value = np.array(value, dtype=np.int64)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        raise FormatError(path, "must be an integer array")
    if length is not None and value.size != length:
        raise FormatError(path, f"has {value.size} entries, expected {length}")
    return value.astype(np.int64)


def _booster(gb: Any, path: str, n_features: int, n_groups: int) -> str:
    if not isinstance(gb, dict) or gb.get("name") not in ("gbtree", "dart", "gblinear"):
        raise FormatError(f"{path}.name", "must be gbtree, dart or gblinear")
    name = str(gb["name"])
    if name == "gblinear":
        _keys(gb, path, required={"name", "model"})
        _keys(gb["model"], f"{path}.model", required={"weights"}, optional={"boosted_rounds"})
        weights = gb["model"]["weights"]
        expected = (n_features + 1) * n_groups
        if not isinstance(weights, np.ndarray) or weights.dtype.kind != "f" or weights.size != expected:
            raise FormatError(f"{path}.model.weights", f"must be {expected} floats")
        rounds = gb["model"].get("boosted_rounds", 0)
        if type(rounds) is not int or rounds < 0:
            raise FormatError(f"{path}.model.boosted_rounds", "must be a non-negative integer")
        return name
    if name == "dart":
        _keys(gb, path, required={"name", "gbtree", "weight_drop"})
        n_trees = _gbtree(gb["gbtree"], f"{path}.gbtree", n_features, n_groups)
        drop = gb["weight_drop"]
        if not isinstance(drop, (list, np.ndarray)) or len(drop) != n_trees or \
                not all(isinstance(w, (float, np.floating)) for w in drop):
            raise FormatError(f"{path}.weight_drop", f"must hold one weight per tree ({n_trees})")
        return name
    _gbtree(gb, path, n_features, n_groups)
    return name


def _gbtree(gb: Any, path: str, n_features: int, n_groups: int) -> int:
    _keys(gb, path, required={"name", "model"})
    if gb["name"] != "gbtree":
        raise FormatError(f"{path}.name", "must be gbtree")
    model = gb["model"]
    where = f"{path}.model"
    _keys(model, where, required={"gbtree_model_param", "tree_info", "trees"},
          optional={"iteration_indptr", "cats"})
    param = model["gbtree_model_param"]
    _keys(param, f"{where}.gbtree_model_param", required={"num_trees"}, optional={"num_parallel_tree"})
    n_trees = _int_text(param["num_trees"], f"{where}.gbtree_model_param.num_trees", 0, 1 << 24)
    _int_text(param.get("num_parallel_tree", "1"), f"{where}.gbtree_model_param.num_parallel_tree", 1, 1 << 16)
    info = _ints(model["tree_info"], f"{where}.tree_info", length=n_trees)
    if info.size and (info.min() < 0 or info.max() >= n_groups):
        raise FormatError(f"{where}.tree_info", f"names output groups outside [0, {n_groups})")
    if "iteration_indptr" in model:
        indptr = _ints(model["iteration_indptr"], f"{where}.iteration_indptr")
        if indptr.size == 0 or indptr[0] != 0 or indptr[-1] != n_trees or (np.diff(indptr) < 0).any():
            raise FormatError(f"{where}.iteration_indptr", f"must rise from 0 to {n_trees}")
    trees = model["trees"]
    if not isinstance(trees, list) or len(trees) != n_trees:
        raise FormatError(f"{where}.trees", f"must hold {n_trees} trees")
    for i, tree in enumerate(trees):
        _tree(tree, f"{where}.trees[{i}]", i, n_features)
    if "cats" in model:
        _cats(model["cats"], f"{where}.cats", n_features)
    return n_trees


def _tree(tree: Any, path: str, index: int, n_features: int) -> None:
    _keys(tree, path, required={"tree_param", "id", *_NODE_ARRAYS},
          optional={"categories", "categories_nodes", "categories_segments", "categories_sizes"})
    if tree["id"] != index or type(tree["id"]) is not int:
        raise FormatError(f"{path}.id", f"must be {index}")
    tp = tree["tree_param"]
    _keys(tp, f"{path}.tree_param", required={"num_nodes", "num_feature"},
          optional={"num_deleted", "size_leaf_vector"})
    n = _int_text(tp["num_nodes"], f"{path}.tree_param.num_nodes", 1, 1 << 31)
    if _int_text(tp["num_feature"], f"{path}.tree_param.num_feature", 0, MAX_FEATURES) != n_features:
        raise FormatError(f"{path}.tree_param.num_feature", f"differs from the model's {n_features} features")
    if _int_text(tp.get("num_deleted", "0"), f"{path}.tree_param.num_deleted", 0, 1 << 31) != 0:
        raise FormatError(f"{path}.tree_param.num_deleted", "trees with deleted nodes are not accepted")
    if _int_text(tp.get("size_leaf_vector", "1"), f"{path}.tree_param.size_leaf_vector", 0, 1 << 16) > 1:
        raise FormatError(f"{path}.tree_param.size_leaf_vector", "vector-leaf trees are not accepted")
    arrays: dict[str, np.ndarray] = {}
    for key, kinds in _NODE_ARRAYS.items():
        value = tree[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds or value.shape != (n,):
            raise FormatError(f"{path}.{key}", f"must be {n} values of kind {kinds!r}")
        arrays[key] = value.astype(np.int64) if kinds != "f" else value
    left, right, parents = arrays["left_children"], arrays["right_children"], arrays["parents"]
    leaf = left == -1
    bad = np.flatnonzero((leaf != (right == -1)) | (~leaf & ((left < 1) | (left >= n) | (right < 1) | (right >= n) |
                                                           (left == right))))
    if bad.size:
        raise FormatError(f"{path}.left_children[{int(bad[0])}]", f"children outside [1, {n}) or not paired")
    if parents[0] != ROOT_PARENT:
        raise FormatError(f"{path}.parents[0]", "the root's parent must be the root marker")
    inner = np.flatnonzero(~leaf)
    for side, kids in (("left_children", left[inner]), ("right_children", right[inner])):
        wrong = np.flatnonzero((parents[kids] & 0x7FFFFFFF) != inner)
        if wrong.size:
            raise FormatError(f"{path}.{side}[{int(inner[wrong[0]])}]", "child whose parent is another node")
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    frontier = np.array([0])
    count = 1
    while frontier.size:
        frontier = frontier[~leaf[frontier]]
        kids = np.concatenate([left[frontier], right[frontier]])
        if seen[kids].any() or np.unique(kids).size != kids.size:
            raise FormatError(f"{path}.left_children", "a node is reached twice (cycle or shared child)")
        seen[kids] = True
        count += kids.size
        frontier = kids
    if count != n:
        raise FormatError(f"{path}.left_children", f"{n - count} nodes are not reachable from the root")
    feats = arrays["split_indices"][inner]
    out = np.flatnonzero((feats < 0) | (feats >= n_features))
    if out.size:
        raise FormatError(f"{path}.split_indices[{int(inner[out[0]])}]",
                          f"split feature {int(feats[out[0]])} is outside [0, {n_features})")
    if ((arrays["default_left"] > 1) | (arrays["split_type"] > 1)).any():
        raise FormatError(f"{path}.split_type", "split types must be 0 or 1 and default_left 0 or 1")
    _categories(tree, path, np.flatnonzero(~leaf & (arrays["split_type"] == 1)))


def _categories(tree: dict[str, Any], path: str, categorical: np.ndarray) -> None:
    keys = ("categories", "categories_nodes", "categories_segments", "categories_sizes")
    if not categorical.size and all(np.asarray(tree.get(k, [])).size == 0 for k in keys):
        return
    cats = _ints(tree.get("categories"), f"{path}.categories")
    nodes = _ints(tree.get("categories_nodes"), f"{path}.categories_nodes")
    segs = _ints(tree.get("categories_segments"), f"{path}.categories_segments", length=nodes.size)
    sizes = _ints(tree.get("categories_sizes"), f"{path}.categories_sizes", length=nodes.size)
    if not np.array_equal(nodes, categorical):
        raise FormatError(f"{path}.categories_nodes", "must list exactly the categorical split nodes, in order")
    if ((segs < 0) | (sizes < 0) | (segs + sizes > cats.size)).any():
        raise FormatError(f"{path}.categories_segments", f"segments outside the {cats.size} categories")
    if cats.size and (cats.min() < 0 or cats.max() >= MAX_CATEGORY):
        raise FormatError(f"{path}.categories", f"category codes outside [0, {MAX_CATEGORY})")


def _cats(cats: Any, path: str, n_features: int) -> None:
    _keys(cats, path, required={"enc", "feature_segments", "sorted_idx"})
    enc = cats["enc"]
    if not isinstance(enc, list) or len(enc) not in (0, n_features):
        raise FormatError(f"{path}.enc", f"must be empty or have one entry per feature ({n_features})")
    counts = []
    for i, entry in enumerate(enc):
        where = f"{path}.enc[{i}]"
        if not isinstance(entry, dict):
            raise FormatError(where, "must be an object")
        if "offsets" in entry:
            _keys(entry, where, required={"offsets", "values"})
            offsets = _ints(entry["offsets"], f"{where}.offsets")
            values = entry["values"]
            if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
                raise FormatError(f"{where}.values", "must be bytes")
            if offsets.size == 0:
                if values.size:
                    raise FormatError(f"{where}.offsets", "missing for non-empty values")
                counts.append(0)
                continue
            if offsets[0] != 0 or offsets[-1] != values.size or (np.diff(offsets) < 0).any():
                raise FormatError(f"{where}.offsets", f"must rise from 0 to {values.size}")
            counts.append(offsets.size - 1)
        else:
            _keys(entry, where, required={"type", "values"})
            if type(entry["type"]) is not int or entry["type"] not in _CAT_VALUE_TYPES:
                raise FormatError(f"{where}.type", "unknown category value type")
            values = entry["values"]
            if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf":
                raise FormatError(f"{where}.values", "must be a numeric array")
            counts.append(values.size)
    segments = _ints(cats["feature_segments"], f"{path}.feature_segments")
    order = _ints(cats["sorted_idx"], f"{path}.sorted_idx")
    if not enc:
        if segments.size or order.size:
            raise FormatError(f"{path}.feature_segments", "must be empty without encodings")
        return
    if segments.size != len(enc) + 1 or segments[0] != 0 or (np.diff(segments) != np.array(counts)).any():
        raise FormatError(f"{path}.feature_segments", "must be the running total of each feature's categories")
    if segments[-1] != order.size:
        raise FormatError(f"{path}.sorted_idx", f"must have {int(segments[-1])} entries")
    for f, count in enumerate(counts):
        part = order[segments[f]:segments[f + 1]]
        if count and not np.array_equal(np.sort(part), np.arange(count)):
            raise FormatError(f"{path}.sorted_idx", f"is not a permutation of feature {f}'s {count} categories")


def _config(config: Any, learner: dict[str, Any], objective: str, booster: str) -> None:
    _keys(config, "Config", required={"learner", "version"})
    _version(config["version"], "Config.version")
    cl = config["learner"]
    if not isinstance(cl, dict):
        raise FormatError("Config.learner", "must be an object")
    _plain(cl, "Config.learner")
    generic = cl.get("generic_param", {})
    if not isinstance(generic, dict):
        raise FormatError("Config.learner.generic_param", "must be an object")
    for key in ("nthread", "n_jobs"):
        if key in generic:
            _int_text(generic[key], f"Config.learner.generic_param.{key}", 0, MAX_THREADS + 1)
    train = cl.get("learner_train_param", {})
    if not isinstance(train, dict):
        raise FormatError("Config.learner.learner_train_param", "must be an object")
    if train.get("objective", objective) != objective or train.get("booster", booster) != booster:
        raise FormatError("Config.learner.learner_train_param", "objective or booster differs from the model's")
    if train.get("multi_strategy", "one_output_per_tree") != "one_output_per_tree":
        raise FormatError("Config.learner.learner_train_param.multi_strategy", "vector-leaf trees are not accepted")
    if "objective" in cl and (not isinstance(cl["objective"], dict) or cl["objective"].get("name") != objective):
        raise FormatError("Config.learner.objective.name", "differs from the model's objective")
    if "learner_model_param" in cl and cl["learner_model_param"] != learner["learner_model_param"]:
        raise FormatError("Config.learner.learner_model_param", "differs from the model's")
    gb = cl.get("gradient_booster", {})
    if not isinstance(gb, dict) or gb.get("name", booster) != booster:
        raise FormatError("Config.learner.gradient_booster.name", "differs from the model's booster")
