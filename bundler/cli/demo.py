"""``bundler demo``: the main job end to end on a small model, with no network and no arguments.

It trains a Pipeline(StandardScaler, LogisticRegression) on a synthetic data set, bundles it with a sample, verifies
and loads it, predicts, then shows the two refusals users most need to see: a tampered copy (exit 3) and a copy that
claims another scikit-learn version (refused under the default policy, exit 4).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from bundler.container.manifest import MANIFEST_NAME, REQUIREMENTS_NAME, SIGNATURE_NAME, canonical_bytes, parse_manifest
from bundler.errors import BundleError
from bundler.integrity.hashing import sha256_bytes

__all__ = ["claim_other_version", "run_demo", "tamper_payload"]


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text)


def tamper_payload(src: Path, dst: Path) -> None:
    """Copy a bundle, flipping one byte in the middle of its payload member (hashes left as they were)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("model/"):
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
            zout.writestr(info, data)


def claim_other_version(src: Path, dst: Path, package: str, version: str) -> None:
    """Copy a bundle whose manifest claims another version of ``package``, consistently re-hashed (checksum only).

    This is what a bundle made under another scikit-learn looks like to a verifier: intact, but from elsewhere.
    """
    from bundler.integrity.signing import Sha256Signer, signature_document

    with zipfile.ZipFile(src) as zin:
        members = {i.filename: zin.read(i) for i in zin.infolist()}
        infos = {i.filename: i for i in zin.infolist()}
    manifest = parse_manifest(members[MANIFEST_NAME])
    packages = dict(manifest.environment.packages)
    packages[package] = version
    packages = dict(sorted(packages.items()))
    requirements = [f"{n}=={v}" for n, v in packages.items()]
    req_bytes = ("\n".join(requirements) + "\n").encode()
    files = [f.model_copy(update={"sha256": sha256_bytes(req_bytes), "size": len(req_bytes)})
             if f.path == REQUIREMENTS_NAME else f for f in manifest.files]
    env = manifest.environment.model_copy(update={"packages": packages})
    changed = manifest.model_copy(update={"environment": env, "requirements": requirements, "files": files})
    manifest_bytes = canonical_bytes(changed)
    members[REQUIREMENTS_NAME] = req_bytes
    members[MANIFEST_NAME] = manifest_bytes
    members[SIGNATURE_NAME] = signature_document(Sha256Signer(), manifest_bytes)
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in members.items():
            zout.writestr(infos[name], data)


def run_demo(directory: str | None = None, *, quiet: bool = False) -> int:
    """Run the demo; return 0 when every step behaved as it should, 1 otherwise."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="bundler-demo-") as tmp:
            return _run(Path(tmp), quiet)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return _run(folder, quiet)


def _run(folder: Path, quiet: bool) -> int:
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    import bundler
    from bundler.pipelines.load import load_with_report

    failures = 0
    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    path = folder / "model.mlbundle"
    manifest = bundler.pack(model, path, sample=X[:20], metadata={"accuracy": round(float(model.score(X, y)), 4)})
    _say(quiet, f"1. packed {manifest.model_class} into {path} ({path.stat().st_size} bytes, "
                f"{len(manifest.requirements)} pinned requirements: {', '.join(manifest.requirements[:4])}, ...)")
    report = bundler.verify(path)
    _say(quiet, f"2. verify: {'OK' if report.ok else 'FAILED'} ({'; '.join(report.notes)})")
    failures += not report.ok
    loaded, report = load_with_report(path)
    same = bool(np.array_equal(loaded.predict(X[:5]), model.predict(X[:5])))
    _say(quiet, f"3. load: {type(loaded).__name__}, behaviour check "
                f"{'passed' if 'behaviour' in report.checked else 'skipped'}; "
                f"predict(X[:5]) = {loaded.predict(X[:5]).tolist()} ({'same as before' if same else 'DIFFERENT'})")
    failures += not same
    tampered = folder / "tampered.mlbundle"
    tamper_payload(path, tampered)
    failures += _expect_refusal(quiet, "4. tampered copy (one byte flipped)", tampered, 3)
    import sklearn

    other = "1.2.2" if sklearn.__version__ != "1.2.2" else "1.3.0"
    claimed = folder / "other-sklearn.mlbundle"
    claim_other_version(path, claimed, "scikit-learn", other)
    failures += _expect_refusal(quiet, f"5. copy claiming scikit-learn {other}", claimed, 4)
    _say(quiet, "demo finished: every step behaved as expected" if not failures else f"demo: {failures} step(s) failed")
    return 0 if not failures else 1


def _expect_refusal(quiet: bool, label: str, path: Path, code: int) -> int:
    import bundler

    try:
        bundler.load(path)
    except BundleError as exc:
        _say(quiet, f"{label}: refused with exit {exc.exit_code}: {exc.problems[0]}")
        return 0 if exc.exit_code == code else 1
    _say(quiet, f"{label}: NOT refused (this is a bug)")
    return 1
