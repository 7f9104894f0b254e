"""Read once: what is deserialized is exactly what was verified, whatever happens to the file meanwhile.

A loader that hashes the payload and then reads it again to deserialize can be made to load other bytes: rewrite
the file in place between the two reads and a signed bundle loads the attacker's model while reporting "signature
verified". Here a second process rewrites the payload in place, as fast as it can, while ``load`` runs again and
again: every load must return the signed model or refuse (the bytes it read did not match), never the other one.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import time
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import bundler
from bundler.errors import IntegrityError
from bundler.integrity.signing import Ed25519PublicKey, Ed25519Signer


def _payload_span(path: Path) -> tuple[int, int]:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model/model.joblib")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def _rewrite_forever(path: str, offset: int, versions: list[bytes], stop: multiprocessing.synchronize.Event) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        i = 0
        while not stop.is_set():
            os.pwrite(fd, versions[i % 2], offset)
            i += 1
    finally:
        os.close(fd)


def test_in_place_rewrite_during_load_never_loads_the_other_model(tmp_path: Path, ed_signer: Ed25519Signer,
                                                                   ed_public: Ed25519PublicKey) -> None:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 20))
    y = (X[:, 0] > 0).astype(int)
    signed = LogisticRegression().fit(X, y)
    other = LogisticRegression().fit(X, 1 - y)  # same shapes, opposite predictions
    path = tmp_path / "signed.mlbundle"
    bundler.pack(signed, path, signer=ed_signer)
    offset, size = _payload_span(path)
    with open(path, "rb") as fh:
        fh.seek(offset)
        good = fh.read(size)
    bio = io.BytesIO()
    joblib.dump(other, bio)
    evil = bio.getvalue()
    assert len(evil) == size
    assert evil != good

    stop = multiprocessing.Event()
    writer = multiprocessing.Process(target=_rewrite_forever, args=(str(path), offset, [evil, good], stop))
    writer.start()
    outcomes = {"signed": 0, "refused": 0}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(outcomes.values()) < 40:
            try:
                model = bundler.load(path, key=ed_public)
            except IntegrityError:
                outcomes["refused"] += 1
                continue
            assert np.array_equal(model.predict(X), signed.predict(X)), "loaded bytes that were not verified"
            outcomes["signed"] += 1
    finally:
        stop.set()
        writer.join(timeout=10)
    assert sum(outcomes.values()) >= 10, outcomes
    # The writer really raced the loads: some loads read a rewritten payload and refused it.
    assert outcomes["refused"] > 0, outcomes


def test_load_reads_the_payload_exactly_once(tmp_path: Path, model: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the bytes read from the payload's span through the bundle's file descriptor during a load."""
    path = tmp_path / "m.mlbundle"
    bundler.pack(model, path)
    offset, size = _payload_span(path)
    reads: list[tuple[int, int]] = []
    real_preadv, real_pread = os.preadv, os.pread

    def preadv(fd: int, buffers: list[memoryview], pos: int) -> int:
        got = real_preadv(fd, buffers, pos)
        reads.append((pos, got))
        return got

    def pread(fd: int, n: int, pos: int) -> bytes:
        data = real_pread(fd, n, pos)
        reads.append((pos, len(data)))
        return data

    monkeypatch.setattr(os, "preadv", preadv)
    monkeypatch.setattr(os, "pread", pread)
    bundler.load(path)
    payload_bytes = sum(max(0, min(pos + n, offset + size) - max(pos, offset)) for pos, n in reads)
    assert payload_bytes == size


def test_a_byte_flipped_in_the_last_chunk_fails_before_anything_is_deserialized(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payload with chunk digests (several chunks, hashed on every core) and one byte of array data changed in its
    LAST chunk: ``load`` refuses it as an integrity failure (exit 3) and never starts the unpickler."""
    import bundler.pipelines.pack as pack_module
    import bundler.pipelines.serializers as serializers
    from bundler.container.manifest import MIN_CHUNK_SIZE
    from bundler.safety.scan import scan_memory
    from tests.conftest import run_cli

    monkeypatch.setattr(pack_module, "CHUNKED_MIN_BYTES", 2 * MIN_CHUNK_SIZE)  # chunked without a 64 MB test file
    monkeypatch.setattr(pack_module, "DIGEST_CHUNK_BYTES", MIN_CHUNK_SIZE)
    from sklearn.neighbors import KNeighborsClassifier

    X = np.random.RandomState(0).normal(size=(9000, 50))  # 3.6 MB of float64: four 1 MiB chunks
    path = tmp_path / "chunked.mlbundle"
    manifest = bundler.pack(KNeighborsClassifier(algorithm="brute").fit(X, (X[:, 0] > 0).astype(int)), path)
    entry = manifest.file("model/model.joblib")
    assert entry is not None
    assert entry.chunks is not None
    assert len(entry.chunks) == 4
    assert entry.chunk_size == MIN_CHUNK_SIZE
    offset, size = _payload_span(path)
    with open(path, "rb") as fh:
        fh.seek(offset)
        payload = fh.read(size)
    last_chunk = (len(entry.chunks) - 1) * MIN_CHUNK_SIZE
    inside = [s for s in scan_memory(payload).arrays if s.offset + s.nbytes > last_chunk + 64]
    assert inside, "the test needs array data in the last chunk"
    flip_at = max(inside[0].offset, last_chunk) + 17  # array data: the pickle stays well-formed, only digests differ
    with open(path, "r+b") as rw:
        rw.seek(offset + flip_at)
        byte = rw.read(1)
        rw.seek(offset + flip_at)
        rw.write(bytes([byte[0] ^ 0x01]))

    deserialized: list[object] = []
    real = serializers.load_verified
    def spy(*a: object, **k: object) -> object:
        deserialized.append(a)
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(serializers, "load_verified", spy)
    with pytest.raises(IntegrityError) as caught:
        bundler.load(path)
    assert caught.value.exit_code == 3
    assert "model/model.joblib" in str(caught.value)
    assert deserialized == []

    result = run_cli("load", path)
    assert result.returncode == 3, (result.returncode, result.stderr)  # a signal would be negative
    assert "model/model.joblib" in result.stderr
    assert "Traceback" not in result.stderr
