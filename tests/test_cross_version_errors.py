"""Fixtures made under scikit-learn 1.2 cannot be rebuilt under a current release: an environment problem (exit 4)
with a one-line reason, never an integrity failure (the bytes are the verified ones) and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import sklearn

import bundler
from bundler.errors import EnvironmentMismatch
from tests.conftest import ROOT, run_cli

OLD = ROOT / "fixtures" / "sklearn-1.2"
pytestmark = pytest.mark.skipif(sklearn.__version__.startswith("1.2."), reason="needs a scikit-learn other than 1.2")


@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn's InconsistentVersionWarning, expected here
@pytest.mark.parametrize(("name", "reason"), [("random_forest.mlbundle", "cannot be rebuilt in this environment"),
                                              ("knn.mlbundle", "which this environment lacks")])
def test_old_fixture_is_an_environment_problem(name: str, reason: str) -> None:
    path: Path = OLD / name
    assert bundler.verify(path, policy="none").ok
    with pytest.raises(EnvironmentMismatch) as info:
        bundler.load(path, policy="none")
    assert reason in info.value.problems[0]
    result = run_cli("load", path, "--policy", "none")
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
