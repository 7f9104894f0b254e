"""Nothing but plain exact pins from a verified bundle ever reaches an installer.

Each hostile manifest is a real bundle rewritten the way an attacker who can rewrite the file would (re-hashed and
re-checksummed, ``tests/helpers.py``): ``verify`` refuses it as an integrity failure (exit 3) whatever the policy, and
``bundler matrix`` refuses it before it resolves, builds or installs anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bundler
from bundler.crossversion import runner
from bundler.environment.pins import parse_plain_pin, pin_problems
from bundler.errors import IntegrityError, SignatureError
from bundler.integrity.signing import HmacKey
from tests.conftest import ROOT, run_cli
from tests.helpers import rewrite


def _requirement(index: int, line: str) -> Callable[[dict[str, Any]], None]:
    """Replace one requirement line (and requirements.txt with it), keeping environment.packages."""
    def edit(doc: dict[str, Any]) -> None:
        doc["requirements"][index] = line
    return edit


def _package(name: str, version: str) -> Callable[[dict[str, Any]], None]:
    """Add the same hostile entry to environment.packages and requirements, so the two stay consistent."""
    def edit(doc: dict[str, Any]) -> None:
        doc["environment"]["packages"][name] = version
        doc["requirements"].append(f"{name}=={version}")
    return edit


HOSTILE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "url": (_requirement(0, "joblib @ https://evil.example/joblib-1.6.0-py3-none-any.whl"), "joblib @ https://"),
    "path": (_requirement(0, "joblib @ file:///tmp/evil"), "file:///tmp/evil"),
    "local-dir": (_requirement(0, "./evil"), "./evil"),
    "option": (_requirement(0, "--index-url=https://evil.example/simple"), "--index-url"),
    "option-in-version": (_package("joblib", "1.6.0 --index-url=https://evil.example/simple"), "--index-url"),
    "extra": (_requirement(0, "joblib[evil]==1.6.0"), "joblib[evil]"),
    "marker": (_package("evilpkg", "1.0; python_version > '0'"), "python_version"),
    "wildcard": (_package("evilpkg", "1.*"), "evilpkg"),
    "unnormalized-name": (_package("Evil_Pkg", "1.0"), "Evil_Pkg"),
    "unknown-name": (_requirement(0, "evilpkg==1.0"), "evilpkg==1.0"),
}


def _sync_requirements_txt(members: dict[str, bytes]) -> None:
    import json

    doc = json.loads(members["manifest.json"])
    members["requirements.txt"] = ("\n".join(doc["requirements"]) + "\n").encode()


def hostile_bundle(packed: Path, tmp_path: Path, kind: str) -> Path:
    edit, _ = HOSTILE[kind]
    first = rewrite(packed, tmp_path / f"{kind}.step.mlbundle", manifest=edit, rehash=False)
    # requirements.txt must say the same as the manifest, else the bundle would fail for that reason alone
    return rewrite(first, tmp_path / f"{kind}.mlbundle", members=_sync_requirements_txt)


@pytest.mark.parametrize("kind", HOSTILE)
def test_verify_refuses_a_manifest_that_is_not_plain_pins(packed: Path, tmp_path: Path, kind: str) -> None:
    path = hostile_bundle(packed, tmp_path, kind)
    for policy in ("default", "none"):  # policy none must not downgrade it to a note
        report = bundler.verify(path, policy=policy)
        assert report.exit_code == 3, [p.message for p in report.problems]
        assert any(p.kind == "integrity" and HOSTILE[kind][1] in p.message and "not" in p.message
                   for p in report.problems), [p.message for p in report.problems]
    result = run_cli("verify", path, "--policy", "none")
    assert result.returncode == 3
    assert HOSTILE[kind][1] in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", HOSTILE)
def test_matrix_refuses_before_installing_anything(packed: Path, tmp_path: Path, kind: str) -> None:
    path = hostile_bundle(packed, tmp_path, kind)
    work = tmp_path / "envs"
    # a version that does not exist: had the matrix resolved or installed anything, it would say so (exit 2)
    result = run_cli("matrix", path, "--versions", "99.0", "--workdir", work, "--python", "/nonexistent/python")
    assert result.returncode == 3, result.stderr
    assert HOSTILE[kind][1] in result.stderr
    assert "Traceback" not in result.stderr
    assert not work.exists()
    with pytest.raises(IntegrityError):
        runner.check_bundle(path)


def test_matrix_checks_the_signature_with_the_callers_key(packed: Path, tmp_path: Path, hmac_file: Path) -> None:
    # only checksummed, a key given: refused
    result = run_cli("matrix", packed, "--versions", "99.0", "--hmac-key-file", hmac_file, "--workdir",
                     tmp_path / "envs")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    with pytest.raises(SignatureError):
        runner.check_bundle(packed, runner.KeyOption("--hmac-key-file", str(hmac_file), HmacKey.from_file(hmac_file)))
    # signed with that key: accepted, its pins come from the verified manifest
    signed = rewrite(packed, tmp_path / "signed.mlbundle", signer=HmacKey.from_file(hmac_file))
    checked = runner.check_bundle(signed, runner.KeyOption("--hmac-key-file", str(hmac_file),
                                                           HmacKey.from_file(hmac_file)))
    assert [str(p) for p in checked.pins] == bundler.inspect(signed).requirements
    # tampered after signing: refused
    tampered = rewrite(signed, tmp_path / "tampered.mlbundle", manifest=_requirement(0, "joblib==0.0.1"),
                       resign=False)
    with pytest.raises(IntegrityError):
        runner.check_bundle(tampered, runner.KeyOption("--hmac-key-file", str(hmac_file),
                                                       HmacKey.from_file(hmac_file)))


def test_matrix_refuses_unsafe_content_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payload outside the allowlist (fixtures/hostile/, each would only create a marker file): exit 5."""
    marker = tmp_path / "marker"
    monkeypatch.setenv("BUNDLER_MARKER", str(marker))
    payload = (ROOT / "fixtures" / "hostile" / "os_system_pickled.pkl").read_bytes()
    clean = tmp_path / "clean.mlbundle"
    bundler.pack([1, 2, 3], clean, serializer="pickle")

    def swap(members: dict[str, bytes]) -> None:
        members["model/model.pkl"] = payload

    hostile = rewrite(clean, tmp_path / "hostile.mlbundle", members=swap)
    result = run_cli("matrix", hostile, "--versions", "99.0", "--workdir", tmp_path / "envs")
    assert result.returncode == 5, result.stderr
    assert "posix.system is called while loading" in result.stderr
    assert not (tmp_path / "envs").exists()
    assert not marker.exists()


