"""Requirements that make ``pip install -r requirements.txt`` enough: the bases of every class (MRO), pandas for
DataFrame models, the serializer's package; user pins that must match what is installed unless forced; ``-r FILE``."""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import bundler
from bundler.cli import main
from bundler.environment.requirements import infer_requirements, read_requirements_file, user_pins
from bundler.environment.runtime import base_modules, graph_facts, resolve_loaded
from bundler.errors import BundlerWarning, UsageError
from tests.custom_model import ClippedScaler

SKLEARN = importlib.metadata.version("scikit-learn")
NUMPY = importlib.metadata.version("numpy")


def _pins(manifest: Any) -> dict[str, str]:
    return dict(manifest.environment.packages)


def test_a_subclass_of_a_scikit_learn_estimator_pins_scikit_learn(tmp_path: Path) -> None:
    """The payload names only ``tests.custom_model.ClippedScaler`` (and numpy): scikit-learn comes from its MRO."""
    model = ClippedScaler().fit(np.random.RandomState(0).normal(size=(20, 3)))
    with pytest.warns(BundlerWarning) as caught:
        manifest = bundler.pack(model, tmp_path / "m.mlbundle")
    assert sorted(str(w.message).split(":")[0] for w in caught) == [
        "a default loader would refuse these globals", "the payload references modules no installed distribution "
        "provides (tests); a loader needs that code importable"]
    assert not any(g.startswith("sklearn") for g in manifest.globals), manifest.globals
    assert _pins(manifest)["scikit-learn"] == SKLEARN
    assert "scikit-learn" in manifest.frameworks  # its code runs: the default policy holds it exact
    assert {"scipy", "joblib", "threadpoolctl"} <= set(_pins(manifest))  # scikit-learn's own Requires-Dist


def test_base_modules_come_from_loaded_classes_only() -> None:
    assert resolve_loaded("tests.custom_model.ClippedScaler") is ClippedScaler
    assert resolve_loaded("tests.custom_model:ClippedScaler.transform") is ClippedScaler.transform
    assert resolve_loaded("not_imported_anywhere.Thing") is None
    assert {"tests", "sklearn"} <= base_modules(["tests.custom_model.ClippedScaler"])
    assert base_modules(["not_imported_anywhere.Thing", "<computed global>"]) == set()
    inferred = infer_requirements(["tests.custom_model.ClippedScaler", "numpy.dtype"],
                                  ["tests.custom_model.ClippedScaler"])
    assert "scikit-learn" in inferred.pins
    assert inferred.frameworks == ["scikit-learn"]
    assert inferred.unmapped == ["tests"]


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    return frame, (frame["a"] > 0).to_numpy().astype(int)


def test_pandas_is_pinned_for_a_model_fitted_on_a_dataframe(tmp_path: Path) -> None:
    frame, y = _frame()
    fitted = LogisticRegression().fit(frame, y)
    assert graph_facts(fitted).fitted_on_dataframe
    manifest = bundler.pack(fitted, tmp_path / "df.mlbundle")  # no sample at all
    assert _pins(manifest)["pandas"] == pd.__version__
    assert not any(g.startswith("pandas") for g in manifest.globals)  # nothing in the payload names it
    plain = bundler.pack(LogisticRegression().fit(frame.to_numpy(), y), tmp_path / "np.mlbundle",
                         sample=frame.to_numpy()[:5])
    assert "pandas" not in _pins(plain)


@pytest.mark.filterwarnings("ignore:X has feature names:UserWarning")  # fitted on numpy, checked on a DataFrame
def test_pandas_is_pinned_for_a_dataframe_sample(tmp_path: Path) -> None:
    frame, y = _frame()
    model = LogisticRegression().fit(frame.to_numpy(), y)  # fitted on numpy, checked on a DataFrame
    manifest = bundler.pack(model, tmp_path / "m.mlbundle", sample=frame.set_axis(["x0", "x1"], axis=1)[:5])
    assert "pandas" in _pins(manifest)
    assert manifest.sample is not None
    assert manifest.sample["pandas_version"] == pd.__version__


@pytest.mark.parametrize(("serializer", "package"), [("skops", "skops"), ("joblib", "joblib")])
def test_the_serializer_package_is_pinned(serializer: str, package: str, tmp_path: Path) -> None:
    manifest = bundler.pack({"weights": [1.0, 2.0]}, tmp_path / "m.mlbundle", serializer=serializer)
    assert _pins(manifest)[package] == importlib.metadata.version(package)


