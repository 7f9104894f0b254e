"""pack / verify / load / inspect end to end with real models and real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import bundler
from bundler.container.manifest import MANIFEST_NAME, SIGNATURE_NAME
from bundler.errors import (
    BundlerWarning,
    EnvironmentMismatch,
    IntegrityError,
    SignatureError,
    UsageError,
)
from bundler.pipelines.verify import read_member_text
from tests.helpers import read_members, rewrite, write_members


@pytest.mark.parametrize("serializer", ["joblib", "pickle", "skops"])
def test_roundtrip_each_serializer(serializer: str, model: Any, data: Any, tmp_path: Path) -> None:
    X, _ = data
    path = tmp_path / f"m-{serializer}.mlbundle"
    manifest = bundler.pack(model, path, serializer=serializer, sample=X[:5])
    assert manifest.serializer == serializer
    report = bundler.verify(path)
    assert report.ok, report.problems
    loaded = bundler.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_random_forest_roundtrip(data: Any, tmp_path: Path) -> None:
    X, y = data
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    path = tmp_path / "rf.mlbundle"
    bundler.pack(rf, path, sample=X[:8])
    np.testing.assert_array_equal(bundler.load(path).predict_proba(X), rf.predict_proba(X))


def test_requirements_are_inferred_and_pinned(packed: Path) -> None:
    m = bundler.inspect(packed)
    pins = m.environment.packages
    import joblib
    import numpy
    import scipy
    import sklearn

    for name, module in (("scikit-learn", sklearn), ("numpy", numpy), ("scipy", scipy), ("joblib", joblib)):
        assert pins[name] == module.__version__
    assert "threadpoolctl" in pins  # a runtime dependency of scikit-learn, found through Requires-Dist
    assert "pytest" not in pins
    assert "pydantic" not in pins
    text = read_member_text(packed, "requirements.txt")
    assert text.splitlines() == m.requirements
    assert m.frameworks == ["scikit-learn"]


def test_forced_pins_add_and_override(model: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.mlbundle"
    with pytest.warns(BundlerWarning) as caught:
        m = bundler.pack(model, path, force_requirements=["numpy==1.26.4", "gunicorn==22.0.0"])
    said = sorted(str(w.message) for w in caught if issubclass(w.category, BundlerWarning))
    assert len(said) == 2, said
    assert said[0].startswith("forced pin gunicorn==22.0.0: gunicorn is not installed in this environment"), said
    assert said[1].startswith("forced pin numpy==1.26.4: the installed numpy is"), said
    assert m.environment.packages["numpy"] == "1.26.4"
    assert m.environment.packages["gunicorn"] == "22.0.0"
    assert "gunicorn==22.0.0" in m.requirements


@pytest.mark.parametrize("bad", [["numpy>=1"], ["not a requirement!"], ["numpy==1.*"], ["pkg @ https://x/y.whl"]])
def test_user_pins_must_be_exact(model: Any, tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(UsageError):
        bundler.pack(model, tmp_path / "m.mlbundle", requirements=bad)
    assert not list(tmp_path.iterdir())


def test_metadata_must_be_json(model: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        bundler.pack(model, tmp_path / "m.mlbundle", metadata={"x": object()})
    with pytest.raises(UsageError):
        bundler.pack(model, tmp_path / "m.mlbundle", metadata={"x": float("nan")})


# -- integrity ----------------------------------------------------------------------------------------------------
def _problems(report: Any) -> str:
    return "\n".join(p.message for p in report.problems)


def test_member_altered_missing_extra(packed: Path, tmp_path: Path) -> None:
    def alter(m: dict[str, bytes]) -> None:
        m["model/model.joblib"] = m["model/model.joblib"][:-1] + b"\x00"
        del m["requirements.txt"]
        m["model/extra.bin"] = b"surprise"

    path = rewrite(packed, tmp_path / "t.mlbundle", members=alter, rehash=False)
    report = bundler.verify(path)
    assert report.exit_code == 3
    text = _problems(report)
    assert "'model/model.joblib' altered" in text
    assert "'requirements.txt' is listed in the manifest but missing" in text
    assert "extra member 'model/extra.bin'" in text
    with pytest.raises(IntegrityError) as info:
        bundler.load(path)
    assert len(info.value.problems) >= 3


def test_signature_missing_is_integrity_failure(packed: Path, tmp_path: Path) -> None:
    members = read_members(packed)
    del members[SIGNATURE_NAME]
    write_members(tmp_path / "t.mlbundle", members)
    report = bundler.verify(tmp_path / "t.mlbundle")
    assert report.exit_code == 3
    assert "signature.json is missing" in _problems(report)


@pytest.mark.parametrize("content", [b"garbage", b"{}", b'{"scheme":"rot13","manifest_sha256":"","signature":null,'
                                                        b'"key_id":null}'])
def test_signature_garbage(packed: Path, tmp_path: Path, content: bytes) -> None:
    members = read_members(packed)
    members[SIGNATURE_NAME] = content
    write_members(tmp_path / "t.mlbundle", members)
    assert bundler.verify(tmp_path / "t.mlbundle").exit_code == 3


def test_manifest_not_json_and_unknown_version(packed: Path, tmp_path: Path) -> None:
    members = read_members(packed)
    members[MANIFEST_NAME] = b"not json"
    write_members(tmp_path / "a.mlbundle", members)
    assert bundler.verify(tmp_path / "a.mlbundle").exit_code == 3
    path = rewrite(packed, tmp_path / "b.mlbundle", manifest=lambda d: d.update(format_version=99))
    report = bundler.verify(path)
    assert report.exit_code == 3
    assert "format version 99" in _problems(report)
    with pytest.raises(IntegrityError):
        bundler.inspect(tmp_path / "a.mlbundle")


def test_rewritten_checksum_bundle_passes_without_key_but_not_with_one(packed: Path, tmp_path: Path,
                                                                     ed_public: Any, hmac_key: Any) -> None:
    """A sha256 bundle can be rewritten consistently by anyone: only a caller-supplied key stops that."""
    path = rewrite(packed, tmp_path / "t.mlbundle", manifest=lambda d: d["metadata"].update(accuracy=1.0))
    assert bundler.verify(path).ok
    for key in (ed_public, hmac_key):
        report = bundler.verify(path, key=key)
        assert report.exit_code == 3
        assert "only checksummed" in _problems(report)


def test_signed_bundles(model: Any, tmp_path: Path, ed_signer: Any, ed_public: Any, hmac_key: Any) -> None:
    ed_path = tmp_path / "ed.mlbundle"
    bundler.pack(model, ed_path, signer=ed_signer)
    report = bundler.verify(ed_path, key=ed_public)
    assert report.ok
    assert report.signature is not None
    assert report.signature.authenticated
    assert not bundler.verify(ed_path).signature.authenticated  # type: ignore[union-attr]
    assert bundler.verify(ed_path, key=hmac_key).exit_code == 3
    # Re-signing with another key after tampering is caught by the key the caller trusts.
    from bundler.integrity.signing import Ed25519Signer, generate_keypair

    other = Ed25519Signer.from_file(generate_keypair(tmp_path / "attacker")[0])
    forged = rewrite(ed_path, tmp_path / "forged.mlbundle", manifest=lambda d: d["metadata"].update(x=1), signer=other)
    report = bundler.verify(forged, key=ed_public)
    assert report.exit_code == 3
    assert "does not verify" in _problems(report)
    with pytest.raises(SignatureError):
        bundler.load(forged, key=ed_public)
    hm_path = tmp_path / "hm.mlbundle"
    bundler.pack(model, hm_path, signer=hmac_key)
    assert bundler.verify(hm_path, key=hmac_key).ok
    assert bundler.verify(hm_path, key=ed_public).exit_code == 3


# -- environment policy ---------------------------------------------------------------------------------------------
def _claim(packed: Path, dst: Path, package: str, version: str) -> Path:
    from tests.helpers import claim_other_version

    claim_other_version(packed, dst, package, version)
    return dst


@pytest.mark.parametrize(
    ("package", "version", "policy", "refused"),
    [
        ("scikit-learn", "1.2.2", "default", True),
        ("scikit-learn", "1.2.2", "none", False),
        ("scikit-learn", "1.2.2", "major", False),
        ("numpy", "2.0.0", "default", False),
        ("numpy", "1.26.4", "default", True),
        ("scipy", "1.0.0", "default", True),
        ("scipy", "1.0.0", "major", False),
    ],
)
def test_policy_outcomes(packed: Path, tmp_path: Path, package: str, version: str, policy: str, refused: bool) -> None:
    import importlib.metadata

    installed = importlib.metadata.version(package)
    if package == "numpy" and installed.split(".")[0] == version.split(".")[0] and refused:
        pytest.fail("test data assumes numpy 2 is installed")
    path = _claim(packed, tmp_path / "c.mlbundle", package, version)
    report = bundler.verify(path, policy=policy)
    if refused:
        assert report.exit_code == 4, report.problems
        assert package in _problems(report)
        with pytest.raises(EnvironmentMismatch):
            bundler.load(path, policy=policy)
    else:
        assert report.ok, report.problems


def test_policy_none_still_reports_differences(packed: Path, tmp_path: Path) -> None:
    path = _claim(packed, tmp_path / "c.mlbundle", "scikit-learn", "1.2.2")
    report = bundler.verify(path, policy="none")
    assert report.ok
    assert any("scikit-learn" in n and "1.2.2" in n for n in report.notes)


def test_missing_package_fails_unless_none(packed: Path, tmp_path: Path) -> None:
    path = _claim(packed, tmp_path / "c.mlbundle", "not-installed-pkg", "1.0")
    report = bundler.verify(path)
    assert report.exit_code == 4, report.problems
    assert "not installed" in _problems(report)
    assert bundler.verify(path, policy="none").ok


def test_every_mismatch_is_listed(packed: Path, tmp_path: Path) -> None:
    step = _claim(packed, tmp_path / "a.mlbundle", "scikit-learn", "1.2.2")
    path = _claim(step, tmp_path / "b.mlbundle", "scipy", "1.0.0")
    with pytest.raises(EnvironmentMismatch) as info:
        bundler.load(path)
    text = "\n".join(info.value.problems)
    assert "scikit-learn" in text
    assert "scipy" in text


def test_per_package_overrides(packed: Path, tmp_path: Path) -> None:
    from bundler.environment.policy import Policy

    path = _claim(packed, tmp_path / "c.mlbundle", "scikit-learn", "1.2.2")
    assert bundler.verify(path, policy=Policy("default", {"scikit-learn": ">=1.2"})).ok
    assert bundler.verify(path, policy=Policy("default", {"scikit-learn": "minor"})).exit_code == 4


def test_settings_policy(packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pyproject.toml applies only when asked for (``Settings.from_pyproject``); the library never reads it."""
    path = _claim(packed, tmp_path / "c.mlbundle", "scikit-learn", "1.2.2")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.bundler.policy]\n"*" = "default"\nscikit-learn = "none"\n')
    monkeypatch.chdir(tmp_path)
    assert bundler.verify(path).exit_code == 4  # the file in the working directory is not read
    assert bundler.verify(path, settings=bundler.Settings.from_pyproject(pyproject)).ok
    assert bundler.verify(path, settings=bundler.Settings.from_pyproject(tmp_path)).ok  # a folder: searched
    pyproject.write_text('[tool.bundler.policy]\n"*" = "major"\n')
    assert bundler.verify(path, settings=bundler.Settings.from_pyproject(pyproject)).ok
    pyproject.write_text('[tool.bundler.policy]\nscikit-learn = "sometimes"\n')
    with pytest.raises(UsageError, match="sometimes"):
        bundler.Settings.from_pyproject(pyproject)


