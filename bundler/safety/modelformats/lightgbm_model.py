"""Validation of LightGBM's model text (``Booster.__getstate__()["_handle"]``), re-emitted canonically.

``LGBM_BoosterLoadModelFromString`` (C++) splits the text at the byte offsets ``tree_sizes`` claims, builds each
tree from its arrays, and prediction then follows ``left_child``/``right_child`` (internal index or ``~leaf``),
reads input column ``split_feature`` and, for categorical splits, the bitset words ``cat_threshold`` between the
``cat_boundaries`` of the split's ``threshold``: none of it checked against the arrays' lengths. ``check_model_text``
parses the text in Python and returns a canonical text made only of what it checked: known header keys, known tree
keys with their numbers as validated tokens, ``tree_sizes`` recomputed, and the parameters block (plain
``[key: value]`` lines); ``feature_importances`` and the trailing ``pandas_categorical`` line (which LightGBM's
parser does not read; the Python side keeps its own copy) are dropped.

Checks: ``num_class`` and ``num_tree_per_iteration`` agree with the objective and divide the number of trees;
``max_feature_idx`` bounds every split feature; ``feature_names``/``feature_infos`` have one entry per feature; per
tree, with ``L = num_leaves``: ``L - 1`` entries in every internal-node array, ``L`` (or none, when ``L == 1``) in
every leaf array, children are internal indices in ``[1, L - 1)`` or ``~leaf`` with the leaf in ``[0, L)``, every
node and leaf is reached exactly once from the root, decision types use only the categorical, default-left and
missing-type bits, categorical splits index ``cat_boundaries`` (``num_cat + 1`` entries rising from 0 to
``len(cat_threshold)``). Linear trees (``is_linear=1``) are refused (documented in the README).
"""

from __future__ import annotations

import itertools
import re
from typing import Final

from bundler.safety.modelformats import FormatError

__all__ = ["OBJECTIVES", "check_model_text"]

MAX_FEATURES: Final = 1 << 31
MAX_TREES: Final = 1 << 24
MAX_LEAVES: Final = 1 << 24
MAX_CLASSES: Final = 1 << 16
#: Objective names LightGBM writes in the model header (its aliases are resolved before it writes).
OBJECTIVES: Final = frozenset({
    "regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie", "binary",
    "multiclass", "multiclassova", "cross_entropy", "cross_entropy_lambda", "lambdarank", "rank_xendcg", "custom",
})
_INT = re.compile(r"-?\d{1,19}")
_FLOAT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")
_NAME = re.compile(r"[^\s=]{1,4096}")
_INFO = re.compile(r"none|\[[^\]\s:]+:[^\]\s:]+\]|-?\d+(?::-?\d+)*")
_OBJ_PARAM = re.compile(r"[a-z_]{1,40}:(?:" + _FLOAT.pattern + r")")
_PARAM_LINE = re.compile(r"\[[A-Za-z0-9_]{1,64}: [^\[\]\r\n]{0,4096}\]")
_HEADER_INT: Final = ("num_class", "num_tree_per_iteration", "label_index", "max_feature_idx")
_HEADER: Final = frozenset({"version", *_HEADER_INT, "objective", "average_output", "feature_names",
                            "feature_infos", "tree_sizes", "monotone_constraints", "feature_importance_type"})
_INNER_INT: Final = ("split_feature", "decision_type", "left_child", "right_child")
_INNER_FLOAT: Final = ("split_gain", "threshold", "internal_value", "internal_weight")
_LEAF_STATS: Final = ("leaf_weight", "leaf_count")
_TREE_KEYS: Final = ("num_leaves", "num_cat", *_INNER_INT[:1], "split_gain", "threshold", *_INNER_INT[1:],
                     "leaf_value", "leaf_weight", "leaf_count", "internal_value", "internal_weight", "internal_count",
                     "cat_boundaries", "cat_threshold", "is_linear", "shrinkage")


def _tokens(value: str, pattern: re.Pattern[str], path: str) -> list[str]:
    parts = value.split(" ") if value else []
    for i, token in enumerate(parts):
        if not pattern.fullmatch(token):
            raise FormatError(f"{path}[{i}]", f"{token[:30]!r} is not a number LightGBM writes")
    return parts


def _int(value: str, path: str, low: int, high: int) -> int:
    if not _INT.fullmatch(value):
        raise FormatError(path, "must be an integer")
    number = int(value)
    if not low <= number < high:
        raise FormatError(path, f"{number} is outside [{low}, {high})")
    return number