# -- user pins ------------------------------------------------------------------------------------------------------
def test_a_pin_that_contradicts_the_installed_version_is_refused(model: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        bundler.pack(model, tmp_path / "m.mlbundle", requirements=["scikit-learn==1.0.0", "notapkg-xyz==1.0",
                                                                    f"numpy=={NUMPY}"])
    assert info.value.problems == [
        f"requirement scikit-learn==1.0.0: the installed scikit-learn is {SKLEARN}",
        "requirement notapkg-xyz==1.0: notapkg-xyz is not installed in this environment"]
    assert "force_requirements=['scikit-learn==1.0.0', 'notapkg-xyz==1.0']" in str(info.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_installed_pin_is_accepted_with_its_dependencies(model: Any, tmp_path: Path) -> None:
    hypothesis = importlib.metadata.version("hypothesis")
    manifest = bundler.pack(model, tmp_path / "m.mlbundle", requirements=[f"Hypothesis=={hypothesis}"])
    pins = _pins(manifest)
    assert pins["hypothesis"] == hypothesis
    assert "attrs" in pins or "sortedcontainers" in pins  # hypothesis's own Requires-Dist
    assert bundler.verify(tmp_path / "m.mlbundle").ok  # verifies where it was made


def test_forced_pins_are_taken_as_given(model: Any, tmp_path: Path) -> None:
    with pytest.warns(BundlerWarning, match="forced pin scikit-learn==1.0.0: the installed scikit-learn is"):
        manifest = bundler.pack(model, tmp_path / "m.mlbundle", force_requirements=["scikit-learn==1.0.0"])
    assert _pins(manifest)["scikit-learn"] == "1.0.0"
    assert bundler.verify(tmp_path / "m.mlbundle").exit_code == 4  # as the warning said
    with pytest.raises(UsageError, match="both pinned and force-pinned"):
        user_pins([f"numpy=={NUMPY}"], [f"numpy=={NUMPY}"])


def test_requirements_file_read_as_pip_reads_it(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text(f"numpy=={NUMPY}  # the base\n")
    (tmp_path / "req.txt").write_text(
        "# deploy pins\n-r base.txt\n--index-url https://example.invalid/simple\n"
        f"scikit-learn=={SKLEARN} \\\n    --hash=sha256:{'0' * 64}\n"
        'pywin32==306; sys_platform == "win32"\n')
    assert read_requirements_file(tmp_path / "req.txt") == [f"numpy=={NUMPY}", f"scikit-learn=={SKLEARN}"]
    (tmp_path / "bad.txt").write_text("-e ./src\nmylib @ https://example.invalid/mylib.whl\nscipy>=1\n")
    with pytest.raises(UsageError) as info:
        read_requirements_file(tmp_path / "bad.txt")
    assert [p.split(": ", 1)[1] for p in info.value.problems] == ["'scipy>=1' does not pin an exact version "
                                                                  "(use name==version)"]
    (tmp_path / "loose.txt").write_text("-e ./src\nmylib @ https://example.invalid/mylib.whl\n")
    with pytest.raises(UsageError) as info:
        read_requirements_file(tmp_path / "loose.txt")
    assert len(info.value.problems) == 2
    assert "editable install" in info.value.problems[0]
    assert "direct reference" in info.value.problems[1]


def test_cli_pins(model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import joblib

    src = tmp_path / "m.joblib"
    joblib.dump(model, src)
    out = tmp_path / "m.mlbundle"
    assert main(["pack", str(src), "-o", str(out), "--requirement", "scikit-learn==1.0.0", "--no-config"]) == 2
    err = capsys.readouterr().err
    assert f"error: requirement scikit-learn==1.0.0: the installed scikit-learn is {SKLEARN}" in err
    assert "hint: pack where these versions are installed" in err
    assert "--force-requirement scikit-learn==1.0.0" in err
    assert not out.exists()
    req = tmp_path / "requirements.txt"
    req.write_text(f"numpy=={NUMPY}\n")
    assert main(["pack", str(src), "-o", str(out), "--requirement", str(req), "--no-config"]) == 2
    assert f"hint: to read a requirements file: -r {req}" in capsys.readouterr().err
    assert main(["pack", str(src), "-o", str(out), "-r", str(req), "--force-requirement", "gunicorn==22.0.0",
                 "-q", "--no-config"]) == 0
    assert "warning: forced pin gunicorn==22.0.0: gunicorn is not installed" in capsys.readouterr().err
    assert _pins(bundler.inspect(out))["gunicorn"] == "22.0.0"


def test_installed_metadata_is_reread_when_a_distribution_appears(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference remembers what it read from the installed metadata only while the installed set is the same."""
    from bundler.environment.requirements import dependency_closure, distributions_providing

    monkeypatch.syspath_prepend(str(tmp_path))
    assert distributions_providing(["fakemod_i11"]) == {}
    assert dependency_closure(["fakepkg-i11"]) == {}
    info = tmp_path / "fakepkg_i11-3.2.1.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text("fakemod_i11\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg-i11\nVersion: 3.2.1\n")
    importlib.invalidate_caches()  # importlib.metadata's own directory cache (keyed by a coarse mtime)
    assert distributions_providing(["fakemod_i11"]) == {"fakemod_i11": ["fakepkg-i11"]}
    assert dependency_closure(["fakepkg-i11"]) == {"fakepkg-i11": "3.2.1"}
    shutil.rmtree(info)
    importlib.invalidate_caches()
    assert distributions_providing(["fakemod_i11"]) == {}
    assert dependency_closure(["fakepkg-i11"]) == {}