@pytest.mark.parametrize(("line", "reason"), [
    ("numpy==2.4.6", None),
    ("scikit-learn==1.4.1.post1", None),
    ("torch==2.1.0+cpu", None),
    ("numpy>=2", "not of the form name==version"),
    ("numpy===2.4.6", "not a PEP 440 version"),
    ("NumPy==2.4.6", "not a PEP 503 normalized"),
    ("numpy ==2.4.6", "not a PEP 503 normalized"),
    ("numpy==2.4.6 ", "not an exact version"),
    ("numpy==2.*", "not an exact version"),
    ("numpy==", "not an exact version"),
])
def test_parse_plain_pin(line: str, reason: str | None) -> None:
    if reason is None:
        assert str(parse_plain_pin(line)) == line
    else:
        with pytest.raises(ValueError, match=reason):
            parse_plain_pin(line)


def test_pin_problems_reports_every_problem_at_once() -> None:
    problems = pin_problems(["numpy==2.4.6", "evil @ https://x", "scipy==1.0", "scipy==1.0"],
                            {"numpy": "2.4.5", "scipy": "1.0", "joblib": "1.6.0"})
    assert len(problems) == 4, problems
    assert "'evil @ https://x' is not a plain exact pin" in problems[0]
    assert "scipy is pinned more than once" in problems[1]
    assert "numpy==2.4.6 disagrees with environment.packages (numpy 2.4.5)" in problems[2]
    assert "environment.packages joblib has no requirement line" in problems[3]
    assert pin_problems(["numpy==2.4.6"], {"numpy": "2.4.6"}) == []


def test_fixture_matrix_verifies_every_fixture_first(packed: Path, tmp_path: Path) -> None:
    """--fixtures: one bad fixture stops the run before any environment is built, every problem listed."""
    import shutil

    fixtures = tmp_path / "fixtures"
    (fixtures / "sklearn-1.9").mkdir(parents=True)
    shutil.copy(ROOT / "fixtures" / "environments.json", fixtures / "environments.json")
    shutil.copy(packed, fixtures / "sklearn-1.9" / "good.mlbundle")
    hostile_bundle(packed, tmp_path, "url").rename(fixtures / "sklearn-1.9" / "url.mlbundle")
    hostile_bundle(packed, tmp_path, "extra").rename(fixtures / "sklearn-1.9" / "extra.mlbundle")
    work = tmp_path / "envs"
    result = run_cli("matrix", "--fixtures", fixtures, "--workdir", work)
    assert result.returncode == 3, result.stderr
    assert "url.mlbundle" in result.stderr
    assert "extra.mlbundle" in result.stderr
    assert "good" not in result.stderr
    assert not work.exists()
    assert "Traceback" not in result.stderr
