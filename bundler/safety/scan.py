"""Static scan of pickle and joblib payloads: what a payload imports and calls, found without running any of it.

Why a scanner of our own: ``pickle`` has no "dry run", and ``pickletools.genops`` neither understands joblib (raw
array bytes sit *inside* the pickle stream, right after each ``NumpyArrayWrapper``) nor tells a referenced global
from a called one.  This module reads the stream once, sequentially (so the caller can hash the very same bytes in
the same pass), keeps a small *symbolic* stack and memo, and records

* every global the payload imports (``GLOBAL``, ``STACK_GLOBAL`` with literal, memoized or otherwise computed
  names, ``INST``, ``OBJ``'s class, ``EXT`` through the ``copyreg`` registry), and
* every global that is *called* while unpickling (the callee of ``REDUCE``, the class of ``NEWOBJ``/``NEWOBJ_EX``/
  ``INST``/``OBJ``, and the classes that known call-forwarders such as ``copyreg._reconstructor`` instantiate).

A callee that is not a plain global (the result of another call, a string...) is recorded as
``"<computed callable>"``; anything starting with ``"<"`` can never be allowlisted.

The scanner is deliberately strict: whenever the real unpickler (C ``pickle.Unpickler`` for plain pickles, the
pure-Python one joblib uses) could read the bytes differently from the way this scanner reads them (an opcode
straddling a frame end, a joblib array inside an unfinished frame, a dtype whose size is not statically known,
trailing bytes...), the stream is refused as malformed.  Refusing a weird but harmless file is cheap; executing a
hidden opcode is not.

Only the standard library is imported here (plus ``lz4`` lazily, for lz4 payloads): this runs inside
``bundler verify``, which must never import numpy, joblib or scikit-learn.
"""

from __future__ import annotations

import bz2
import codecs
import copyreg
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any, BinaryIO, Final

from bundler.errors import IntegrityError

__all__ = [
    "COMPUTED_CALLABLE",
    "ScanLimits",
    "ScanResult",
    "global_name",
    "scan_bytes",
    "scan_file",
    "scan_fileobj",
]

CHUNK: Final = 1 << 20  # reads (and discards of array data) never exceed 1 MiB at a time
COMPUTED_CALLABLE: Final = "<computed callable>"
COMPUTED_GLOBAL: Final = "<computed global>"
PERSISTENT_ID: Final = "<persistent id>"
WRAPPER: Final = "joblib.numpy_pickle.NumpyArrayWrapper"
LEGACY_WRAPPERS: Final = frozenset({
    "joblib.numpy_pickle.NDArrayWrapper",
    "joblib.numpy_pickle.ZNDArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NDArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.ZNDArrayWrapper",
})

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


@dataclass(frozen=True)
class ScanLimits:
    """Bounds on memory and time; a payload beyond any of them is refused as malformed.

    The defaults are far above what a real scikit-learn model needs and far below what would hurt the verifier.
    ``max_ratio`` only applies once ``ratio_floor`` decompressed bytes were produced, so small, very regular
    payloads (an all-zero array) still load.
    """

    max_bytes: int = 4 << 30  # decompressed (or plain) stream size
    max_ratio: float = 2000.0
    ratio_floor: int = 64 << 20
    max_stack: int = 1_000_000
    max_memo: int = 2_000_000
    max_marks: int = 10_000
    max_nesting: int = 4  # nested object-array streams
    max_line: int = 1 << 20  # protocol-0 text arguments
    max_container: int = 256  # items of a dict/tuple kept symbolically; beyond that contents are dropped


DEFAULT_LIMITS: Final = ScanLimits()


@dataclass(frozen=True)
class ScanResult:
    """What a payload imports (``globals``) and calls while loading (``calls``), both sorted and unique.

    ``format`` is ``"pickle"``, ``"joblib"`` (uncompressed stream with joblib arrays) or ``"joblib+<compressor>"``.
    ``root`` is the ``module.qualname`` of the class (or reconstructor) that produced the top-level object when it
    is statically known, else ``None``.
    """

    format: str
    globals: tuple[str, ...]
    calls: tuple[str, ...]
    root: str | None


def _malformed(reason: str) -> IntegrityError:
    return IntegrityError(f"malformed pickle stream: {reason}")


def global_name(module: str, name: str) -> str:
    """The canonical spelling of a global: ``module.name``; ``module:qual.name`` when the name itself is dotted.

    Why the colon: ``a.b.c`` could mean attribute ``b.c`` of module ``a`` or attribute ``c`` of module ``a.b``,
    which may be different objects.  Keeping the split visible makes an allowlist entry mean exactly one thing.
    The restricted unpickler uses this same function.
    """
    return f"{module}:{name}" if "." in name else f"{module}.{name}"


# --------------------------------------------------------------------------------------------------------------
# Symbolic values.  Literals are kept as Python values (str, int, float, bool, None, short bytes, tuples); the rest
# are the small classes below.  Only what the scan needs is kept: names for STACK_GLOBAL, and the state of joblib
# array wrappers and numpy dtypes (to know how many raw bytes follow a wrapper).


class _Global:
    """A global the payload imported; ``special`` when calling it needs more than recording its name."""

    __slots__ = ("name", "special")

    def __init__(self, name: str) -> None:
        self.name = name
        self.special = name in _SPECIAL_CALLEES or _PYX_UNPICKLE in name or name.endswith(_NEWOBJ_HELPER)


class _Inst:
    """A plain object made by calling ``cls`` (None when the callee was computed); nothing else is tracked."""

    __slots__ = ("cls",)

    def __init__(self, cls: str | None) -> None:
        self.cls = cls


class _Obj:
    """An object whose state the scan follows: ``kind`` is "dtype" or "wrapper" (a joblib NumpyArrayWrapper)."""

    __slots__ = ("args", "attrs", "cls", "kind", "layout", "state")

    def __init__(self, kind: str, cls: str | None = None, args: Any = None) -> None:
        self.kind = kind
        self.cls = cls
        self.args = args
        self.state: Any = None
        self.attrs: dict[str, Any] | None = None
        self.layout: tuple[int, int, bool] | None = None  # (dtype generation, itemsize, hasobject) cache


class _Dict:
    __slots__ = ("items", "overflow")

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}
        self.overflow = False


