"""Hostile payloads through the whole bundle path: pack of a hostile file, verify and load of a bundle whose payload
was swapped (checksum-only bundles can be rewritten by anyone), via the API and the CLI; exit 5 (or 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest

import bundler
from bundler.errors import IntegrityError, UnsafeContent

from .helpers import read_members, rewrite

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())["payloads"]
ROOT = Path(__file__).resolve().parents[1]
CASES = sorted(n for n, k in EXPECTED.items() if k in ("unsafe", "malformed", "tree"))
SAMPLE = ["os_system_pickled.pkl", "joblib_compressed_lz4.joblib", "joblib_object_array_nested.joblib",
          "joblib_frame_trick.joblib", "tree_oob_children.pkl", "reconstructor_forwarding.pkl"]


@pytest.fixture(autouse=True)
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "marker"
    monkeypatch.setenv("BUNDLER_MARKER", str(path))
    yield path
    assert not path.exists(), "a hostile payload ran"


def expected_exit(name: str) -> int:
    return 3 if EXPECTED[name] == "malformed" else 5


@pytest.fixture(scope="module")
def clean_bundles(tmp_path_factory: pytest.TempPathFactory, model: object) -> dict[str, Path]:
    out = {}
    for ser in ("joblib", "pickle"):
        path = tmp_path_factory.mktemp("clean") / f"clean-{ser}.mlbundle"
        bundler.pack(model, path, serializer=ser)
        out[ser] = path
    return out


def swapped(clean: dict[str, Path], name: str, tmp_path: Path) -> Path:
    ser = "joblib" if name.endswith(".joblib") else "pickle"
    src = clean[ser]
    payload = next(n for n in read_members(src) if n.startswith("model/"))
    data = (HOSTILE / name).read_bytes()

    def swap(members: dict[str, bytes]) -> None:
        members[payload] = data

    return rewrite(src, tmp_path / f"swapped-{name}.mlbundle", members=swap)


@pytest.mark.parametrize("name", CASES)
def test_pack_of_hostile_file_refused(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out.mlbundle"
    # A crafted tree is made of allowed classes with bad numbers: pack_file loads the copy it bundles with the
    # restricted unpickler and validates the trees, so it is refused at pack time like any other hostile file.
    expected = IntegrityError if EXPECTED[name] == "malformed" else UnsafeContent
    with pytest.raises(expected) as err:
        bundler.pack_file(HOSTILE / name, out)
    assert err.value.exit_code == expected_exit(name)
    assert not out.exists()


@pytest.mark.parametrize("name", CASES)
def test_verify_and_load_of_swapped_payload(name: str, clean_bundles: dict[str, Path], tmp_path: Path) -> None:
    path = swapped(clean_bundles, name, tmp_path)
    if EXPECTED[name] != "tree":
        report = bundler.verify(path)
        assert not report.ok
        assert report.exit_code == expected_exit(name)
    with pytest.raises((UnsafeContent, IntegrityError)) as err:
        bundler.load(path)
    assert err.value.exit_code == expected_exit(name)


@pytest.mark.parametrize("verb", ["load", "pack", "verify"])
@pytest.mark.parametrize("name", SAMPLE)
def test_cli_exit_codes(name: str, verb: str, clean_bundles: dict[str, Path], tmp_path: Path) -> None:
    path = swapped(clean_bundles, name, tmp_path)
    argv = {"load": ["load", str(path)], "verify": ["verify", str(path)],
            "pack": ["pack", str(HOSTILE / name), "-o", str(tmp_path / "x.mlbundle")]}[verb]
    proc = subprocess.run([sys.executable, "-m", "bundler", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode >= 0, proc.stderr  # never a signal
    assert "Traceback" not in proc.stderr
    if EXPECTED[name] == "tree" and verb == "verify":
        # verify never deserializes, so crafted tree *state* is for load (and pack of the file) to refuse
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == expected_exit(name), proc.stderr


def test_swapped_bundle_still_loads_when_clean(clean_bundles: dict[str, Path], data: tuple[Any, Any],
                                               tmp_path: Path) -> None:
    X, _ = data
    model = bundler.load(clean_bundles["joblib"])
    assert model.predict(X).shape == (len(X),)
    joblib.dump(model, tmp_path / "m.joblib")
    bundler.pack_file(tmp_path / "m.joblib", tmp_path / "ok.mlbundle")
    assert bundler.verify(tmp_path / "ok.mlbundle").ok
