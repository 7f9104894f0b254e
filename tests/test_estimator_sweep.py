"""Every estimator that fits with default parameters on tiny data must survive joblib (and pickle) + scan + audit
with the DEFAULT allowlist + the restricted unpickler + the state validators, and predict identically afterwards:
every one of them."""

from __future__ import annotations

import io
import pickle

import joblib
import pytest
from threadpoolctl import threadpool_limits

from bundler.errors import BundleError
from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.loading import validate_loaded
from bundler.safety.scan import scan_bytes
from bundler.safety.unpickler import restricted_load, restricted_load_memory

from .estimator_zoo import Fitted, Skip, fit_all, outputs, same_outputs

PICKLE_SUBSET = {"RandomForestClassifier", "HistGradientBoostingRegressor", "KNeighborsClassifier", "SVC",
                 "GaussianProcessRegressor", "LogisticRegression", "OneHotEncoder", "TfidfVectorizer",
                 "IsolationForest", "KernelDensity", "MLPClassifier", "SGDClassifier"}


def round_trip(f: Fitted, data: bytes, fmt: str) -> str | None:
    """None when it passes, else why it failed."""
    res = scan_bytes(data)
    problems = DEFAULT_ALLOWLIST.audit(res)
    if problems:
        return f"audit: {problems}"
    try:
        back = restricted_load(io.BytesIO(data), fmt=fmt, allow=DEFAULT_ALLOWLIST)
        loaded = restricted_load_memory(bytearray(data), allow=DEFAULT_ALLOWLIST, spans=res.arrays)
        validate_loaded(loaded, DEFAULT_ALLOWLIST)
    except BundleError as exc:
        return f"load: {exc}"
    # Restricted loading must change nothing compared with an unrestricted load of the same bytes ...
    # (Tree node arrays carry uninitialized struct padding, so whole-object hashes are compared only for models
    # without any prediction method.)
    plain = joblib.load(io.BytesIO(data)) if fmt == "joblib" else pickle.loads(data)
    mine = outputs(back, f.inputs)
    if not same_outputs(outputs(plain, f.inputs), mine):
        return "predicts differently from an unrestricted load"
    if not mine and joblib.hash(back) != joblib.hash(plain):
        return "state differs from an unrestricted load"
    # ... and predict what the in-memory model predicted (round-off allowed: some solvers use threaded BLAS).
    if not same_outputs(outputs(f.estimator, f.inputs), mine, exact=False):
        return "predicts differently from the original"
    return None


def test_estimator_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    with threadpool_limits(1):
        results = fit_all()
        fitted = [r for r in results if isinstance(r, Fitted)]
        skipped = [r for r in results if isinstance(r, Skip)]
        failures: dict[str, str] = {}
        for f in fitted:
            bio = io.BytesIO()
            joblib.dump(f.estimator, bio)
            why = round_trip(f, bio.getvalue(), "joblib")
            if why is None and f.name in PICKLE_SUBSET:
                why = round_trip(f, pickle.dumps(f.estimator, 5), "pickle")
            if why is not None:
                failures[f.name] = why
    passed = len(fitted) - len(failures)
    with capsys.disabled():
        print(f"\nestimator sweep: {len(results)} from all_estimators(), {len(fitted)} fit with default params, "
              f"{len(skipped)} skipped ({sum('constructor' in s.reason for s in skipped)} need constructor "
              f"arguments), {passed}/{len(fitted)} load with the default allowlist and predict identically")
        for name, why in sorted(failures.items()):
            print(f"  FAILED {name}: {why[:200]}")
    assert len(fitted) >= 150
    assert not failures, failures
