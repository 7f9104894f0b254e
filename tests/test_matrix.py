"""The cross-version matrix: classification, environment requirements, reports, and one real cell (this env)."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from bundler.crossversion import matrix
from bundler.crossversion.matrix import (
    FAILS_TO_LOAD,
    LOADS_PREDICTS_SAME,
    PREDICTIONS_DIFFER,
    REFUSED_BY_POLICY,
    SAME_VERSION_OK,
    STATUSES,
    Cell,
    cell_from_record,
    classify,
    env_requirements,
    sklearn_requirement,
    version_tuple,
    write_reports,
)
from bundler.errors import UsageError


@pytest.mark.parametrize(
    ("same", "accepted", "error", "behaviour", "expected"),
    [
        (True, True, None, [], SAME_VERSION_OK),
        (False, True, None, [], LOADS_PREDICTS_SAME),
        (False, False, None, [], REFUSED_BY_POLICY),
        (True, False, None, [], REFUSED_BY_POLICY),  # e.g. same scikit-learn, numpy of another major
        (False, False, None, ["predict: 3 of 40 rows differ"], PREDICTIONS_DIFFER),
        (True, True, None, ["predict_proba: 1 of 40 rows differ"], PREDICTIONS_DIFFER),
        (False, False, "EnvironmentMismatch: no module named sklearn.foo", [], FAILS_TO_LOAD),
        (False, True, "boom", ["ignored: it never loaded"], FAILS_TO_LOAD),
    ],
)
def test_classify(same: bool, accepted: bool, error: str | None, behaviour: list[str], expected: str) -> None:
    assert classify(same_version=same, policy_accepted=accepted, load_error=error, behaviour=behaviour) == expected


def test_version_helpers() -> None:
    assert version_tuple("1.4.1.post1") == (1, 4, 1)
    assert version_tuple("1.10.0rc1") == (1, 10, 0)
    assert sklearn_requirement("1.5") == "scikit-learn==1.5.*"
    assert sklearn_requirement("1.5.2") == "scikit-learn==1.5.2"
    with pytest.raises(UsageError):
        sklearn_requirement("latest")


PINS = ["joblib==1.4.2", "numpy==2.1.3", "scikit-learn==1.5.2", "scipy==1.14.1", "threadpoolctl==3.5.0"]


def test_env_requirements_only_changes_sklearn_when_it_can() -> None:
    reqs, adjustments = env_requirements(PINS, "1.6")
    assert reqs[0] == "scikit-learn==1.6.*"
    assert sorted(reqs[1:]) == sorted(p for p in PINS if not p.startswith("scikit-learn"))
    assert adjustments == []
    # 1.4 means 1.4.2, the first release built for numpy 2
    assert "numpy==2.1.3" in env_requirements(PINS, "1.4")[0]


@pytest.mark.parametrize("old", ["1.3", "1.2.2", "1.4.1.post1"])
def test_env_requirements_relax_numpy_for_old_sklearn(old: str) -> None:
    reqs, adjustments = env_requirements(PINS, old)
    assert "numpy<2" in reqs and "numpy==2.1.3" not in reqs
    assert len(adjustments) == 1 and "numpy 1.x" in adjustments[0]
    # a numpy-1 pin is kept as it is
    kept, none = env_requirements(["numpy==1.26.4", "scikit-learn==1.5.2"], old)
    assert "numpy==1.26.4" in kept and none == []


def test_env_requirements_relax_on_request_and_refuse_ancient() -> None:
    reqs, adjustments = env_requirements(PINS, "1.7", relax=matrix.SKLEARN_DEPENDENCIES)
    assert set(reqs) == {"scikit-learn==1.7.*", "joblib", "numpy", "scipy", "threadpoolctl"}
    assert len(adjustments) == 4
    with pytest.raises(UsageError, match="no wheels"):
        env_requirements(PINS, "1.0")


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"environment": {"scikit-learn": "1.6.1"}, "verify": {"ok": False, "exit_code": 4,
                            "problems": ["scikit-learn: 1.5.2 pinned, 1.6.1 installed"]}, "error": None,
                            "behaviour": [], "seconds": 0.5}
    base.update(overrides)
    return base


def test_cell_from_record() -> None:
    cell = cell_from_record(record(), model="m", bundled="1.5.2", loaded="1.6")
    assert (cell.status, cell.policy) == (REFUSED_BY_POLICY, "refused")
    assert cell.policy_problems == ["scikit-learn: 1.5.2 pinned, 1.6.1 installed"]
    drift = cell_from_record(record(behaviour=["predict: 2 of 40 rows differ"]), model="m", bundled="1.5.2",
                             loaded="1.6")
    assert drift.status == PREDICTIONS_DIFFER
    same = cell_from_record(record(verify={"ok": True, "exit_code": 0, "problems": []}), model="m",
                            bundled="1.6.1", loaded="1.6.1")
    assert same.status == SAME_VERSION_OK
    broken = cell_from_record(record(verify={"ok": False, "exit_code": 3, "problems": ["bad hash"]},
                                     error="IntegrityError: bad hash"), model="m", bundled="1.6.1", loaded="1.6")
    assert (broken.status, broken.policy) == (FAILS_TO_LOAD, "error")


def fake_cells() -> list[Cell]:
    cells = []
    for model in ("linear", "knn"):
        for x in ("1.2", "1.10", "1.9"):
            for y in ("1.2", "1.10", "1.9"):
                status = SAME_VERSION_OK if x == y else REFUSED_BY_POLICY
                error = None
                if (model, x, y) == ("knn", "1.10", "1.2"):
                    status, error = FAILS_TO_LOAD, "EnvironmentMismatch: module numpy._core not found"
                behaviour = ["predict: 1 of 40 rows differ"] if (model, x, y) == ("linear", "1.2", "1.9") else []
                if behaviour:
                    status = PREDICTIONS_DIFFER
                cells.append(Cell(model=model, bundled=x, loaded=y, status=status, error=error, behaviour=behaviour,
                                  adjustments=["numpy<2 added"] if y == "1.2" else []))
    return cells


def test_reports(tmp_path: Path) -> None:
    paths = write_reports(fake_cells(), tmp_path, meta={"duration_seconds": 1.0})
    names = {p.name for p in paths}
    assert {"matrix.md", "matrix.json"} <= names
    text = (tmp_path / "matrix.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| bundled"))
    assert header.split("|")[2:5] == [" 1.2 ", " 1.9 ", " 1.10 "]  # versions sort numerically, not as text
    assert "FAIL 1/2" in text and "DIFFER 1/2" in text
    assert "module numpy._core not found" in text and "numpy<2 added" in text
    data = json.loads((tmp_path / "matrix.json").read_text(encoding="utf-8"))
    assert data["counts"][FAILS_TO_LOAD] == 1 and data["counts"][PREDICTIONS_DIFFER] == 1
    assert sum(data["counts"].values()) == len(data["cells"]) == 18
    assert set(data["statuses"]) == set(STATUSES)
    if "matrix.png" in names:
        assert (tmp_path / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_is_skipped_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    paths = write_reports(fake_cells(), tmp_path)
    assert [p.name for p in paths] == ["matrix.md", "matrix.json"]
    assert "matplotlib is not installed" in capsys.readouterr().err


def test_fixture_bundles_are_ordered_by_version(tmp_path: Path) -> None:
    for name in ("sklearn-1.10", "sklearn-1.9", "sklearn-1.2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "b.mlbundle").write_bytes(b"")
        (tmp_path / name / "a.mlbundle").write_bytes(b"")
    found = [(x, m) for x, m, _ in matrix.fixture_bundles(tmp_path)]
    assert found == [("1.2", "a"), ("1.2", "b"), ("1.9", "a"), ("1.9", "b"), ("1.10", "a"), ("1.10", "b")]


def test_user_matrix_needs_bundle_and_versions(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    matrix.add_parser(sub)
    args = parser.parse_args(["matrix", str(tmp_path / "missing.mlbundle"), "--versions", "1.5"])
    with pytest.raises(UsageError, match="no such bundle"):
        matrix.run(args)
    with pytest.raises(UsageError):
        matrix.run(parser.parse_args(["matrix"]))


def test_real_cell_in_this_environment_via_worker(packed: Path) -> None:
    """One real cell without building an environment: this interpreter, the API path used by the fixture matrix."""
    [rec] = matrix.worker([str(packed)])
    assert rec["verify"]["ok"] is True and rec["error"] is None and rec["behaviour"] == []
    installed = version("scikit-learn")
    cell = cell_from_record(rec, model="model", bundled=installed, loaded=installed)
    assert cell.status == SAME_VERSION_OK


def test_real_cell_in_this_environment_via_cli(packed: Path) -> None:
    """The user-bundle path: the real ``bundler verify --json`` and ``bundler load --policy none --json``."""
    rec = matrix.run_cli_cell(Path(sys.executable), str(packed))
    assert rec["environment"]["scikit-learn"] == version("scikit-learn")
    cell = cell_from_record(rec, model="model", bundled=version("scikit-learn"), loaded=version("scikit-learn"))
    assert cell.status == SAME_VERSION_OK, rec
