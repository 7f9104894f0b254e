"""Validation of CatBoost's binary model (``CatBoost.__getstate__()["__model"]``, the ``.cbm`` format) and of the
init parameters pickled beside it.

A ``.cbm`` model is ``b"CBM1"``, a little-endian ``uint32`` size, a FlatBuffers ``TModelCore`` of that size, then
the model parts ``ModelPartIds`` names (CTR tables for categorical features). CatBoost's C++ loader rebuilds its
oblivious trees from the buffer, and prediction follows ``TreeSplits`` into the list of binary features without
checking the index (measured: a split index of 100000 loads and predicts garbage, reading out of bounds).
``check_model`` reads the FlatBuffers tables itself, with the schema of CatBoost's ``model.fbs``: every offset is
bounds- and alignment-checked, every field present must be one of the schema's (an unknown field is refused), and

* ``FormatVersion`` is ``FlabuffersModel_v1``; ``ApproxDimension`` is in ``[1, 65536)``;
* float features: ``Index`` is the feature's position, flat indices unique and non-negative, borders finite and
  strictly increasing, NaN treatment one of the three values; categorical features: ``Index`` is the position,
  flat indices unique among all features; one-hot features name an existing categorical feature;
* oblivious trees: ``TreeSizes`` in ``[0, 16]``, ``TreeSplits`` has ``sum(TreeSizes)`` entries, each an index into
  the binary features (every float border and one-hot value), ``TreeStartOffsets`` the running sums,
  ``LeafValues`` ``ApproxDimension * sum(2 ** size)`` values, ``LeafWeights`` none or one per leaf,
  ``MultiBias`` none or one per dimension, ``Scale``/``Bias`` finite;
* ``RepackedBins`` none or one per split, naming a bucket below the binary feature count (CatBoost recomputes
  them on load; measured);
* ``InfoMap`` holds string pairs.

Refused although CatBoost writes them (documented in the README): models with model parts (CTR tables: categorical
features with more categories than ``one_hot_max_size``), non-symmetric trees (``grow_policy`` Depthwise or
Lossguide), and text, embedding or estimated features.
"""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any, Final

from bundler.safety.modelformats import FormatError

__all__ = ["check_model", "check_params"]

MAGIC: Final = b"CBM1"
FORMAT_VERSION: Final = "FlabuffersModel_v1"
MAX_DEPTH: Final = 16
MAX_STRING: Final = 1 << 24

# Schema slots (catboost/libs/model/flatbuffers/model.fbs, features.fbs)
_CORE = {"FormatVersion": 0, "ModelTrees": 1, "InfoMap": 2, "ModelPartIds": 3}
_TREES = {"ApproxDimension": 0, "TreeSplits": 1, "TreeSizes": 2, "TreeStartOffsets": 3, "CatFeatures": 4,
          "FloatFeatures": 5, "OneHotFeatures": 6, "CtrFeatures": 7, "LeafValues": 8, "LeafWeights": 9,
          "NonSymmetricStepNodes": 10, "NonSymmetricNodeIdToLeafId": 11, "TextFeatures": 12,
          "EstimatedFeatures": 13, "Scale": 14, "Bias": 15, "MultiBias": 16, "RepackedBins": 17,
          "EmbeddingFeatures": 18}
_FLOAT_FEATURE = {"HasNans": 0, "Index": 1, "FlatIndex": 2, "Borders": 3, "FeatureId": 4, "NanValueTreatment": 5}
_CAT_FEATURE = {"Index": 0, "FlatIndex": 1, "FeatureId": 2, "UsedInModel": 3}
_ONE_HOT = {"Index": 0, "Values": 1, "StringValues": 2}
_KEY_VALUE = {"Key": 0, "Value": 1}
_REFUSED = {"CtrFeatures": "CTR features", "NonSymmetricStepNodes": "non-symmetric trees",
            "NonSymmetricNodeIdToLeafId": "non-symmetric trees", "TextFeatures": "text features",
            "EstimatedFeatures": "estimated features", "EmbeddingFeatures": "embedding features"}


