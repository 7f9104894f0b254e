"""Where the pickle interpreter reads its bytes from: a forward-only stream, or a payload held in memory.

* ``StreamSource`` reads a file object sequentially with bounded memory (``bundler verify`` of a payload of any size;
  the restricted unpickler run on its own over a file). Compressed joblib payloads are decompressed incrementally,
  detected by their magic bytes (never by file name) and capped in size and ratio.
* ``MemorySource`` reads a payload that ``load`` has already read once into memory, hashed and verified: the scan
  and then the unpickler run over the very same bytes, so a file rewritten in place during a load cannot change what
  is deserialized. Array data is handed out as zero-copy views of that memory.

Both expose the same small interface to ``bundler.safety.machine`` (``buf``/``pos`` for fast peeking, ``need``,
``read``, ``byte``, ``readline``, ``skip``, ``take``, ``tell``, ``at_end``). Standard library only.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any, BinaryIO, Final, Protocol

from bundler.errors import IntegrityError
from bundler.safety.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "CHUNK",
    "MAGICS",
    "MemorySource",
    "Source",
    "StreamSource",
    "decompress_all",
    "detect_compression",
    "malformed",
    "open_stream",
]

CHUNK: Final = 1 << 20  # reads (and discards of array data) never exceed 1 MiB at a time

# Magic bytes of joblib's compressors, checked in this order (as joblib does, by content, never by file name).
MAGICS: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
ZFILE_PREFIX: Final = b"ZF"


def malformed(reason: str) -> IntegrityError:
    return IntegrityError(f"malformed pickle stream: {reason}")


def detect_compression(head: bytes) -> str | None:
    """The joblib compressor whose magic bytes start ``head``, or None for an uncompressed stream.

    Raises ``IntegrityError`` for joblib's pre-0.10 "ZF" container, which this tool refuses.
    """
    if head.startswith(ZFILE_PREFIX):
        raise IntegrityError("legacy joblib (<0.10) 'ZF' compressed format is not supported; "
                             "re-save the model with a current joblib")
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    return None


# -- chunk producers ---------------------------------------------------------------------------------------------


class _Decompressor:
    """Incremental decompression of a file object read with ``f.read(CHUNK)`` only, with size and ratio caps."""

    def __init__(self, f: Any, name: str, head: bytes, limits: Limits) -> None:
        self.f = f
        self.name = name
        self.limits = limits
        self.pending = head  # compressed bytes not yet fed
        self.consumed = 0
        self.produced = 0
        self.eof_in = False
        self.is_zlib = name in ("zlib", "gzip")
        self.obj: Any
        if name == "zlib":
            self.obj = zlib.decompressobj()
        elif name == "gzip":
            self.obj = zlib.decompressobj(31)
        elif name == "bz2":
            self.obj = bz2.BZ2Decompressor()
        elif name == "xz":
            self.obj = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        elif name == "lzma":
            self.obj = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        elif name == "lz4":
            try:
                import lz4.frame
            except ImportError:
                raise IntegrityError("payload is lz4-compressed but the lz4 module is not installed "
                                     "(pip install lz4) - refusing to load it") from None
            self.obj = lz4.frame.LZ4FrameDecompressor()
        else:  # pragma: no cover - MAGICS and this list are kept in step
            raise malformed(f"unknown compressor {name}")

    def _finished(self) -> bool:
        return bool(getattr(self.obj, "eof", False))

    def read(self, n: int) -> bytes:
        """Up to ``n`` (<= CHUNK) decompressed bytes; ``b""`` at the end of the compressed stream."""
        obj = self.obj
        while True:
            if self._finished():
                self._check_tail()
                return b""
            try:
                if self.is_zlib:
                    data = obj.unconsumed_tail or self._feed()
                    if not data and self.eof_in:
                        raise malformed(f"{self.name} stream is truncated")
                    out = obj.decompress(data, n)
                else:
                    if obj.needs_input:
                        data = self._feed()
                        if not data and self.eof_in:
                            raise malformed(f"{self.name} stream is truncated")
                    else:
                        data = b""
                    out = obj.decompress(data, max_length=n)
            except IntegrityError:
                raise
            except Exception as exc:  # noqa: BLE001 - zlib.error, lzma.LZMAError, OSError, EOFError, lz4's RuntimeError...
                raise malformed(f"corrupt {self.name} stream: {exc}") from None
            if out:
                self.produced += len(out)
                lim = self.limits
                if self.produced > lim.max_bytes:
                    raise malformed(f"decompressed payload exceeds {lim.max_bytes} bytes")
                if self.produced > lim.ratio_floor and self.produced > lim.max_ratio * max(self.consumed, 1):
                    raise malformed(f"decompression ratio exceeds {lim.max_ratio:g}:1 (possible zip bomb)")
                return bytes(out)

    def _feed(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
        else:
            data = self.f.read(CHUNK)
            if not data:
                self.eof_in = True
                return b""
        self.consumed += len(data)
        return bytes(data)

    def _check_tail(self) -> None:
        """Nothing may follow the single compressed stream joblib writes (no second member, no garbage)."""
        if getattr(self.obj, "unused_data", b"") or self.pending:
            raise malformed(f"trailing bytes after the {self.name} stream")
        if not self.eof_in:
            rest = self.f.read(1)
            if rest:
                raise malformed(f"trailing bytes after the {self.name} stream")
            self.eof_in = True


class _Plain:
    def __init__(self, f: Any, head: bytes, limits: Limits) -> None:
        self.f = f
        self.head = head
        self.total = 0
        self.limit = limits.max_bytes

    def read(self, n: int) -> bytes:
        if self.head:
            data, self.head = self.head, b""
        else:
            data = bytes(self.f.read(n))
        self.total += len(data)
        if self.total > self.limit:
            raise malformed(f"payload exceeds {self.limit} bytes")
        return data

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` straight from the file (no intermediate bytes): large array spans are read in one copy."""
        if self.head or not hasattr(self.f, "readinto"):
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        n = int(self.f.readinto(view) or 0)
        self.total += n
        if self.total > self.limit:
            raise malformed(f"payload exceeds {self.limit} bytes")
        return n