# -- atomic writes ------------------------------------------------------------------------------------------------
class _Explodes:
    """Pickling raises midway, like a crash or Ctrl-C during pack."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.payload = np.zeros(100_000)

    def __reduce__(self) -> Any:
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")])
def test_pack_interrupted_leaves_nothing(tmp_path: Path, packed: Path, exc: BaseException) -> None:
    target = tmp_path / "out.mlbundle"
    shutil.copy(packed, target)
    before = target.read_bytes()
    with pytest.raises(type(exc)):
        bundler.pack([np.ones(1000), _Explodes(exc)], target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mlbundle"]


def test_pack_into_missing_directory(model: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        bundler.pack(model, tmp_path / "nope" / "m.mlbundle")


def test_pack_warns_about_globals_outside_allowlist(tmp_path: Path) -> None:
    from tests.custom_model import CustomModel

    with pytest.warns(BundlerWarning) as caught:
        bundler.pack(CustomModel(), tmp_path / "c.mlbundle")
    messages = [str(w.message) for w in caught]
    assert any("trust=['tests.custom_model.CustomModel']" in m for m in messages)
    assert not any("--trust" in m for m in messages)  # API users are told about trust=, not a CLI flag
    assert any("no installed distribution provides (tests)" in m for m in messages)
    report = bundler.verify(tmp_path / "c.mlbundle")
    assert report.exit_code == 5
    assert "tests.custom_model.CustomModel" in _problems(report)
    model = bundler.load(tmp_path / "c.mlbundle", trust=["tests.custom_model.CustomModel"])
    assert model.predict([1, 2]) == [0, 0]


def test_signed_bundle_globals_trusted_with_key(tmp_path: Path, ed_signer: Any, ed_public: Any) -> None:
    from tests.custom_model import CustomModel

    with pytest.warns(BundlerWarning):
        bundler.pack(CustomModel(), tmp_path / "c.mlbundle", signer=ed_signer)
    assert bundler.verify(tmp_path / "c.mlbundle").exit_code == 5
    assert bundler.verify(tmp_path / "c.mlbundle", key=ed_public).ok
    assert isinstance(bundler.load(tmp_path / "c.mlbundle", key=ed_public), CustomModel)


def test_inspect_does_not_verify(packed: Path, tmp_path: Path) -> None:
    path = rewrite(packed, tmp_path / "t.mlbundle", members=lambda m: m.update({"model/model.joblib": b"x"}),
                   rehash=False)
    assert bundler.inspect(path).model_class == "sklearn.pipeline.Pipeline"
    assert not bundler.verify(path).ok


def test_report_json_shape(packed: Path) -> None:
    doc = bundler.verify(packed).to_dict()
    json.dumps(doc)
    assert doc["ok"] is True
    assert doc["exit_code"] == 0
    assert doc["signature"]["scheme"] == "sha256"
    assert doc["checked"] == ["signature", "members", "environment", "content"]


def test_large_payload_has_chunked_digests_and_any_flip_is_caught(tmp_path: Path) -> None:
    from bundler.integrity.hashing import CHUNKED_MIN_BYTES, DIGEST_CHUNK_BYTES

    model = {"weights": np.arange(CHUNKED_MIN_BYTES // 8 + 100_000, dtype=np.float64)}
    path = tmp_path / "big.mlbundle"
    manifest = bundler.pack(model, path)
    entry = manifest.file("model/model.joblib")
    assert entry is not None
    assert entry.chunks is not None
    assert entry.chunk_size == DIGEST_CHUNK_BYTES
    assert len(entry.chunks) == -(-entry.size // DIGEST_CHUNK_BYTES)
    assert bundler.verify(path).ok
    np.testing.assert_array_equal(bundler.load(path)["weights"], model["weights"])
    from bundler.container.archive import BundleReader

    with BundleReader(path) as reader:
        start = reader.members["model/model.joblib"].data_offset
    raw = bytearray(path.read_bytes())
    for where in (start + 5, start + entry.size - 3, start + DIGEST_CHUNK_BYTES * 2 + 17):
        flipped = tmp_path / f"flip{where}.mlbundle"
        raw[where] ^= 0x01
        flipped.write_bytes(raw)
        raw[where] ^= 0x01
        report = bundler.verify(flipped)
        assert report.exit_code == 3
        assert "altered" in _problems(report)


def test_pack_with_lock_writes_a_pylock_the_verifier_reads(model: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The index look-up is replaced by fixed file lists; the rest (pack, bundle member, --against) is real."""
    import bundler.environment.targets
    from tests.test_targets import fake_files

    monkeypatch.setattr(bundler.environment.targets, "fetch_release_files",
                        lambda pins, python=None: fake_files(dict(pins)))  # noqa: ARG005 - the real signature
    path = tmp_path / "locked.mlbundle"
    manifest = bundler.pack(model, path, lock=True)
    assert manifest.file("pylock.toml") is not None
    lock = tmp_path / "pylock.toml"
    lock.write_text(read_member_text(path, "pylock.toml"))
    from bundler.environment.targets import read_target

    assert read_target(lock) == manifest.environment.packages
    assert bundler.verify(path, against=read_target(lock)).ok
    assert bundler.verify(path).ok


