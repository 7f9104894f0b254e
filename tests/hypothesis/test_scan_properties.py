"""Property tests: random opcode streams and random byte edits of real payloads never execute anything and never
crash the scanner or the loader: only clean refusals (IntegrityError / UnsafeContent / EnvironmentMismatch)."""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier

from bundler.errors import BundleError
from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.limits import Limits
from bundler.safety.scan import scan_bytes, scan_fileobj
from bundler.safety.unpickler import restricted_load
from bundler.safety.validators import validate_model

MARKER = Path("/tmp/bundler-hostile-ran")
LIMITS = Limits(max_bytes=1 << 22, max_stack=10_000, max_memo=10_000, max_marks=200)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Opcode bytes with plausible arguments, including the dangerous ones.
ATOMS = [b"(", b".", b"0", b"1", b"2", b"N", b"\x88", b"\x89", b")", b"]", b"}", b"t", b"l", b"d", b"a", b"e",
         b"s", b"u", b"R", b"b", b"\x81", b"\x85", b"\x86", b"\x87", b"\x93", b"\x94", b"h\x00", b"q\x00",
         b"K\x05", b"I1\n", b"S'x'\n", b"\x8c\x02os", b"\x8c\x06system", b"\x8c\x05posix", b"cos\nsystem\n",
         b"cbuiltins\ngetattr\n", b"cnumpy\ndtype\n", b"\x8c\x02f8", b"\x80\x04", b"\x80\x02", b"\x95\x04\x00\x00"
         b"\x00\x00\x00\x00\x00", b"o", b"i", b"\x82\x01", b"Q", b"G" + b"\x00" * 8, b"C\x02ab", b"\x8f", b"\x90",
         b"\x91", b"\x97"]


@pytest.fixture(autouse=True, scope="module")
def no_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    marker = tmp_path_factory.mktemp("m") / "marker"
    old = os.environ.get("BUNDLER_MARKER")
    os.environ["BUNDLER_MARKER"] = str(marker)
    before = MARKER.exists()
    yield
    if old is None:
        del os.environ["BUNDLER_MARKER"]
    else:
        os.environ["BUNDLER_MARKER"] = old
    assert not marker.exists()
    assert MARKER.exists() == before


def check(data: bytes, fmt: str) -> None:
    try:
        res = scan_fileobj(io.BytesIO(data), limits=LIMITS)
    except BundleError:
        return
    if DEFAULT_ALLOWLIST.audit(res):
        return
    try:
        obj = restricted_load(io.BytesIO(data), fmt=fmt, allow=DEFAULT_ALLOWLIST, limits=LIMITS)
    except BundleError:
        return
    validate_model(obj, handed=None, allow=DEFAULT_ALLOWLIST)


@SETTINGS
@given(st.lists(st.sampled_from(ATOMS), max_size=40))
def test_random_opcode_streams(parts: list[bytes]) -> None:
    data = b"".join(parts) + b"."
    check(data, "pickle")
    check(data, "joblib")


def _payloads() -> list[tuple[bytes, str]]:
    X = np.random.RandomState(0).uniform(size=(30, 3))
    est = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, (X[:, 0] > 0.5).astype(int))
    out = [(pickle.dumps(est, p), "pickle") for p in (0, 2, 5)]
    for comp in (0, 3):
        bio = io.BytesIO()
        joblib.dump({"m": est, "o": np.array([1, "a"], dtype=object)}, bio, compress=comp)
        out.append((bio.getvalue(), "joblib"))
    return out


PAYLOADS = _payloads()


@SETTINGS
@given(st.integers(0, len(PAYLOADS) - 1), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1,
                                                    max_size=4), st.booleans())
def test_random_byte_edits_of_real_payloads(which: int, edits: list[tuple[float, int]], truncate: bool) -> None:
    data, fmt = PAYLOADS[which]
    buf = bytearray(data)
    for where, value in edits:
        buf[min(int(where * len(buf)), len(buf) - 1)] = value
    if truncate:
        buf = buf[: int(edits[0][0] * len(buf))]
    check(bytes(buf), fmt)


def test_scan_bytes_never_raises_other_errors() -> None:
    for data in (b"", b".", b"\x80", b"(" * 10, b"\x95" + b"\xff" * 8 + b"N."):
        with pytest.raises(BundleError):
            scan_bytes(data)
