"""The command line: verbs, exit codes, one-line errors, --json, and what `verify` does not import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from bundler.cli import main
from tests.conftest import run_cli
from tests.helpers import read_members, rewrite, write_members


def _one_line_errors(stderr: str) -> None:
    assert "Traceback" not in stderr
    for line in stderr.strip().splitlines():
        assert line.startswith("bundler: "), line


def test_verify_ok_subprocess(packed: Path) -> None:
    result = run_cli("verify", packed)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "only checksummed" in result.stderr


def test_verify_json_is_one_document(packed: Path, tmp_path: Path) -> None:
    result = run_cli("verify", packed, "--json")
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert result.returncode == 0
    broken = rewrite(packed, tmp_path / "t.mlbundle", members=lambda m: m.update({"requirements.txt": b"x\n"}),
                     rehash=False)
    result = run_cli("verify", broken, "--json")
    doc = json.loads(result.stdout)
    assert result.returncode == 3
    assert doc["ok"] is False
    assert doc["problems"]
    result = run_cli("verify", tmp_path / "missing", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["ok"] is False


@pytest.mark.parametrize("verb", ["inspect", "verify", "requirements"])
def test_closed_stdout_exits_as_sigpipe_without_traceback(packed: Path, verb: str) -> None:
    """``bundler inspect B | head -1``: the reader is gone before bundler writes. Not an internal error (1)."""
    import os

    from bundler.cli.main import EXIT_BROKEN_PIPE

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "bundler", verb, str(packed)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == EXIT_BROKEN_PIPE == 141, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr


def test_verify_does_not_import_heavy_modules(packed: Path) -> None:
    code = ("import sys; from bundler.cli import main; rc = main(['verify', sys.argv[1], '-q']); "
            "heavy = sorted(m for m in ('sklearn', 'numpy', 'joblib', 'scipy', 'pandas', 'pyarrow', 'tqdm') "
            "if m in sys.modules); print(rc, heavy)")
    result = subprocess.run([sys.executable, "-c", code, str(packed)], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr


def test_verify_does_not_discover_pydantic_plugins(packed: Path) -> None:
    """The CLI switches pydantic's plugin discovery off (a scan of every distribution's entry points)."""
    code = ("import os, sys, importlib.metadata as md\n"
            "os.environ.pop('PYDANTIC_DISABLE_PLUGINS', None)\n"
            "groups = []\n"
            "real = md.entry_points\n"
            "def spy(**kw):\n    groups.append(kw.get('group'))\n    return real(**kw)\n"
            "md.entry_points = spy\n"
            "from bundler.cli import main\n"
            "rc = main(['verify', sys.argv[1], '-q'])\n"
            "print(rc, 'pydantic' in groups, os.environ['PYDANTIC_DISABLE_PLUGINS'])")
    result = subprocess.run([sys.executable, "-c", code, str(packed)], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "0 False __all__", result.stdout + result.stderr


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], int]] = {
    "missing file": (lambda d: d / "missing.mlbundle", 2),
    "directory": (lambda d: d, 2),
    "empty file": (lambda d: _write(d / "e.mlbundle", b""), 3),
    "not a zip": (lambda d: _write(d / "n.mlbundle", b"hello world"), 3),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("verb", ["verify", "load", "inspect"])
def test_bad_inputs_subprocess(case: str, verb: str, tmp_path: Path) -> None:
    make, code = BAD_INPUTS[case]
    path = make(tmp_path)
    result = run_cli(verb, path)
    assert result.returncode == code, result.stderr
    _one_line_errors(result.stderr)
    assert result.stderr.strip()


def _bundle_variants(packed: Path, d: Path, keypair: tuple[Path, Path]) -> dict[str, tuple[Path, list[str], int]]:
    members = read_members(packed)
    out: dict[str, tuple[Path, list[str], int]] = {}
    cut = d / "truncated.mlbundle"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    out["truncated"] = (cut, [], 3)
    m = dict(members)
    m["manifest.json"] = b"{not json"
    write_members(d / "notjson.mlbundle", m)
    out["manifest not json"] = (d / "notjson.mlbundle", [], 3)
    out["manifest wrong shape"] = (rewrite(packed, d / "shape.mlbundle", manifest=lambda x: x.pop("files")), [], 3)
    out["altered"] = (rewrite(packed, d / "alt.mlbundle",
                              members=lambda x: x.update({"model/model.joblib": x["model/model.joblib"][::-1]}),
                              rehash=False), [], 3)
    out["missing member"] = (rewrite(packed, d / "miss.mlbundle", members=lambda x: x.pop("requirements.txt"),
                                     rehash=False), [], 3)
    out["extra member"] = (rewrite(packed, d / "extra.mlbundle", members=lambda x: x.update({"model/x": b"1"}),
                                   rehash=False), [], 3)
    m = dict(members)
    del m["signature.json"]
    write_members(d / "nosig.mlbundle", m)
    out["signature missing"] = (d / "nosig.mlbundle", [], 3)
    m = dict(members)
    m["signature.json"] = b"\x00garbage"
    write_members(d / "garbage.mlbundle", m)
    out["signature garbage"] = (d / "garbage.mlbundle", [], 3)
    out["wrong key"] = (packed, ["--public-key", str(keypair[1])], 3)
    m = dict(members)
    doc = json.loads(m["signature.json"])
    doc["scheme"] = "rsa-pss"
    m["signature.json"] = json.dumps(doc).encode()
    write_members(d / "scheme.mlbundle", m)
    out["unknown scheme"] = (d / "scheme.mlbundle", [], 3)
    out["unknown format version"] = (rewrite(packed, d / "ver.mlbundle",
                                             manifest=lambda x: x.update(format_version=7)), [], 3)
    notkey = d / "notkey.pem"
    notkey.write_text("hello")
    out["key file not a key"] = (packed, ["--public-key", str(notkey)], 2)
    return out


BUNDLE_VARIANTS = ["truncated", "manifest not json", "manifest wrong shape", "altered", "missing member",
                   "extra member", "signature missing", "signature garbage", "wrong key", "unknown scheme",
                   "unknown format version", "key file not a key"]


@pytest.mark.parametrize("verb", ["verify", "load"])
@pytest.mark.parametrize("name", BUNDLE_VARIANTS)
def test_bad_bundles_in_process(packed: Path, tmp_path: Path, keypair: tuple[Path, Path],
                                capsys: pytest.CaptureFixture[str], name: str, verb: str) -> None:
    variants = _bundle_variants(packed, tmp_path, keypair)
    assert sorted(variants) == sorted(BUNDLE_VARIANTS)
    path, extra, code = variants[name]
    rc = main([verb, str(path), *extra])
    captured = capsys.readouterr()
    assert rc == code, captured.err
    _one_line_errors(captured.err)
    assert captured.err.strip()


def test_pack_file_verify_load_subprocess(model: Any, data: Any, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    src = tmp_path / "model.joblib"
    joblib.dump(model, src)
    sample = tmp_path / "sample.npy"
    np.save(sample, data[0][:5])
    out = tmp_path / "out.mlbundle"
    result = run_cli("pack", src, "-o", out, "--sign-key", keypair[0], "--sample", sample, "--meta", "auc=0.93",
                     "--meta", "owner=ds-team", "--force-requirement", "gunicorn==22.0.0")
    assert result.returncode == 0, result.stderr
    result = run_cli("inspect", out, "--json")
    doc = json.loads(result.stdout)
    assert doc["verified"] is False
    assert doc["manifest"]["metadata"] == {"auc": 0.93, "owner": "ds-team"}
    assert doc["manifest"]["model_class"] == "sklearn.pipeline.Pipeline"
    assert "gunicorn==22.0.0" in doc["manifest"]["requirements"]
    result = run_cli("load", out, "--public-key", keypair[1], "--json", "--allow", "gunicorn", "none")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["signature"]["authenticated"] is True


def test_pack_file_pickle_detected_by_content(model: Any, tmp_path: Path) -> None:
    import pickle

    src = tmp_path / "model.joblib"  # a misleading name: the content decides
    src.write_bytes(pickle.dumps(model, protocol=4))
    out = tmp_path / "out.mlbundle"
    result = run_cli("pack", src, "-o", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(run_cli("inspect", out, "--json").stdout)["manifest"]["serializer"] == "pickle"


def test_pack_refuses_to_overwrite_half(packed: Path, tmp_path: Path) -> None:
    target = tmp_path / "t.mlbundle"
    shutil.copy(packed, target)
    before = target.read_bytes()
    src = tmp_path / "empty.joblib"
    src.write_bytes(b"")
    assert main(["pack", str(src), "-o", str(target)]) == 2
    assert target.read_bytes() == before


def test_keygen_and_env(tmp_path: Path) -> None:
    result = run_cli("keygen", "-o", tmp_path / "k")
    assert result.returncode == 0
    assert (tmp_path / "k.pem").exists()
    assert (tmp_path / "k.pub.pem").exists()
    assert "PRIVATE" not in result.stdout
    result = run_cli("keygen", "-o", tmp_path / "k")
    assert result.returncode == 2
    _one_line_errors(result.stderr)
    env = json.loads(run_cli("env", "--json").stdout)
    assert {"python_version", "implementation", "platform", "machine", "packages"} <= set(env)
    assert env["packages"]["scikit-learn"] == __import__("sklearn").__version__


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["verify"]) == 2
    assert main(["verify", "x", "--policy", "sometimes"]) == 2
    _one_line_errors(capsys.readouterr().err)


def test_demo_runs(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused with exit 3" in result.stdout
    assert "refused with exit 4" in result.stdout
    assert "Traceback" not in result.stderr


# -- what a new user runs into -----------------------------------------------------------------------------------
def test_pack_of_a_bundle_says_it_is_already_one(packed: Path, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    assert main(["pack", str(packed), "-o", str(tmp_path / "again.mlbundle")]) == 2
    err = capsys.readouterr().err
    assert f"error: {packed} is already a bundle, not a model file" in err
    assert f"hint: to check it: bundler verify {packed}" in err
    assert "skops" not in err
    _one_line_errors(err)


@pytest.mark.parametrize(
    ("content", "message"),
    [(bytes([0xFB, 0x13, 0x00, 0x42]) * 64, "not a pickle, joblib or skops file"),
     (b"city,age\nparis,31\n", "not a pickle, joblib or skops file"),
     (b"PK\x03\x04" + b"\x00" * 40, "not a pickle, joblib or skops file (a damaged zip archive"),
     (None, "a zip archive, but not a skops file")],
)
def test_pack_of_something_else_says_what_it_is_not(content: bytes | None, message: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import zipfile

    src = tmp_path / "model.joblib"
    if content is None:
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("notes.txt", "hello")
    else:
        src.write_bytes(content)
    assert main(["pack", str(src), "-o", str(tmp_path / "o.mlbundle")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "opcode" not in err
    assert not (tmp_path / "o.mlbundle").exists()


def test_a_damaged_pickle_is_still_an_integrity_failure(model: Any, tmp_path: Path) -> None:
    import pickle

    src = tmp_path / "model.pkl"
    src.write_bytes(pickle.dumps(model, protocol=4)[:200])
    assert main(["pack", str(src), "-o", str(tmp_path / "o.mlbundle")]) == 3


def test_output_dash_is_refused(model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "model.joblib"
    joblib.dump(model, src)
    monkeypatch.chdir(tmp_path)
    assert main(["pack", str(src), "-o", "-"]) == 2
    assert "never to standard output" in capsys.readouterr().err
    assert not (tmp_path / "-").exists()


def test_quiet_hides_library_warnings_but_not_bundlers(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    old = ROOT / "fixtures" / "sklearn-1.8" / "linear.mlbundle"
    assert main(["load", str(old), "--policy", "none", "--no-config"]) == 0
    assert "warning: Trying to unpickle estimator StandardScaler from version 1.8.0" in capsys.readouterr().err
    assert main(["load", str(old), "--policy", "none", "--no-config", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_requirements_prints_the_verified_pins_and_nothing_else(packed: Path, tmp_path: Path,
                                                                keypair: tuple[Path, Path]) -> None:
    from tests.helpers import claim_other_version

    result = run_cli("requirements", packed, "-q")
    assert result.returncode == 0
    assert result.stderr == ""
    pins = json.loads(run_cli("inspect", packed, "--json").stdout)["manifest"]["requirements"]
    assert result.stdout == "".join(f"{line}\n" for line in pins)
    assert "scikit-learn==" in result.stdout
    assert run_cli("requirements", packed, "--public-key", keypair[1]).returncode == 3
    other = tmp_path / "other.mlbundle"
    claim_other_version(packed, other, "scikit-learn", "1.2.2")
    result = run_cli("requirements", other)
    assert result.returncode == 4
    assert result.stdout == ""
    assert "hint: to print the pins of a bundle for an environment that does not have them yet" in result.stderr
    assert "--against FILE or --policy none" in result.stderr
    result = run_cli("requirements", other, "--policy", "none", "-q")
    assert result.returncode == 0
    assert "scikit-learn==1.2.2\n" in result.stdout
