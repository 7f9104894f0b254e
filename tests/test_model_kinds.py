"""Every kind of model people ship (``tests/model_kinds.py``) packs with a sample through the API and the CLI,
verifies, loads and passes its behaviour check; a tampered sample member is an integrity failure; a DataFrame sample
where pandas cannot be imported is an environment problem naming pandas; and each bundle loads in an interpreter
that may import only what its requirements.txt pins plus bundler (the offline stand-in for a fresh virtual
environment; ``nox -s deploy`` builds the real ones)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

import bundler
from bundler.cli import main
from bundler.errors import EnvironmentMismatch, IntegrityError
from tests.helpers import rewrite
from tests.model_kinds import KINDS, Kind, make

#: What each kind's sample is stored as: through the API (the object itself) and the CLI (the file it came from).
API_KIND = {"text": "list", "text_series": "series", "dataframe": "dataframe", "hgb_categorical": "dataframe",
            "sparse": "sparse", "grid_search": "array", "calibrated": "array", "stacking": "array",
            "regressor": "dataframe", "clusterer": "array", "isolation_forest": "array"}
CLI_KIND = {**API_KIND, "text_series": "list"}


@pytest.fixture(scope="module", params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return make(request.param)


@pytest.fixture(autouse=True)
def one_native_thread() -> Any:
    """Tiny models predict in microseconds; OpenMP threads fighting over two busy cores make it seconds."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _outputs(model: Any, sample: Any) -> dict[str, Any]:
    return {m: np.asarray(getattr(model, m)(sample)) for m in ("predict", "predict_proba", "decision_function")
            if hasattr(model, m)}


def test_pack_verify_load_through_the_api(kind: Kind, tmp_path: Path) -> None:
    path = tmp_path / f"{kind.name}.mlbundle"
    manifest = bundler.pack(kind.model, path, sample=kind.sample)
    assert manifest.sample is not None
    assert manifest.sample["input"]["kind"] == API_KIND[kind.name]
    pins = {line.split("==")[0] for line in manifest.requirements}
    assert {"scikit-learn", "numpy", "joblib"} <= pins
    assert ("pandas" in pins) is kind.dataframe
    assert bundler.verify(path).ok
    model, report = bundler.load_with_report(path)
    assert "behaviour" in report.checked
    for method, expected in _outputs(kind.model, kind.sample).items():
        np.testing.assert_array_equal(np.asarray(getattr(model, method)(kind.sample)), expected)

    first_input = min(f.path for f in manifest.files if f.path.startswith("sample/input"))
    tampered = rewrite(path, tmp_path / "tampered.mlbundle", rehash=False, members=lambda m: m.update(
        {first_input: m[first_input][:-1] + bytes([m[first_input][-1] ^ 0x01])}))
    report = bundler.verify(tampered)
    assert report.exit_code == 3, report.problems
    assert any(first_input in p.message and "altered" in p.message for p in report.problems), report.problems
    with pytest.raises(IntegrityError):
        bundler.load(tampered)


