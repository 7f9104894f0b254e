"""One configuration for CLI and API: ``bundler.Settings``, built from ``[tool.bundler]`` only when asked for,
applied alike to pack, verify and load; flags and call arguments win over the file, entirely."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest

import bundler
from bundler.cli import main
from bundler.environment.policy import Policy
from bundler.errors import BundlerWarning, UnsafeContent, UsageError
from tests.custom_model import CustomModel
from tests.helpers import claim_other_version

CUSTOM = "tests.custom_model.CustomModel"


def _pyproject(folder: Path, text: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(text)
    return path


@pytest.fixture
def claimed(packed: Path, tmp_path: Path) -> Path:
    """A bundle whose manifest says scikit-learn 1.2.2 (the default policy refuses it here)."""
    dst = tmp_path / "claimed.mlbundle"
    claim_other_version(packed, dst, "scikit-learn", "1.2.2")
    return dst


@pytest.fixture
def custom_bundle(tmp_path: Path) -> Path:
    path = tmp_path / "custom.mlbundle"
    with pytest.warns(BundlerWarning):
        bundler.pack(CustomModel(), path)
    return path


# -- reading ------------------------------------------------------------------------------------------------------
def test_reads_policy_and_trust(tmp_path: Path) -> None:
    path = _pyproject(tmp_path, '[tool.bundler]\ntrust = ["pkg.Model"]\n[tool.bundler.policy]\n"*" = "minor"\n'
                                'NumPy = "major"\n')
    settings = bundler.Settings.from_pyproject(path)
    assert settings.policy == "minor"
    assert settings.rules == {"numpy": "major"}
    assert settings.trust == ("pkg.Model",)
    assert settings.source == path
    assert settings.to_policy() == Policy("minor", {"numpy": "major"})


def test_a_folder_means_the_nearest_pyproject_above_it(tmp_path: Path) -> None:
    _pyproject(tmp_path, '[tool.bundler.policy]\n"*" = "exact"\n')
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    assert bundler.Settings.from_pyproject(tmp_path / "sub" / "deeper").policy == "exact"
    assert bundler.Settings.discover(tmp_path / "sub").policy == "exact"


def test_no_pyproject_means_no_settings(tmp_path: Path) -> None:
    assert bundler.Settings.from_pyproject(tmp_path) == bundler.Settings()
    with pytest.raises(UsageError, match="no such file"):
        bundler.Settings.from_pyproject(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [("not toml [", "not valid TOML"), ("[tool.bundler]\npolicy = 3\n", "must be a table"),
     ("[tool.bundler]\nunknown = 1\n", "unknown keys in \\[tool.bundler\\]: unknown"),
     ("[tool.bundler]\ntrust = 'x'\n", "trust must be a list of strings"),
     ("[tool.bundler.policy]\nnumpy = 1\n", "'numpy' must be a string"),
     ("[tool.bundler.policy]\nnumpy = 'sometimes'\n", "'sometimes' is neither a rule")],
)
def test_malformed_is_a_usage_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _pyproject(tmp_path, text)
    with pytest.raises(UsageError, match=message) as info:
        bundler.Settings.from_pyproject(path)
    assert str(path) in info.value.problems[0]


def test_explicit_choices_win_entirely() -> None:
    file = bundler.Settings(policy="minor", rules={"scikit-learn": ">=1.5,<1.10", "numpy": "major"}, trust=("a.B",))
    exact = file.merged(policy="exact")  # --policy exact: the whole table goes, scikit-learn's rule included
    assert exact.to_policy() == Policy("exact")
    assert exact.to_policy().rule_for("scikit-learn", []) == "exact"
    one = file.merged(allow={"NumPy": "exact"})  # --allow: that package's rule only
    assert one.to_policy() == Policy("minor", {"scikit-learn": ">=1.5,<1.10", "numpy": "exact"})
    both = file.merged(policy="major", allow={"scipy": "none"})
    assert both.to_policy() == Policy("major", {"scipy": "none"})
    given = file.merged(policy=Policy("default", {"x": "none"}))
    assert given.to_policy() == Policy("default", {"x": "none"})
    assert file.merged(trust=["c.D", "a.B"]).trust == ("a.B", "c.D")  # trust is a grant: added


# -- the library reads no file -----------------------------------------------------------------------------------
def test_library_ignores_the_working_directory(claimed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              custom_bundle: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    path = _pyproject(folder, f'[tool.bundler]\ntrust = ["{CUSTOM}"]\n[tool.bundler.policy]\nscikit-learn = "none"\n')
    monkeypatch.chdir(folder)
    assert bundler.verify(claimed).exit_code == 4
    with pytest.raises(UnsafeContent):
        bundler.load(custom_bundle)
    settings = bundler.Settings.from_pyproject(path)
    assert bundler.verify(claimed, settings=settings).ok
    assert bundler.load(claimed, settings=settings) is not None
    assert isinstance(bundler.load(custom_bundle, settings=settings), CustomModel)
    # a call argument wins over the settings, as a flag wins over the file
    assert bundler.verify(claimed, settings=settings, policy="exact").exit_code == 4


def test_trust_applies_to_pack_of_a_file(tmp_path: Path) -> None:
    src = tmp_path / "custom.joblib"
    joblib.dump(CustomModel(), src)
    with pytest.raises(UnsafeContent):
        bundler.pack_file(src, tmp_path / "a.mlbundle")
    settings = bundler.Settings(trust=(CUSTOM,))
    with pytest.warns(BundlerWarning, match="no installed distribution provides"):
        bundler.pack_file(src, tmp_path / "a.mlbundle", settings=settings)
    assert isinstance(bundler.load(tmp_path / "a.mlbundle", settings=settings), CustomModel)


def test_settings_must_be_settings(packed: Path) -> None:
    with pytest.raises(UsageError, match=r"bundler\.Settings"):
        bundler.verify(packed, settings={"policy": "exact"})  # type: ignore[arg-type]


def test_against_accepts_a_path(packed: Path, tmp_path: Path) -> None:
    pins = bundler.inspect(packed).requirements
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("\n".join(pins) + "\n")
    assert bundler.verify(packed, against=freeze).ok
    assert bundler.verify(packed, against=str(freeze)).ok
    freeze.write_text("\n".join(p for p in pins if not p.startswith("scikit-learn==")) + "\nscikit-learn==1.2.2\n")
    report = bundler.verify(packed, against=freeze)
    assert report.exit_code == 4
    assert "scikit-learn" in report.problems[0].message
    with pytest.raises(UsageError, match=r"missing\.txt: cannot read target environment file"):
        bundler.verify(packed, against=tmp_path / "missing.txt")


def test_api_errors_speak_api(custom_bundle: Path) -> None:
    with pytest.raises(UnsafeContent) as info:
        bundler.load(custom_bundle)
    text = str(info.value)
    assert f"trust=['{CUSTOM}']" in text
    assert "--trust" not in text
    assert not any("--trust" in line for line in info.value.problems)
    report = bundler.verify(custom_bundle)
    assert [h.api for h in report.hints()] == [f"trust=['{CUSTOM}']"]
    assert report.to_dict()["hints"] == [{"text": "only if you trust where this payload came from, accept it with",
                                          "api": f"trust=['{CUSTOM}']", "cli": f"--trust {CUSTOM}"}]


# -- the command line -----------------------------------------------------------------------------------------------
def test_cli_reads_the_nearest_pyproject_and_flags_win(claimed: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    # a file rule that accepts the claimed scikit-learn 1.2.2
    _pyproject(folder, '[tool.bundler.policy]\nscikit-learn = ">=1.2,<1.10"\n')
    monkeypatch.chdir(folder / "sub")
    assert main(["verify", str(claimed), "-q"]) == 0
    assert main(["verify", str(claimed), "-q", "--policy", "exact"]) == 4  # the flag replaces the file's table
    assert main(["verify", str(claimed), "-q", "--allow", "scikit-learn", "exact"]) == 4
    assert main(["verify", str(claimed), "-q", "--no-config"]) == 4
    other = _pyproject(tmp_path, '[tool.bundler.policy]\n"*" = "none"\n')
    assert main(["verify", str(claimed), "-q", "--config", str(other)]) == 0
    assert main(["load", str(claimed), "-q", "--config", str(other)]) == 0
    capsys.readouterr()
    assert main(["verify", str(claimed), "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_cli_trust_from_file_applies_to_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "custom.joblib"
    joblib.dump(CustomModel(), src)
    out = tmp_path / "custom.mlbundle"
    monkeypatch.chdir(tmp_path)
    assert main(["pack", str(src), "-o", str(out)]) == 5
    err = capsys.readouterr().err
    assert f"hint: only if you trust where this payload came from, accept it with: --trust {CUSTOM}" in err
    assert "trust=[" not in err  # CLI users are told about flags
    _pyproject(tmp_path, f'[tool.bundler]\ntrust = ["{CUSTOM}"]\n')
    assert main(["pack", str(src), "-o", str(out), "-q"]) == 0
    assert main(["load", str(out), "-q"]) == 0
    assert main(["load", str(out), "-q", "--no-config"]) == 5


@pytest.mark.parametrize("verb", ["verify", "load", "inspect", "requirements"])
def test_debug_never_changes_the_exit_code(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.mlbundle"
    assert main([verb, str(missing)]) == 2
    plain = capsys.readouterr().err
    assert main([verb, str(missing), "--debug"]) == 2
    debug = capsys.readouterr().err
    assert "Traceback" in debug
    assert "Traceback" not in plain
    assert "missing.mlbundle: no such file" in plain
    assert "missing.mlbundle: no such file" in debug


def test_debug_keeps_environment_exit_code(claimed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", str(claimed), "--debug", "--no-config"]) == 4
    capsys.readouterr()
    assert main(["load", str(claimed), "--debug", "--no-config", "--json"]) == 4
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["ok"] is False
    assert doc["exit_code"] == 4
    assert "Traceback" in captured.err
