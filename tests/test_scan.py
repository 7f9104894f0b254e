"""Static scanner: real pickles and joblib files of every protocol and compression, exact array skipping, limits."""

from __future__ import annotations

import bz2
import io
import pickle
import struct

import joblib
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectKBest, f_classif

from bundler.errors import IntegrityError
from bundler.safety.limits import Limits as ScanLimits
from bundler.safety.scan import COMPUTED_CALLABLE, scan_bytes, scan_file, scan_fileobj

RF = "sklearn.ensemble._forest.RandomForestClassifier"


@pytest.fixture(scope="module")
def forest(data: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    X, y = data
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)


def joblib_bytes(obj: object, **kw: object) -> bytes:
    bio = io.BytesIO()
    joblib.dump(obj, bio, **kw)
    return bio.getvalue()


class ReadOnly:
    """A file object with read() and nothing else: the scan must not seek, tell or peek."""

    def __init__(self, data: bytes) -> None:
        self._bio = io.BytesIO(data)
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        out = self._bio.read(n)
        self.consumed += len(out)
        return out


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol(forest: RandomForestClassifier, protocol: int) -> None:
    res = scan_bytes(pickle.dumps(forest, protocol))
    assert res.format == "pickle"
    assert res.root == RF
    assert RF in res.calls
    assert "sklearn.tree._tree.Tree" in res.calls
    assert res.globals == tuple(sorted(set(res.globals)))


@pytest.mark.parametrize("compress", [0, "zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_joblib_compressions_detected_by_magic(forest: RandomForestClassifier, compress: object) -> None:
    data = joblib_bytes(forest, compress=(compress, 3) if compress else 0)
    f = ReadOnly(data)
    res = scan_fileobj(f)
    assert res.format == ("joblib" if not compress else f"joblib+{compress}")
    assert res.root == RF
    assert f.consumed == len(data)  # read sequentially to the very end


def test_scan_file(tmp_path, forest: RandomForestClassifier) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.joblib"
    joblib.dump(forest, path)
    assert scan_file(path).root == RF


def test_reference_is_not_a_call(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    res = scan_bytes(pickle.dumps(SelectKBest(f_classif, k=2).fit(X, y), 4))
    name = "sklearn.feature_selection._univariate_selection.f_classif"
    assert name in res.globals
    assert name not in res.calls


def test_hgb_internal_classes(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    res = scan_bytes(joblib_bytes(HistGradientBoostingClassifier(max_iter=3).fit(X, y)))
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in res.calls


@pytest.mark.parametrize("dtype", ["f8", "<i4", ">i4", "U5", "S3", "V16", "O", "M8[ns]", "c16", "?",
                                   [("a", "<i8"), ("b", "f4")], [("a", "O"), ("b", "f4")], ("f8", (2, 3))])
@pytest.mark.parametrize("order", ["C", "F"])
def test_array_spans_skipped_exactly(dtype: object, order: str) -> None:
    arr = np.zeros((3, 4), dtype=dtype, order=order)  # type: ignore[call-overload]
    payload = {"before": 1, "arr": arr, "after": [np.arange(5), "x"]}
    res = scan_bytes(joblib_bytes(payload))
    assert res.format == "joblib"
    assert res.root == "builtins.dict"
    assert all(not g.startswith("<") for g in res.globals + res.calls)


def test_array_bytes_that_look_like_opcodes_are_data() -> None:
    evil = b"cos\nsystem\n(S'touch x'\ntR."
    res = scan_bytes(joblib_bytes([np.frombuffer(evil * 50, dtype="u1").copy(), 2]))
    assert not any("system" in g for g in res.globals)


def test_memoized_stack_global_and_fix_imports() -> None:
    body = b"\x8c\x05posix\x940\x8c\x06system\x940h\x00h\x01\x93N\x85R."
    assert scan_bytes(b"\x80\x04" + body).calls == ("posix.system",)
    # protocol 2: Python-2 names are mapped exactly as pickle maps them
    res = scan_bytes(b"\x80\x02c__builtin__\nset\n)R.")
    assert res.calls == ("builtins.set",)


def test_computed_callable() -> None:
    # builtins.getattr(...) result called again: the second callee is computed
    data = b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR(tR."
    res = scan_bytes(data)
    assert COMPUTED_CALLABLE in res.calls
    assert "builtins.getattr" in res.calls


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (pickle.dumps([1, 2], 4)[:-1], "truncated"),
    (pickle.dumps([1, 2], 4) + b"N", "trailing"),
    (b"\x80\x05N\x97.", "out-of-band"),
    (b"\x80\x06N.", "protocol"),
    (b"\xffN.", "opcode"),
    (b"t.", "MARK"),
    (b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00N\x8c\x03abc.", "straddles"),
])
def test_malformed_streams_fail_closed(data: bytes, reason: str) -> None:
    with pytest.raises(IntegrityError, match=r"^malformed pickle stream: ") as err:
        scan_bytes(data)
    assert reason in str(err.value)


def test_limits_bound_decompression() -> None:
    bomb = bz2.compress(b"\x80\x04B" + (8 << 20).to_bytes(4, "little") + b"\0" * (8 << 20) + b".")
    lim = ScanLimits(max_bytes=1 << 20)
    with pytest.raises(IntegrityError, match="exceeds"):
        scan_fileobj(io.BytesIO(bomb), limits=lim)
    with pytest.raises(IntegrityError, match="ratio"):
        scan_fileobj(io.BytesIO(bomb), limits=ScanLimits(ratio_floor=1 << 20, max_ratio=100))


def test_stack_and_mark_limits() -> None:
    with pytest.raises(IntegrityError, match="MARK"):
        scan_fileobj(io.BytesIO(b"(" * 200 + b"."), limits=ScanLimits(max_marks=100))
    with pytest.raises(IntegrityError, match="memo"):
        scan_fileobj(io.BytesIO(b"\x80\x04" + b"N\x94" * 40000 + b"."), limits=ScanLimits(max_memo=1000))


def test_large_array_read_in_bounded_chunks() -> None:
    data = joblib_bytes(np.zeros(3 << 20, dtype="u1"))
    reads: list[int] = []

    class Spy(ReadOnly):
        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return super().read(n)

    scan_fileobj(Spy(data))
    assert max(reads) <= 1 << 20


def test_legacy_zfile_refused() -> None:
    with pytest.raises(IntegrityError, match="legacy joblib"):
        scan_bytes(b"ZF0x10            " + b"\x78\x9c")


def test_frame_lengths_are_checked() -> None:
    good = pickle.dumps({"a": list(range(300))}, 4)
    assert good[2] == 0x95
    cut = good.index(b"M\x00\x01") - 11 + 2  # the frame would end inside BININT2's argument
    bad = good[:3] + struct.pack("<Q", cut) + good[11:]
    with pytest.raises(IntegrityError, match="straddles"):
        scan_bytes(bad)
    with pytest.raises(pickle.UnpicklingError):
        pickle._loads(bad)  # type: ignore[attr-defined]  # the pure-Python unpickler agrees
