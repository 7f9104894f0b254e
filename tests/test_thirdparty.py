"""XGBoost, LightGBM and CatBoost (the ``thirdparty`` test extra): trust profiles and validated native state.

Real models of each library, plain and inside a ``Pipeline``, pack with a sample through the API and the CLI, are
refused without their profile (exit 5, the message naming the profile in the caller's own wording), load with it
and pass the behaviour check. The hostile samples (``fixtures/hostile/thirdparty``, made by
``make_thirdparty.py``) are refused cleanly, in a child process that must not die by a signal, with the path inside
the model that is wrong; the profiles cover exactly what the libraries' pickling writes, measured here again.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import bundler
from bundler.errors import UnsafeContent
from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.profiles import PROFILES
from bundler.safety.scan import scan_memory

from .helpers import rewrite

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile" / "thirdparty"
EXPECTED: dict[str, dict[str, Any]] = json.loads((HOSTILE / "expected.json").read_text())
FRAMEWORKS = ("xgboost", "lightgbm", "catboost")


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


def _model(framework: str, kind: str = "classifier") -> Any:
    if framework == "xgboost":
        import xgboost as xgb

        return (xgb.XGBClassifier if kind == "classifier" else xgb.XGBRegressor)(n_estimators=5, max_depth=3)
    if framework == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if kind == "classifier" else lgb.LGBMRegressor
        return cls(n_estimators=5, num_leaves=7, verbose=-1)
    import catboost as cb

    cls = cb.CatBoostClassifier if kind == "classifier" else cb.CatBoostRegressor
    return cls(iterations=5, depth=3, verbose=0, thread_count=1)


def _outside_default(model: Any) -> set[str]:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    scan = scan_memory(buffer.getvalue())
    return set(DEFAULT_ALLOWLIST.offending(scan))


def _variants(framework: str) -> list[Any]:
    """Classifier, regressor, ranker, Pipeline, multiclass, early stopping, other objectives, DataFrame with
    categories: each library's pickling of all of them."""
    import pandas as pd

    X, y = _data()
    rng = np.random.default_rng(1)
    y3 = rng.integers(0, 3, len(X))
    groups = np.repeat(np.arange(20), 10)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": pd.Categorical(rng.choice(["x", "y", "z"], len(X)))})
    out = [_model(framework).fit(X, y), _model(framework, "regressor").fit(X, X[:, 2]),
           make_pipeline(StandardScaler(), _model(framework)).fit(X, y), _model(framework).fit(X, y3)]
    if framework == "xgboost":
        import xgboost as xgb

        out += [xgb.XGBRanker(n_estimators=3).fit(X, y3, qid=groups),
                xgb.XGBClassifier(n_estimators=20, early_stopping_rounds=2).fit(X, y, eval_set=[(X, y)],
                                                                               verbose=False),
                xgb.XGBRegressor(n_estimators=3, objective="reg:absoluteerror").fit(X, X[:, 0]),
                xgb.XGBClassifier(n_estimators=3, enable_categorical=True).fit(frame, y)]
    elif framework == "lightgbm":
        import lightgbm as lgb

        out += [lgb.LGBMRanker(n_estimators=3, verbose=-1).fit(X, y3, group=[10] * 20),
                lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(
                    X, y, eval_set=[(X, y)], callbacks=[lgb.early_stopping(2, verbose=False)]),
                lgb.LGBMRegressor(n_estimators=3, objective="huber", verbose=-1).fit(X, X[:, 0]),
                lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(frame, y)]
    else:
        import catboost as cb

        out += [cb.CatBoostRanker(iterations=3, verbose=0).fit(X, y3, group_id=groups),
                cb.CatBoostClassifier(iterations=20, verbose=0, early_stopping_rounds=2).fit(X, y, eval_set=(X, y)),
                cb.CatBoostRegressor(iterations=3, loss_function="MAE", verbose=0).fit(X, X[:, 0]),
                cb.CatBoostClassifier(iterations=3, verbose=0, cat_features=["c"], one_hot_max_size=4).fit(frame, y)]
    return out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_profiles_cover_what_the_libraries_pickle(framework: str) -> None:
    """The profile holds every name the library's pickling writes beyond the default allowlist, and nothing more."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measured = set().union(*(_outside_default(m) for m in _variants(framework)))
    assert measured <= PROFILES[framework].names, sorted(measured - PROFILES[framework].names)
    assert {n for n in PROFILES[framework].names if not n.endswith(("Model", "RFClassifier", "RFRegressor"))} \
        <= measured | {"catboost.core.CatBoost"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """A bundle with a sample per (framework, plain | pipeline), made through the API."""
    folder = tmp_path_factory.mktemp("thirdparty")
    X, y = _data()
    out = {}
    for framework in FRAMEWORKS:
        for shape in ("plain", "pipeline"):
            model = _model(framework) if shape == "plain" else make_pipeline(StandardScaler(), _model(framework))
            model.fit(X, y)
            path = folder / f"{framework}-{shape}.mlbundle"
            bundler.pack(model, path, sample=X[:25], trust_profiles=[framework])
            out[(framework, shape)] = path
    return out


@pytest.mark.parametrize("shape", ("plain", "pipeline"))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_api_refused_without_profile_loads_with_it(framework: str, shape: str,
                                                   bundles: dict[tuple[str, str], Path]) -> None:
    path = bundles[(framework, shape)]
    report = bundler.verify(path)
    assert report.exit_code == 5 and report.suggested_profiles == [framework]
    with pytest.raises(UnsafeContent) as refused:
        bundler.load(path)
    assert f'trust_profiles=["{framework}"]' in str(refused.value)
    assert "--trust" not in str(refused.value)
    assert bundler.verify(path, trust_profiles=[framework]).ok
    model, report = bundler.load_with_report(path, trust_profiles=[framework])
    assert "behaviour" in report.checked
    X, _ = _data()
    assert model.predict(X[:5]).shape == (5,)


def test_unknown_profile_is_a_usage_error(bundles: dict[tuple[str, str], Path]) -> None:
    with pytest.raises(bundler.UsageError, match="unknown trust profile 'sklearn'"):
        bundler.load(bundles[("xgboost", "plain")], trust_profiles=["sklearn"])


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "bundler", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)
    assert proc.returncode >= 0, f"bundler {args[0]} died by signal {-proc.returncode}"
    return proc


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cli_pack_file_verify_load(framework: str, tmp_path: Path) -> None:
    X, y = _data()
    model = make_pipeline(StandardScaler(), _model(framework)).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "X.npy", X[:20])
    out = tmp_path / "model.mlbundle"
    refused = _cli("pack", str(tmp_path / "model.joblib"), "-o", str(out), "--sample", str(tmp_path / "X.npy"))
    assert refused.returncode == 5 and f"--trust-profile {framework}" in refused.stderr
    packed = _cli("pack", str(tmp_path / "model.joblib"), "-o", str(out), "--sample", str(tmp_path / "X.npy"),
                  "--trust-profile", framework)
    assert packed.returncode == 0, packed.stderr
    plain = _cli("load", str(out))
    assert plain.returncode == 5 and f"trust it with --trust-profile {framework}" in plain.stderr
    assert _cli("verify", str(out), "--trust-profile", framework).returncode == 0
    loaded = _cli("load", str(out), "--trust-profile", framework)
    assert loaded.returncode == 0 and "behaviour check passed" in loaded.stdout, loaded.stderr


def test_config_trust_profiles(bundles: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.bundler]\ntrust-profiles = ["lightgbm"]\n')
    assert _cli("load", str(bundles[("lightgbm", "plain")]), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_native_state_refused(name: str, bundles: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    """A bundle whose payload was swapped for the sample, and the sample packed as a file: exit 5 naming where."""
    expected = EXPECTED[name]
    framework = expected["profile"]
    sample = (HOSTILE / f"{name}.joblib").read_bytes()

    def swap(members: dict[str, bytes]) -> None:
        members["model/model.joblib"] = sample
        for key in [k for k in members if k.startswith("sample/")]:
            del members[key]

    swapped = rewrite(bundles[(framework, "plain")], tmp_path / "swapped.mlbundle", members=swap,
                      manifest=lambda doc: doc.update(sample=None, files=[
                          f for f in doc["files"] if not f["path"].startswith("sample/")]))
    loaded = _cli("load", str(swapped), "--trust-profile", framework)
    assert loaded.returncode == expected["exit"], loaded.stderr
    assert expected["path"] in loaded.stderr and "--trust " not in loaded.stderr
    packed = _cli("pack", str(HOSTILE / f"{name}.joblib"), "-o", str(tmp_path / "out.mlbundle"),
                  "--trust-profile", framework)
    assert packed.returncode == expected["exit"] and expected["path"] in packed.stderr, packed.stderr
    assert not (tmp_path / "out.mlbundle").exists()
