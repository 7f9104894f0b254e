"""The behaviour check on its own: what is stored, how it is compared, what counts as a difference."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bundler.errors import UsageError
from bundler.pipelines.behaviour import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    MAX_ROWS,
    check_behaviour,
    compare_arrays,
    sample_members,
)


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def roundtrip(info: dict[str, Any]) -> dict[str, Any]:
    """The manifest stores the info as JSON: check against what comes back from JSON, not the Python object."""
    out: dict[str, Any] = json.loads(json.dumps(info))
    return out


def test_classifier_stores_predict_proba_and_decision_function(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    members, info = sample_members(model, X[:15])
    assert set(members) == {"sample/input.npy", "sample/predict.npy", "sample/predict_proba.npy",
                            "sample/decision_function.npy"}
    assert set(info["methods"]) == {"predict", "predict_proba", "decision_function"}
    assert info["rows"] == 15
    assert info["methods"]["predict"]["outputs"][0]["compare"] == "exact"
    assert info["methods"]["predict_proba"]["outputs"][0]["compare"] == "allclose"
    assert info["tolerance"]["rtol"] == DEFAULT_RTOL
    assert info["tolerance"]["atol"] == DEFAULT_ATOL
    # every member is a plain .npy that loads without pickle
    for data in members.values():
        np.load(io.BytesIO(data), allow_pickle=False)
    stored = np.load(io.BytesIO(members["sample/predict_proba.npy"]), allow_pickle=False)
    np.testing.assert_array_equal(stored, model.predict_proba(X[:15]))
    assert check_behaviour(model, members.__getitem__, roundtrip(info)) == []


def test_sparse_transform_output_is_stored_dense(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = xy
    codes = (np.abs(X[:, :1]) * 3).astype(int)
    encoder = OneHotEncoder().fit(codes)

    class Encoding:
        """A model whose transform returns a scipy sparse matrix (as OneHotEncoder does)."""

        def predict(self, X: Any) -> Any:
            return np.asarray(X)[:, 0]

        def transform(self, X: Any) -> Any:
            return encoder.transform(X)

    members, info = sample_members(Encoding(), codes[:10])
    stored = np.load(io.BytesIO(members["sample/transform.npy"]), allow_pickle=False)
    np.testing.assert_array_equal(stored, encoder.transform(codes[:10]).toarray())
    assert check_behaviour(Encoding(), members.__getitem__, roundtrip(info)) == []


def test_model_without_predict_is_a_usage_error(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = xy
    with pytest.raises(UsageError, match="no predict"):
        sample_members(StandardScaler().fit(X), X[:5])


def test_kmeans_has_predict_and_transform(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = xy
    model = KMeans(n_clusters=3, n_init=2, random_state=0).fit(X)
    members, info = sample_members(model, X[:8])
    assert {"predict", "transform"} <= set(info["methods"])
    assert "predict_proba" not in info["methods"]
    assert check_behaviour(model, members.__getitem__, roundtrip(info)) == []


def test_different_model_is_reported_per_method(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    packed = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    members, info = sample_members(packed, X[:30])
    other = make_pipeline(StandardScaler(), LogisticRegression(C=1e-3)).fit(X, 1 - y)
    problems = check_behaviour(other, members.__getitem__, roundtrip(info))
    methods = [line.split(":")[0] for line in problems]
    assert methods == ["predict", "predict_proba", "decision_function"]
    assert "of 30 rows differ" in problems[0]
    assert "max abs diff" in problems[1]


def test_tiny_float_noise_is_within_tolerance_but_real_change_is_not(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LinearRegression().fit(X, y.astype(float))
    members, info = sample_members(model, X[:20])
    shifted = LinearRegression().fit(X, y.astype(float))
    shifted.intercept_ = shifted.intercept_ + 1e-12  # summation-order noise
    assert check_behaviour(shifted, members.__getitem__, roundtrip(info)) == []
    shifted.intercept_ = shifted.intercept_ + 1e-3
    problems = check_behaviour(shifted, members.__getitem__, roundtrip(info))
    assert len(problems) == 1
    assert problems[0].startswith("predict: 20 of 20 rows differ")


def test_method_that_now_raises_is_a_difference(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LogisticRegression().fit(X, y)
    members, info = sample_members(model, X[:5])

    class Broken:
        def predict(self, X: Any) -> Any:  # noqa: ARG002 - a model's predict signature
            raise AttributeError("'LogisticRegression' object has no attribute 'multi_class'")

    problems = check_behaviour(Broken(), members.__getitem__, roundtrip(info))
    assert problems[0].startswith("predict: now raises AttributeError")
    assert any(line.startswith("predict_proba: the loaded model no longer has this method") for line in problems)


def test_string_labels_and_object_input_are_stored_without_pickle(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    labels = np.array(["no", "yes"], dtype=object)[y]
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, labels)
    members, info = sample_members(model, X[:6].tolist())  # a list of lists is accepted
    predicted = np.load(io.BytesIO(members["sample/predict.npy"]), allow_pickle=False)
    assert predicted.dtype.kind == "U"
    assert check_behaviour(model, members.__getitem__, roundtrip(info)) == []

    import datetime

    dates = np.array([[datetime.date(2020, 1, 1)], [datetime.date(2021, 1, 1)]], dtype=object)
    with pytest.raises(UsageError, match=r"values of type datetime\.date, which cannot be stored without pickle"):
        sample_members(model, dates)


def test_object_array_with_mixed_columns_round_trips() -> None:
    """``df.to_numpy()`` of a mixed table: strings and numbers side by side, with a missing value."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer

    X = np.array([["red", 1.0], ["green", 2.5], [None, 3.0], ["red", np.nan]] * 3, dtype=object)
    y = np.array([0, 1, 1, 0] * 3)
    model = make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder()), [0]),
        (SimpleImputer(), [1])), LogisticRegression()).fit(X, y)
    members, info = sample_members(model, X)
    assert info["format"] == 2
    assert info["input"]["kind"] == "ndarray"
    assert info["input"]["values"]["encoding"] == "objects"
    assert check_behaviour(model, members.__getitem__, roundtrip(info)) == []