class _Buffer:
    """Bounds- and alignment-checked reads of one FlatBuffers buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _at(self, fmt: str, pos: int, path: str) -> Any:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data) or pos % min(size, 8):
            raise FormatError(path, f"offset {pos} is out of bounds or misaligned")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int, path: str, schema: dict[str, int]) -> _Table:
        vtable = pos - self._at("<i", pos, path)
        vsize = self._at("<H", vtable, path)
        tsize = self._at("<H", vtable + 2, path)
        if vsize < 4 or vsize % 2 or tsize < 4 or pos + tsize > len(self.data):
            raise FormatError(path, "malformed table")
        fields = {}
        known = {slot: name for name, slot in schema.items()}
        for slot in range((vsize - 4) // 2):
            off = self._at("<H", vtable + 4 + 2 * slot, path)
            if not off:
                continue
            if slot not in known:
                raise FormatError(path, f"has field slot {slot}, which the schema does not know")
            if off >= tsize:
                raise FormatError(f"{path}.{known[slot]}", "field outside its table")
            fields[known[slot]] = pos + off
        return _Table(self, fields, path)

    def deref(self, pos: int, path: str) -> int:
        return pos + int(self._at("<I", pos, path))

    def vector(self, pos: int, path: str, item: str) -> list[Any]:
        start = self.deref(pos, path)
        n = self._at("<I", start, path)
        size = struct.calcsize("<" + item)
        first = start + 4
        if first % min(struct.calcsize("<" + item[0]), 8) and n:
            raise FormatError(path, "misaligned vector")
        if n * size > len(self.data) - first:
            raise FormatError(path, f"vector of {n} items runs past the buffer")
        return list(struct.unpack_from("<" + item * n, self.data, first)) if n else []

    def string(self, pos: int, path: str) -> str:
        start = self.deref(pos, path)
        n = self._at("<I", start, path)
        if n > MAX_STRING or start + 4 + n + 1 > len(self.data) or self.data[start + 4 + n] != 0:
            raise FormatError(path, "string runs past the buffer or lacks its terminator")
        try:
            return self.data[start + 4:start + 4 + n].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(path, "string is not UTF-8") from None

    def tables(self, pos: int, path: str, schema: dict[str, int]) -> list[_Table]:
        start = self.deref(pos, path)
        n = self._at("<I", start, path)
        if n * 4 > len(self.data) - start - 4:
            raise FormatError(path, f"vector of {n} tables runs past the buffer")
        return [self.table(self.deref(start + 4 + 4 * i, f"{path}[{i}]"), f"{path}[{i}]", schema) for i in range(n)]


class _Table:
    def __init__(self, buf: _Buffer, fields: dict[str, int], path: str) -> None:
        self.buf = buf
        self.fields = fields
        self.path = path

    def where(self, name: str) -> str:
        return f"{self.path}.{name}"

    def scalar(self, name: str, fmt: str, default: Any) -> Any:
        pos = self.fields.get(name)
        return default if pos is None else self.buf._at(fmt, pos, self.where(name))

    def vector(self, name: str, item: str) -> list[Any]:
        pos = self.fields.get(name)
        return [] if pos is None else self.buf.vector(pos, self.where(name), item)

    def string(self, name: str) -> str | None:
        pos = self.fields.get(name)
        return None if pos is None else self.buf.string(pos, self.where(name))

    def tables(self, name: str, schema: dict[str, int]) -> list[_Table]:
        pos = self.fields.get(name)
        return [] if pos is None else self.buf.tables(pos, self.where(name), schema)

    def table(self, name: str, schema: dict[str, int]) -> _Table | None:
        pos = self.fields.get(name)
        return None if pos is None else self.buf.table(self.buf.deref(pos, self.where(name)), self.where(name), schema)


def check_model(data: bytes) -> None:
    """Validate a ``.cbm`` model (raises ``FormatError`` naming the path of the first problem)."""
    if data[:4] != MAGIC or len(data) < 12:
        raise FormatError("__model", "does not start with the CBM1 signature")
    core_size = struct.unpack_from("<I", data, 4)[0]
    if core_size > len(data) - 8:
        raise FormatError("__model", "core size runs past the model")
    if len(data) != 8 + core_size:
        raise FormatError("__model.ModelPartIds", "model parts (CTR tables of categorical features) are not accepted")
    buf = _Buffer(data[8:])
    core = buf.table(buf.deref(0, "__model"), "__model", _CORE)
    if core.string("FormatVersion") != FORMAT_VERSION:
        raise FormatError(core.where("FormatVersion"), f"must be {FORMAT_VERSION}")
    for i, part in enumerate(core.tables("ModelPartIds", {})):
        raise FormatError(f"{part.path}[{i}]", "model parts are not accepted")
    for kv in core.tables("InfoMap", _KEY_VALUE):
        if kv.string("Key") is None or kv.string("Value") is None:
            raise FormatError(kv.path, "must hold a key and a value")
    trees = core.table("ModelTrees", _TREES)
    if trees is None:
        raise FormatError(core.where("ModelTrees"), "is missing")
    _trees(trees)


def _trees(t: _Table) -> None:
    for name, what in _REFUSED.items():
        if name in t.fields and t.vector(name, "I"):  # 4-byte items: offsets, uint32, 2 x uint16
            raise FormatError(t.where(name), f"{what} are not accepted")
    dim = t.scalar("ApproxDimension", "<i", 0)
    if not 1 <= dim < 1 << 16:
        raise FormatError(t.where("ApproxDimension"), f"{dim} is outside [1, 65536)")
    _tree_layout(t, _binary_features(t), dim)


def _binary_features(t: _Table) -> int:
    """Check the float, categorical and one-hot features; the number of binary features their splits index."""
    flat: set[int] = set()
    n_bins = 0
    floats = t.tables("FloatFeatures", _FLOAT_FEATURE)
    for i, f in enumerate(floats):
        _feature_index(f, i, flat)
        borders = f.vector("Borders", "f")
        if not all(math.isfinite(b) for b in borders) or any(b <= a for a, b in itertools.pairwise(borders)):
            raise FormatError(f.where("Borders"), "must be finite and strictly increasing")
        if f.scalar("HasNans", "<B", 0) > 1 or f.scalar("NanValueTreatment", "<b", 0) not in (0, 1, 2):
            raise FormatError(f.where("NanValueTreatment"), "unknown NaN treatment")
        f.string("FeatureId")
        n_bins += len(borders)
    cats = t.tables("CatFeatures", _CAT_FEATURE)
    for i, c in enumerate(cats):
        _feature_index(c, i, flat)
        if c.scalar("UsedInModel", "<B", 1) > 1:
            raise FormatError(c.where("UsedInModel"), "must be a bool")
        c.string("FeatureId")
    for oh in t.tables("OneHotFeatures", _ONE_HOT):
        index = oh.scalar("Index", "<i", -1)
        if not 0 <= index < len(cats):
            raise FormatError(oh.where("Index"), f"categorical feature {index} is outside [0, {len(cats)})")
        values = oh.vector("Values", "i")
        for j in range(len(oh.vector("StringValues", "I"))):
            pos = oh.fields["StringValues"]
            start = oh.buf.deref(pos, oh.where("StringValues"))
            oh.buf.string(start + 4 + 4 * j, f"{oh.where('StringValues')}[{j}]")
        n_bins += len(values)
    return n_bins


def _tree_layout(t: _Table, n_bins: int, dim: int) -> None:
    """Depths, splits (within the binary features), offsets, leaf values and weights agree with each other."""
    sizes = t.vector("TreeSizes", "i")
    if any(not 0 <= s <= MAX_DEPTH for s in sizes):
        raise FormatError(t.where("TreeSizes"), f"tree depths must lie in [0, {MAX_DEPTH}]")
    splits = t.vector("TreeSplits", "i")
    if len(splits) != sum(sizes):
        raise FormatError(t.where("TreeSplits"), f"has {len(splits)} entries for trees of total depth {sum(sizes)}")
    bad = next((i for i, s in enumerate(splits) if not 0 <= s < n_bins), None)
    if bad is not None:
        raise FormatError(f"{t.where('TreeSplits')}[{bad}]",
                          f"split {splits[bad]} is outside the {n_bins} binary features")
    starts = t.vector("TreeStartOffsets", "i")
    running = 0
    for i, size in enumerate(sizes):
        if i >= len(starts) or starts[i] != running:
            raise FormatError(f"{t.where('TreeStartOffsets')}[{i}]", "must be the running total of tree depths")
        running += size
    if len(starts) != len(sizes):
        raise FormatError(t.where("TreeStartOffsets"), "must have one entry per tree")
    leaves = sum(1 << s for s in sizes)
    values = t.vector("LeafValues", "d")
    if len(values) != leaves * dim:
        raise FormatError(t.where("LeafValues"), f"has {len(values)} values, expected {leaves * dim}")
    weights = t.vector("LeafWeights", "d")
    if weights and len(weights) != leaves:
        raise FormatError(t.where("LeafWeights"), f"must be empty or have {leaves} weights")
    multi = t.vector("MultiBias", "d")
    if multi and len(multi) != dim:
        raise FormatError(t.where("MultiBias"), f"must be empty or have {dim} values")
    for name in ("Scale", "Bias"):
        if not math.isfinite(t.scalar(name, "<d", 0.0)):
            raise FormatError(t.where(name), "must be finite")
    repacked = t.vector("RepackedBins", "HBB")
    if repacked and (len(repacked) != 3 * len(splits) or any(fi >= n_bins for fi in repacked[0::3])):
        raise FormatError(t.where("RepackedBins"), f"must be empty or repack each of the {len(splits)} splits")


def _feature_index(f: _Table, position: int, flat: set[int]) -> None:
    index = f.scalar("Index", "<i", -1)
    if index != position:
        raise FormatError(f.where("Index"), f"must be {position}")
    flat_index = f.scalar("FlatIndex", "<i", -1)
    if not 0 <= flat_index < 1 << 24 or flat_index in flat:
        raise FormatError(f.where("FlatIndex"), f"{flat_index} is negative, too large or used twice")
    flat.add(flat_index)


_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any, path: str, depth: int = 0) -> None:
    if depth > 8:
        raise FormatError(path, "nested too deeply")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain(item, f"{path}[{i}]", depth + 1)
    elif type(value) is dict:
        for k, item in value.items():
            if type(k) is not str:
                raise FormatError(path, "keys must be strings")
            _plain(item, f"{path}.{k}", depth + 1)
    elif type(value) not in _PLAIN:
        raise FormatError(path, f"must be a plain parameter value, not {type(value).__name__}")


def check_params(state: dict[str, Any], max_threads: int) -> None:
    """The pickled init parameters: plain values only (CatBoost passes them to C++ when it predicts or refits),
    a bounded ``thread_count``, and plain float lists for the test evaluations and feature importances."""
    for key, value in state.items():
        if key == "__model":
            continue
        if key in ("_test_evals", "_test_eval", "_prediction_values_change", "_loss_value_change"):
            _floats(value, key)
            continue
        _plain(value, key)
    threads = state.get("thread_count", -1)
    if type(threads) is not int or not -1 <= threads <= max_threads or threads == 0:
        raise FormatError("thread_count", f"must be -1 or an integer in [1, {max_threads}]")


def _floats(value: Any, path: str, depth: int = 0) -> None:
    if depth > 3:
        raise FormatError(path, "nested too deeply")
    if type(value) is list:
        for i, item in enumerate(value):
            _floats(item, f"{path}[{i}]", depth + 1)
    elif not isinstance(value, (float, int)) or isinstance(value, bool):
        raise FormatError(path, f"must hold numbers, not {type(value).__name__}")
