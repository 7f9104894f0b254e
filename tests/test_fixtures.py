"""Every committed fixture (fixtures/sklearn-X.Y/*.mlbundle), loaded under the environment running the tests.

What each test expects is derived, never hard-coded:

* the default policy pins scikit-learn exactly, so a fixture made under another scikit-learn version must be refused
  with an environment mismatch (exit 4) naming scikit-learn, and one made under this version must not be refused
  because of scikit-learn;
* with policy ``none`` the environment is only reported, so integrity (signature and every member hash) must pass;
* what happens when the fixture is forced to load (fails / a method raises / outputs differ silently / predicts the
  same) is what the committed cross-version matrix (``reports/matrix.json``, written by ``nox -s matrix``) observed
  in an environment with this very scikit-learn and numpy major, observed here by the matrix's own worker; if the
  matrix has no such environment the test is skipped, not guessed.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import bundler
from bundler.crossversion.cells import DRIFT, FAILS_TO_LOAD
from bundler.crossversion.runner import cell_from_record
from bundler.crossversion.worker import record_for

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures").glob("sklearn-*/*.mlbundle"))
MATRIX = ROOT / "reports" / "matrix.json"
INSTALLED = version("scikit-learn")
# loading across versions is the point here; scikit-learn's own warning about it is expected, not news
pytestmark = pytest.mark.filterwarnings("ignore:Trying to unpickle estimator")


def fixture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@cache
def matrix_cells() -> list[dict[str, Any]]:
    if not MATRIX.is_file():
        return []
    return list(json.loads(MATRIX.read_text(encoding="utf-8"))["cells"])


def outcome(status: str) -> str:
    """What forcing the load does, whatever the policy said."""
    return status if status in (FAILS_TO_LOAD, *DRIFT) else "predicts-the-same"


def bundled_sklearn(path: Path) -> str:
    return bundler.inspect(path).environment.packages["scikit-learn"]


def test_fixtures_are_committed() -> None:
    assert FIXTURES, "no fixtures under fixtures/sklearn-*/ (run `nox -s fixtures`)"
    versions = {p.parent.name for p in FIXTURES}
    assert len(versions) >= 8
    from fixtures.make_reference import models

    for version_dir in versions:  # every reference model under every version
        assert {p.stem for p in FIXTURES if p.parent.name == version_dir} == set(models()), version_dir
    for path in FIXTURES:
        assert path.stat().st_size < 512 * 1024, f"{path} is too large for a committed fixture"


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_default_policy_refuses_other_scikit_learn_versions(path: Path) -> None:
    report = bundler.verify(path)
    sklearn_problems = [p for p in report.problems if "scikit-learn" in p.message]
    if bundled_sklearn(path) != INSTALLED:
        assert not report.ok
        assert report.exit_code == 4, [p.message for p in report.problems]
        assert sklearn_problems
        assert all(p.kind == "environment" for p in report.problems)
        with pytest.raises(bundler.EnvironmentMismatch):
            bundler.load(path)
    else:
        assert sklearn_problems == []
        assert all(p.kind == "environment" for p in report.problems)


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_integrity_passes_with_policy_none(path: Path) -> None:
    report = bundler.verify(path, policy="none")
    assert report.ok, [p.message for p in report.problems]


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_forced_load_matches_the_committed_matrix(path: Path) -> None:
    import numpy

    bundled_label = path.parent.name.split("-", 1)[1]
    numpy_major = numpy.__version__.split(".")[0]
    expected = [c for c in matrix_cells()
                if c["model"] == path.stem and c["bundled"] == bundled_label
                and c["environment"].get("scikit-learn") == INSTALLED
                and str(c["environment"].get("numpy", "")).split(".")[0] == numpy_major]
    if not expected:
        pytest.skip(f"the committed matrix has no environment with scikit-learn {INSTALLED} and numpy "
                    f"{numpy_major}.x")
    record = record_for(str(path))
    observed = cell_from_record(record, model=path.stem, bundled=bundled_label, loaded=INSTALLED,
                                package="scikit-learn")
    assert outcome(observed.status) == outcome(expected[0]["status"]), (expected[0], record)