class _Opaque:
    """A value the scan does not track (large strings/bytes, floats of no interest...)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


_OPAQUE_STR = _Opaque("str")
_FLOAT = _Opaque("float")
_NDARRAY = _Inst("numpy.ndarray")
_LIST = _Inst("builtins.list")
_SET = _Inst("builtins.set")
_FROZENSET = _Inst("builtins.frozenset")
_BYTEARRAY = _Inst("builtins.bytearray")
_COMPUTED = _Inst(None)
_CONTINUE = object()
_OPAQUE_BYTES = _Opaque("bytes")
_MARKS_KEY = object()

# --------------------------------------------------------------------------------------------------------------
# Input: a chunked, strictly sequential reader over the (decompressed) stream.


class _Decompressor:
    """Incremental decompression of a file object read with ``f.read(CHUNK)`` only, with size and ratio caps."""

    def __init__(self, f: BinaryIO, name: str, head: bytes, limits: ScanLimits) -> None:
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
            raise _malformed(f"unknown compressor {name}")

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
                        raise _malformed(f"{self.name} stream is truncated")
                    out = obj.decompress(data, n)
                else:
                    if obj.needs_input:
                        data = self._feed()
                        if not data and self.eof_in:
                            raise _malformed(f"{self.name} stream is truncated")
                    else:
                        data = b""
                    out = obj.decompress(data, max_length=n)
            except IntegrityError:
                raise
            except Exception as exc:  # zlib.error, lzma.LZMAError, OSError, EOFError, lz4's RuntimeError...
                raise _malformed(f"corrupt {self.name} stream: {exc}") from None
            if out:
                self.produced += len(out)
                lim = self.limits
                if self.produced > lim.max_bytes:
                    raise _malformed(f"decompressed payload exceeds {lim.max_bytes} bytes")
                if self.produced > lim.ratio_floor and self.produced > lim.max_ratio * max(self.consumed, 1):
                    raise _malformed(f"decompression ratio exceeds {lim.max_ratio:g}:1 (possible zip bomb)")
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
        return data

    def _check_tail(self) -> None:
        """Nothing may follow the single compressed stream joblib writes (no second member, no garbage)."""
        if getattr(self.obj, "unused_data", b"") or self.pending:
            raise _malformed(f"trailing bytes after the {self.name} stream")
        if not self.eof_in:
            rest = self.f.read(1)
            if rest:
                raise _malformed(f"trailing bytes after the {self.name} stream")
            self.eof_in = True


class _PlainSource:
    def __init__(self, f: BinaryIO, head: bytes, limits: ScanLimits) -> None:
        self.f = f
        self.head = head
        self.total = 0
        self.limit = limits.max_bytes

    def read(self, n: int) -> bytes:
        if self.head:
            data, self.head = self.head, b""
        else:
            data = self.f.read(n)
        self.total += len(data)
        if self.total > self.limit:
            raise _malformed(f"payload exceeds {self.limit} bytes")
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
            raise _malformed(f"payload exceeds {self.limit} bytes")
        return n


class _Stream:
    """Buffered, forward-only view of the (decompressed) pickle bytes with absolute offsets."""

    __slots__ = ("buf", "eof", "off", "pos", "src")

    def __init__(self, src: _PlainSource | _Decompressor) -> None:
        self.src = src
        self.buf = b""
        self.pos = 0
        self.off = 0  # absolute offset of buf[0]
        self.eof = False

    def tell(self) -> int:
        return self.off + self.pos

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available from pos (need is small: <= max_line or a length-prefixed literal)."""
        rest = self.buf[self.pos:]
        self.off += self.pos
        self.pos = 0
        parts = [rest]
        have = len(rest)
        while have < need and not self.eof:
            data = self.src.read(CHUNK)
            if not data:
                self.eof = True
                break
            parts.append(data)
            have += len(data)
        self.buf = b"".join(parts)
        return have >= need

    def read(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > len(self.buf) and not self._fill(n):
            raise _malformed("truncated (unexpected end of data)")
        pos = self.pos
        self.pos = pos + n
        return self.buf[pos:pos + n]

    def byte(self) -> int:
        if self.pos >= len(self.buf) and not self._fill(1):
            raise _malformed("truncated (no STOP opcode)")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def readline(self, limit: int) -> bytes:
        """A protocol-0 argument up to and including ``\\n`` (returned without it)."""
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 1
                return line
            have = len(self.buf) - self.pos
            if have > limit:
                raise _malformed(f"text argument longer than {limit} bytes")
            if self.eof or not self._fill(have + 1):
                raise _malformed("truncated (unterminated text argument)")

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
                raise _malformed("truncated (array or literal data runs past the end)")
            if len(data) > n:  # decompressors may return less, never more, but be exact anyway
                self.buf = data[n:]
                self.off += n
                return
            self.off += len(data)
            n -= len(data)

    def at_end(self) -> bool:
        if self.pos < len(self.buf):
            return False
        return not self._fill(1)


# --------------------------------------------------------------------------------------------------------------
# numpy dtype arithmetic, from the arguments of ``numpy.dtype(...)`` and its ``__setstate__`` tuple.

_FIXED_KINDS: Final = frozenset("biufcmM?")


def dtype_layout(args: Any, state: Any) -> tuple[int, bool]:
    """``(itemsize, hasobject)`` of a dtype pickled as ``numpy.dtype(*args)`` + BUILD ``state``.

    Raises ``ValueError`` when not statically known: the caller then refuses the stream.  The restricted
    unpickler calls this too and compares with the real dtype, so scanner and loader cannot disagree silently.
    """
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
        raise ValueError("dtype spelled in an unsupported way")
    spec = args[0].lstrip("<>|=")
    if not spec:
        raise ValueError("empty dtype spec")
    kind, digits = spec[0], spec[1:]
    elsize = -1
    fields = None
    subarray = None
    if state is not None:
        if not isinstance(state, tuple) or len(state) < 8:
            raise ValueError("dtype state of an unsupported version")
        subarray, fields, elsize = state[2], state[4], state[5]
        if not isinstance(elsize, int):
            raise ValueError("dtype elsize is not an int")
    hasobject = kind == "O"
    if kind == "O":
        if digits not in ("", "8", "4"):
            raise ValueError("odd object dtype")
        itemsize = int(digits or 8)
    elif kind in _FIXED_KINDS:
        if not digits.isdigit():
            raise ValueError(f"dtype {spec!r} has no size")
        itemsize = int(digits)
    elif kind in "SUV":
        if elsize is not None and elsize >= 0 and state is not None:
            itemsize = elsize
        elif digits.isdigit():
            itemsize = int(digits) * (4 if kind == "U" else 1)
        else:
            raise ValueError(f"dtype {spec!r} has no size")
    else:
        raise ValueError(f"dtype kind {kind!r} not supported in joblib arrays")
    if fields is not None:
        if not isinstance(fields, _Dict) or fields.overflow:
            raise ValueError("dtype fields not statically known")
        for value in fields.items.values():
            if not isinstance(value, tuple) or not value or not isinstance(value[0], _Obj) or \
                    value[0].kind != "dtype":
                raise ValueError("dtype field not statically known")
            hasobject = dtype_layout(value[0].args, value[0].state)[1] or hasobject
    if subarray is not None:
        if not isinstance(subarray, tuple) or len(subarray) != 2 or not isinstance(subarray[0], _Obj) or \
                subarray[0].kind != "dtype":
            raise ValueError("dtype subarray not statically known")
        hasobject = dtype_layout(subarray[0].args, subarray[0].state)[1] or hasobject
    if itemsize < 0:
        raise ValueError("negative itemsize")
    return itemsize, hasobject


# Globals that call one of their arguments: (argument positions that get instantiated/called).  Recording those
# arguments as calls is what stops ``copyreg._reconstructor(os.system-like class, ...)`` from sneaking past.
FORWARDERS: Final[dict[str, tuple[int, ...]]] = {
    "copyreg._reconstructor": (0, 1),
    "copyreg.__newobj__": (0,),
    "copyreg.__newobj_ex__": (0,),
    "numpy.core.multiarray._reconstruct": (0,),
    "numpy._core.multiarray._reconstruct": (0,),
    "numpy.random._pickle.__randomstate_ctor": (1,),
    "numpy.random._pickle.__generator_ctor": (1,),
    "numpy.random._pickle.__bit_generator_ctor": (0,),
}
# Cython's generated ``__pyx_unpickle_<Class>(type, checksum, state)`` instantiates its first argument, and so does
# scikit-learn's ``newObj(cls)`` helper (``cls.__new__(cls)``) used by KDTree, BallTree and DistanceMetric.
_PYX_UNPICKLE: Final = ".__pyx_unpickle_"
_NEWOBJ_HELPER: Final = ".newObj"
# ``numpy.core._ufunc_reconstruct(module, name)`` imports ``module`` and returns attribute ``name``: a find_class in
# disguise.  It is modelled as a global reference to ``module.name`` (so the allowlist judges *that* name).
UFUNC_RECONSTRUCT: Final = frozenset({"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"})
# ``numpy.core.multiarray._reconstruct(cls, ...)`` and friends produce an instance of their first argument.
_ROOT_FROM_ARG0: Final = frozenset({
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
})


_SPECIAL_CALLEES: Final = frozenset({WRAPPER, "numpy.dtype"}) | frozenset(FORWARDERS) | UFUNC_RECONSTRUCT

# --------------------------------------------------------------------------------------------------------------
# The opcode machine.


class _Scanner:
    """One pickle stream (the outer one, or a nested object-array stream) over a shared ``_Stream``."""

    def __init__(self, s: _Stream, limits: ScanLimits, found: _Found, depth: int, joblib_aware: bool) -> None:
        self.s = s
        self.limits = limits
        self.found = found
        self.depth = depth
        self.joblib_aware = joblib_aware
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.frame_end = -1

    # -- helpers ------------------------------------------------------------------------------------------------
    def pop(self) -> Any:
        try:
            return self.stack.pop()
        except IndexError:
            raise _malformed("stack underflow") from None

    def top(self) -> Any:
        try:
            return self.stack[-1]
        except IndexError:
            raise _malformed("stack underflow") from None

    def pop_mark(self) -> list[Any]:
        items = self.stack
        try:
            self.stack = self.metastack.pop()
        except IndexError:
            raise _malformed("no MARK to pop") from None
        return items

    def make_global(self, module: Any, name: Any, *, from_stack: bool = False) -> _Global:
        """Record an imported global and return its symbolic value (the caller pushes it)."""
        if type(module) is not str or type(name) is not str:
            if from_stack and (module is _OPAQUE_STR or name is _OPAQUE_STR):
                self.found.globals.add(COMPUTED_GLOBAL)
                return _Global(COMPUTED_GLOBAL)
            raise _malformed("global module and name must be short strings")
        if self.proto < 3:
            module, name = _fix_imports(module, name)
        full = global_name(module, name)
        self.found.globals.add(full)
        return _Global(full)

    def call(self, callee: Any, args: Any, *, via: str) -> Any:
        """Record a call of ``callee`` and return the symbolic result."""
        found = self.found
        if type(callee) is not _Global:
            found.calls.add(COMPUTED_CALLABLE)
            return _COMPUTED
        name = callee.name
        found.calls.add(name)
        if name == WRAPPER:
            if via in ("NEWOBJ", "NEWOBJ_EX"):
                obj = _Obj("wrapper", WRAPPER)
                obj.attrs = {}
                return obj
            raise _malformed(f"joblib NumpyArrayWrapper built by {via}, which joblib never writes")
        if name == "numpy.dtype" and via == "REDUCE":
            return _Obj("dtype", name, args)
        if via != "REDUCE":
            return _Inst(name)
        positions = FORWARDERS.get(name)
        if positions is None and (_PYX_UNPICKLE in name or name.endswith(_NEWOBJ_HELPER)):
            positions = (0,)
        if positions is not None:
            if not isinstance(args, tuple):
                found.calls.add(COMPUTED_CALLABLE)
                return _COMPUTED
            for i in positions:
                if i < len(args):
                    arg = args[i]
                    if type(arg) is _Global:
                        found.calls.add(arg.name)
                        if arg.name == WRAPPER:
                            if name == "copyreg._reconstructor" and i == 0:
                                obj = _Obj("wrapper", WRAPPER)
                                obj.attrs = {}
                                return obj
                            raise _malformed(f"joblib NumpyArrayWrapper built by {name}, which joblib never writes")
                    elif type(arg) is str and name == "numpy.random._pickle.__bit_generator_ctor":
                        pass  # a bit generator looked up by name in numpy's own table, not called from the payload
                    else:
                        found.calls.add(COMPUTED_CALLABLE)
            if name in _ROOT_FROM_ARG0 and args and type(args[0]) is _Global:
                return _Inst(args[0].name)
            return _Inst(name)
        if name in UFUNC_RECONSTRUCT:
            if isinstance(args, tuple) and len(args) == 2 and type(args[0]) is str and type(args[1]) is str:
                ref = global_name(args[0], args[1])
                found.globals.add(ref)
                return _Global(ref)
            found.globals.add(COMPUTED_GLOBAL)
            return _Global(COMPUTED_GLOBAL)
        return _Inst(name)

    def mutate(self, target: Any, what: str) -> None:
        """APPEND/SETITEM/BUILD/ADDITEMS on a global would monkeypatch or call a method of a class or function."""
        if type(target) is _Global:
            self.found.calls.add(f"<{what} applied to the global {target.name}>")

    # -- main loop ----------------------------------------------------------------------------------------------
    def run(self) -> Any:
        """Interpret opcodes until STOP; return the symbolic top-level object.

        The hot opcodes are handled inline on a local view of the buffer (the speed target is a few percent of
        ``joblib.load``).  Everything else, and every opcode within 16 bytes of the end of the buffer or of a frame,
        goes through the table of handlers, which read via ``_Stream`` and refill as needed.
        """
        try:
            return self._run()
        except IndexError:
            raise _malformed("stack underflow (or a MARK missing)") from None
        except KeyError as exc:
            raise _malformed(f"memo key {exc.args[0]!r} not found") from None
        except UnicodeDecodeError:
            raise _malformed("undecodable string literal") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise _malformed(f"{type(exc).__name__}: {exc}") from None

    def _run(self) -> Any:
        s = self.s
        calls_add = self.found.calls.add
        memo = self.memo
        inf = 1 << 62
        stack = self.stack
        append = stack.append
        metastack = self.metastack
        max_marks = self.limits.max_marks
        while True:
            # (Re)load the local view of the buffer; every handler that may move the stream comes back here.
            self.stack = stack
            buf = s.buf
            pos = s.pos
            n = len(buf)
            fe = self.frame_end - s.off if self.frame_end >= 0 else inf
            if pos + 16 >= n:
                s._fill(17)
                self._check_bounds()
                buf = s.buf
                pos = s.pos
                n = len(buf)
                fe = self.frame_end - s.off if self.frame_end >= 0 else inf
            if pos >= fe:
                if pos > fe:
                    raise _malformed(f"an opcode straddles the end of its frame (offset {s.off + fe})")
                self.frame_end = -1
                fe = inf
            if pos + 16 >= n:
                # Careful path near the end of the data: one opcode through the handler table.
                result = self._step()
                if result is not _CONTINUE:
                    return result
                stack = self.stack
                append = stack.append
                continue
            guard = n - 16 if n - 16 < fe else fe
            while pos < guard:
                op = buf[pos]
                pos += 1
                if op == 0x68:  # BINGET
                    append(memo[buf[pos]])
                    pos += 1
                elif op == 0x94:  # MEMOIZE
                    memo[len(memo)] = stack[-1]
                elif op == 0x4B:  # BININT1
                    append(buf[pos])
                    pos += 1
                elif op == 0x85:  # TUPLE1
                    stack[-1] = (stack[-1],)
                elif op == 0x28:  # MARK
                    if len(metastack) >= max_marks:
                        raise _malformed(f"more than {max_marks} nested MARKs")
                    metastack.append(stack)
                    stack = []
                    append = stack.append
                elif op == 0x62:  # BUILD
                    state = stack.pop()
                    inst = stack[-1]
                    t = type(inst)
                    if t is _Obj:
                        if inst.kind == "dtype":
                            inst.state = state
                            self.found.dtype_gen += 1
                        else:
                            _merge_wrapper_state(inst, state)
                            if self.joblib_aware:
                                s.pos = pos
                                self.stack = stack
                                stack[-1] = self.wrapper_data(inst)  # consumes the array bytes
                                buf = s.buf
                                pos = s.pos
                                n = len(buf)
                                fe = self.frame_end - s.off if self.frame_end >= 0 else inf
                                guard = n - 16 if n - 16 < fe else fe
                    elif t is _Global:
                        self.mutate(inst, "BUILD")
                elif op == 0x95:  # FRAME
                    size = int.from_bytes(buf[pos:pos + 8], "little")
                    pos += 8
                    here = s.off + pos
                    if self.frame_end >= 0 and here != self.frame_end:
                        raise _malformed("a new frame begins before the end of the current frame")
                    self.frame_end = here + size
                    fe = pos + size
                    guard = n - 16 if n - 16 < fe else fe
                elif op == 0x87:  # TUPLE3
                    c = stack.pop()
                    b = stack.pop()
                    stack[-1] = (stack[-1], b, c)
                elif op == 0x52:  # REDUCE
                    args = stack.pop()
                    callee = stack[-1]
                    if type(callee) is _Global and not callee.special:
                        calls_add(callee.name)
                        stack[-1] = _Inst(callee.name)
                    else:
                        stack[-1] = self.call(callee, args, via="REDUCE")
                elif op == 0x8C:  # SHORT_BINUNICODE
                    end = pos + 1 + buf[pos]
                    if end > guard:
                        pos -= 1
                        break  # longer than what is safely buffered: the handler reads it
                    append(buf[pos + 1:end].decode("utf-8", "surrogatepass"))
                    pos = end
                elif op == 0x4E:  # NONE
                    append(None)
                elif op == 0x74:  # TUPLE
                    items = stack
                    stack = metastack.pop()
                    append = stack.append
                    append(tuple(items) if len(items) <= 256 else _Opaque("tuple"))
                elif op == 0x89:  # NEWFALSE
                    append(False)
                elif op == 0x88:  # NEWTRUE
                    append(True)
                elif op == 0x47:  # BINFLOAT
                    append(_FLOAT)
                    pos += 8
                elif op == 0x43:  # SHORT_BINBYTES
                    pos += 1 + buf[pos]
                    append(_OPAQUE_BYTES)
                    if pos > guard:
                        break  # the careful path reports truncation or a frame straddle
                elif op == 0x7D:  # EMPTY_DICT
                    append(_Dict())
                elif op == 0x75:  # SETITEMS
                    items = stack
                    stack = metastack.pop()
                    append = stack.append
                    target = stack[-1]
                    if type(target) is _Dict and len(items) <= 64 and not target.overflow and \
                            len(target.items) <= 64 and not len(items) & 1:
                        d = target.items
                        for i in range(0, len(items), 2):
                            d[items[i]] = items[i + 1]
                    else:
                        _set_items(self, target, items)
                elif op == 0x86:  # TUPLE2
                    b = stack.pop()
                    stack[-1] = (stack[-1], b)
                elif op == 0x29:  # EMPTY_TUPLE
                    append(())
                elif op == 0x81:  # NEWOBJ
                    args = stack.pop()
                    cls = stack[-1]
                    if type(cls) is _Global and not cls.special:
                        calls_add(cls.name)
                        stack[-1] = _Inst(cls.name)
                    else:
                        stack[-1] = self.call(cls, args, via="NEWOBJ")
                elif op == 0x4A:  # BININT
                    append(int.from_bytes(buf[pos:pos + 4], "little", signed=True))
                    pos += 4
                elif op == 0x71:  # BINPUT
                    memo[buf[pos]] = stack[-1]
                    pos += 1
                elif op == 0x4D:  # BININT2
                    append(buf[pos] | (buf[pos + 1] << 8))
                    pos += 2
                elif op == 0x6A:  # LONG_BINGET
                    append(memo[int.from_bytes(buf[pos:pos + 4], "little")])
                    pos += 4
                elif op == 0x5D:  # EMPTY_LIST
                    append(_LIST)
                elif op == 0x65:  # APPENDS
                    stack = metastack.pop()
                    append = stack.append
                    if type(stack[-1]) is _Global:
                        self.mutate(stack[-1], "APPENDS")
                elif op == 0x61:  # APPEND
                    stack.pop()
                    if type(stack[-1]) is _Global:
                        self.mutate(stack[-1], "APPEND")
                elif op == 0x93:  # STACK_GLOBAL
                    name = stack.pop()
                    module = stack.pop()
                    append(self.make_global(module, name, from_stack=True))
                else:
                    pos -= 1
                    break  # everything else (and STOP) through the handler table
            else:
                # Ran into the guard: write back and reload (refill / frame end / careful path).
                s.pos = pos
                continue
            s.pos = pos
            self.stack = stack
            result = self._step()
            if result is not _CONTINUE:
                return result
            stack = self.stack
            append = stack.append

    def _step(self) -> Any:
        """Run exactly one opcode through the handler table (reads go through ``_Stream``)."""
        s = self.s
        start = s.off + s.pos
        op = s.byte()
        handler = _DISPATCH.get(op)
        if handler is None:
            raise _malformed(f"unknown opcode {op:#04x} at offset {start}")
        if op == 0x2E:  # STOP
            if self.frame_end >= 0 and s.off + s.pos != self.frame_end:
                raise _malformed("STOP inside a frame that has more bytes")
            if self.metastack:
                raise _malformed("STOP with an unclosed MARK")
            result = self.pop()
            if self.stack:
                raise _malformed("STOP with more than one item on the stack")
            return result
        handler(self)
        if self.frame_end >= 0 and s.off + s.pos > self.frame_end:
            raise _malformed(f"opcode at offset {start} straddles the end of its frame")
        return _CONTINUE

    def _check_bounds(self) -> None:
        lim = self.limits
        if len(self.memo) > lim.max_memo:
            raise _malformed(f"more than {lim.max_memo} memo entries")
        if len(self.stack) + sum(len(m) for m in self.metastack) > lim.max_stack:
            raise _malformed(f"stack deeper than {lim.max_stack} items")

    # -- wrapper array data ---------------------------------------------------------------------------------------
    def wrapper_data(self, wrapper: _Obj) -> Any:
        """Skip (or scan, for object arrays) the data joblib put right after a NumpyArrayWrapper's BUILD."""
        s = self.s
        if self.frame_end >= 0:
            if s.off + s.pos != self.frame_end:
                raise _malformed("joblib array data inside an unfinished pickle frame")
            self.frame_end = -1  # the array bytes (and what follows) are outside any frame
        attrs = wrapper.attrs or {}
        try:
            shape = attrs["shape"]
            dtype = attrs["dtype"]
        except KeyError as exc:
            raise _malformed(f"joblib array wrapper without {exc.args[0]!r}") from None
        if type(shape) is not tuple:
            raise _malformed("joblib array shape is not a tuple")
        count = 1
        for d in shape:
            if type(d) is not int or d < 0:
                raise _malformed("joblib array shape is not a tuple of non-negative ints")
            count *= d
        if not isinstance(dtype, _Obj) or dtype.kind != "dtype":
            raise _malformed("joblib array dtype is not a numpy.dtype")
        cached = dtype.layout
        if cached is not None and cached[0] == self.found.dtype_gen:
            itemsize, hasobject = cached[1], cached[2]
        else:
            try:
                itemsize, hasobject = dtype_layout(dtype.args, dtype.state)
            except ValueError as exc:
                raise _malformed(f"joblib array dtype: {exc}") from None
            dtype.layout = (self.found.dtype_gen, itemsize, hasobject)
        subclass = attrs.get("subclass")
        if type(subclass) is _Global:
            # numpy<2 re-creates non-ndarray subclasses with ``_reconstruct(subclass, ...)``: a call.
            self.found.calls.add(subclass.name)
        elif subclass is not None:
            self.found.calls.add(COMPUTED_CALLABLE)
        self.found.joblib = True
        if hasobject:
            if self.depth + 1 > self.limits.max_nesting:
                raise _malformed("object arrays nested too deeply")
            inner = _Scanner(s, self.limits, self.found, self.depth + 1, joblib_aware=False)
            inner.run()
            return _NDARRAY
        align = attrs.get("numpy_array_alignment_bytes")
        if align is not None:
            pad = s.read(1)[0]
            if pad:
                s.skip(pad)
        nbytes = count * itemsize
        if nbytes > self.limits.max_bytes:
            raise _malformed("joblib array larger than the payload limit")
        s.skip(nbytes)
        return _NDARRAY


class _Found:
    """Findings shared by the outer stream and its nested streams."""

    def __init__(self) -> None:
        self.globals: set[str] = set()
        self.calls: set[str] = set()
        self.joblib = False
        self.dtype_gen = 0  # bumped by every BUILD of a dtype: invalidates cached dtype layouts

    @staticmethod
    def meta_items(sc: _Scanner) -> int:
        return sum(len(m) for m in sc.metastack)


def _fix_imports(module: str, name: str) -> tuple[str, str]:
    """The Python 2 name mapping ``pickle`` applies to protocols < 3 (``fix_imports=True``), applied here too."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return module, name


# -- opcode handlers -------------------------------------------------------------------------------------------


def _int_le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _str_value(sc: _Scanner, raw: bytes, how: str) -> Any:
    if len(raw) > 65536:
        return _OPAQUE_STR
    try:
        if how == "utf8":
            return raw.decode("utf-8", "surrogatepass")
        if how == "ascii":
            return raw.decode("ascii")
        return str(raw, "raw-unicode-escape")
    except UnicodeDecodeError:
        raise _malformed("undecodable string literal") from None


def _bin_str(sc: _Scanner, lenbytes: int, how: str) -> None:
    s = sc.s
    n = _int_le(s.read(lenbytes))
    if lenbytes == 4 and how == "ascii" and n >= 1 << 31:
        raise _malformed("negative BINSTRING length")
    if n > 65536:
        s.skip(n)
        sc.stack.append(_OPAQUE_STR)
        return
    sc.stack.append(_str_value(sc, s.read(n), how))


def _bin_bytes(sc: _Scanner, lenbytes: int, bytearray_: bool = False) -> None:
    s = sc.s
    n = _int_le(s.read(lenbytes))
    if n > 4096:
        s.skip(n)
    else:
        s.read(n)
    sc.stack.append(_BYTEARRAY if bytearray_ else _OPAQUE_BYTES)


def op_mark(sc: _Scanner) -> None:
    if len(sc.metastack) >= sc.limits.max_marks:
        raise _malformed(f"more than {sc.limits.max_marks} nested MARKs")
    sc.metastack.append(sc.stack)
    sc.stack = []


def op_stop(sc: _Scanner) -> None:  # pragma: no cover - STOP is handled by the main loop
    raise AssertionError("STOP is handled by _Scanner.run")


def op_pop(sc: _Scanner) -> None:
    if sc.stack:
        sc.stack.pop()
    else:
        sc.pop_mark()


def op_pop_mark(sc: _Scanner) -> None:
    sc.pop_mark()


def op_dup(sc: _Scanner) -> None:
    sc.stack.append(sc.top())


def op_float(sc: _Scanner) -> None:
    line = sc.s.readline(sc.limits.max_line)
    try:
        float(line)
    except ValueError:
        raise _malformed("bad FLOAT literal") from None
    sc.stack.append(_Opaque("float"))


def op_int(sc: _Scanner) -> None:
    line = sc.s.readline(sc.limits.max_line)
    if line == b"00":
        sc.stack.append(False)
        return
    if line == b"01":
        sc.stack.append(True)
        return
    try:
        sc.stack.append(int(line, 0))
    except ValueError:
        raise _malformed("bad INT literal") from None


def op_long(sc: _Scanner) -> None:
    line = sc.s.readline(sc.limits.max_line)
    if line[-1:] == b"L":
        line = line[:-1]
    try:
        sc.stack.append(int(line, 0))
    except ValueError:
        raise _malformed("bad LONG literal") from None


def op_binint(sc: _Scanner) -> None:
    sc.stack.append(int.from_bytes(sc.s.read(4), "little", signed=True))


def op_binint1(sc: _Scanner) -> None:
    sc.stack.append(sc.s.byte())


def op_binint2(sc: _Scanner) -> None:
    sc.stack.append(_int_le(sc.s.read(2)))


def op_long1(sc: _Scanner) -> None:
    n = sc.s.byte()
    sc.stack.append(int.from_bytes(sc.s.read(n), "little", signed=True))


def op_long4(sc: _Scanner) -> None:
    n = int.from_bytes(sc.s.read(4), "little", signed=True)
    if n < 0:
        raise _malformed("LONG pickle has negative byte count")
    if n > 4096:
        sc.s.skip(n)
        sc.stack.append(_Opaque("int"))
    else:
        sc.stack.append(int.from_bytes(sc.s.read(n), "little", signed=True))


def op_none(sc: _Scanner) -> None:
    sc.stack.append(None)


def op_true(sc: _Scanner) -> None:
    sc.stack.append(True)


def op_false(sc: _Scanner) -> None:
    sc.stack.append(False)


def op_persid(sc: _Scanner) -> None:
    sc.s.readline(sc.limits.max_line)
    sc.found.calls.add(PERSISTENT_ID)
    sc.stack.append(_COMPUTED)


def op_binpersid(sc: _Scanner) -> None:
    sc.pop()
    sc.found.calls.add(PERSISTENT_ID)
    sc.stack.append(_COMPUTED)


def op_reduce(sc: _Scanner) -> None:
    args = sc.pop()
    callee = sc.pop()
    sc.stack.append(sc.call(callee, args, via="REDUCE"))


def op_string(sc: _Scanner) -> None:
    data = sc.s.readline(sc.limits.max_line)
    if len(data) >= 2 and data[0] == data[-1] and data[0] in b"\"'":
        data = data[1:-1]
    else:
        raise _malformed("the STRING opcode argument must be quoted")
    try:
        raw = codecs.escape_decode(data)[0]
    except ValueError:
        raise _malformed("bad STRING escape") from None
    sc.stack.append(_str_value(sc, raw, "ascii"))


def op_binstring(sc: _Scanner) -> None:
    _bin_str(sc, 4, "ascii")


def op_short_binstring(sc: _Scanner) -> None:
    _bin_str(sc, 1, "ascii")


def op_unicode(sc: _Scanner) -> None:
    sc.stack.append(_str_value(sc, sc.s.readline(sc.limits.max_line), "raw"))


def op_binunicode(sc: _Scanner) -> None:
    _bin_str(sc, 4, "utf8")


def op_short_binunicode(sc: _Scanner) -> None:
    _bin_str(sc, 1, "utf8")


def op_binunicode8(sc: _Scanner) -> None:
    _bin_str(sc, 8, "utf8")


def op_binbytes(sc: _Scanner) -> None:
    _bin_bytes(sc, 4)


def op_short_binbytes(sc: _Scanner) -> None:
    _bin_bytes(sc, 1)


def op_binbytes8(sc: _Scanner) -> None:
    _bin_bytes(sc, 8)


def op_bytearray8(sc: _Scanner) -> None:
    _bin_bytes(sc, 8, bytearray_=True)


def op_buffer(sc: _Scanner) -> None:
    raise _malformed("out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) are not supported")


def op_append(sc: _Scanner) -> None:
    sc.pop()
    sc.mutate(sc.top(), "APPEND")


def op_appends(sc: _Scanner) -> None:
    sc.pop_mark()
    sc.mutate(sc.top(), "APPENDS")


def op_build(sc: _Scanner) -> None:
    state = sc.pop()
    inst = sc.top()
    if type(inst) is _Obj:
        if inst.kind == "wrapper":
            _merge_wrapper_state(inst, state)
            if sc.joblib_aware:
                sc.stack[-1] = sc.wrapper_data(inst)
            return
        if inst.kind == "dtype":
            inst.state = state
            sc.found.dtype_gen += 1
            return
    sc.mutate(inst, "BUILD")


def _merge_wrapper_state(inst: _Obj, state: Any) -> None:
    attrs = inst.attrs if inst.attrs is not None else {}
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    for part in (state, slotstate):
        if part is None or part is False or part == ():
            continue
        if not isinstance(part, _Dict) or part.overflow:
            raise _malformed("joblib array wrapper state is not a plain dict")
        for k, v in part.items.items():
            if type(k) is not str:
                raise _malformed("joblib array wrapper state has a non-str key")
            attrs[k] = v
    inst.attrs = attrs


def op_global(sc: _Scanner) -> None:
    lim = sc.limits.max_line
    module = _str_value(sc, sc.s.readline(lim), "utf8")
    name = _str_value(sc, sc.s.readline(lim), "utf8")
    sc.stack.append(sc.make_global(module, name))


def op_stack_global(sc: _Scanner) -> None:
    name = sc.pop()
    module = sc.pop()
    sc.stack.append(sc.make_global(module, name, from_stack=True))


def op_inst(sc: _Scanner) -> None:
    lim = sc.limits.max_line
    module = _str_value(sc, sc.s.readline(lim), "ascii")
    name = _str_value(sc, sc.s.readline(lim), "ascii")
    cls = sc.make_global(module, name)
    args = sc.pop_mark()
    sc.stack.append(sc.call(cls, tuple(args), via="INST"))


def op_obj(sc: _Scanner) -> None:
    args = sc.pop_mark()
    if not args:
        raise _malformed("OBJ without a class")
    cls = args.pop(0)
    sc.stack.append(sc.call(cls, tuple(args), via="OBJ"))


def op_newobj(sc: _Scanner) -> None:
    args = sc.pop()
    cls = sc.pop()
    sc.stack.append(sc.call(cls, args, via="NEWOBJ"))


def op_newobj_ex(sc: _Scanner) -> None:
    sc.pop()  # kwargs
    args = sc.pop()
    cls = sc.pop()
    sc.stack.append(sc.call(cls, args, via="NEWOBJ_EX"))


def _ext(sc: _Scanner, nbytes: int) -> None:
    code = _int_le(sc.s.read(nbytes))
    key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
    if not key:
        raise _malformed(f"unregistered extension code {code}")
    module, name = key
    full = global_name(module, name)
    sc.found.globals.add(full)
    sc.stack.append(_Global(full))


def op_ext1(sc: _Scanner) -> None:
    _ext(sc, 1)


def op_ext2(sc: _Scanner) -> None:
    _ext(sc, 2)


def op_ext4(sc: _Scanner) -> None:
    _ext(sc, 4)


def op_dict(sc: _Scanner) -> None:
    items = sc.pop_mark()
    d = _Dict()
    _set_items(sc, d, items)
    sc.stack.append(d)


def op_empty_dict(sc: _Scanner) -> None:
    sc.stack.append(_Dict())


def _set_items(sc: _Scanner, target: Any, items: list[Any]) -> None:
    if len(items) % 2:
        raise _malformed("odd number of items for SETITEMS/DICT")
    if type(target) is not _Dict:
        sc.mutate(target, "SETITEMS")
        return
    if target.overflow:
        return
    store = target.items
    cap = sc.limits.max_container
    for i in range(0, len(items), 2):
        if len(store) >= cap:
            target.overflow = True
            store.clear()
            return
        try:
            store[items[i]] = items[i + 1]
        except TypeError:  # unhashable symbolic key: stop tracking this dict
            target.overflow = True
            store.clear()
            return


def op_setitem(sc: _Scanner) -> None:
    value = sc.pop()
    key = sc.pop()
    _set_items(sc, sc.top(), [key, value])


def op_setitems(sc: _Scanner) -> None:
    items = sc.pop_mark()
    _set_items(sc, sc.top(), items)


def op_list(sc: _Scanner) -> None:
    sc.pop_mark()
    sc.stack.append(_LIST)


def op_empty_list(sc: _Scanner) -> None:
    sc.stack.append(_LIST)


def _tuple_of(sc: _Scanner, items: list[Any]) -> Any:
    if len(items) > sc.limits.max_container:
        return _Opaque("tuple")
    return tuple(items)


def op_tuple(sc: _Scanner) -> None:
    items = sc.pop_mark()  # before touching sc.stack: pop_mark replaces it
    sc.stack.append(_tuple_of(sc, items))


def op_empty_tuple(sc: _Scanner) -> None:
    sc.stack.append(())


def op_tuple1(sc: _Scanner) -> None:
    sc.stack.append((sc.pop(),))


def op_tuple2(sc: _Scanner) -> None:
    b = sc.pop()
    a = sc.pop()
    sc.stack.append((a, b))


def op_tuple3(sc: _Scanner) -> None:
    c = sc.pop()
    b = sc.pop()
    a = sc.pop()
    sc.stack.append((a, b, c))


def op_empty_set(sc: _Scanner) -> None:
    sc.stack.append(_SET)


def op_additems(sc: _Scanner) -> None:
    sc.pop_mark()
    target = sc.top()
    sc.mutate(target, "ADDITEMS")


def op_frozenset(sc: _Scanner) -> None:
    sc.pop_mark()
    sc.stack.append(_FROZENSET)


def _memo_get(sc: _Scanner, idx: int) -> None:
    try:
        sc.stack.append(sc.memo[idx])
    except KeyError:
        raise _malformed(f"memo key {idx} not found") from None


def _memo_put(sc: _Scanner, idx: int) -> None:
    if idx < 0:
        raise _malformed("negative PUT argument")
    memo = sc.memo
    if idx not in memo and len(memo) >= sc.limits.max_memo:
        raise _malformed(f"more than {sc.limits.max_memo} memo entries")
    memo[idx] = sc.top()


def op_get(sc: _Scanner) -> None:
    try:
        idx = int(sc.s.readline(sc.limits.max_line))
    except ValueError:
        raise _malformed("bad GET argument") from None
    _memo_get(sc, idx)


def op_binget(sc: _Scanner) -> None:
    _memo_get(sc, sc.s.byte())


def op_long_binget(sc: _Scanner) -> None:
    _memo_get(sc, _int_le(sc.s.read(4)))


def op_put(sc: _Scanner) -> None:
    try:
        idx = int(sc.s.readline(sc.limits.max_line))
    except ValueError:
        raise _malformed("bad PUT argument") from None
    _memo_put(sc, idx)


def op_binput(sc: _Scanner) -> None:
    _memo_put(sc, sc.s.byte())


def op_long_binput(sc: _Scanner) -> None:
    _memo_put(sc, _int_le(sc.s.read(4)))


def op_memoize(sc: _Scanner) -> None:
    _memo_put(sc, len(sc.memo))


def op_binfloat(sc: _Scanner) -> None:
    sc.s.read(8)
    sc.stack.append(_Opaque("float"))


def op_proto(sc: _Scanner) -> None:
    proto = sc.s.byte()
    if proto > 5:
        raise _malformed(f"unsupported pickle protocol {proto}")
    sc.proto = proto


def op_frame(sc: _Scanner) -> None:
    s = sc.s
    size = _int_le(s.read(8))
    here = s.off + s.pos
    if sc.frame_end >= 0 and here != sc.frame_end:
        raise _malformed("a new frame begins before the end of the current frame")
    sc.frame_end = here + size


_DISPATCH: Final[dict[int, Callable[[_Scanner], None]]] = {
    ord("("): op_mark, ord("."): op_stop, ord("0"): op_pop, ord("1"): op_pop_mark, ord("2"): op_dup,
    ord("F"): op_float, ord("I"): op_int, ord("J"): op_binint, ord("K"): op_binint1, ord("L"): op_long,
    ord("M"): op_binint2, ord("N"): op_none, ord("P"): op_persid, ord("Q"): op_binpersid, ord("R"): op_reduce,
    ord("S"): op_string, ord("T"): op_binstring, ord("U"): op_short_binstring, ord("V"): op_unicode,
    ord("X"): op_binunicode, ord("a"): op_append, ord("b"): op_build, ord("c"): op_global, ord("d"): op_dict,
    ord("}"): op_empty_dict, ord("e"): op_appends, ord("g"): op_get, ord("h"): op_binget, ord("i"): op_inst,
    ord("j"): op_long_binget, ord("l"): op_list, ord("]"): op_empty_list, ord("o"): op_obj, ord("p"): op_put,
    ord("q"): op_binput, ord("r"): op_long_binput, ord("s"): op_setitem, ord("t"): op_tuple,
    ord(")"): op_empty_tuple, ord("u"): op_setitems, ord("G"): op_binfloat,
    0x80: op_proto, 0x81: op_newobj, 0x82: op_ext1, 0x83: op_ext2, 0x84: op_ext4, 0x85: op_tuple1,
    0x86: op_tuple2, 0x87: op_tuple3, 0x88: op_true, 0x89: op_false, 0x8A: op_long1, 0x8B: op_long4,
    ord("B"): op_binbytes, ord("C"): op_short_binbytes,
    0x8C: op_short_binunicode, 0x8D: op_binunicode8, 0x8E: op_binbytes8, 0x8F: op_empty_set,
    0x90: op_additems, 0x91: op_frozenset, 0x92: op_newobj_ex, 0x93: op_stack_global, 0x94: op_memoize,
    0x95: op_frame, 0x96: op_bytearray8, 0x97: op_buffer, 0x98: op_buffer,
}


# --------------------------------------------------------------------------------------------------------------
# Entry points.


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


def _read_head(f: BinaryIO, n: int = 6) -> bytes:
    head = b""
    while len(head) < n:
        data = f.read(n - len(head))
        if not data:
            break
        head += data
    return head


def open_source(f: BinaryIO, limits: ScanLimits = DEFAULT_LIMITS) -> tuple[str | None, _PlainSource | _Decompressor]:
    """Detect the compression of ``f`` by magic bytes and return ``(compressor, chunk source)``.

    Shared with the restricted unpickler so that the scanner and the loader always see the very same bytes.
    """
    head = _read_head(f)
    if not head:
        raise _malformed("empty payload")
    comp = detect_compression(head)
    if comp is None:
        return None, _PlainSource(f, head, limits)
    return comp, _Decompressor(f, comp, head, limits)


def scan_fileobj(f: BinaryIO, *, limits: ScanLimits | None = None) -> ScanResult:
    """Scan a pickle or joblib payload read from ``f`` with ``f.read(n)`` only, up to its end.

    Raises ``IntegrityError("malformed pickle stream: ...")`` on any parse problem or exceeded limit.  Never
    imports, calls or constructs anything the payload names.
    """
    lim = limits or DEFAULT_LIMITS
    comp, src = open_source(f, lim)
    stream = _Stream(src)
    found = _Found()
    scanner = _Scanner(stream, lim, found, depth=0, joblib_aware=True)
    try:
        result = scanner.run()
        if not stream.at_end():
            raise _malformed("trailing bytes after the final STOP")
    except RecursionError:
        raise _malformed("nested too deeply") from None
    except (MemoryError, OverflowError) as exc:
        raise _malformed(f"{type(exc).__name__} while scanning") from None
    fmt = f"joblib+{comp}" if comp is not None else ("joblib" if found.joblib else "pickle")
    return ScanResult(format=fmt, globals=tuple(sorted(found.globals)), calls=tuple(sorted(found.calls)),
                      root=_root_of(result))


def _root_of(value: Any) -> str | None:
    if type(value) is _Inst:
        return value.cls
    if type(value) is _Obj:
        if value.kind == "dtype":
            return "numpy.dtype"
        return value.cls
    if type(value) is _Dict:
        return "builtins.dict"
    if isinstance(value, tuple):
        return "builtins.tuple"
    return None


def scan_file(path: str | PathLike[str]) -> ScanResult:
    """Scan the payload stored at ``path``."""
    with open(path, "rb") as f:
        return scan_fileobj(f)


def scan_bytes(b: bytes) -> ScanResult:
    """Scan an in-memory payload."""
    import io

    return scan_fileobj(io.BytesIO(b))
