"""Hostile *state* (fixtures/hostile/native, made by make_native.py): every sample names only allowed globals, and
each layer must produce exactly the outcome expected.json records for it.

* the scan's audit refuses the samples caught statically and accepts the others (they really are allowlisted);
* the restricted unpickler *alone* (no scan) together with the state validators refuses every sample, with the
  expected exception class and the offending name or attribute path;
* ``bundler.load`` of a bundle whose payload was swapped for the sample (a checksum-only bundle anyone can rewrite)
  raises that exact class; ``verify`` refuses what the scan catches and accepts the rest (it never deserializes);
* ``bundler pack FILE`` refuses every sample;
* the CLI, in a subprocess, exits with the expected code and never dies by a signal;
* the samples marked "signal" really do kill an unprotected loader (``joblib.load`` + predict) by a signal, so
  the suite exercises real crash inputs, not stand-ins.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bundler
from bundler.errors import UnsafeContent
from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.scan import scan_bytes

from .helpers import read_members, rewrite

NATIVE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile" / "native"
EXPECTED: dict[str, dict[str, Any]] = json.loads((NATIVE / "expected.json").read_text())
NAMES = sorted(EXPECTED)


def test_every_attack_class_has_samples() -> None:
    assert len(NAMES) >= 25
    for name in NAMES:
        assert (NATIVE / name).is_file()
    assert {e["stage"] for e in EXPECTED.values()} == {"scan", "load"}
    assert sum(e["live"] == "signal" for e in EXPECTED.values()) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_scan_audit(name: str) -> None:
    e = EXPECTED[name]
    try:
        scan = scan_bytes((NATIVE / name).read_bytes())
    except UnsafeContent as exc:  # refused while scanning (resource exhaustion)
        assert e["stage"] == "scan"
        assert e["where"] in str(exc)  # noqa: PT017 - refused at scan time is one of the two legitimate outcomes
        return
    findings = DEFAULT_ALLOWLIST.findings(scan)
    if e["stage"] == "scan":
        assert findings
        assert any(e["where"] in f.message or e["where"] in (f.subject or "") for f in findings), findings
    else:
        assert findings == [], f"{name} must name only allowlisted globals: {findings}"


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, model: object) -> dict[str, Path]:
    out = {}
    for ser in ("joblib", "pickle"):
        path = tmp_path_factory.mktemp("clean") / f"clean-{ser}.mlbundle"
        bundler.pack(model, path, serializer=ser)
        out[ser] = path
    return out


def swapped(clean: dict[str, Path], name: str, folder: Path) -> Path:
    src = clean[EXPECTED[name]["format"]]
    payload = next(n for n in read_members(src) if n.startswith("model/"))
    data = (NATIVE / name).read_bytes()

    def swap(members: dict[str, bytes]) -> None:
        members[payload] = data

    return rewrite(src, folder / f"swapped-{name}.mlbundle", members=swap)


@pytest.fixture(scope="module")
def outcomes(clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every sample through the unpickler alone, load, verify and pack, in child processes (tests/hostile_child.py).
    A child that dies by a signal marks the sample it was on as crashed; a new child takes the rest."""
    folder = tmp_path_factory.mktemp("swapped")
    jobs = {n: {"format": EXPECTED[n]["format"], "bundle": str(swapped(clean, n, folder))} for n in NAMES}
    results: dict[str, dict[str, Any]] = {}
    todo = list(NAMES)
    while todo:
        spec = folder / "jobs.json"
        spec.write_text(json.dumps({n: jobs[n] for n in todo}))
        proc = subprocess.run([sys.executable, "-m", "tests.hostile_child", str(NATIVE), str(folder), str(spec)],
                              capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[1])
        current = None
        for line in proc.stdout.splitlines():
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                results[record["name"]] = record
                current = None
        done = [n for n in todo if n in results]
        if proc.returncode != 0:
            culprit = current or next(n for n in todo if n not in results)
            results[culprit] = {"crashed": proc.returncode, "stderr": proc.stderr[-2000:]}
            done.append(culprit)
        todo = [n for n in todo if n not in done]
    return results


@pytest.mark.parametrize("name", NAMES)
def test_no_layer_crashes(name: str, outcomes: dict[str, dict[str, Any]]) -> None:
    assert "crashed" not in outcomes[name], f"{name}: the child process died: {outcomes[name]}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layer", ["unpickler", "load", "pack"])
def test_each_layer_refuses_with_the_expected_error(name: str, layer: str,
                                                    outcomes: dict[str, dict[str, Any]]) -> None:
    """The unpickler alone (then the validators), ``load`` of the swapped bundle, ``pack`` of the file: the exact
    exception class, its exit code and the offending name or attribute path."""
    e = EXPECTED[name]
    got = outcomes[name].get(layer)
    assert got is not None, outcomes[name]
    assert got["class"] == e["class"], got
    assert got["exit"] == e["exit"], got
    assert e["where"] in " ".join(got["problems"]), got["problems"]
    if layer == "pack":
        assert not got["written"]


@pytest.mark.parametrize("name", NAMES)
def test_verify_refuses_what_the_scan_catches(name: str, outcomes: dict[str, dict[str, Any]]) -> None:
    e = EXPECTED[name]
    got = outcomes[name]["verify"]
    assert got["class"] is None  # verify reports, it does not raise
    assert got["exit"] == (e["exit"] if e["stage"] == "scan" else 0), got


#: One sample per family through the real CLI (each in its own process).
CLI_SAMPLES = ["ball_tree_mahalanobis.joblib", "forged_dtype.pkl", "sparse_coef_indices.pkl",
               "exponential_tuple_keys.pkl", "tree_float_n_features.pkl", "native_helper_as_func.pkl",
               "hgb_bitset_index.joblib", "reconstruct_1tib.pkl"]


@pytest.mark.parametrize("name", CLI_SAMPLES)
def test_cli_load_exits_cleanly(name: str, clean: dict[str, Path], tmp_path: Path) -> None:
    e = EXPECTED[name]
    path = swapped(clean, name, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "bundler", "load", str(path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode >= 0, f"{name}: the loader died by signal {-proc.returncode}"
    assert proc.returncode == e["exit"], proc.stderr
    assert "Traceback" not in proc.stderr
    assert e["where"] in proc.stderr


_UNPROTECTED = """
import sys, joblib, numpy as np
obj = joblib.load(sys.argv[1])
rng = np.random.RandomState(1)
X = rng.uniform(size=(50, int(getattr(obj, "n_features_in_", 4))))
if type(obj).__name__ == "ColumnTransformer":
    X = np.c_[X[:, :2], rng.randint(0, 50, 50)]
if type(obj).__name__ == "HashingVectorizer":
    X = ["alpha beta", "beta gamma"]
if isinstance(obj, dict):
    obj["matrix"] @ np.ones(4)
for name in ("predict", "transform", "predict_proba", "kneighbors"):
    method = getattr(obj, name, None)
    if method is not None:
        try:
            method(X)
        except Exception:
            pass
"""


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["live"] == "signal"))
def test_signal_samples_are_real_crashes(name: str) -> None:
    """What the loader protects against: the same file, loaded without bundler, kills the process."""
    proc = subprocess.run([sys.executable, "-c", _UNPROTECTED, str(NATIVE / name)], capture_output=True,
                          timeout=300)
    assert proc.returncode < 0, f"{name}: unprotected loading exited {proc.returncode}"
    assert -proc.returncode in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE), proc.returncode
