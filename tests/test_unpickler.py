"""Restricted loading: real models round-trip; anything outside the allowlist, missing, or malformed is refused."""

from __future__ import annotations

import copyreg
import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier

from bundler.errors import EnvironmentMismatch, IntegrityError, UnsafeContent
from bundler.safety.allowlist import DEFAULT_ALLOWLIST, Allowlist
from bundler.safety.unpickler import restricted_load


def jb(obj: object, **kw: object) -> bytes:
    bio = io.BytesIO()
    joblib.dump(obj, bio, **kw)
    return bio.getvalue()


@pytest.fixture(scope="module")
def models(data: tuple[np.ndarray, np.ndarray]) -> list[object]:
    X, y = data
    return [RandomForestClassifier(5, random_state=0).fit(X, y), HistGradientBoostingClassifier(max_iter=3).fit(X, y),
            KNeighborsClassifier(algorithm="kd_tree").fit(X, y)]


@pytest.mark.parametrize("compress", [0, "zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_joblib_round_trip(models: list[object], data: tuple[np.ndarray, np.ndarray], compress: object) -> None:
    X, _ = data
    for m in models:
        back = restricted_load(io.BytesIO(jb(m, compress=(compress, 3) if compress else 0)), fmt="joblib",
                               allow=DEFAULT_ALLOWLIST)
        assert np.array_equal(back.predict_proba(X), m.predict_proba(X))  # type: ignore[attr-defined]


@pytest.mark.parametrize("protocol", range(6))
def test_pickle_round_trip(models: list[object], data: tuple[np.ndarray, np.ndarray], protocol: int) -> None:
    X, _ = data
    for m in models:
        back = restricted_load(io.BytesIO(pickle.dumps(m, protocol)), fmt="pickle", allow=DEFAULT_ALLOWLIST)
        assert np.array_equal(back.predict(X), m.predict(X))  # type: ignore[attr-defined]


def test_exotic_arrays_round_trip() -> None:
    obj = {"o": np.array([1, "x", None], dtype=object), "u": np.array(["ab", "c"], dtype="U5"),
           "s": np.zeros(4, dtype=[("a", "<i4"), ("b", "O")]), "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
           "be": np.arange(6, dtype=">i4"), "empty": np.zeros((0, 3)), "scalar": np.array(3.5)}
    back = restricted_load(io.BytesIO(jb(obj)), fmt="joblib", allow=DEFAULT_ALLOWLIST)
    assert isinstance(back, dict)
    for k, v in obj.items():
        assert v.shape == back[k].shape, k
        assert (v == back[k]).all(), k


def test_disallowed_global_refused_with_name() -> None:
    with pytest.raises(UnsafeContent) as err:
        restricted_load(io.BytesIO(b"cos\nsystem\n(S'true'\ntR."), fmt="pickle", allow=DEFAULT_ALLOWLIST)
    assert err.value.offending == ["os.system"]


def test_object_array_nested_stream_is_restricted() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (print, ("pwned",))

    data = jb(np.array([Evil()], dtype=object))
    with pytest.raises(UnsafeContent, match=r"builtins\.print"):
        restricted_load(io.BytesIO(data), fmt="joblib", allow=DEFAULT_ALLOWLIST)


def test_allowed_but_missing_is_environment_mismatch() -> None:
    allow = DEFAULT_ALLOWLIST.extended(["no_such_module_xyz.Model", "sklearn.tree.NoSuchThing"])
    for data in (b"cno_such_module_xyz\nModel\n.", b"csklearn.tree\nNoSuchThing\n."):
        with pytest.raises(EnvironmentMismatch, match="this environment lacks"):
            restricted_load(io.BytesIO(data), fmt="pickle", allow=allow)


def test_joblib_payload_as_plain_pickle_refused(models: list[object]) -> None:
    with pytest.raises(IntegrityError, match="joblib"):
        restricted_load(io.BytesIO(jb(models[0])), fmt="pickle", allow=DEFAULT_ALLOWLIST)
    with pytest.raises(IntegrityError, match="compressed"):
        restricted_load(io.BytesIO(jb(models[0], compress=3)), fmt="pickle", allow=DEFAULT_ALLOWLIST)


def test_persistent_id_and_ext_go_through_checks() -> None:
    with pytest.raises(UnsafeContent, match="persistent"):
        restricted_load(io.BytesIO(b"\x80\x02S'x'\nQ."), fmt="pickle", allow=DEFAULT_ALLOWLIST)
    code = 0x7A11
    copyreg.add_extension("posix", "system", code)
    try:
        data = b"\x80\x02\x83" + code.to_bytes(2, "little") + b"."
        for fmt in ("pickle", "joblib"):
            with pytest.raises(UnsafeContent, match=r"posix\.system"):
                restricted_load(io.BytesIO(data), fmt=fmt, allow=DEFAULT_ALLOWLIST)
    finally:
        copyreg.remove_extension("posix", "system", code)


def test_malformed_and_trailing_refused() -> None:
    for data in (pickle.dumps([1], 4)[:-3], pickle.dumps([1], 4) + b"N", b"\x80\x04N\x97."):
        for fmt in ("pickle", "joblib"):
            with pytest.raises(IntegrityError):
                restricted_load(io.BytesIO(data), fmt=fmt, allow=DEFAULT_ALLOWLIST)


def test_empty_allowlist_refuses_everything(models: list[object]) -> None:
    empty = Allowlist(frozenset(), frozenset())
    with pytest.raises(UnsafeContent):
        restricted_load(io.BytesIO(jb(models[0])), fmt="joblib", allow=empty)
    assert restricted_load(io.BytesIO(pickle.dumps({"a": [1, 2.0, "x"]}, 4)), fmt="pickle", allow=empty) == \
        {"a": [1, 2.0, "x"]}


def test_forest_arrays_own_their_memory_or_went_into_a_tree(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Tree state arrays are handed to Tree.__setstate__ as views (it copies them); every other small array is a
    copy: nothing the loaded forest holds shares memory with the payload buffer, and it predicts as joblib's."""
    from bundler.safety.scan import scan_memory
    from bundler.safety.unpickler import restricted_load_memory

    X, y = data
    rf = RandomForestClassifier(5, random_state=0).fit(X, y)
    payload = bytearray(jb(rf))
    loaded = restricted_load_memory(payload, allow=DEFAULT_ALLOWLIST, spans=scan_memory(payload).arrays).obj
    whole = np.frombuffer(payload, dtype=np.uint8)
    held = [v for est in [loaded, *loaded.estimators_] for v in vars(est).values() if isinstance(v, np.ndarray)]
    held += [a for est in loaded.estimators_ for a in est.tree_.__getstate__().values() if isinstance(a, np.ndarray)]
    assert held
    assert not any(np.shares_memory(a, whole) for a in held)
    np.testing.assert_array_equal(loaded.predict_proba(X), rf.predict_proba(X))