def _read_head(f: Any, n: int = 6) -> bytes:
    head = b""
    while len(head) < n:
        data = f.read(n - len(head))
        if not data:
            break
        head += bytes(data)
    return head


def open_stream(f: BinaryIO | Any, limits: Limits = DEFAULT_LIMITS) -> tuple[str | None, _Plain | _Decompressor]:
    """Detect the compression of ``f`` by magic bytes and return ``(compressor, chunk producer)``."""
    head = _read_head(f)
    if not head:
        raise malformed("empty payload")
    comp = detect_compression(head)
    if comp is None:
        return None, _Plain(f, head, limits)
    return comp, _Decompressor(f, comp, head, limits)


def decompress_all(data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> tuple[str | None,
                                                                                                  bytearray | None]:
    """Decompress an in-memory joblib payload: ``(compressor, decompressed bytes)``, or ``(None, None)`` when the
    payload is not compressed (the caller keeps using its own buffer)."""
    import io

    comp = detect_compression(bytes(data[:6]))
    if comp is None:
        return None, None
    producer = _Decompressor(io.BytesIO(data), comp, b"", limits)
    out = bytearray()
    while chunk := producer.read(CHUNK):
        out += chunk
    return comp, out


# -- sources -------------------------------------------------------------------------------------------------------


class Filling(Protocol):
    """A buffer another thread is filling (``bundler.integrity.read_once.Fill``)."""

    def available(self) -> int: ...
    def wait_for(self, n: int) -> int: ...


class Source:
    """The interpreter's view of the bytes: ``buf[pos]`` is the next byte, ``off`` the absolute offset of buf[0]."""

    buf: Any
    pos: int
    off: int

    def tell(self) -> int:
        return self.off + self.pos

    def need(self, n: int) -> bool:  # pragma: no cover - interface
        """Make ``n`` bytes available at ``pos``; False when the data ends first."""
        raise NotImplementedError

    def read(self, n: int) -> bytes:
        if self.pos + n > len(self.buf) and not self.need(n):
            raise malformed("truncated (unexpected end of data)")
        pos = self.pos
        self.pos = pos + n
        return bytes(self.buf[pos:pos + n])

    def byte(self) -> int:
        if self.pos >= len(self.buf) and not self.need(1):
            raise malformed("truncated (no STOP opcode)")
        b: int = self.buf[self.pos]
        self.pos += 1
        return b

    def readline(self, limit: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def skip(self, n: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def take(self, n: int) -> memoryview | None:  # pragma: no cover - interface
        """Array data: ``n`` bytes as a view (memory), a new buffer (stream, keeping) or None (stream, skipping)."""
        raise NotImplementedError

    def at_end(self) -> bool:
        if self.pos < len(self.buf):
            return False
        return not self.need(1)


class StreamSource(Source):
    """Buffered, forward-only view of a (decompressed) stream; ``keep_arrays`` decides what ``take`` returns."""

    def __init__(self, producer: _Plain | _Decompressor, *, keep_arrays: bool) -> None:
        self.src = producer
        self.keep_arrays = keep_arrays
        self.buf = b""
        self.pos = 0
        self.off = 0
        self.eof = False

    def need(self, n: int) -> bool:
        rest = self.buf[self.pos:]
        self.off += self.pos
        self.pos = 0
        parts = [rest]
        have = len(rest)
        want = max(n, 17)  # the interpreter peeks a few bytes ahead; never more than a chunk beyond that
        while have < want and not self.eof:
            data = self.src.read(CHUNK)
            if not data:
                self.eof = True
                break
            parts.append(data)
            have += len(data)
        self.buf = b"".join(parts)
        return have >= n

    def readline(self, limit: int) -> bytes:
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 1
                return bytes(line)
            have = len(self.buf) - self.pos
            if have > limit:
                raise malformed(f"text argument longer than {limit} bytes")
            if self.eof or not self.need(have + 1):
                raise malformed("truncated (unterminated text argument)")

    def skip(self, n: int) -> None:
        """Discard ``n`` bytes, holding at most one chunk in memory."""
        have = len(self.buf) - self.pos
        if n <= have:
            self.pos += n
            return
        n -= have
        self.off += len(self.buf)
        self.buf = b""
        self.pos = 0
        while n > 0:
            data = self.src.read(min(n, CHUNK))
            if not data:
                self.eof = True
                raise malformed("truncated (array or literal data runs past the end)")
            if len(data) > n:  # producers may return less, never more, but be exact anyway
                self.buf = data[n:]
                self.off += n
                return
            self.off += len(data)
            n -= len(data)

    def take(self, n: int) -> memoryview | None:
        if not self.keep_arrays:
            self.skip(n)
            return None
        out = bytearray(n)
        view = memoryview(out)
        have = min(len(self.buf) - self.pos, n)
        view[:have] = self.buf[self.pos:self.pos + have]
        self.pos += have
        got = have
        src = self.src
        while got < n:
            if isinstance(src, _Plain):
                k = src.readinto(view[got:got + CHUNK])
            else:
                data = src.read(min(n - got, CHUNK))
                k = len(data)
                view[got:got + k] = data
            if not k:
                raise malformed("truncated (array data runs past the end)")
            got += k
            self.off += k
        return view


class MemorySource(Source):
    """A payload in memory. With ``fill``, bytes become available progressively (a reader thread is filling the
    buffer) and ``need`` waits for them; without, the whole buffer is available at once."""

    def __init__(self, data: bytes | bytearray | memoryview, *, fill: Filling | None = None) -> None:
        self.mem = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
        self.size = len(self.mem)
        self.fill = fill
        self.buf = self.mem if fill is None else self.mem[:fill.available()]
        self.pos = 0
        self.off = 0

    def need(self, n: int) -> bool:
        end = min(self.pos + max(n, 17), self.size)
        if self.fill is not None and end > len(self.buf):
            self.buf = self.mem[:self.fill.wait_for(end)]
        return self.pos + n <= len(self.buf)

    def readline(self, limit: int) -> bytes:
        # Look for the newline in windows that double in size: copying ``limit`` bytes for every short line (a
        # GLOBAL's module name) would make a payload of many text opcodes cost a megabyte of copying per opcode.
        start = self.pos
        looked = 0
        step = 64
        while True:
            buf = self.buf
            window = min(len(buf), start + limit + 1, start + looked + step)
            i = bytes(buf[start + looked:window]).find(b"\n")
            if i >= 0:
                self.pos = start + looked + i + 1
                return bytes(buf[start:start + looked + i])
            looked = max(window - start, 0)
            if window < min(len(buf), start + limit + 1):
                step *= 2
                continue
            if window - start > limit:
                raise malformed(f"text argument longer than {limit} bytes")
            if not self.need(len(buf) - start + 1):
                raise malformed("truncated (unterminated text argument)")

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.buf) and not self.need(n):
            raise malformed("truncated (array or literal data runs past the end)")
        self.pos += n

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf) and not self.need(n):
            raise malformed("truncated (array data runs past the end)")
        view = self.mem[self.pos:self.pos + n]
        self.pos += n
        return view
