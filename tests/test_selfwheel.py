"""The wheel of the running bundler (``bundler.crossversion.selfwheel``) installs into a fresh environment and runs
the matrix worker there, with no source tree: what ``bundler matrix`` does for a user who pip-installed bundler."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from bundler.crossversion.environments import venv_python
from bundler.crossversion.selfwheel import build_self_wheel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_wheel_holds_the_package_and_its_metadata(tmp_path: Path) -> None:
    wheel = build_self_wheel(tmp_path)
    assert wheel.name == f"bundler-{version('bundler')}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "bundler/crossversion/worker.py" in names
    assert "bundler/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    info = f"bundler-{version('bundler')}.dist-info"
    assert {f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD", f"{info}/entry_points.txt"} <= set(names)
    record = zipfile.ZipFile(wheel).read(f"{info}/RECORD").decode()
    assert "bundler/crossversion/worker.py,sha256=" in record
    # cached by content: the same files give the same wheel, not a second build
    assert build_self_wheel(tmp_path) == wheel


def test_wheel_installs_and_runs_the_worker_without_a_source_tree(tmp_path: Path, packed: Path) -> None:
    wheel = build_self_wheel(tmp_path / "wheels")
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    py = str(venv_python(env))
    # the environment sees this one's numpy, scikit-learn... (a path after its own site-packages, whose .pth files,
    # such as an editable install's finder, are not run) but gets bundler only from the wheel
    # installed before the parent's path is added: pip would otherwise see the parent's (non-editable) bundler and
    # call the requirement already satisfied, which is what a CI venv with bundler installed from a wheel hit
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300, capture_output=True)
    child_site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                capture_output=True, text=True, check=True, timeout=300).stdout.strip()
    Path(child_site, "parent-environment.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    where = subprocess.run([py, "-c", "import bundler; print(bundler.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, check=True, timeout=300).stdout.strip()
    assert Path(where).is_relative_to(env), where
    out = tmp_path / "records"
    proc = subprocess.run([py, "-m", "bundler.crossversion.worker", str(out), str(packed)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "0.json").read_text(encoding="utf-8"))
    assert record["verify"]["ok"] is True, record["verify"]
    assert record["error"] is None
    assert record["findings"] == []
    assert record["environment"]["bundler"] == version("bundler")
