"""Per-feature widths of scalers, on sparse input under ``python -O`` (bundler.safety.validators.widths).

scikit-learn scales sparse input with ``scale.take(X.indices, mode="clip")`` behind an ``assert`` of the widths.
A deploy process started with ``python -O`` loses that assert, and a crafted ``scale_`` of the wrong length then
scales the wrong columns with no error at all. These tests show that the class is real (the unprotected model
transforms without complaint under ``-O`` and raises without it), that bundler refuses the state under ``-O`` with
exit 5 naming the attribute, with and without the behaviour check, in ``load`` and in ``pack FILE --sample``, and
that an honest sparse pipeline with a sparse sample still packs and loads under ``-O``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .helpers import read_members, rewrite

NATIVE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile" / "native"
HOSTILE = NATIVE / "scaler_sparse_width.joblib"
WHERE = "model.steps[0][1].scale_"

_UNPROTECTED = """
import sys, joblib, numpy as np
from scipy import sparse
pipe = joblib.load(sys.argv[1])
X = sparse.csr_matrix(np.random.RandomState(1).uniform(size=(30, 4)) * 10)
try:
    pipe.steps[0][1].transform(X)
    pipe.predict_proba(X)
except AssertionError:
    print("assert")
else:
    print("transformed" if not __debug__ else "no-assert")
"""


def _bundler(*args: str | Path, optimize: bool = True) -> subprocess.CompletedProcess[str]:
    flags = ["-O"] if optimize else []
    proc = subprocess.run([sys.executable, *flags, "-m", "bundler", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode >= 0, f"bundler died by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real sparse pipeline, saved as joblib, with a sparse ``.npz`` sample."""
    folder = tmp_path_factory.mktemp("sparse")
    rng = np.random.RandomState(0)
    X = sparse.csr_matrix(rng.uniform(size=(80, 4)) * 10)
    y = (X.toarray()[:, 0] > 5).astype(int)
    pipe: Pipeline = make_pipeline(StandardScaler(with_mean=False), LogisticRegression()).fit(X, y)
    joblib.dump(pipe, folder / "pipe.joblib")
    sparse.save_npz(folder / "sample.npz", X[:20])
    return {"model": folder / "pipe.joblib", "sample": folder / "sample.npz", "dir": folder}


@pytest.mark.parametrize(("optimize", "outcome"), [(True, "transformed"), (False, "assert")])
def test_only_an_assert_stands_between_the_state_and_wrong_numbers(optimize: bool, outcome: str) -> None:
    """Without bundler: under ``-O`` the crafted scaler transforms and predicts; without ``-O`` it asserts."""
    flags = ["-O"] if optimize else []
    proc = subprocess.run([sys.executable, *flags, "-c", _UNPROTECTED, str(HOSTILE)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == outcome


def test_honest_sparse_pipeline_packs_and_loads_under_optimize(honest: dict[str, Path]) -> None:
    out = honest["dir"] / "honest.mlbundle"
    packed = _bundler("pack", honest["model"], "--sample", honest["sample"], "-o", out)
    assert packed.returncode == 0, packed.stderr
    loaded = _bundler("load", out)
    assert loaded.returncode == 0, loaded.stderr


@pytest.mark.parametrize("behaviour", [True, False], ids=["behaviour-check", "no-behaviour-check"])
def test_load_refuses_the_narrow_scale_under_optimize(honest: dict[str, Path], behaviour: bool) -> None:
    """The honest bundle (sparse sample included) with its payload swapped for the crafted pipeline and re-hashed,
    as anyone can do to a checksum-only bundle."""
    out = honest["dir"] / "for-swap.mlbundle"
    assert _bundler("pack", honest["model"], "--sample", honest["sample"], "-o", out).returncode == 0
    payload = next(n for n in read_members(out) if n.startswith("model/"))

    def swap(members: dict[str, bytes]) -> None:
        members[payload] = HOSTILE.read_bytes()

    swapped = rewrite(out, honest["dir"] / f"swapped-{behaviour}.mlbundle", members=swap)
    proc = _bundler("load", swapped, *([] if behaviour else ["--no-behaviour-check"]))
    assert proc.returncode == 5, proc.stderr
    assert WHERE in proc.stderr
    assert "1 values but n_features_in_ says 4 features" in proc.stderr


def test_pack_refuses_the_narrow_scale_under_optimize(honest: dict[str, Path]) -> None:
    out = honest["dir"] / "hostile.mlbundle"
    proc = _bundler("pack", HOSTILE, "--sample", honest["sample"], "-o", out)
    assert proc.returncode == 5, proc.stderr
    assert WHERE in proc.stderr
    assert not out.exists()
    assert not list(honest["dir"].glob("hostile.mlbundle*"))


def _crafted(kind: str) -> tuple[object, list[str]]:
    """A real fitted transformer with one piece of state changed, and the exact problem paths expected."""
    from sklearn.preprocessing import MaxAbsScaler, QuantileTransformer, RobustScaler

    X = np.random.RandomState(0).uniform(size=(40, 5))
    if kind == "honest-without-mean":
        return StandardScaler(with_mean=False).fit(X), []
    if kind == "mean-none-although-computed":
        m = StandardScaler().fit(X)
        m.mean_ = None
        return m, ["model.mean_"]
    if kind == "float-n-features-reported-once":
        m = StandardScaler().fit(X)
        m.n_features_in_ = 5.0
        return m, ["model.n_features_in_"]
    if kind == "object-scale":
        m = MaxAbsScaler().fit(X)
        m.scale_ = m.scale_.astype(object)
        return m, ["model.scale_"]
    if kind == "old-pickle-widths-disagree":
        r = RobustScaler().fit(X)
        del r.n_features_in_
        r.scale_ = r.scale_[:3]
        return r, ["model.scale_"]
    q = QuantileTransformer(n_quantiles=10).fit(X)
    q.quantiles_ = q.quantiles_[:, :2]
    q.references_ = q.references_[:4]
    return q, ["model.quantiles_", "model.references_"]


@pytest.mark.parametrize("kind", ["honest-without-mean", "mean-none-although-computed",
                                  "float-n-features-reported-once", "object-scale", "old-pickle-widths-disagree",
                                  "quantiles-narrow"])
def test_width_problems_name_each_attribute_once(kind: str) -> None:
    from bundler.safety.allowlist import DEFAULT_ALLOWLIST
    from bundler.safety.validators import validate_model

    model, expected = _crafted(kind)
    problems = validate_model(model, handed=None, allow=DEFAULT_ALLOWLIST)
    assert [p.path for p in problems] == expected, problems
