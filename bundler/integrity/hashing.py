"""Streaming SHA-256: hash files and streams in bounded chunks, and hash while writing.

Payloads can be hundreds of megabytes; everything here reads or writes in fixed-size chunks so that hashing never
holds a second copy of a payload in memory. ``hashlib`` releases the GIL for large updates, so hashing can overlap
with other work in threads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import IO

__all__ = [
    "CHUNKED_MIN_BYTES",
    "CHUNK_SIZE",
    "DIGEST_CHUNK_BYTES",
    "BackgroundDigest",
    "HashingReader",
    "SpanDigestReader",
    "chunk_digests",
    "memory_chunk_digests",
    "sha256_bytes",
]

CHUNK_SIZE = 1 << 20


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hash an in-memory byte string (manifests, small members)."""
    return hashlib.sha256(data).hexdigest()




class BackgroundDigest:
    """SHA-256 computed on a worker thread, fed in order.

    ``hashlib`` releases the GIL while hashing large buffers, so a consumer that parses in Python (the pickle scan)
    and the digest run on two cores at once: verifying costs about max(scan, hash) instead of their sum.
    """

    _DONE = None

    def __init__(self, progress: Callable[[int], None] | None = None) -> None:
        import queue
        import threading

        self._progress = progress
        self._digest = hashlib.sha256()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bundler-sha256", daemon=True)
        self._thread.start()
        self._hex: str | None = None
        self.size = 0

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)
            if self._progress is not None:
                self._progress(len(chunk))

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._queue.put(data)

    def hexdigest(self) -> str:
        if self._hex is None:
            self._queue.put(self._DONE)
            self._thread.join()
            self._hex = self._digest.hexdigest()
        return self._hex


class HashingReader:
    """A read-only file object over ``source`` that hashes every byte read, so a scan and a hash share one pass."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        if data:
            self._digest.update(data)
            self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read the rest of the source, so the digest covers everything even if the consumer stopped early."""
        while self.read(CHUNK_SIZE):
            pass

    @property
    def hexdigest(self) -> str:
        return self._digest.hexdigest()


#: Payloads at least this large get chunked digests in the manifest (smaller ones: one SHA-256 is fast enough, and
#: computing chunk digests costs a second pass at pack time).
CHUNKED_MIN_BYTES = 64 << 20
DIGEST_CHUNK_BYTES = 16 << 20


def chunk_digests(fd: int, offset: int, size: int, chunk_size: int = DIGEST_CHUNK_BYTES,
                  workers: int | None = None, progress: Callable[[int], None] | None = None) -> list[str]:
    """SHA-256 of each ``chunk_size`` piece of ``size`` bytes at ``offset`` in ``fd``, computed on several threads.

    Each worker reads its chunk with ``pread`` in 4 MiB pieces (bounded memory) and hashes it; ``hashlib`` releases
    the GIL, so the chunks are hashed on as many cores as there are workers.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> str:
        digest = hashlib.sha256()
        pos = offset + index * chunk_size
        end = min(pos + chunk_size, offset + size)
        while pos < end:
            data = os.pread(fd, min(4 << 20, end - pos), pos)
            if not data:
                raise EOFError("file ended inside a chunk")
            digest.update(data)
            pos += len(data)
            if progress is not None:
                progress(len(data))
        return digest.hexdigest()

    count = -(-size // chunk_size)
    if count <= 1:
        return [one(0)] if count else []
    with ThreadPoolExecutor(max_workers=workers or min(count, os.cpu_count() or 2)) as pool:
        return list(pool.map(one, range(count)))


class SpanDigestReader:
    """Sequential ``read(n)`` over ``size`` bytes of a file descriptor with ``pread``; each chunk is a new ``bytes``
    given to ``digest`` as it is returned (so a scan and the SHA-256 of a stored member share one streaming pass,
    hashing on another core)."""

    def __init__(self, fd: int, offset: int, size: int, digest: BackgroundDigest) -> None:
        self._fd = fd
        self._pos = offset
        self._end = offset + size
        self._digest = digest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise EOFError("file ended inside a member (truncated)")
        self._pos += len(data)
        self._digest.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass


def memory_chunk_digests(data: memoryview | bytes, chunk_size: int = DIGEST_CHUNK_BYTES,
                         workers: int | None = None) -> list[str]:
    """SHA-256 of each ``chunk_size`` piece of an in-memory buffer, on several threads (``hashlib`` releases the
    GIL), so packing a large payload never reads it back from disk."""
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(data).cast("B")
    count = -(-len(view) // chunk_size)
    if count <= 1:
        return [hashlib.sha256(view).hexdigest()]
    with ThreadPoolExecutor(max_workers=workers or min(count, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda i: hashlib.sha256(view[i * chunk_size:(i + 1) * chunk_size]).hexdigest(),
                             range(count)))


class MemoryPayloadWrite:
    """Write an in-memory payload to ``target`` on a worker thread while other threads hash the same memory.

    Why: packing used to write (hashing on a second thread), then hash again for the chunk digests, while the
    Python thread waited; the scan (pure Python, holding the GIL) ran before all of it. Writing, the zip CRC, the
    SHA-256 of the whole payload, the chunk digests and ``fdatasync`` of the written bytes all release the GIL, so
    they run here, on worker threads, while the caller scans. ``data`` must not change until ``result()`` returned:
    the digests are of exactly the bytes handed to ``target.write``, the very same memory.

    ``after_write`` runs on the writing thread once every byte went to ``target`` (``BundleWriter`` passes its
    early ``fdatasync``, so the commit's final fsync only flushes what follows).
    """

    PIECE = 4 << 20

    def __init__(self, target: IO[bytes], data: memoryview, *, chunk_size: int | None,
                 progress: Callable[[int], None] | None = None,
                 after_write: Callable[[], None] | None = None) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self._target = target
        self._view = memoryview(data).cast("B")
        self._progress = progress
        self._after = after_write
        self._digest = hashlib.sha256()
        self._error: BaseException | None = None
        size = len(self._view)
        self._pool = None
        self._chunks = None
        if chunk_size is not None:
            count = max(1, -(-size // chunk_size))
            self._pool = ThreadPoolExecutor(max_workers=min(count, os.cpu_count() or 2))
            view = self._view
            self._chunks = [self._pool.submit(_hex_sha256, view[i * chunk_size:(i + 1) * chunk_size])
                            for i in range(count)]
        self._hasher = threading.Thread(target=self._digest.update, args=(self._view,), name="bundler-sha256",
                                        daemon=True)
        self._writer = threading.Thread(target=self._write, name="bundler-write", daemon=True)
        self._hasher.start()
        self._writer.start()

    def _write(self) -> None:
        view, piece = self._view, self.PIECE
        try:
            for start in range(0, len(view), piece):
                part = view[start:start + piece]
                self._target.write(part)
                if self._progress is not None:
                    self._progress(len(part))
            if self._after is not None:
                self._after()
        except BaseException as exc:  # noqa: BLE001 - recorded; result() raises it in the caller's thread
            self._error = exc

    def result(self) -> tuple[str, list[str] | None]:
        """Wait for the write and every digest: ``(sha256, chunk digests or None)``; raise what writing raised."""
        self._writer.join()
        self._hasher.join()
        try:
            chunks = [f.result() for f in self._chunks] if self._chunks is not None else None
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest(), chunks


def _hex_sha256(view: memoryview) -> str:
    return hashlib.sha256(view).hexdigest()