@pytest.mark.parametrize("chunked", [False, True])
def test_pack_records_the_digests_of_the_stored_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        chunked: bool) -> None:
    """The payload is written and hashed while it is serialized (large single writes and batched small ones):
    the manifest's SHA-256, size and chunk digests are those of the member's bytes as stored."""
    import hashlib
    import zipfile

    import bundler.pipelines.pack as pack_module

    if chunked:
        monkeypatch.setattr(pack_module, "CHUNKED_MIN_BYTES", 2 << 20)
        monkeypatch.setattr(pack_module, "DIGEST_CHUNK_BYTES", 1 << 20)
    model = {"big": np.arange(3_000_000, dtype=np.float64), "small": [np.full(50, i) for i in range(3000)]}
    path = tmp_path / "d.mlbundle"
    manifest = bundler.pack(model, path)
    with zipfile.ZipFile(path) as zf:
        stored = zf.read("model/model.joblib")
    entry = manifest.file("model/model.joblib")
    assert entry is not None
    assert entry.size == len(stored) > 24_000_000
    assert entry.sha256 == hashlib.sha256(stored).hexdigest()
    if chunked:
        step = 1 << 20
        assert entry.chunks == [hashlib.sha256(stored[i:i + step]).hexdigest() for i in range(0, len(stored), step)]
    else:
        assert entry.chunks is None
    assert bundler.verify(path).ok
