"""The cross-version matrix: statuses, environment plans, reports, exit codes, and real cells in this environment.

Building environments for other releases needs the package index, so it lives in ``nox -s matrix`` whose output is
committed (``reports/``); everything here runs offline: the worker in this interpreter, the CLI in subprocesses.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from bundler.crossversion import runner
from bundler.crossversion.cells import (
    FAILS_TO_LOAD,
    LOADS_PREDICTS_SAME,
    METHOD_RAISES,
    NOT_INSTALLABLE,
    OUTPUTS_DIFFER,
    REFUSED_BY_POLICY,
    SAME_VERSION_OK,
    STATUSES,
    Cell,
    cell_from_dict,
    classify,
    version_key,
)
from bundler.crossversion.cli import exit_code
from bundler.crossversion.environments import plan_environment, requested_spec
from bundler.crossversion.reports import summary_cell, write_reports
from bundler.environment.pins import Pin
from bundler.errors import UsageError
from tests.conftest import ROOT

FIXTURES = ROOT / "fixtures"
INSTALLED = version("scikit-learn")
pytestmark = pytest.mark.filterwarnings("ignore:Trying to unpickle estimator")


@pytest.mark.parametrize(
    ("same", "accepted", "error", "differs", "raises", "expected"),
    [
        (True, True, None, [], [], SAME_VERSION_OK),
        (False, True, None, [], [], LOADS_PREDICTS_SAME),
        (False, False, None, [], [], REFUSED_BY_POLICY),
        (True, False, None, [], [], REFUSED_BY_POLICY),  # e.g. same scikit-learn, numpy of another major
        (False, False, None, ["predict_proba: 40 of 40 rows differ"], [], OUTPUTS_DIFFER),
        (False, False, None, [], ["predict_proba: now raises AttributeError: monotonic_cst"], METHOD_RAISES),
        # the silent fact wins over the loud one in the same cell
        (False, True, None, ["predict: 3 of 40 rows differ"], ["predict_proba: now raises X"], OUTPUTS_DIFFER),
        (False, False, "EnvironmentMismatch: no module named sklearn.foo", [], [], FAILS_TO_LOAD),
        (False, True, "boom", ["ignored: it never loaded"], [], FAILS_TO_LOAD),
    ],
)
def test_classify(same: bool, accepted: bool, error: str | None, differs: list[str], raises: list[str],
                  expected: str) -> None:
    assert classify(same_version=same, policy_accepted=accepted, load_error=error, differs=differs,
                    raises=raises) == expected


def test_statuses_order_puts_silent_drift_last() -> None:
    assert STATUSES[-1] == OUTPUTS_DIFFER
    assert STATUSES[-2] == METHOD_RAISES
    assert [v for v in sorted(["1.10", "not pinned", "1.9", "1.2.2"], key=version_key)] == [
        "1.2.2", "1.9", "1.10", "not pinned"]


def test_requested_spec() -> None:
    assert requested_spec("scikit-learn", "1.5") == "scikit-learn==1.5.*"
    assert requested_spec("scikit-learn", "1.5.2") == "scikit-learn==1.5.2"
    assert requested_spec("xgboost", "2.1") == "xgboost==2.1.*"
    for bad in ("latest", "2", "1.5; os_name=='nt'", "1.5 --index-url=x"):
        with pytest.raises(UsageError, match="version"):
            requested_spec("scikit-learn", bad)


PINS = tuple(Pin(n, v) for n, v in [("joblib", "1.4.2"), ("numpy", "2.1.3"), ("scikit-learn", "1.5.2"),
                                     ("scipy", "1.14.1"), ("threadpoolctl", "3.5.0")])


def test_plan_changes_only_the_varied_package() -> None:
    plan = plan_environment(PINS, "scikit-learn", "1.6.1")
    assert plan.requirements[0] == "scikit-learn==1.6.1"
    assert sorted(plan.requirements[1:]) == sorted(str(p) for p in PINS if p.name != "scikit-learn")
    assert plan.adjustments == []
    # 1.4.2 is the first release built for numpy 2
    assert "numpy==2.1.3" in plan_environment(PINS, "scikit-learn", "1.4.2").requirements


@pytest.mark.parametrize("old", ["1.3.2", "1.2.2", "1.4.1.post1"])
def test_plan_needs_numpy1_for_old_scikit_learn(old: str) -> None:
    plan = plan_environment(PINS, "scikit-learn", old)
    assert "numpy<2" in plan.requirements
    assert "numpy==2.1.3" not in plan.requirements
    assert len(plan.adjustments) == 1
    assert "numpy 1.x" in plan.adjustments[0]
    kept = plan_environment((Pin("numpy", "1.26.4"), Pin("scikit-learn", "1.5.2")), "scikit-learn", old)
    assert "numpy==1.26.4" in kept.requirements
    assert kept.adjustments == []


def test_plan_for_a_bundle_that_pins_no_scikit_learn() -> None:
    """An XGBoost bundle pins xgboost and numpy only: scikit-learn is varied all the same, or the framework."""
    pins = (Pin("numpy", "2.1.3"), Pin("scipy", "1.14.1"), Pin("xgboost", "2.1.4"))
    plan = plan_environment(pins, "scikit-learn", "1.6.1")
    assert plan.requirements == ["scikit-learn==1.6.1", "numpy==2.1.3", "scipy==1.14.1", "xgboost==2.1.4"]
    assert plan.adjustments == ["scikit-learn==1.6.1 added (the bundle does not pin scikit-learn)"]
    other = plan_environment(pins, "xgboost", "2.0.3")
    assert other.requirements == ["xgboost==2.0.3", "numpy==2.1.3", "scipy==1.14.1"]
    assert other.adjustments == []


def test_plan_adds_pandas_for_a_dataframe_sample() -> None:
    plan = plan_environment(PINS, "scikit-learn", "1.6.1", dataframe_sample=True)
    assert plan.requirements[-1] == "pandas"
    assert "DataFrame" in plan.adjustments[-1]
    pinned = plan_environment((*PINS, Pin("pandas", "2.3.3")), "scikit-learn", "1.6.1", dataframe_sample=True)
    assert "pandas==2.3.3" in pinned.requirements
    assert pinned.adjustments == []


def fake_cells() -> list[Cell]:
    cells = []
    for model in ("linear", "knn", "binary"):
        for x in ("1.2", "1.10", "1.9"):
            for y in ("1.2", "1.10", "1.9"):
                cell = Cell(model=model, bundled=x, loaded=y, status=SAME_VERSION_OK if x == y else REFUSED_BY_POLICY,
                            adjustments=["numpy<2 added"] if y == "1.2" else [])
                if (model, x, y) == ("knn", "1.10", "1.2"):
                    cell.status, cell.error = FAILS_TO_LOAD, "EnvironmentMismatch: module numpy._core not found"
                if (model, x, y) == ("binary", "1.9", "1.2"):
                    cell.status, cell.differs = OUTPUTS_DIFFER, ["predict_proba: 40 of 40 rows differ (max abs 0.15)"]
                if (model, x, y) == ("linear", "1.9", "1.2"):
                    cell.status, cell.raises = METHOD_RAISES, ["predict: now raises AttributeError: multi_class"]
                cells.append(cell)
    return cells


def test_summary_cell_names_the_silent_kind_first() -> None:
    cells = fake_cells()
    group = [c for c in cells if (c.bundled, c.loaded) == ("1.9", "1.2")]
    assert summary_cell(group) == "**SILENT 1** · RAISES 1 of 3"
    assert summary_cell([c for c in cells if (c.bundled, c.loaded) == ("1.10", "1.2")]) == "FAIL 1 of 3"
    assert summary_cell([c for c in cells if c.bundled == c.loaded == "1.2"]) == "ok 3/3"


def test_reports(tmp_path: Path) -> None:
    paths = write_reports(fake_cells(), tmp_path, meta={"duration_seconds": 1.0})
    assert {"matrix.md", "matrix.json"} <= {p.name for p in paths}
    text = (tmp_path / "matrix.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| bundled"))
    assert header.split("|")[2:5] == [" 1.2 ", " 1.9 ", " 1.10 "]  # versions sort numerically, not as text
    # the silent drift is listed before every table, the loud ones after
    assert text.index("## Silent drift") < text.index("## Summary") < text.index("## Loud failures")
    assert "- **binary** 1.9 → 1.2: loads and runs, but outputs differ SILENTLY: predict_proba: 40 of 40" in text
    assert "module numpy._core not found" in text
    assert "now raises AttributeError: multi_class" in text
    assert "numpy<2 added" in text
    data = json.loads((tmp_path / "matrix.json").read_text(encoding="utf-8"))
    assert (data["counts"][OUTPUTS_DIFFER], data["counts"][METHOD_RAISES], data["counts"][FAILS_TO_LOAD]) == (1, 1, 1)
    assert sum(data["counts"].values()) == len(data["cells"]) == 27
    assert set(data["statuses"]) == set(STATUSES)
    assert data["format"] == 2
    if "matrix.png" in {p.name for p in paths}:
        assert (tmp_path / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_is_skipped_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    paths = write_reports(fake_cells(), tmp_path)
    assert [p.name for p in paths] == ["matrix.md", "matrix.json"]
    assert "matplotlib is not installed" in capsys.readouterr().err


def test_exit_code_gates_on_drift_then_failure() -> None:
    cells = fake_cells()
    assert exit_code(cells) == 6
    assert exit_code([c for c in cells if c.status != OUTPUTS_DIFFER]) == 6  # a method that raises is drift too
    assert exit_code([c for c in cells if c.status not in (OUTPUTS_DIFFER, METHOD_RAISES)]) == 4
    assert exit_code([Cell("m", "1.5", "1.6", NOT_INSTALLABLE)]) == 4
    assert exit_code([c for c in cells if c.status in (SAME_VERSION_OK, REFUSED_BY_POLICY)]) == 0


def test_cell_from_dict_refuses_what_it_does_not_know() -> None:
    good = fake_cells()[0].to_dict()
    assert cell_from_dict(good, source="f.json") == fake_cells()[0]
    with pytest.raises(UsageError, match=r"f\.json: unknown status 'predictions-differ'"):
        cell_from_dict({**good, "status": "predictions-differ"}, source="f.json")
    with pytest.raises(UsageError, match=r"f\.json: a cell lacks loaded"):
        cell_from_dict({k: v for k, v in good.items() if k != "loaded"}, source="f.json")
    with pytest.raises(UsageError, match="unknown cell fields shell"):
        cell_from_dict({**good, "shell": "rm -rf /"}, source="f.json")


def test_fixture_bundles_are_ordered_by_version(tmp_path: Path) -> None:
    for name in ("sklearn-1.10", "sklearn-1.9", "sklearn-1.2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "b.mlbundle").write_bytes(b"")
        (tmp_path / name / "a.mlbundle").write_bytes(b"")
    found = [(x, m) for x, m, _ in runner.fixture_bundles(tmp_path)]
    assert found == [("1.2", "a"), ("1.2", "b"), ("1.9", "a"), ("1.9", "b"), ("1.10", "a"), ("1.10", "b")]


# ------------------------------------------------------------------------------------------ real cells, offline


def test_real_cell_in_this_environment(packed: Path, tmp_path: Path) -> None:
    """One real cell without building an environment: the worker in a fresh process of this interpreter."""
    [rec] = runner.run_workers(Path(sys.executable), [packed], tmp_path)
    assert rec["verify"]["ok"] is True
    assert rec["error"] is None
    assert rec["findings"] == []
    assert rec["environment"]["scikit-learn"] == INSTALLED
    assert rec["environment"]["numpy"] == version("numpy")
    cell = runner.cell_from_record(rec, model="model", bundled=INSTALLED, loaded=INSTALLED, package="scikit-learn")
    assert cell.status == SAME_VERSION_OK


def fixture(release: str, model: str) -> Path:
    return FIXTURES / f"sklearn-{release}" / f"{model}.mlbundle"


def test_dataframe_fixture_predicts_the_same_in_its_own_environment(tmp_path: Path) -> None:
    """The test environment holds what the stored sample needs: pandas for a DataFrame sample."""
    path = fixture(".".join(INSTALLED.split(".")[:2]), "dataframe_remainder")
    checked = runner.check_bundle(path)
    assert checked.dataframe_sample
    assert "pandas" not in {p.name for p in checked.pins}
    [rec] = runner.run_workers(Path(sys.executable), [path], tmp_path)
    assert rec["error"] is None, rec
    assert rec["findings"] == [], rec
    assert rec["environment"]["pandas"] == version("pandas")


def produce_cells(tmp_path: Path) -> list[Cell]:
    """Cells produced here: four fixtures of an old release and of this one, loaded by this interpreter."""
    loaded = ".".join(INSTALLED.split(".")[:2])
    paths = [fixture(release, model) for release in ("1.3", loaded)
             for model in ("binary_linear", "random_forest", "hist_gradient_boosting", "dataframe_remainder")]
    records = runner.run_workers(Path(sys.executable), paths, tmp_path / "work")
    return [runner.cell_from_record(rec, model=p.stem, bundled=p.parent.name.split("-")[1], loaded=loaded,
                                    package="scikit-learn", same_version=p.parent.name == f"sklearn-{loaded}")
            for p, rec in zip(paths, records, strict=True)]


def test_merge_of_locally_produced_cells(tmp_path: Path) -> None:
    from bundler.crossversion.reports import write_json
    from tests.conftest import run_cli

    cells = produce_cells(tmp_path)
    statuses = {c.status for c in cells}
    assert SAME_VERSION_OK in statuses, statuses
    assert statuses - {SAME_VERSION_OK}, statuses
    # two jobs, one folder each, as the workflow's artifacts arrive
    half = len(cells) // 2
    write_json(cells[:half], tmp_path / "job-a" / "cells.json", meta={"duration_seconds": 3.0})
    write_json(cells[half:], tmp_path / "job-b" / "sub" / "cells.json", meta={"duration_seconds": 4.5})
    result = run_cli("matrix", "--merge", tmp_path / "job-a", tmp_path / "job-b", "--reports", tmp_path / "out")
    assert result.returncode == exit_code(cells), result.stderr
    assert result.returncode in (4, 6)  # old fixtures do not all load and predict the same under this release
    merged = json.loads((tmp_path / "out" / "matrix.json").read_text(encoding="utf-8"))
    assert [cell_from_dict(c, source="merged") for c in merged["cells"]] == cells
    assert merged["meta"]["merged_files"] == 2
    assert merged["meta"]["job_seconds"] == 7.5
    assert f"matrix: {sum(1 for c in cells if c.status == SAME_VERSION_OK)} same-version-ok" in result.stderr

    # the same cell twice (a job re-run into another folder) is refused, naming both files; nothing is written
    write_json(cells[:1], tmp_path / "job-c" / "again.json")
    result = run_cli("matrix", "--merge", tmp_path / "job-a", tmp_path / "job-c", "--reports", tmp_path / "out2")
    assert result.returncode == 2
    assert "is also in" in result.stderr
    assert "again.json" in result.stderr
    assert not (tmp_path / "out2").exists()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not a readable JSON cells file"),
    ('{"format": 1, "cells": []}', "not a cells file of format 2 (found 1)"),
    ('[1, 2]', "not a cells file of format 2"),
])
def test_merge_refuses_a_bad_cells_file(tmp_path: Path, content: str, message: str) -> None:
    from tests.conftest import run_cli

    (tmp_path / "bad.json").write_text(content, encoding="utf-8")
    result = run_cli("matrix", "--merge", tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("matrix", "--merge", tmp_path / "nowhere")
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["matrix"], "give a BUNDLE and --versions"),
    (["matrix", "{tmp}/missing.mlbundle", "--versions", "1.5"], "no such bundle"),
    (["matrix", "--fixtures", str(FIXTURES), "--versions", "0.9"], "no reference environment for scikit-learn 0.9"),
], ids=["no-arguments", "missing-bundle", "unknown-release"])
def test_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    from tests.conftest import run_cli

    result = run_cli(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_gives_every_bundle_its_own_record_even_when_one_is_broken(packed: Path, tmp_path: Path) -> None:
    """A batch of three, the middle one not a bundle at all: each gets its own record, in order."""
    broken = tmp_path / "broken.mlbundle"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    records = runner.run_workers(Path(sys.executable), [packed, broken, packed], tmp_path / "work", jobs=1)
    assert [r["path"] for r in records] == [str(packed), str(broken), str(packed)]
    assert records[0]["error"] is None
    assert records[2]["error"] is None
    assert records[1]["verify"]["exit_code"] == 3
    assert records[1]["error"].startswith("IntegrityError")


def test_usage_error_with_json_file_keeps_stdout_empty(tmp_path: Path) -> None:
    """``matrix --json OUT`` names a file: an error is one line on stderr, never a JSON document on stdout."""
    from tests.conftest import run_cli

    out = tmp_path / "cells.json"
    result = run_cli("matrix", tmp_path / "missing.mlbundle", "--versions", "1.5", "--json", out)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "no such bundle" in result.stderr
    assert not out.exists()


def test_usage_error_with_json_flag_prints_the_document(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("matrix", tmp_path / "missing.mlbundle", "--versions", "1.5", "--json")
    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
