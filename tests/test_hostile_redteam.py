"""Red-team samples (fixtures/hostile/redteam, made by make_redteam.py): each through the unpickler alone (then the
validators), ``load`` of a checksum-only bundle whose payload was swapped for it, ``verify`` and ``pack FILE``, in
child processes (tests/hostile_child.py). A child that dies by a signal, or runs out of time, fails the sample.

Each row of expected.json names the exception class (or null: the payload must load), its exit code and the
offending name or attribute path; see make_redteam.py for what each sample did before it was fixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bundler

from .helpers import read_members, rewrite

ROOT = Path(__file__).resolve().parents[1]
REDTEAM = ROOT / "fixtures" / "hostile" / "redteam"
EXPECTED: dict[str, dict[str, Any]] = json.loads((REDTEAM / "expected.json").read_text())
NAMES = sorted(EXPECTED)


def test_rows_name_real_files() -> None:
    for name, e in EXPECTED.items():
        assert (REDTEAM / name).is_file()
        assert e["class"] in (None, "UnsafeContent", "IntegrityError")
        assert e["exit"] == {None: 0, "UnsafeContent": 5, "IntegrityError": 3}[e["class"]]


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
    data = (REDTEAM / name).read_bytes()

    def swap(members: dict[str, bytes]) -> None:
        members[payload] = data

    return rewrite(src, folder / f"swapped-{name}.mlbundle", members=swap)


@pytest.fixture(scope="module")
def outcomes(clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every sample in child processes: a child that dies by a signal, or runs out of time, is pinned on the
    sample it was working on ("start" lines) and a new child takes the rest."""
    folder = tmp_path_factory.mktemp("redteam")
    jobs = {n: {"format": EXPECTED[n]["format"], "bundle": str(swapped(clean, n, folder))} for n in NAMES}
    results: dict[str, dict[str, Any]] = {}
    todo = list(NAMES)
    while todo:
        spec = folder / "jobs.json"
        spec.write_text(json.dumps({n: jobs[n] for n in todo}))
        try:
            proc = subprocess.run([sys.executable, "-m", "tests.hostile_child", str(REDTEAM), str(folder), str(spec)],
                                  capture_output=True, text=True, timeout=60 + 30 * len(todo), cwd=ROOT)
            code: int | str
            out, code, err = proc.stdout, proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            code, err = "timeout", ""
        current = None
        for line in out.splitlines():
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                results[record["name"]] = record
                current = None
        done = [n for n in todo if n in results]
        if code != 0:
            culprit = current or next(n for n in todo if n not in results)
            results[culprit] = {"crashed": code, "stderr": err[-2000:]}
            done.append(culprit)
        todo = [n for n in todo if n not in done]
    return results


@pytest.mark.parametrize("name", NAMES)
def test_no_layer_crashes_or_hangs(name: str, outcomes: dict[str, dict[str, Any]]) -> None:
    assert "crashed" not in outcomes[name], f"{name}: the child process died or hung: {outcomes[name]}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layer", ["unpickler", "load", "pack"])
def test_each_layer_gives_the_expected_outcome(name: str, layer: str, outcomes: dict[str, dict[str, Any]]) -> None:
    e = EXPECTED[name]
    got = outcomes[name].get(layer)
    assert got is not None, outcomes[name]
    if e["class"] is None:  # must load (pack FILE may still refuse a model without predict as a usage error)
        assert got["class"] in (None, "UsageError"), got
        return
    assert got["class"] == e["class"], got
    assert got["exit"] == e["exit"], got
    assert e["where"] in " ".join(got["problems"]), got["problems"]
    if layer == "pack":
        assert not got["written"]


@pytest.mark.parametrize("name", NAMES)
def test_verify_refuses_what_the_scan_catches(name: str, outcomes: dict[str, dict[str, Any]]) -> None:
    e = EXPECTED[name]
    got = outcomes[name]["verify"]
    assert got["class"] is None
    assert got["exit"] == (e["exit"] if e["stage"] == "scan" else 0), got


