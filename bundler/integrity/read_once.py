"""Read a member once into private memory, hashing every byte as it arrives, so that what is verified is what is used.

Why: a loader that hashes a file and then reads it again to deserialize (or maps it, sharing pages another process
can write) can be made to load other bytes than it verified: rewrite the file in place between the two reads and a
signed bundle loads the attacker's model while reporting "signature verified". Here each byte is read from the file
exactly once, with ``pread`` into a buffer this process owns (a bytearray, or for large members an anonymous private
mapping: memory, not the file; ``private_buffer``); the digests are computed over that buffer, and the
scan and the unpickler then read the same buffer. Nothing touches the file again.

The read runs on a worker thread in pieces (``pread`` releases the GIL); the whole-member SHA-256 runs on another
thread as pieces arrive, and chunk digests (``FileEntry.chunks``) on every core; the caller may consume the buffer
while it fills (``fill.wait_for(n)`` returns once ``n`` bytes are there), for instance to scan it. ``result()``
waits for everything and returns the digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bundler.errors import IntegrityError

__all__ = ["Fill", "MemberRead", "ReadDigests"]

PIECE = 4 << 20


class Fill:
    """Progress of a buffer being filled by another thread: ``wait_for(n)`` blocks until ``n`` bytes are there."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._filled = 0
        self._failed: BaseException | None = None
        self._cond = threading.Condition()

    def available(self) -> int:
        return self._filled

    def advance(self, filled: int) -> None:
        with self._cond:
            self._filled = filled
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            self._failed = exc
            self._cond.notify_all()

    def wait_for(self, n: int) -> int:
        want = min(n, self.total)
        with self._cond:
            while self._filled < want and self._failed is None:
                self._cond.wait()
            if self._filled < want and self._failed is not None:
                raise self._failed
            return self._filled


@dataclass(frozen=True)
class ReadDigests:
    """What reading computed: the member's SHA-256, and its chunk digests when a chunk size was given."""

    sha256: str | None
    chunks: list[str] | None


