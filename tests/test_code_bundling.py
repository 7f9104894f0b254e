"""Code bundling: a custom transformer's module travels in the bundle and is imported only when trusted.

``bundler pack model.joblib --trust mymod.Clip`` run in the module's folder fails today because the console script
does not see the current folder; the message must say so and name ``--code``. With ``--code mymod.py`` it packs;
loading elsewhere refuses (exit 5, naming the module) unless ``--trust-code``, then the behaviour check passes.
Each command runs as the real ``bundler`` console script in its own process, in its own folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

MODULE = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(TransformerMixin, BaseEstimator):
    """Clips every feature to [low, high]."""

    def __init__(self, low=-1.0, high=1.0):
        self.low = low
        self.high = high

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=float), self.low, self.high)
'''

TRAIN = '''
import joblib, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from mymod import Clip
rng = np.random.default_rng(0)
X = rng.normal(size=(100, 3)) * 3
y = (X[:, 0] > 0).astype(int)
joblib.dump(make_pipeline(Clip(-2, 2), LogisticRegression()).fit(X, y), "model.joblib")
np.save("X.npy", X[:10])
'''


def _bundler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "bundler"
    proc = subprocess.run([str(script), *args], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode >= 0, f"bundler died by signal {-proc.returncode}"
    return proc


def test_custom_transformer_with_bundled_code(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mymod.py").write_text(MODULE)
    subprocess.run([sys.executable, "-c", TRAIN], cwd=project, check=True, timeout=300)
    missing = _bundler("pack", "model.joblib", "-o", "m.mlbundle", "--trust", "mymod.Clip", cwd=project)
    assert missing.returncode == 4
    assert "No module named 'mymod'" in missing.stderr
    assert "--code mymod.py" in missing.stderr
    assert "does not import from the current folder" in missing.stderr
    packed = _bundler("pack", "model.joblib", "-o", "m.mlbundle", "--trust", "mymod.Clip", "--code", "mymod.py",
                      "--sample", "X.npy", cwd=project)
    assert packed.returncode == 0, packed.stderr
    elsewhere = tmp_path / "deploy"
    elsewhere.mkdir()
    bundle = str(project / "m.mlbundle")
    refused = _bundler("load", bundle, cwd=elsewhere)
    assert refused.returncode == 5
    assert "modules mymod" in refused.stderr
    assert "--trust-code" in refused.stderr
    assert _bundler("verify", bundle, cwd=elsewhere).returncode == 5
    loaded = _bundler("load", bundle, "--trust-code", cwd=elsewhere)
    assert loaded.returncode == 0, loaded.stderr
    assert "behaviour check passed" in loaded.stdout


def test_code_members_are_listed_and_hashed(tmp_path: Path) -> None:
    """The module is a member under code/, listed in the manifest with its digest; never extracted to disk."""
    import hashlib
    import zipfile

    import bundler

    (tmp_path / "mymod2.py").write_text("VALUE = 3\n")
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
    manifest = bundler.pack(model, tmp_path / "b.mlbundle", code=[tmp_path / "mymod2.py"])
    entry = manifest.file("code/mymod2.py")
    assert entry is not None
    assert entry.sha256 == hashlib.sha256(b"VALUE = 3\n").hexdigest()
    with zipfile.ZipFile(tmp_path / "b.mlbundle") as zf:
        assert "code/mymod2.py" in zf.namelist()
    report = bundler.verify(tmp_path / "b.mlbundle")
    assert report.exit_code == 5
    assert any("mymod2" in p.message for p in report.problems)
    assert bundler.verify(tmp_path / "b.mlbundle", trust_code=True).ok
    with __import__("pytest").raises(bundler.UsageError, match="standard-library"):
        (tmp_path / "json.py").write_text("")
        bundler.pack(model, tmp_path / "c.mlbundle", code=[tmp_path / "json.py"])
