"""[tool.bundler] in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.errors import UsageError
from bundler.settings import load_config


def test_reads_policy_and_trust(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.bundler]\ntrust = ["pkg.Model"]\n[tool.bundler.policy]\n"*" = "minor"\nnumpy = "major"\n')
    config = load_config(path)
    assert config.policy == "minor" and config.overrides == {"numpy": "major"} and config.trust == ("pkg.Model",)


def test_found_in_parent_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.bundler.policy]\n"*" = "exact"\n')
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "sub" / "deeper")
    assert load_config().policy == "exact"


@pytest.mark.parametrize(
    "text",
    ["not toml [", "[tool.bundler]\npolicy = 3\n", "[tool.bundler]\nunknown = 1\n",
     "[tool.bundler]\ntrust = 'x'\n", "[tool.bundler.policy]\nnumpy = 1\n"],
)
def test_malformed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    with pytest.raises(UsageError):
        load_config(path)


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(search=False).policy is None