@pytest.mark.parametrize("verb", ["verify", "load"])
def test_refusal_lines_cannot_be_forged(verb: str, clean: dict[str, Path], tmp_path: Path) -> None:
    """A global named "os\\n\\x1b[32mbundler: OK, loaded": every stderr line is one of bundler's own, with the
    newline and the escape shown as ``\\x0a`` and ``\\x1b``."""
    path = swapped(clean, "control_chars_in_name.pkl", tmp_path)
    proc = subprocess.run([sys.executable, "-m", "bundler", verb, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert "\x1b" not in proc.stderr
    assert all(line.startswith("bundler: ") for line in proc.stderr.splitlines()), proc.stderr
    assert not any(line.startswith("bundler: OK") for line in proc.stderr.splitlines())
    if verb == "load":
        assert "os\\x0a\\x1b[32mbundler: OK, loaded.system" in proc.stderr


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    text = ("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + repr(shape) + ", }").encode()
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


@pytest.mark.parametrize("shape", [(2**40, 4), (2**28, 4), (3, 4)])
def test_sample_header_must_match_its_bytes(shape: tuple[int, ...]) -> None:
    """A 200-byte sample member whose header claims 32 TiB (or 8 GiB) made ``np.load`` allocate the whole claim
    before reading: refused from the header alone, before anything is allocated."""
    from bundler.errors import UsageError
    from bundler.pipelines.sample.storage import MemberReader

    data = _npy_header(shape) + bytes(160)
    reader = MemberReader(lambda _name: data)
    with pytest.raises(UsageError, match="its header describes"):
        reader.array({"member": "sample/input.npy"})


def test_sample_lying_header_is_a_behaviour_refusal(packed: Path, tmp_path: Path) -> None:
    def swap(members: dict[str, bytes]) -> None:
        members["sample/input.npy"] = _npy_header((2**40, 6)) + bytes(160)

    path = rewrite(packed, tmp_path / "lying-sample.mlbundle", members=swap)
    proc = subprocess.run([sys.executable, "-m", "bundler", "load", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 6, proc.stderr
    assert "its header describes" in proc.stderr
    assert "MemoryError" not in proc.stderr


@pytest.mark.parametrize("shape", [(2**40,), (2**30,)])
def test_skops_npy_headers_are_checked_before_skops_reads_them(shape: tuple[int, ...], tmp_path: Path,
                                                              data: Any) -> None:
    """skops reads its arrays with ``np.load`` from zip members, which allocates what a header claims before it
    reads: 8 TiB (MemoryError) or 8 GiB (then EOF) from 100 bytes both ended as exit 1. Now: exit 5, naming the
    member, before skops runs; ``pack FILE`` refuses it the same way."""
    pytest.importorskip("skops")
    import io
    import zipfile

    from sklearn.linear_model import LogisticRegression

    X, y = data
    clean = tmp_path / "skops.mlbundle"
    bundler.pack(LogisticRegression().fit(X, y), clean, serializer="skops", sample=X[:5])
    payload = read_members(clean)["model/model.skops"]
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, _npy_header(shape) + bytes(64) if name.endswith(".npy") else zin.read(name))

    def swap(members: dict[str, bytes]) -> None:
        members["model/model.skops"] = out.getvalue()

    path = rewrite(clean, tmp_path / "lying.mlbundle", members=swap)
    proc = subprocess.run([sys.executable, "-m", "bundler", "load", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert ".npy header describes" in proc.stderr
    assert "internal error" not in proc.stderr
    raw = tmp_path / "lying.skops"
    raw.write_bytes(out.getvalue())
    proc = subprocess.run([sys.executable, "-m", "bundler", "pack", str(raw), "-o", str(tmp_path / "p.mlbundle")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert not (tmp_path / "p.mlbundle").exists(), proc.stderr


def _flag_schema(payload: bytes, *, flag: int = 0, method: int | None = None) -> bytes:
    """The skops zip with schema.json's general-purpose flags or compression method changed in both headers."""
    import io
    import struct
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            zout.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), zin.read(name))
    raw = bytearray(out.getvalue())
    for sig, at_flag, at_method, at_name, at_len in ((b"PK\x03\x04", 6, 8, 30, 26), (b"PK\x01\x02", 8, 10, 46, 28)):
        i = raw.find(sig)
        while i >= 0:
            n = struct.unpack_from("<H", raw, i + at_len)[0]
            if bytes(raw[i + at_name:i + at_name + n]) == b"schema.json":
                struct.pack_into("<H", raw, i + at_flag, struct.unpack_from("<H", raw, i + at_flag)[0] | flag)
                if method is not None:
                    struct.pack_into("<H", raw, i + at_method, method)
            i = raw.find(sig, i + 4)
    return bytes(raw)


@pytest.mark.parametrize(("flag", "method", "why"), [(1, None, "encrypted"), (0, 99, "compression method"),
                                                      (0, 12, "Invalid data stream")])
def test_skops_zip_tricks_are_malformed_not_internal(flag: int, method: int | None, why: str, tmp_path: Path,
                                                     data: Any) -> None:
    """A skops payload whose schema.json claims encryption, an unknown compression method, or bzip2 over
    deflated bytes: zipfile raises RuntimeError / NotImplementedError / OSError, which escaped the static audit as
    exit 1 from verify, load and pack. All three now say "malformed skops payload", exit 3."""
    pytest.importorskip("skops")
    from sklearn.linear_model import LogisticRegression

    X, y = data
    clean = tmp_path / "skops.mlbundle"
    bundler.pack(LogisticRegression().fit(X, y), clean, serializer="skops")
    bad = _flag_schema(read_members(clean)["model/model.skops"], flag=flag, method=method)

    def swap(members: dict[str, bytes]) -> None:
        members["model/model.skops"] = bad

    path = rewrite(clean, tmp_path / "tricked.mlbundle", members=swap)
    raw = tmp_path / "tricked.skops"
    raw.write_bytes(bad)
    for args in (["verify", str(path)], ["load", str(path)], ["pack", str(raw), "-o", str(tmp_path / "o.mlbundle")]):
        proc = subprocess.run([sys.executable, "-m", "bundler", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "malformed skops payload" in proc.stderr, proc.stderr
        assert why in proc.stderr, proc.stderr


def test_vocabulary_column_through_the_behaviour_check(tmp_path: Path) -> None:
    """The vocabulary sample swapped into a bundle that carries a text sample: before the vocabulary check,
    ``bundler load`` died by SIGSEGV in the behaviour check (``X @ coef_.T`` over a column 10**8 of 4)."""
    import numpy as np

    sys.path.insert(0, str(REDTEAM))
    try:
        import make_redteam
    finally:
        sys.path.remove(str(REDTEAM))
    clean = tmp_path / "text.mlbundle"
    bundler.pack(make_redteam.text_pipeline(), clean, serializer="pickle",
                 sample=np.array(make_redteam.DOCS[:5], dtype=object))

    def swap(members: dict[str, bytes]) -> None:
        members["model/model.pkl"] = (REDTEAM / "count_vocabulary_column.pkl").read_bytes()

    path = rewrite(clean, tmp_path / "vocabulary.mlbundle", members=swap)
    proc = subprocess.run([sys.executable, "-m", "bundler", "load", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode >= 0, f"the loader died by signal {-proc.returncode}"
    assert proc.returncode == 5, proc.stderr
    assert "model.steps[0][1].vocabulary_" in proc.stderr