def _key_values(lines: list[str], path: str, allowed: frozenset[str] | tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or key not in allowed:
            raise FormatError(path, f"unexpected line {line[:40]!r}")
        if key in out:
            raise FormatError(f"{path}.{key}", "given twice")
        out[key] = value
    return out


def check_model_text(text: str) -> str:
    """Validate LightGBM model ``text``; return the canonical text to hand to LightGBM (raises ``FormatError``)."""
    if "\r" in text or "\x00" in text:
        raise FormatError("model", "holds carriage returns or NUL bytes")
    head, sep, rest = text.partition("\nend of trees\n")
    if not sep:
        raise FormatError("model", "has no 'end of trees' line")
    blocks = head.split("\n\n")
    header_lines = [ln for ln in blocks[0].split("\n") if ln]
    if not header_lines or header_lines[0] != "tree":
        raise FormatError("model", "does not start with 'tree'")
    header = _key_values(header_lines[1:], "header", _HEADER)
    n_features, per_iteration = _header(header)
    trees = [b.strip("\n") for b in blocks[1:] if b.strip("\n")]
    if len(trees) > MAX_TREES or len(trees) % per_iteration:
        raise FormatError("header.num_tree_per_iteration", f"{len(trees)} trees are not whole iterations")
    out_trees = [_tree(block, i, n_features) for i, block in enumerate(trees)]
    params = _parameters(rest)
    header["tree_sizes"] = " ".join(str(len(t.encode("utf-8")) + 1) for t in out_trees)
    lines = ["tree", *(f"{k}={header[k]}" for k in _ordered_header(header)), ""]
    body = "\n".join(lines) + "\n" + "".join(t + "\n" for t in out_trees)
    return body + "end of trees\n" + params


def _ordered_header(header: dict[str, str]) -> list[str]:
    order = ["version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "objective",
             "average_output", "feature_names", "monotone_constraints", "feature_infos", "tree_sizes"]
    return [k for k in order if k in header]


def _header(h: dict[str, str]) -> tuple[int, int]:
    missing = [k for k in ("version", *_HEADER_INT, "feature_names", "feature_infos") if k not in h]
    if missing:
        raise FormatError("header", f"lacks {', '.join(missing)}")
    if h["version"] not in ("v2", "v3", "v4"):
        raise FormatError("header.version", "unknown model version")
    n_class = _int(h["num_class"], "header.num_class", 1, MAX_CLASSES)
    per_iteration = _int(h["num_tree_per_iteration"], "header.num_tree_per_iteration", 1, MAX_CLASSES)
    n_features = _int(h["max_feature_idx"], "header.max_feature_idx", 0, MAX_FEATURES) + 1
    _int(h["label_index"], "header.label_index", 0, MAX_FEATURES)
    objective = h.get("objective", "custom").split(" ")
    if objective[0] not in OBJECTIVES or not all(_OBJ_PARAM.fullmatch(p) for p in objective[1:]):
        raise FormatError("header.objective", f"{h.get('objective', '')[:40]!r} is not an objective LightGBM writes")
    if objective[0] in ("multiclass", "multiclassova"):
        if n_class < 2 or per_iteration != n_class or f"num_class:{n_class}" not in objective:
            raise FormatError("header.num_class", "multiclass objective, num_class and trees per iteration disagree")
    elif n_class != 1 or per_iteration != 1:
        raise FormatError("header.num_class", f"{objective[0]} has one output, not {n_class}")
    if "average_output" in h and h["average_output"] != "":
        raise FormatError("header.average_output", "takes no value")
    names = h["feature_names"].split(" ")
    if len(names) != n_features or not all(_NAME.fullmatch(n) for n in names):
        raise FormatError("header.feature_names", f"must name {n_features} features")
    infos = h["feature_infos"].split(" ")
    if len(infos) != n_features or not all(_INFO.fullmatch(i) for i in infos):
        raise FormatError("header.feature_infos", f"must describe {n_features} features")
    if "monotone_constraints" in h:
        cons = _tokens(h["monotone_constraints"], _INT, "header.monotone_constraints")
        if len(cons) != n_features or any(c not in ("-1", "0", "1") for c in cons):
            raise FormatError("header.monotone_constraints", f"must be -1, 0 or 1 for each of {n_features} features")
    return n_features, per_iteration


def _tree(block: str, index: int, n_features: int) -> str:
    path = f"Tree={index}"
    lines = block.split("\n")
    if lines[0] != path:
        raise FormatError(path, f"block {index} does not start with {path!r}")
    kv = _key_values(lines[1:], path, _TREE_KEYS)
    for key in ("num_leaves", "num_cat", "leaf_value", "is_linear", "shrinkage"):
        if key not in kv:
            raise FormatError(f"{path}.{key}", "is missing")
    n_leaves = _int(kv["num_leaves"], f"{path}.num_leaves", 1, MAX_LEAVES)
    n_cat = _int(kv["num_cat"], f"{path}.num_cat", 0, MAX_LEAVES)
    if kv["is_linear"] != "0":
        raise FormatError(f"{path}.is_linear", "linear trees are not accepted")
    if not _FLOAT.fullmatch(kv["shrinkage"]):
        raise FormatError(f"{path}.shrinkage", "must be a number")
    inner = n_leaves - 1
    arrays: dict[str, list[str]] = {}
    for key in _TREE_KEYS[2:]:
        if key in ("is_linear", "shrinkage", "cat_boundaries", "cat_threshold"):
            continue
        ints = key in _INNER_INT or key in ("leaf_count", "internal_count")
        values = _tokens(kv.get(key, ""), _INT if ints else _FLOAT, f"{path}.{key}")
        leafy = key.startswith("leaf")
        want = n_leaves if leafy else inner
        if len(values) != want and not (key in _LEAF_STATS and n_leaves == 1 and len(values) in (0, 1)) and \
                not (key not in ("leaf_value", *_INNER_INT, "threshold") and not values and n_leaves == 1):
            raise FormatError(f"{path}.{key}", f"has {len(values)} entries, expected {want}")
        arrays[key] = values
    if n_leaves > 1:
        _structure(arrays, path, n_leaves, n_features, n_cat, kv)
    elif n_cat or kv.get("cat_boundaries") or kv.get("cat_threshold"):
        raise FormatError(f"{path}.num_cat", "a single-leaf tree has no categorical splits")
    out = [path, f"num_leaves={n_leaves}", f"num_cat={n_cat}"]
    for key in _TREE_KEYS[2:]:
        if key in arrays:
            out.append(f"{key}={' '.join(arrays[key])}")
        elif (key in ("cat_boundaries", "cat_threshold") and n_cat) or key in ("is_linear", "shrinkage"):
            out.append(f"{key}={kv[key]}")
    return "\n".join(out) + "\n"


def _structure(a: dict[str, list[str]], path: str, n_leaves: int, n_features: int, n_cat: int,
               kv: dict[str, str]) -> None:
    inner = n_leaves - 1
    feature = [int(v) for v in a["split_feature"]]
    for i, f in enumerate(feature):
        if not 0 <= f < n_features:
            raise FormatError(f"{path}.split_feature[{i}]", f"feature {f} is outside [0, {n_features})")
    seen_inner = [False] * inner
    seen_leaf = [False] * n_leaves
    seen_inner[0] = True
    stack = [0]
    while stack:
        node = stack.pop()
        for side in ("left_child", "right_child"):
            child = int(a[side][node])
            where = f"{path}.{side}[{node}]"
            if child >= 0:
                if not 1 <= child < inner:
                    raise FormatError(where, f"internal node {child} is outside [1, {inner})")
                if seen_inner[child]:
                    raise FormatError(where, f"node {child} is reached twice (cycle or shared child)")
                seen_inner[child] = True
                stack.append(child)
            else:
                leaf = ~child
                if not 0 <= leaf < n_leaves:
                    raise FormatError(where, f"leaf {leaf} is outside [0, {n_leaves})")
                if seen_leaf[leaf]:
                    raise FormatError(where, f"leaf {leaf} is reached twice")
                seen_leaf[leaf] = True
    if not all(seen_inner) or not all(seen_leaf):
        raise FormatError(f"{path}.left_child", "some nodes or leaves are not reachable from the root")
    categorical = []
    for i, d in enumerate(a["decision_type"]):
        dt = int(d)
        if not 0 <= dt < 16 or (dt >> 2) & 3 == 3:
            raise FormatError(f"{path}.decision_type[{i}]", f"{dt} is not a decision type LightGBM writes")
        if dt & 1:
            categorical.append(i)
    if not categorical and not n_cat:
        if "cat_boundaries" in kv or "cat_threshold" in kv:
            raise FormatError(f"{path}.cat_boundaries", "present without categorical splits")
        return
    bounds = [int(v) for v in _tokens(kv.get("cat_boundaries", ""), _INT, f"{path}.cat_boundaries")]
    words = _tokens(kv.get("cat_threshold", ""), _INT, f"{path}.cat_threshold")
    if len(bounds) != n_cat + 1 or bounds[0] != 0 or bounds[-1] != len(words) or \
            any(b < a_ for a_, b in itertools.pairwise(bounds)):
        raise FormatError(f"{path}.cat_boundaries", f"must rise from 0 to {len(words)} in {n_cat + 1} entries")
    if any(not 0 <= int(w) < 1 << 32 for w in words):
        raise FormatError(f"{path}.cat_threshold", "bitset words must be 32-bit unsigned")
    for i in categorical:
        token = a["threshold"][i]
        if not _INT.fullmatch(token) or not 0 <= int(token) < n_cat:
            raise FormatError(f"{path}.threshold[{i}]", f"categorical split {token[:20]!r} is outside [0, {n_cat})")


def _parameters(rest: str) -> str:
    """The parameters block, kept as plain ``[key: value]`` lines; everything else after the trees is dropped."""
    start = rest.find("\nparameters:\n")
    if rest.startswith("parameters:\n"):
        start = -1
    elif start < 0:
        return ""
    body, sep, _ = rest[start + 1:].partition("\nend of parameters\n")
    if not sep:
        raise FormatError("parameters", "has no 'end of parameters' line")
    lines = [ln for ln in body.split("\n")[1:] if ln]
    for i, line in enumerate(lines):
        if not _PARAM_LINE.fullmatch(line):
            raise FormatError(f"parameters[{i}]", f"{line[:40]!r} is not a parameter line")
    return "\nparameters:\n" + "".join(ln + "\n" for ln in lines) + "end of parameters\n"
