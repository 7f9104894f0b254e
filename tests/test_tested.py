"""Issue 13: the tested-compatibility record (``compat/tested.json``) and the ``tested`` policy.

The environment that differs "in a pinned package" is honest, not mocked: each bundle pins a scikit-learn version
other than the installed one (``force_requirements``), exactly what a bundle made under another release holds, so
the default policy refuses it here. ``bundler matrix --record`` then runs for real (real venvs, bundler's self-wheel,
the worker in its own processes), with the package index replaced by this environment's packages
(``tests/fake_uv.py``: the index is the one thing a test cannot reach in seconds). Keys are generated per session.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

import bundler
from bundler.crossversion.cells import OUTPUTS_DIFFER, REFUSED_BY_POLICY, Cell
from bundler.crossversion.record import record_into_bundle
from bundler.crossversion.worker import environment_versions
from bundler.environment.tested import TESTED_NAME, parse_record
from bundler.errors import BehaviourDrift, IntegrityError, UsageError
from bundler.integrity.signing import Ed25519PublicKey, Ed25519Signer, HmacKey
from tests.conftest import ROOT, run_cli
from tests.helpers import read_members, rewrite

INSTALLED = version("scikit-learn")
MINOR = ".".join(INSTALLED.split(".")[:2])
OTHER = "1.8.0" if INSTALLED != "1.8.0" else "1.7.2"  # what the bundles pin: "made under another release"
UNTESTED = "1.6.1"  # a release no record here has seen
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="session")
def offline_uv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment variables that make ``bundler matrix`` use ``tests/fake_uv.py`` as its uv."""
    folder = tmp_path_factory.mktemp("uv")
    script = folder / "uv"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fake_uv.py"}" "$@"\n',
                      encoding="utf-8")
    script.chmod(0o755)
    return {"BUNDLER_MATRIX_UV": str(script)}


def _pack(model: Pipeline, data: tuple[np.ndarray, np.ndarray], path: Path, signer: Any = None) -> Path:
    bundler.pack(model, path, sample=data[0][:10], signer=signer, force_requirements=[f"scikit-learn=={OTHER}"])
    return path


def _matrix_record(bundle: Path, work: Path, env: dict[str, str], *key: Any) -> Any:
    return run_cli("matrix", bundle, "--versions", MINOR, "--record", *key, "--workdir", work, env=env)


