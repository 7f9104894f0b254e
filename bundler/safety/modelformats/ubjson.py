"""A strict reader and writer of the UBJSON subset XGBoost writes (its binary JSON model format).

Why our own: XGBoost's C++ reader trusts lengths and counts; the reader here bounds every length and count by the
bytes that are left *before* allocating, refuses duplicate keys, unknown markers, trailing bytes and nesting deeper
than a real model has, and decodes typed arrays (``[$d#L...``) into numpy arrays without copying item by item. The
writer re-encodes a decoded document exactly as XGBoost does (big-endian, ``L`` lengths, typed arrays of the same
item type), so the bytes handed to C++ are a canonical encoding of what was validated.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from bundler.safety.modelformats import FormatError

__all__ = ["MAX_DEPTH", "decode", "encode"]

MAX_DEPTH = 32
#: Typed array item markers -> numpy dtypes (UBJSON is big-endian; ``d`` is float32, ``D`` float64).
_TYPED = {"i": ">i1", "U": ">u1", "I": ">i2", "l": ">i4", "L": ">i8", "d": ">f4", "D": ">f8"}
_INT = {"i": (">b", 1), "U": (">B", 1), "I": (">h", 2), "l": (">i", 4), "L": (">q", 8)}
_FLOAT = {"d": (">f", 4), "D": (">d", 8)}
_MARKER_OF_DTYPE = {np.dtype(v).newbyteorder("="): k for k, v in _TYPED.items()}


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, path: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise FormatError(path, f"truncated: needs {n} bytes at offset {self.pos}, {len(self.buf) - self.pos} left")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def marker(self, path: str) -> str:
        return chr(self.take(1, path)[0])

    def integer(self, marker: str, path: str) -> int:
        spec = _INT.get(marker)
        if spec is None:
            raise FormatError(path, f"expected an integer marker, found {marker!r}")
        return int(struct.unpack(spec[0], self.take(spec[1], path))[0])

    def length(self, path: str) -> int:
        n = self.integer(self.marker(path), path)
        if n < 0 or n > len(self.buf) - self.pos:
            raise FormatError(path, f"length {n} exceeds the {len(self.buf) - self.pos} bytes left")
        return n

    def string(self, path: str) -> str:
        raw = self.take(self.length(path), path)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(path, "string is not UTF-8") from None


def decode(data: bytes) -> Any:
    """The document in ``data``: dicts, lists, str, int, float, bool, None, and numpy arrays for typed arrays."""
    reader = _Reader(bytes(data))
    value = _value(reader, reader.marker("$"), "$", 0)
    if reader.pos != len(reader.buf):
        raise FormatError("$", f"{len(reader.buf) - reader.pos} trailing bytes after the document")
    return value


def _value(r: _Reader, marker: str, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise FormatError(path, f"nested deeper than {MAX_DEPTH} levels")
    if marker == "{":
        return _object(r, path, depth)
    if marker == "[":
        return _array(r, path, depth)
    if marker == "S":
        return r.string(path)
    if marker in _INT:
        return r.integer(marker, path)
    if marker in _FLOAT:
        fmt, size = _FLOAT[marker]
        number = struct.unpack(fmt, r.take(size, path))[0]
        return np.float32(number) if marker == "d" else float(number)
    if marker == "T":
        return True
    if marker == "F":
        return False
    if marker == "Z":
        return None
    raise FormatError(path, f"unknown or unsupported UBJSON marker {marker!r}")


def _object(r: _Reader, path: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    while True:
        marker = r.marker(path)
        if marker == "}":
            return out
        r.pos -= 1
        key = r.string(path)
        where = f"{path}.{key}" if path != "$" else key
        if key in out:
            raise FormatError(where, "duplicate key")
        out[key] = _value(r, r.marker(where), where, depth + 1)


def _array(r: _Reader, path: str, depth: int) -> Any:
    marker = r.marker(path)
    if marker == "$":
        item = r.marker(path)
        if item not in _TYPED or r.marker(path) != "#":
            raise FormatError(path, f"typed array of unsupported item type {item!r}")
        count = r.length(path)
        dtype = np.dtype(_TYPED[item])
        raw = r.take(count * dtype.itemsize, path)
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    if marker == "#":
        count = r.length(path)
        return [_value(r, r.marker(f"{path}[{i}]"), f"{path}[{i}]", depth + 1) for i in range(count)]
    items: list[Any] = []
    while marker != "]":
        where = f"{path}[{len(items)}]"
        items.append(_value(r, marker, where, depth + 1))
        marker = r.marker(path)
    return items


def encode(value: Any) -> bytes:
    """Canonical UBJSON for a decoded document (the inverse of ``decode``)."""
    out = bytearray()
    _put(out, value)
    return bytes(out)


def _put_len(out: bytearray, n: int) -> None:
    out += b"L" + struct.pack(">q", n)


def _put(out: bytearray, value: Any) -> None:
    if isinstance(value, dict):
        out += b"{"
        for key, item in value.items():
            raw = key.encode("utf-8")
            _put_len(out, len(raw))
            out += raw
            _put(out, item)
        out += b"}"
    elif isinstance(value, np.ndarray):
        marker = _MARKER_OF_DTYPE[value.dtype]
        out += b"[$" + marker.encode() + b"#"
        _put_len(out, int(value.size))
        out += value.astype(np.dtype(_TYPED[marker])).tobytes()
    elif isinstance(value, list):
        out += b"[#"
        _put_len(out, len(value))
        for item in value:
            _put(out, item)
    elif isinstance(value, np.float32):
        out += b"d" + struct.pack(">f", value)
    elif isinstance(value, bool):
        out += b"T" if value else b"F"
    elif value is None:
        out += b"Z"
    elif isinstance(value, int):
        out += b"L" + struct.pack(">q", value)
    elif isinstance(value, float):
        out += b"D" + struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += b"S"
        _put_len(out, len(raw))
        out += raw
    else:  # pragma: no cover - decode never produces anything else
        raise TypeError(type(value).__name__)