def test_string_input_column_round_trips() -> None:
    X = np.array([["red"], ["green"], ["blue"], ["red"]])
    y = np.array([0, 1, 1, 0])
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(X, y)
    members, info = sample_members(model, X)
    assert info["format"] == 1
    assert info["input"]["dtype"].startswith("<U")
    assert check_behaviour(model, members.__getitem__, roundtrip(info)) == []


@pytest.mark.parametrize("bad", [np.zeros((5, 1, 1)), np.zeros((0, 3)), np.zeros((MAX_ROWS + 1, 1))])
def test_bad_samples_are_refused(xy: tuple[np.ndarray, np.ndarray], bad: np.ndarray) -> None:
    X, y = xy
    model = LogisticRegression().fit(X[:, :1], y)
    with pytest.raises(UsageError):
        sample_members(model, bad)


def test_only_sample_members_are_read(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LogisticRegression().fit(X, y)
    members, info = sample_members(model, X[:5])
    info = roundtrip(info)
    info["methods"]["predict"]["outputs"][0]["member"] = "model/model.joblib"
    read: list[str] = []

    def reader(name: str) -> bytes:
        read.append(name)
        return members[name]

    problems = check_behaviour(model, reader, info)
    assert "model/model.joblib" not in read
    assert any("not below 'sample/'" in line for line in problems)


def test_pickled_npy_member_is_refused(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LogisticRegression().fit(X, y)
    members, info = sample_members(model, X[:5])
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()] * 5, dtype=object), allow_pickle=True)
    members["sample/predict.npy"] = buffer.getvalue()
    problems = check_behaviour(model, members.__getitem__, roundtrip(info))
    assert problems
    assert "not a plain .npy array" in problems[0]


def test_recorded_tolerance_is_used_but_capped(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LinearRegression().fit(X, y.astype(float))
    members, info = sample_members(model, X[:5])
    info = roundtrip(info)
    moved = LinearRegression().fit(X, y.astype(float))
    moved.intercept_ += 1e-4
    assert check_behaviour(moved, members.__getitem__, info)  # default tolerance: a difference
    info["tolerance"]["atol"] = 1e-3
    assert check_behaviour(moved, members.__getitem__, info) == []
    info["tolerance"]["atol"] = 10.0  # absurd: ignored, default applies
    assert check_behaviour(moved, members.__getitem__, info)


def test_compare_arrays_shapes_kinds_and_nan() -> None:
    assert compare_arrays("p", np.array([1.0, np.nan]), np.array([1.0, np.nan])) is None
    assert "shape" in (compare_arrays("p", np.zeros((3, 2)), np.zeros((3, 3))) or "")
    assert "kind" in (compare_arrays("p", np.array(["1", "2"]), np.array([1, 2])) or "")
    assert compare_arrays("p", np.array([1, 2]), np.array([1.0, 2.0])) is None
    line = compare_arrays("p", np.array([[0.1, 0.9], [0.5, 0.5]]), np.array([[0.1, 0.9], [0.6, 0.4]]))
    assert line is not None
    assert line.startswith("p: 1 of 2 rows differ")


def test_module_import_does_not_import_numpy() -> None:
    code = ("import sys, bundler.pipelines.behaviour, bundler.environment.targets, bundler.crossversion.cli, "
            "bundler.crossversion.runner, bundler.crossversion.reports, bundler.crossversion.merge, "
            "bundler.crossversion.worker; print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