class MemberRead:
    """One member (``size`` bytes at ``offset`` of ``fd``) read once into ``buffer``."""

    def __init__(self, fd: int, offset: int, size: int, *, chunk_size: int | None = None, whole: bool = True,
                 progress: Callable[[int], None] | None = None) -> None:
        self.fd = fd
        self.offset = offset
        self.size = size
        self.chunk_size = chunk_size
        self.whole = whole
        self.progress = progress
        self.buffer = private_buffer(size)
        self.view = memoryview(self.buffer)
        self.fill = Fill(size)
        self._error: BaseException | None = None
        self._digest = hashlib.sha256() if whole else None
        self._pieces: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._chunk_futures: list[Future[str]] = []
        self._pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 2)) if chunk_size else None
        self._reader = threading.Thread(target=self._read, name="bundler-read", daemon=True)
        self._hasher = threading.Thread(target=self._hash, name="bundler-sha256", daemon=True) if whole else None
        #: Chunk digests only (how ``verify`` reads a chunked member): every worker reads *and* hashes its chunks.
        self._parallel = chunk_size is not None and not whole
        self._lock = threading.Lock()
        self._done: list[bool] = []
        self._got: list[int] = []
        self._prefix = 0

    def start(self) -> MemberRead:
        if self._parallel:
            self._start_parallel()
            return self
        if self._hasher is not None:
            self._hasher.start()
        self._reader.start()
        return self

    # -- chunk digests only: read and hash each chunk on the same worker --------------------------------------------
    def _start_parallel(self) -> None:
        """Why: with one reading thread and the hashing on the others, the copy out of the page cache (as long as a
        whole ``joblib.load``) ran on one core while every core was needed for hashing, and the last chunks could
        only be hashed once that one thread had read them: an 800 MB load took several times the floor (issue
        11). Here each worker ``preadv``s a chunk piece by piece and hashes every piece right after reading it,
        so reading and hashing are spread over all cores alike. The buffer still fills front to back (chunks are
        taken in order) and ``fill`` reports the contiguous prefix read so far, so a scan can follow it."""
        assert self._pool is not None  # noqa: S101 - set by __init__ for parallel reads
        assert self.chunk_size is not None  # noqa: S101
        chunk = self.chunk_size
        count = max(1, -(-self.size // chunk))
        self._done = [False] * count
        self._got = [0] * count
        self._chunk_futures = [self._pool.submit(self._read_chunk, i, i * chunk, min((i + 1) * chunk, self.size))
                               for i in range(count)]

    def _read_chunk(self, index: int, start: int, end: int) -> str:
        digest = hashlib.sha256()
        view, pos = self.view, start
        try:
            while pos < end:
                n = min(PIECE, end - pos)
                got = os.preadv(self.fd, [view[pos:pos + n]], self.offset + pos)
                if got <= 0:
                    raise IntegrityError("archive ended inside a member (truncated)")
                digest.update(view[pos:pos + got])
                pos += got
                self._advance(index, pos - start, done=pos >= end)
                if self.progress is not None:
                    self.progress(got)
        except BaseException as exc:  # noqa: BLE001 - an I/O error: recorded, raised by result()
            error = exc if isinstance(exc, IntegrityError) else IntegrityError(f"cannot read member: {exc}")
            with self._lock:
                if self._error is None:
                    self._error = error
            self.fill.fail(error)
            raise error from None
        return digest.hexdigest()

    def _advance(self, index: int, got: int, *, done: bool) -> None:
        """Record progress of chunk ``index``; tell ``fill`` how long the contiguous prefix read so far is."""
        assert self.chunk_size is not None  # noqa: S101 - only chunked reads advance
        with self._lock:
            self._got[index] = got
            self._done[index] = done
            while self._prefix < len(self._done) and self._done[self._prefix]:
                self._prefix += 1
            filled = self._prefix * self.chunk_size
            if self._prefix < len(self._done):
                filled += self._got[self._prefix]
            self.fill.advance(min(filled, self.size))

    def _read(self) -> None:
        view, pos, size = self.view, 0, self.size
        chunk, chunk_start = self.chunk_size or 0, 0
        try:
            while pos < size:
                n = min(PIECE, size - pos)
                got = os.preadv(self.fd, [view[pos:pos + n]], self.offset + pos)
                if got <= 0:
                    raise IntegrityError("archive ended inside a member (truncated)")
                if self._hasher is not None:
                    self._pieces.put((pos, pos + got))
                pos += got
                if self._pool is not None:
                    while chunk_start < size and (chunk_start + chunk <= pos or pos == size):
                        end = min(chunk_start + chunk, size)
                        self._chunk_futures.append(self._pool.submit(_sha256, view[chunk_start:end]))
                        chunk_start = end
                if self.progress is not None:
                    self.progress(got)
                self.fill.advance(pos)
            if self._pool is not None and size == 0:
                self._chunk_futures.append(self._pool.submit(_sha256, view[0:0]))
        except BaseException as exc:  # noqa: BLE001 - an I/O error: recorded, raised by result()
            self._error = exc if isinstance(exc, IntegrityError) else IntegrityError(f"cannot read member: {exc}")
            self.fill.fail(self._error)
        finally:
            self._pieces.put(None)

    def _hash(self) -> None:
        digest = self._digest
        assert digest is not None  # noqa: S101 - type narrowing of what the previous step established
        while (piece := self._pieces.get()) is not None:
            digest.update(self.view[piece[0]:piece[1]])

    def result(self) -> ReadDigests:
        """Wait for the read and every digest; raise ``IntegrityError`` if the member could not be read."""
        if self._parallel:
            assert self._pool is not None  # noqa: S101 - parallel reads have a pool
            try:
                digests: list[str] = []
                for future in self._chunk_futures:
                    try:
                        digests.append(future.result())
                    except IntegrityError:
                        digests.append("")  # self._error holds it
                if self._error is not None:
                    raise self._error
            finally:
                self._pool.shutdown(wait=True)
            return ReadDigests(None, digests)
        self._reader.join()
        if self._hasher is not None:
            self._hasher.join()
        try:
            if self._error is not None:
                raise self._error
            chunks = [f.result() for f in self._chunk_futures] if self._pool is not None else None
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        return ReadDigests(self._digest.hexdigest() if self._digest is not None else None, chunks)


#: Members at least this large are read into an anonymous mapping instead of a bytearray.
MAPPED_MIN_BYTES = 1 << 20


def private_buffer(size: int) -> bytearray | mmap.mmap:
    """Writable memory of ``size`` bytes that only this process can see, for reading a member into.

    Why not ``bytearray(size)``: it zero-fills every page before the first byte is read (a full pass over the memory
    on the calling thread: about 30 ms for 60 MB, 400 ms for 800 MB). An anonymous private mapping is zeroed by the
    kernel page by page as ``preadv`` first writes it, on the reading thread, and asks for transparent huge pages
    (``MADV_HUGEPAGE``, where the kernel offers it: 512 times fewer page faults). It maps no file: nothing another
    process writes can reach it, which is the point of reading once (see the module docstring)."""
    if size < MAPPED_MIN_BYTES:
        return bytearray(size)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        with contextlib.suppress(OSError):
            buf.madvise(advice)
    return buf


def _sha256(view: memoryview) -> str:
    return hashlib.sha256(view).hexdigest()
