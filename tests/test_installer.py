"""The installers resolve a requested version exactly or say clearly that the index has none, before anything is
built. Offline: the package index is a folder holding only the wheel of the running bundler (uv and pip alike)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from bundler.crossversion.environments import Installer, find_uv
from bundler.crossversion.selfwheel import build_self_wheel
from bundler.errors import UsageError
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def offline_index(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = build_self_wheel(tmp_path_factory.mktemp("index")).parent
    return {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(folder), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder),
            "UV_OFFLINE": "1"}


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_resolve_is_exact_or_a_clear_usage_error(offline_index: dict[str, str], backend: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in offline_index.items():
        monkeypatch.setenv(key, value)
    if backend == "uv":
        assert find_uv() is not None, "uv is in the test extra"
    installer = Installer(uv=None if backend == "uv" else "")
    assert bool(installer.uv) == (backend == "uv")
    mine = version("bundler")
    assert installer.resolve(f"bundler=={'.'.join(mine.split('.')[:2])}.*") == mine
    with pytest.raises(UsageError, match=r"bundler==9\.9\.\*: the package index has no such release"):
        installer.resolve("bundler==9.9.*")


def test_matrix_with_a_version_the_index_lacks_builds_nothing(offline_index: dict[str, str], packed: Path,
                                                              tmp_path: Path) -> None:
    work = tmp_path / "envs"
    result = run_cli("matrix", packed, "--versions", "9.9", "--workdir", work, env=offline_index)
    assert result.returncode == 2, result.stderr
    assert "scikit-learn==9.9.*: the package index has no such release" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not work.exists()
