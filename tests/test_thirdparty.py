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
    return cls(iterations=5, depth=3, verbose=0, thread_count=1, allow_writing_files=False)  # no catboost_info/


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

        out += [cb.CatBoostRanker(iterations=3, verbose=0, allow_writing_files=False).fit(X, y3, group_id=groups),
                cb.CatBoostClassifier(iterations=20, verbose=0, early_stopping_rounds=2,
                                      allow_writing_files=False).fit(X, y, eval_set=(X, y)),
                cb.CatBoostRegressor(iterations=3, loss_function="MAE", verbose=0,
                                     allow_writing_files=False).fit(X, X[:, 0]),
                cb.CatBoostClassifier(iterations=3, verbose=0, cat_features=["c"], one_hot_max_size=4,
                                      allow_writing_files=False).fit(frame, y)]
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


@pytest.mark.parametrize("shape", ["plain", "pipeline"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_api_refused_without_profile_loads_with_it(framework: str, shape: str,
                                                   bundles: dict[tuple[str, str], Path]) -> None:
    path = bundles[(framework, shape)]
    report = bundler.verify(path)
    assert report.exit_code == 5
    assert report.suggested_profiles == [framework]
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


#: Runs ``bundler.cli.main`` for each argument list given on stdin (JSON), in one child process: the exit code and
#: stderr of each command, as JSON lines. The child importing the libraries once keeps these tests fast; a child
#: dying by a signal fails the test.
_CLI_CHILD = """
import contextlib, io, json, os, sys
from bundler.cli import main
for cwd, argv in json.load(sys.stdin):
    os.chdir(cwd)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    print(json.dumps({"rc": rc, "stderr": err.getvalue(), "stdout": out.getvalue()}), flush=True)
"""


def _cli_child(commands: list[tuple[Path, list[str]]]) -> list[dict[str, Any]]:
    """Run the CLI commands in one child process (see ``_CLI_CHILD``)."""
    payload = json.dumps([[str(cwd), argv] for cwd, argv in commands])
    proc = subprocess.run([sys.executable, "-c", _CLI_CHILD], input=payload, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode >= 0, f"the CLI child died by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cli_pack_file_verify_load(framework: str, tmp_path: Path) -> None:
    """``bundler pack FILE`` refuses without the profile and packs with it; ``load`` refuses without it (the hint
    names the flag) and loads with it, from the flag or from ``[tool.bundler] trust-profiles``."""
    X, y = _data()
    model = make_pipeline(StandardScaler(), _model(framework)).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "X.npy", X[:20])
    out = str(tmp_path / "model.mlbundle")
    pack = ["pack", str(tmp_path / "model.joblib"), "-o", out, "--sample", str(tmp_path / "X.npy")]
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "pyproject.toml").write_text(f'[tool.bundler]\ntrust-profiles = ["{framework}"]\n')
    refused, packed, plain, verified, loaded, from_config = _cli_child([
        (tmp_path, pack), (tmp_path, [*pack, "--trust-profile", framework]), (tmp_path, ["load", out]),
        (tmp_path, ["verify", out, "--trust-profile", framework]),
        (tmp_path, ["load", out, "--trust-profile", framework]),
        (configured, ["load", out])])
    assert refused["rc"] == 5
    assert f"--trust-profile {framework}" in refused["stderr"]
    assert packed["rc"] == 0, packed["stderr"]
    assert plain["rc"] == 5, plain["stderr"]
    assert f"trust profile accepts the names its library pickles (and validates their state): --trust-profile " \
        f"{framework}\n" in plain["stderr"], plain["stderr"]
    assert "--trust " not in plain["stderr"]  # the profile covers every name: no raw --trust suggestion
    assert verified["rc"] == 0, verified["stderr"]
    assert loaded["rc"] == 0, loaded["stderr"]
    assert "behaviour check passed" in loaded["stdout"]
    assert from_config["rc"] == 0, from_config["stderr"]


@pytest.fixture(scope="module")
def hostile_outcomes(bundles: dict[tuple[str, str], Path],
                     tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """Every hostile sample through ``bundler load`` (its payload swapped into a clean bundle, as anyone can do
    to a checksum-only bundle) and ``bundler pack FILE``, in child processes."""
    folder = tmp_path_factory.mktemp("hostile-thirdparty")
    commands: list[tuple[Path, list[str]]] = []
    for name in sorted(EXPECTED):
        framework = EXPECTED[name]["profile"]
        sample = (HOSTILE / f"{name}.joblib").read_bytes()

        def swap(members: dict[str, bytes], sample: bytes = sample) -> None:
            members["model/model.joblib"] = sample
            for key in [k for k in members if k.startswith("sample/")]:
                del members[key]

        def drop_sample(doc: dict[str, Any]) -> None:
            doc.update(sample=None, files=[f for f in doc["files"] if not f["path"].startswith("sample/")])

        swapped = rewrite(bundles[(framework, "plain")], folder / f"{name}.mlbundle", members=swap,
                          manifest=drop_sample)
        commands.append((folder, ["load", str(swapped), "--trust-profile", framework]))
        commands.append((folder, ["pack", str(HOSTILE / f"{name}.joblib"), "-o", str(folder / f"{name}-out.mlbundle"),
                                  "--trust-profile", framework]))
    results = _cli_child(commands)
    names = sorted(EXPECTED)
    return {name: {"load": results[2 * i], "pack": results[2 * i + 1]} for i, name in enumerate(names)}


@pytest.mark.parametrize("verb", ["load", "pack"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_native_state_refused(name: str, verb: str,
                                      hostile_outcomes: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Exit 5, naming the path inside the model; never a trust hint for crafted state; nothing written."""
    expected, outcome = EXPECTED[name], hostile_outcomes[name][verb]
    assert outcome["rc"] == expected["exit"], outcome["stderr"]
    assert expected["path"] in outcome["stderr"]
    assert "refused before its native parser ran" in outcome["stderr"]
    assert "--trust " not in outcome["stderr"]


@pytest.mark.usefixtures("hostile_outcomes")  # the fixture runs every hostile pack; this checks what it left
def test_hostile_pack_writes_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = next(iter(tmp_path_factory.getbasetemp().glob("hostile-thirdparty*")))
    assert not list(folder.glob("*-out.mlbundle"))