@pytest.fixture(scope="session")
def recorded_ed(model: Pipeline, data: tuple[np.ndarray, np.ndarray], keypair: tuple[Path, Path],
                ed_signer: Ed25519Signer, offline_uv: dict[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """An Ed25519-signed bundle pinning another scikit-learn, after a real ``matrix --record --sign-key``."""
    folder = tmp_path_factory.mktemp("recorded-ed")
    bundle = _pack(model, data, folder / "signed.mlbundle", ed_signer)
    result = _matrix_record(bundle, folder / "work", offline_uv, "--sign-key", keypair[0])
    return bundle, result


@pytest.fixture(scope="session")
def recorded_plain(model: Pipeline, data: tuple[np.ndarray, np.ndarray], offline_uv: dict[str, str],
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A checksummed bundle pinning another scikit-learn, after a real ``matrix --record`` without a key."""
    folder = tmp_path_factory.mktemp("recorded-plain")
    bundle = _pack(model, data, folder / "plain.mlbundle")
    return bundle, _matrix_record(bundle, folder / "work", offline_uv)


def _copy(src: Path, tmp_path: Path, name: str = "copy.mlbundle") -> Path:
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def _record_doc(path: Path) -> dict[str, Any]:
    return dict(json.loads(read_members(path)[TESTED_NAME]))


def _edit_record(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes]], None]:
    def members(m: dict[str, bytes]) -> None:
        doc = json.loads(m[TESTED_NAME])
        edit(doc)
        m[TESTED_NAME] = json.dumps(doc).encode()
    return members


#: How every stderr line of these runs starts: bundler's messages, and the matrix's progress and cell lines.
_LINE_STARTS = ("bundler: ", "[matrix]", "matrix: ", "recorded ", "signed: ", "plain: ", "copy: ")


def _one_line_errors(stderr: str) -> None:
    assert "Traceback" not in stderr
    for line in stderr.strip().splitlines():
        assert line.startswith(_LINE_STARTS), line


# ------------------------------------------------------------------------------------------------ recording


def test_record_writes_a_signed_member_listed_in_the_manifest(recorded_ed: tuple[Path, Any],
                                                               ed_public: Ed25519PublicKey) -> None:
    bundle, result = recorded_ed
    assert result.returncode == 0, result.stderr  # refused-by-policy: loads and predicts the same when forced
    assert f"signed: {OTHER} -> {INSTALLED}: refused-by-policy" in result.stderr
    assert "recorded 1 tested environment(s)" in result.stderr
    assert "re-signed" in result.stderr
    _one_line_errors(result.stderr)
    manifest = bundler.inspect(bundle)
    entry = manifest.file(TESTED_NAME)
    assert entry is not None  # listed and hashed like any other member: the signature covers it
    payload = manifest.file(manifest.payload[0])
    assert payload is not None
    record = parse_record(read_members(bundle)[TESTED_NAME], payload_sha256=payload.sha256)
    [tested] = record.environments
    assert tested.outcome == "same"
    assert tested.default_policy == "refused"
    assert tested.package == "scikit-learn"
    assert tested.packages["scikit-learn"] == INSTALLED
    assert tested.packages["numpy"] == version("numpy")
    assert set(manifest.environment.packages) <= set(tested.packages)  # every pinned package, exactly
    assert tested.bundler_version == version("bundler")
    assert tested.tested_at.endswith("Z")
    assert tested.behaviour.rows == 10
    assert "predict" in tested.behaviour.methods
    assert not tested.behaviour.differs
    report = bundler.verify(bundle, key=ed_public, policy="none")
    assert report.ok
    assert report.signature is not None
    assert report.signature.authenticated


def test_tested_accepts_a_recorded_environment_and_names_the_entry(recorded_ed: tuple[Path, Any],
                                                                   keypair: tuple[Path, Path]) -> None:
    bundle, _ = recorded_ed
    public = keypair[1]
    refused = run_cli("verify", bundle, "--public-key", public)
    assert refused.returncode == 4, refused.stderr
    assert (f"hint: the bundle's record shows this environment tested identical (scikit-learn {INSTALLED}): "
            "--policy tested\n" in refused.stderr)
    assert "policy tested would accept it" in refused.stderr
    accepted = run_cli("verify", bundle, "--public-key", public, "--policy", "tested")
    assert accepted.returncode == 0, accepted.stderr
    assert f"environment accepted by the bundle's tested record (policy tested, signature verified against your " \
           f"key): scikit-learn {INSTALLED} tested identical" in accepted.stderr
    doc = json.loads(run_cli("verify", bundle, "--public-key", public, "--policy", "tested", "--json").stdout)
    assert doc["ok"] is True
    assert doc["tested"]["trusted"] is True
    assert doc["tested"]["admitted_by"]["packages"]["scikit-learn"] == INSTALLED
    assert doc["tested"]["admitted_by"]["outcome"] == "same"
    loaded = run_cli("load", bundle, "--public-key", public, "--policy", "tested")
    assert loaded.returncode == 0, loaded.stderr
    assert "behaviour check passed" in loaded.stdout, loaded.stderr


def test_tested_refuses_an_environment_not_in_the_record(recorded_ed: tuple[Path, Any],
                                                         keypair: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _ = recorded_ed
    pins = bundler.inspect(bundle).environment.packages
    target = tmp_path / "deploy-requirements.txt"
    target.write_text("".join(f"{n}=={UNTESTED if n == 'scikit-learn' else v}\n" for n, v in pins.items()),
                      encoding="utf-8")
    result = run_cli("verify", bundle, "--public-key", keypair[1], "--policy", "tested", "--against", target)
    assert result.returncode == 4, result.stderr
    assert f"scikit-learn: bundle pins {OTHER}, found {UNTESTED} (policy exact) in the target environment" \
        in result.stderr
    assert f"hint: tested identical under scikit-learn {INSTALLED}: pin one of those" in result.stderr
    _one_line_errors(result.stderr)


def test_tested_refuses_the_running_environment_when_the_record_has_only_others(
        model: Pipeline, data: tuple[np.ndarray, np.ndarray], hmac_key: HmacKey, tmp_path: Path) -> None:
    """A record (signed, trusted) whose only environment is another release: the running one is refused, exit 4."""
    bundle = _pack(model, data, tmp_path / "b.mlbundle", hmac_key)
    env = environment_versions(list(bundler.inspect(bundle).environment.packages))
    record_into_bundle(bundle, [Cell("b", OTHER, UNTESTED, REFUSED_BY_POLICY, policy="refused",
                                     environment={**env, "scikit-learn": UNTESTED})], signer=hmac_key, key=hmac_key)
    report = bundler.verify(bundle, key=hmac_key, policy="tested")
    assert report.exit_code == 4
    assert report.tested is not None
    assert report.tested.admitted_by is None
    assert [h.render("api") for h in report.hints()][-1] == f"tested identical under scikit-learn {UNTESTED}: " \
                                                            "pin one of those"
    with pytest.raises(bundler.EnvironmentMismatch) as err:
        bundler.load(bundle, key=hmac_key, policy="tested")
    assert f"tested identical under scikit-learn {UNTESTED}" in str(err.value)


# --------------------------------------------------------------------------------------------------- trust


def test_unsigned_record_is_informational_unless_trusted(recorded_plain: tuple[Path, Any]) -> None:
    bundle, result = recorded_plain
    assert result.returncode == 0, result.stderr
    assert "is only checksummed, and so is its record" in result.stderr
    assert "--trust-record" in result.stderr
    shown = run_cli("verify", bundle, "--policy", "tested")
    assert shown.returncode == 4, shown.stderr
    assert "but it is not used to accept (informational: the bundle is only checksummed" in shown.stderr
    assert "hint: the bundle's record shows this environment tested identical (scikit-learn " in shown.stderr
    assert shown.stderr.count("--trust-record\n") == 1
    used = run_cli("verify", bundle, "--policy", "tested", "--trust-record")
    assert used.returncode == 0, used.stderr
    assert "trusted by the caller (trust_record)" in used.stderr
    model = bundler.load(bundle, policy="tested", trust_record=True)
    assert hasattr(model, "predict")


def test_signed_record_without_the_key_is_informational(recorded_ed: tuple[Path, Any]) -> None:
    bundle, _ = recorded_ed
    report = bundler.verify(bundle, policy="tested")
    assert report.exit_code == 4
    assert report.tested is not None
    assert not report.tested.trusted
    assert "signed but no key was supplied" in report.tested.why
    assert bundler.verify(bundle, policy="tested", trust_record=True).ok


def test_tampered_record_fails_integrity(recorded_ed: tuple[Path, Any], keypair: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    bundle, _ = recorded_ed

    def claim_more(doc: dict[str, Any]) -> None:
        doc["environments"].append({**doc["environments"][0], "packages": {
            **doc["environments"][0]["packages"], "scikit-learn": UNTESTED}})

    altered = rewrite(bundle, tmp_path / "altered.mlbundle", members=_edit_record(claim_more), rehash=False)
    result = run_cli("verify", altered, "--policy", "tested")
    assert result.returncode == 3, result.stderr
    assert "member 'compat/tested.json' altered" in result.stderr, result.stderr
    # re-hashed and re-checksummed, as whoever can rewrite the file could: the caller's key refuses it
    rehashed = rewrite(bundle, tmp_path / "rehashed.mlbundle", members=_edit_record(claim_more))
    result = run_cli("verify", rehashed, "--public-key", keypair[1], "--policy", "tested")
    assert result.returncode == 3, result.stderr
    assert "only checksummed" in result.stderr, result.stderr
    _one_line_errors(result.stderr)


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda d: d.update(version=2), "compat/tested.json has record version 2; this bundler reads version 1"),
    (lambda d: d["environments"][0].update(outcome="fine"), "compat/tested.json is malformed: environments.0.outcome"),
    (lambda d: d.update(extra=1), "compat/tested.json is malformed: extra"),
    (lambda d: d.update(payload_sha256="0" * 64), "compat/tested.json speaks about another payload"),
])
def test_malformed_record_is_an_integrity_error(recorded_plain: tuple[Path, Any], tmp_path: Path,
                                                edit: Callable[[dict[str, Any]], None], reason: str) -> None:
    bundle = rewrite(recorded_plain[0], tmp_path / "bad.mlbundle", members=_edit_record(edit))
    for verb in ("verify", "load"):
        result = run_cli(verb, bundle, "--policy", "tested", "--trust-record")
        assert result.returncode == 3, result.stderr
        assert reason in result.stderr
        assert "Traceback" not in result.stderr
    assert run_cli("inspect", bundle).returncode == 3


# ------------------------------------------------------------------------------------- merge and atomicity


def test_second_record_merges_new_environments(recorded_plain: tuple[Path, Any], tmp_path: Path,
                                               offline_uv: dict[str, str]) -> None:
    bundle = _copy(recorded_plain[0], tmp_path)
    first = _record_doc(bundle)["environments"]
    env = environment_versions(list(bundler.inspect(bundle).environment.packages))
    # cells from another machine (the environment another release gives), as a CI job would produce them
    elsewhere = Cell("copy", OTHER, UNTESTED, OUTPUTS_DIFFER, policy="refused",
                     differs=["predict_proba: 10 of 10 rows differ (max abs 0.15)"],
                     environment={**env, "scikit-learn": UNTESTED})
    done = record_into_bundle(bundle, [elsewhere])
    assert done.added == 1
    assert done.scheme == "sha256"
    merged = _record_doc(bundle)["environments"]
    assert [e["packages"]["scikit-learn"] for e in merged] == sorted([INSTALLED, UNTESTED], key=lambda v: (
        tuple(int(p) for p in v.split("."))))
    assert next(e for e in merged if e["packages"]["scikit-learn"] == UNTESTED)["outcome"] == "outputs-differ"
    # the same environment tested again: the newer result replaces the older, the other is kept
    again = _matrix_record(bundle, tmp_path / "work", offline_uv)
    assert again.returncode == 0, again.stderr
    assert "now holds 2" in again.stderr, again.stderr
    final = _record_doc(bundle)["environments"]
    assert len(final) == 2
    newer = next(e for e in final if e["packages"]["scikit-learn"] == INSTALLED)
    older = next(e for e in first if e["packages"]["scikit-learn"] == INSTALLED)
    assert newer["tested_at"] >= older["tested_at"]
    # only the identical one is offered as an alternative, the drifting one never
    result = run_cli("verify", bundle, "--against", _requirements(bundle, tmp_path, "1.5.2"))
    assert f"tested identical under scikit-learn {INSTALLED} (says the bundle's record" in result.stderr
    assert f"scikit-learn {UNTESTED}" not in result.stderr.split("hint: tested identical")[1]
    table = run_cli("inspect", bundle)
    assert "tested environments (compat/tested.json, 2; NOT VERIFIED)" in table.stdout
    assert "outputs-differ" in table.stdout
    assert "max abs 0.15" in table.stdout
    doc = json.loads(run_cli("inspect", bundle, "--json").stdout)
    assert len(doc["tested"]["environments"]) == 2
    assert doc["tested"]["version"] == 1


def _requirements(bundle: Path, tmp_path: Path, sklearn: str) -> Path:
    pins = bundler.inspect(bundle).environment.packages
    target = tmp_path / f"reqs-{sklearn}.txt"
    target.write_text("".join(f"{n}=={sklearn if n == 'scikit-learn' else v}\n" for n, v in pins.items()),
                      encoding="utf-8")
    return target


class _BrokenSigner:
    """A signer whose key store fails mid-write (an HSM gone, a token pulled)."""

    scheme = "hmac-sha256"
    key_id = "broken"

    def sign(self, manifest_bytes: bytes) -> dict[str, Any]:  # noqa: ARG002 - the Signer protocol
        raise OSError("the signing device went away")


def test_rewrite_is_atomic_when_signing_fails(model: Pipeline, data: tuple[np.ndarray, np.ndarray],
                                              hmac_key: HmacKey, tmp_path: Path) -> None:
    bundle = _pack(model, data, tmp_path / "b.mlbundle", hmac_key)
    before = bundle.read_bytes()
    env = environment_versions(list(bundler.inspect(bundle).environment.packages))
    cell = Cell("b", OTHER, INSTALLED, REFUSED_BY_POLICY, policy="refused", environment=env)
    with pytest.raises(OSError, match="went away"):
        record_into_bundle(bundle, [cell], signer=_BrokenSigner(), key=hmac_key)
    assert bundle.read_bytes() == before
    assert os.listdir(tmp_path) == ["b.mlbundle"]
    # a signed bundle is never downgraded to a checksum, nor re-signed by a key it does not verify with
    with pytest.raises(UsageError, match="refusing to replace a signature with a checksum"):
        record_into_bundle(bundle, [cell])
    with pytest.raises(bundler.SignatureError):
        record_into_bundle(bundle, [cell], signer=HmacKey(b"another secret 16+"), key=HmacKey(b"another secret 16+"))
    # the bundle changed since the matrix ran on it: nothing is recorded
    expected = bundler.inspect(bundle).model_copy(update={"created": "2000-01-01T00:00:00Z"})
    with pytest.raises(IntegrityError, match="changed while the matrix ran"):
        record_into_bundle(bundle, [cell], signer=hmac_key, key=hmac_key, expected=expected)
    assert bundle.read_bytes() == before
    assert os.listdir(tmp_path) == ["b.mlbundle"]


def test_record_cli_refusals_before_anything_runs(recorded_ed: tuple[Path, Any], keypair: tuple[Path, Path],
                                                  tmp_path: Path, offline_uv: dict[str, str]) -> None:
    bundle = _copy(recorded_ed[0], tmp_path)
    before = bundle.read_bytes()
    work = tmp_path / "work"
    for args, message in [
        ([], "refusing to replace a signature with a checksum"),
        (["--public-key", keypair[1]], "give the private key (--sign-key PEM), not --public-key"),
    ]:
        result = _matrix_record(bundle, work, offline_uv, *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr, result.stderr
        _one_line_errors(result.stderr)
    result = run_cli("matrix", bundle, "--versions", MINOR, "--sign-key", keypair[0], env=offline_uv)
    assert result.returncode == 2
    assert "give it with --record" in result.stderr
    assert bundle.read_bytes() == before
    assert not work.exists()


# ----------------------------------------------------------------------------------------------- behaviour


def test_a_record_claiming_same_does_not_skip_the_behaviour_check(
        model: Pipeline, data: tuple[np.ndarray, np.ndarray], hmac_key: HmacKey, hmac_file: Path,
        tmp_path: Path) -> None:
    """The signer's record says "same" here, but the stored sample in fact predicts differently: load exits 6."""
    packed = _pack(model, data, tmp_path / "b.mlbundle", hmac_key)

    def flip(m: dict[str, bytes]) -> None:
        import io

        stored = np.load(io.BytesIO(m["sample/predict.npy"]))
        out = io.BytesIO()
        np.save(out, 1 - stored)
        m["sample/predict.npy"] = out.getvalue()

    drifting = rewrite(packed, tmp_path / "drift.mlbundle", members=flip, signer=hmac_key)
    env = environment_versions(list(bundler.inspect(drifting).environment.packages))
    record_into_bundle(drifting, [Cell("drift", OTHER, INSTALLED, REFUSED_BY_POLICY, policy="refused",
                                       environment=env)], signer=hmac_key, key=hmac_key)
    verified = run_cli("verify", drifting, "--hmac-key-file", hmac_file, "--policy", "tested")
    assert verified.returncode == 0, verified.stderr  # the record admits the environment ...
    loaded = run_cli("load", drifting, "--hmac-key-file", hmac_file, "--policy", "tested")
    assert loaded.returncode == 6, loaded.stderr  # ... and the behaviour check still runs, and fails
    assert "predict" in loaded.stderr
    assert "differ" in loaded.stderr
    _one_line_errors(loaded.stderr)
    with pytest.raises(BehaviourDrift):
        bundler.load(drifting, key=hmac_key, policy="tested")


def test_policy_tested_from_settings_and_policy_object(recorded_plain: tuple[Path, Any], tmp_path: Path) -> None:
    """``tested`` is selectable wherever a policy is: ``[tool.bundler.policy]``, ``Policy``, ``Settings``."""
    bundle = recorded_plain[0]
    (tmp_path / "pyproject.toml").write_text('[tool.bundler.policy]\n"*" = "tested"\n', encoding="utf-8")
    result = run_cli("verify", bundle, "--trust-record", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "policy tested" in result.stderr, result.stderr
    assert bundler.verify(bundle, policy=bundler.Policy("tested"), trust_record=True).ok
    settings = bundler.Settings.from_pyproject(tmp_path / "pyproject.toml")
    assert bundler.verify(bundle, settings=settings, trust_record=True).ok
    assert not bundler.verify(bundle, settings=settings).ok


def test_unsigned_write_keeps_members_byte_for_byte(recorded_plain: tuple[Path, Any]) -> None:
    """The rewrite copies every member exactly (the payload stays stored, so it is still read in place)."""
    import zipfile

    bundle = recorded_plain[0]
    with zipfile.ZipFile(bundle) as zf:
        payload = next(i for i in zf.infolist() if i.filename.startswith("model/"))
        assert payload.compress_type == zipfile.ZIP_STORED
    members = read_members(bundle)
    assert set(members) >= {"manifest.json", "signature.json", "requirements.txt", TESTED_NAME}


# ------------------------------------------------------------------------------------------- matching rules


def _entry(outcome: str = "same", **versions: str) -> Any:
    from bundler.environment.tested import Behaviour, CompatEntry

    packages = {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.4", **versions}
    return CompatEntry(package="scikit-learn", packages=packages, python="3.11.7", outcome=outcome,  # type: ignore[arg-type]
                       default_policy="refused", behaviour=Behaviour(), bundler_version="0.1.0",
                       tested_at="2026-01-01T00:00:00Z")


PINNED = {"scikit-learn": "1.9.1", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.4"}


@pytest.mark.parametrize(("entry", "installed", "admitted"), [
    (_entry(), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.4"}, True),
    # the rest within the default rules of the *tested* versions: numpy same major, scipy same minor
    (_entry(), {"scikit-learn": "1.8.0", "numpy": "2.1.0", "scipy": "1.17.3", "xgboost": "2.1.4"}, True),
    (_entry(), {"scikit-learn": "1.8.0", "numpy": "1.26.4", "scipy": "1.17.1", "xgboost": "2.1.4"}, False),
    (_entry(), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.16.0", "xgboost": "2.1.4"}, False),
    # scikit-learn and the other frameworks exactly
    (_entry(), {"scikit-learn": "1.8.1", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.4"}, False),
    (_entry(), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.3"}, False),
    # a pinned package missing here, or never observed there, is never admitted
    (_entry(), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1"}, False),
    (_entry(xgboost="-"), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "-"}, False),
    # only "same" admits
    (_entry("outputs-differ"), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.4"},
     False),
    (_entry("raises"), {"scikit-learn": "1.8.0", "numpy": "2.4.6", "scipy": "1.17.1", "xgboost": "2.1.4"}, False),
])
def test_admits_follows_the_default_rules_around_the_tested_versions(entry: Any, installed: dict[str, str],
                                                                     admitted: bool) -> None:
    from bundler.environment.policy import Policy
    from bundler.environment.tested import admits

    if entry.packages.get("xgboost") == "-":
        entry = entry.model_copy(update={"packages": {k: v for k, v in entry.packages.items() if k != "xgboost"}})
        installed = {k: v for k, v in installed.items() if k != "xgboost"}
    policy = Policy("tested")
    assert admits(entry, PINNED, installed, lambda name: policy.rule_for(name, {"xgboost"})) is admitted


def test_nothing_tested_leaves_the_bundle_unchanged(recorded_plain: tuple[Path, Any], tmp_path: Path) -> None:
    from bundler.crossversion.cells import NOT_INSTALLABLE

    bundle = _copy(recorded_plain[0], tmp_path)
    before = bundle.read_bytes()
    done = record_into_bundle(bundle, [Cell("copy", OTHER, UNTESTED, NOT_INSTALLABLE, policy="error",
                                            error="cannot install the bundle's pins")])
    assert done.added == 0
    assert done.skipped == [f"scikit-learn {UNTESTED}: not-installable, nothing was tested"]
    assert bundle.read_bytes() == before
