"""Fuzz the state of real fitted models (tree node arrays, feature indices, sparse indices, metric parameters,
dtypes, shapes, integer sizes) and require a clean refusal or a successful prediction, never a signal.

Each generated model is pickled here (pickling reads state, it never predicts) and sent to one long-lived child
process (``tests/fuzz_child.py``) that runs ``bundler.safety.loading.safe_load`` on the bytes and, when the model is
accepted, calls its prediction methods on well-formed input. A child that dies by a signal fails the test with the
example that killed it; the next example gets a fresh child. ``BUNDLER_FUZZ_EXAMPLES`` raises the number of
examples (the default keeps the suite fast; ``nox -s fuzz`` runs many more).
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("BUNDLER_FUZZ_EXAMPLES", "40"))


def _models() -> list[tuple[str, Any]]:
    from scipy import sparse
    from sklearn.cluster import KMeans
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.linear_model import SGDClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import SplineTransformer
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.RandomState(0)
    X = rng.uniform(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    Xc = X.copy()
    Xc[:, 3] = rng.randint(0, 4, size=len(X))
    return [
        ("tree", DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)),
        ("forest", RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)),
        ("boosting", GradientBoostingRegressor(n_estimators=3, max_depth=2, random_state=0).fit(X, X[:, 0])),
        ("hgb", HistGradientBoostingClassifier(max_iter=3, categorical_features=[3]).fit(Xc, y)),
        ("iforest", IsolationForest(n_estimators=3, random_state=0).fit(X)),
        ("knn_ball", KNeighborsClassifier(algorithm="ball_tree", metric="mahalanobis",
                                          metric_params={"VI": np.eye(4)}).fit(X, y)),
        ("knn_brute", KNeighborsClassifier(algorithm="brute").fit(X, y)),
        ("svc", SVC(probability=True, random_state=0).fit(X, y)),
        ("sgd_sparse", SGDClassifier(random_state=0).fit(X, y).sparsify()),
        ("kmeans", KMeans(n_clusters=3, n_init=1, random_state=0).fit(X)),
        ("spline", SplineTransformer().fit(X)),
        ("csr", {"m": sparse.csr_matrix(np.eye(4))}),
    ]


MODELS = _models()


def _targets(obj: Any, path: str, depth: int = 0) -> Iterator[str]:
    """Attribute paths of arrays, ints and extension-type states inside a model (what BUILD can set)."""
    if depth > 3:
        return
    state = getattr(obj, "__dict__", None)
    if isinstance(obj, dict):
        state = obj
    if isinstance(state, dict):
        for key, value in state.items():
            if not isinstance(key, str):
                continue
            sub = f"{path}/{key}"
            if isinstance(value, (np.ndarray, int, float)) and not isinstance(value, bool):
                yield sub
            elif type(value).__module__.startswith("scipy.sparse"):
                yield from (f"{sub}/{a}" for a in ("data", "indices", "indptr"))
            elif type(value).__name__ in ("Tree", "BallTree", "KDTree"):
                yield f"{sub}#state"
            elif isinstance(value, list):
                for i, item in enumerate(value[:2]):
                    yield from _targets(item, f"{sub}[{i}]", depth + 1)
            elif hasattr(value, "__dict__"):
                yield from _targets(value, sub, depth + 1)


TARGETS = [(i, t) for i, (_, m) in enumerate(MODELS) for t in _targets(m, "")]


def _mutate_array(a: np.ndarray, kind: str, k: int) -> Any:
    if a.dtype.names:  # a structured node table: one field
        field = a.dtype.names[k % len(a.dtype.names)]
        b = a.copy()
        col = b[field]
        if col.size:
            col[k % col.size] = [10 ** 6, -1, -(10 ** 9), 0, k][k % 5] if col.dtype.kind in "iu" else np.nan
        return b
    if kind == "shrink" and a.ndim:
        return a[: max(a.shape[0] // 2, 0)]
    if kind == "grow" and a.ndim:
        return np.concatenate([a, a]) if a.size else a
    if kind == "transpose" and a.ndim == 2:
        return np.ascontiguousarray(a.T)
    if kind == "dtype":
        return a.astype([np.int32, np.float32, np.int64, np.uint8][k % 4])
    if kind == "values" and a.size:
        b = a.copy()
        b.flat[k % a.size] = [10 ** 6, -1, -(10 ** 6), 2 ** 31 - 1][k % 4] if a.dtype.kind in "iu" else \
            [np.nan, np.inf, -1.0, 1e300][k % 4]
        return b
    return a[..., :0] if a.ndim else a


def _mutate_value(v: Any, kind: str, k: int) -> Any:
    if isinstance(v, np.ndarray):
        try:
            return _mutate_array(v, kind, k)
        except (TypeError, ValueError):  # e.g. an object array cast to int: not a mutation numpy can make
            return v[::-1]
    if isinstance(v, int):
        return [0, -1, 2 ** 31, float(v), 10 ** 6, v + 1][k % 6]
    if isinstance(v, float):
        return [np.nan, -1.0, 0.0, 1e300][k % 4]
    return v


def _resolve(root: Any, path: str) -> tuple[Any, str]:
    """The parent object and the last key of ``path`` ("/a/b[0]/c")."""
    obj = root
    parts = [p for p in path.split("/") if p]
    for part in parts[:-1]:
        name, _, index = part.partition("[")
        obj = obj[name] if isinstance(obj, dict) else getattr(obj, name)
        if index:
            obj = obj[int(index[:-1])]
    return obj, parts[-1]


def mutated(model_index: int, target: str, kind: str, k: int) -> bytes:
    root = copy.deepcopy(MODELS[model_index][1])
    path, _, ext = target.partition("#")
    parent, key = _resolve(root, path)
    get: Callable[[], Any] = (lambda: parent[key]) if isinstance(parent, dict) else (lambda: getattr(parent, key))
    value = get()
    if ext:  # an extension type: mutate one element of its pickled state and rebuild it
        cls: Any = type(value)
        reduced = value.__reduce__()
        state = reduced[2]
        if isinstance(state, dict):
            state = dict(state)
            names = sorted(state)
            name = names[k % len(names)]
            state[name] = _mutate_value(state[name], kind, k)
        else:
            state = list(state)
            i = k % len(state)
            state[i] = _mutate_value(state[i], kind, k)
            state = tuple(state)
        rebuilt = reduced[0](*reduced[1]) if cls.__name__ == "Tree" else cls.__new__(cls)
        try:
            rebuilt.__setstate__(state)
        except Exception:
            return pickle.dumps(root, 4)  # the library itself refused the state: nothing crafted to send
        value = rebuilt
    else:
        value = _mutate_value(value, kind, k)
    if isinstance(parent, dict):
        parent[key] = value
    else:
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            setattr(parent, key, value)
    try:
        return pickle.dumps(root, 4)
    except Exception:  # the crafted object cannot even be pickled (its own __reduce__ refuses): nothing to send
        return pickle.dumps(MODELS[model_index][1], 4)


class Child:
    """A long-lived ``tests/fuzz_child.py`` process: payloads in (length-prefixed), one result line out."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def send(self, data: bytes) -> tuple[int | None, str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz_child"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline().decode()
        except BrokenPipeError:
            line = ""
        if not line:
            code = self.proc.wait(timeout=60)
            self.proc = None
            return code, ""
        return None, line.strip()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def child() -> Iterator[Child]:
    c = Child()
    yield c
    c.close()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("BUNDLER_FUZZ_RANDOM"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS),
       kind=st.sampled_from(["shrink", "grow", "transpose", "dtype", "values", "empty"]),
       k=st.integers(min_value=0, max_value=50))
def test_mutated_state_is_refused_or_predicts(child: Child, target: tuple[int, str], kind: str, k: int) -> None:
    index, path = target
    data = mutated(index, path, kind, k)
    died, line = child.send(data)
    where = f"{MODELS[index][0]} {path} {kind} {k}"
    assert died is None, f"{where}: the loading process died (exit {died})"
    assert line.startswith(("refused ", "predicted", "loaded")), f"{where}: {line}"
