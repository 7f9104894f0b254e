"""Call guards (bundler/safety/guards.py): an allowed callable called with arguments the library's own pickling
never writes is refused before the call, naming the callee; a size-driven allocation is charged to the payload's
budget before it happens; and the argument shapes real models pickle pass (the estimator sweep loads every model)."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest

from bundler.errors import UnsafeContent
from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.guards import GUARDS, guard_for
from bundler.safety.limits import Limits
from bundler.safety.unpickler import restricted_load


def g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def u(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def i8(value: int) -> bytes:
    return b"\x8a\x08" + struct.pack("<q", value)


def call(callee: bytes, *args: bytes) -> bytes:
    return b"\x80\x04" + callee + b"(" + b"".join(args) + b"tR."


def load(data: bytes) -> object:
    return restricted_load(io.BytesIO(data), fmt="pickle", allow=DEFAULT_ALLOWLIST)


ROWS = [
    # (payload, offending name in the refusal)
    (call(g("builtins", "bytearray"), i8(3 << 30)), "builtins.bytearray"),
    (call(g("builtins", "bytes"), i8(1 << 40)), "builtins.bytes"),
    (call(g("builtins", "list"), call(g("builtins", "range"), i8(10 ** 12))[2:-1]), "builtins.list"),
    (call(g("builtins", "frozenset"), call(g("builtins", "range"), i8(10 ** 12))[2:-1]), "builtins.frozenset"),
    (call(g("collections", "deque"), b"]", i8(-1)), "collections.deque"),
    (call(g("fractions", "Fraction"), u("1e999999999")), "fractions.Fraction"),
    (call(g("decimal", "Decimal"), b"X" + struct.pack("<I", 5000) + b"9" * 5000), "decimal.Decimal"),
    (call(g("numpy", "dtype"), g("numpy", "float64"), b"\x89\x88"), "numpy.dtype"),
    (call(g("numpy._core.multiarray", "_reconstruct"), g("numpy", "ndarray"), i8(1 << 40) + b"\x85",
          b"C\x01b"), "numpy._core.multiarray._reconstruct"),
    (call(g("numpy._core.multiarray", "_reconstruct"), g("builtins", "object"), b"K\x00\x85", b"C\x01b"),
     "numpy._core.multiarray._reconstruct"),
    (call(g("copyreg", "_reconstructor"), g("sklearn.tree._classes", "DecisionTreeClassifier"),
          g("builtins", "dict"), b"N"), "copyreg._reconstructor"),
    (call(g("sklearn.metrics._dist_metrics", "newObj"), g("sklearn.tree._tree", "Tree")),
     "sklearn.metrics._dist_metrics.newObj"),
    (call(g("sklearn._loss._loss", "CyHalfTweedieLoss"), u("power")), "sklearn._loss._loss.CyHalfTweedieLoss"),
    (call(g("sklearn.tree._classes", "DecisionTreeClassifier"), u("gini")),
     "sklearn.tree._classes.DecisionTreeClassifier"),
    (call(g("scipy.sparse._csr", "csr_matrix"), i8(1 << 40) + i8(1) + b"\x86"), "scipy.sparse._csr.csr_matrix"),
]


@pytest.mark.parametrize(("data", "name"), ROWS, ids=[f"{n}-{i}" for i, (_, n) in enumerate(ROWS)])
def test_hostile_arguments_refused_before_the_call(data: bytes, name: str) -> None:
    with pytest.raises(UnsafeContent) as err:
        load(data)
    assert name in err.value.offending
    assert err.value.exit_code == 5


def _nested_tuples(levels: int) -> bytes:
    """t(i+1) = (t(i), t(i)) built from the memo: 2**levels values to hash, a few bytes per level."""
    body = b"N\x940"
    for i in range(levels):
        body += b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x940"
    return body + b"h" + bytes([levels])


@pytest.mark.parametrize("callee", ["set", "frozenset"])
def test_a_container_of_exponential_keys_is_refused_before_hashing(callee: str) -> None:
    import time

    data = b"\x80\x04" + g("builtins", callee) + b"]" + _nested_tuples(60) + b"a\x85R."
    start = time.process_time()
    with pytest.raises(UnsafeContent, match="exponential"):
        load(data)
    assert time.process_time() - start < 5  # hashing it would take 2**60 steps


def test_the_budget_scales_with_the_payload_and_refuses_before_allocating() -> None:
    small = call(g("numpy._core.multiarray", "_reconstruct"), g("numpy", "ndarray"), i8(1000) + b"\x85", b"C\x01b")
    arr = load(small)
    assert isinstance(arr, np.ndarray)
    assert arr.shape == (1000,)
    limits = Limits(budget_floor=100)
    with pytest.raises(UnsafeContent, match="budget"):
        restricted_load(io.BytesIO(small), fmt="pickle", allow=DEFAULT_ALLOWLIST, limits=limits)
    assert limits.budget_for(10) == 2 * 10 + 100


def test_what_numpy_and_scikit_learn_pickle_passes() -> None:
    from sklearn.tree import DecisionTreeClassifier

    X = np.arange(20.0).reshape(10, 2)
    est = DecisionTreeClassifier().fit(X, np.arange(10) % 2)
    for obj in (np.arange(5), np.float64(2.5), np.dtype("V8"), complex(1, 2), b"xy", bytearray(b"z"), est,
                np.random.RandomState(0), np.random.default_rng(0), slice(1, 5, 2), frozenset({1, 2})):
        for protocol in (2, 4, 5):
            back = load(pickle.dumps(obj, protocol))
            assert type(back) is type(obj)


def test_every_guard_guards_an_allowed_callable() -> None:
    for name in GUARDS:
        assert name in DEFAULT_ALLOWLIST.constructible, name
    assert guard_for("sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss") is not None
    assert guard_for("sklearn.neighbors._kd_tree.newObj") is not None
    assert guard_for("sklearn.tree._classes.DecisionTreeClassifier") is None  # argument-free construction only