def test_pack_verify_load_through_the_cli(kind: Kind, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "model.joblib"
    joblib.dump(kind.model, src)
    sample = kind.write_sample(tmp_path)
    out = tmp_path / "model.mlbundle"
    assert main(["pack", str(src), "-o", str(out), "--sample", str(sample), "-q", "--no-config"]) == 0
    assert main(["verify", str(out), "-q", "--no-config"]) == 0
    assert main(["load", str(out), "--no-config"]) == 0
    captured = capsys.readouterr()
    assert "behaviour check passed" in captured.out, captured.err
    info = bundler.inspect(out).sample
    assert info is not None
    assert info["input"]["kind"] == CLI_KIND[kind.name]
    if sample.suffix == ".parquet":  # the file's dtypes, categories included, are what was recorded
        dtypes = {c["name"]: c["dtype"] for c in info["input"]["columns"]}
        assert dtypes["city"] == "category"
    assert main(["requirements", str(out), "-q", "--no-config"]) == 0
    assert capsys.readouterr().out.splitlines() == bundler.inspect(out).requirements

    member = "sample/input.npy" if info["input"]["kind"] == "array" else min(
        f.path for f in bundler.inspect(out).files if f.path.startswith("sample/input."))
    tampered = rewrite(out, tmp_path / "tampered.mlbundle", rehash=False,
                       members=lambda m: m.update({member: m[member][:-1] + bytes([m[member][-1] ^ 0x01])}))
    assert main(["load", str(tampered), "--no-config"]) == 3
    assert main(["requirements", str(tampered), "--no-config"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"member '{member}' altered" in captured.err


# -- environments that lack something ------------------------------------------------------------------------------
#: Loads bundles in an interpreter whose imports are limited to ``allowed`` top-level modules (a bundle's pins,
#: bundler's own runtime dependencies) and the standard library.
RESTRICTED = textwrap.dedent("""
    import importlib.abc, json, sys
    allowed = set(json.loads(sys.argv[1]))

    class OnlyPinned(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            top = fullname.split(".")[0]
            if (top in allowed or top in sys.stdlib_module_names or top in sys.builtin_module_names
                    or top.startswith("_sysconfigdata")):
                return None  # let the normal finders import it
            raise ModuleNotFoundError(f"No module named {top!r} (not in requirements.txt)", name=top)

    sys.meta_path.insert(0, OnlyPinned())
    from bundler.cli import main
    print(json.dumps({path: main(["load", path, "--no-config"]) for path in sys.argv[2:]}))
""")


def _run(args: list[str]) -> tuple[dict[str, int], str]:
    import os

    result = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _top_level_modules(distribution: str) -> set[str]:
    from importlib import metadata

    tops: set[str] = set()
    for file in metadata.distribution(distribution).files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".egg-info", ".data")) or first in ("..", "__pycache__"):
            continue
        tops.add(first.split(".")[0])
    return tops


def test_environments_that_lack_a_package(tmp_path: Path) -> None:
    """Every kind loads in an interpreter that may import only what its requirements.txt pins plus bundler's own
    dependencies (one interpreter per distinct set of pins, so a module imported for one bundle never helps
    another)."""
    from bundler.environment.requirements import dependency_closure

    bundles = {}
    for name in sorted(KINDS):
        kind = make(name)
        bundles[name] = tmp_path / f"{name}.mlbundle"
        bundler.pack(kind.model, bundles[name], sample=kind.sample)

    own = set(dependency_closure(["bundler"]))
    groups: dict[frozenset[str], list[Path]] = {}
    for path in bundles.values():
        dists = own | {line.split("==")[0] for line in bundler.inspect(path).requirements}
        names = frozenset({"bundler"} | set().union(*(_top_level_modules(d) for d in dists)))
        groups.setdefault(names, []).append(path)
    assert len(groups) >= 2
    assert any("pandas" not in names for names in groups)
    for names, paths in groups.items():
        codes, stderr = _run([RESTRICTED, json.dumps(sorted(names)), *map(str, paths)])
        assert codes == dict.fromkeys(map(str, paths), 0), stderr
    # Where pandas cannot be imported (the same interpreter, pandas taken out), a DataFrame or Series sample is an
    # environment problem naming pandas (exit 4), never drift: this is also the control that the restriction bites.
    with_pandas = next(names for names, paths in groups.items() if bundles["regressor"] in paths)
    frames = [bundles["dataframe"], bundles["text_series"], bundles["regressor"]]
    codes, stderr = _run([RESTRICTED, json.dumps(sorted(with_pandas - {"pandas"})), *map(str, frames)])
    assert codes == dict.fromkeys(map(str, frames), 4), stderr
    assert stderr.count("needs pandas; pandas is not installed in this environment") == 3, stderr
    assert "Traceback" not in stderr
    assert "BEHAVIOUR" not in stderr


def test_missing_package_is_an_environment_mismatch_in_the_api(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through the API: ``EnvironmentMismatch`` naming pandas, never ``BehaviourDrift``."""
    kind = make("regressor")
    path = tmp_path / "regressor.mlbundle"
    bundler.pack(kind.model, path, sample=kind.sample)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(EnvironmentMismatch, match="needs pandas") as info:
        bundler.load(path)
    assert info.value.exit_code == 4
    assert bundler.load(path, check_behaviour=False) is not None  # the model itself needs no pandas to load
