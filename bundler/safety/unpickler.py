"""Restricted deserialization of pickle and joblib payloads: defence in depth behind the static scan.

Every global the stream imports goes through ``find_class``, which allows only names in the allowlist and resolves
them itself (so a dotted name cannot walk attributes to somewhere else).  Persistent ids are refused.  For joblib
the array-reading path is our own, not joblib's: the object-array branch of older joblib releases used an
unrestricted ``pickle.load`` on the nested stream, and the legacy side-file wrappers call ``numpy.load`` with
``allow_pickle=True``.  Here nested object arrays go through the same restricted unpickler, legacy wrappers are
refused, and the size of every raw array is cross-checked against the static layout the scanner computed, so scanner
and loader can never disagree on where array bytes end and opcodes resume.

Decompression and magic-byte detection are shared with ``bundler.safety.scan`` (same limits, same bytes).  The module
imports only the standard library at import time; numpy and joblib are imported lazily by ``restricted_load``.
"""

from __future__ import annotations

import copyreg
import importlib
import io
import pickle
import struct
from typing import Any, BinaryIO, ClassVar

from bundler.errors import BundleError, EnvironmentMismatch, IntegrityError, UnsafeContent
from bundler.safety.allowlist import Allowlist
from bundler.safety.scan import (
    CHUNK,
    DEFAULT_LIMITS,
    LEGACY_WRAPPERS,
    UFUNC_RECONSTRUCT,
    WRAPPER,
    ScanLimits,
    _Decompressor,
    _PlainSource,
    dtype_layout,
    global_name,
    open_source,
)

__all__ = ["restricted_load"]


class _ChunkRaw(io.RawIOBase):
    """A raw, read-only, non-seekable stream over the scanner's chunk sources (plain or decompressing)."""

    def __init__(self, src: _PlainSource | _Decompressor) -> None:
        self.src = src
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if not self.pending and isinstance(self.src, _PlainSource):
            return self.src.readinto(view)
        if not self.pending:
            self.pending = self.src.read(min(len(view), CHUNK))
            if not self.pending:
                return 0
        k = min(len(view), len(self.pending))
        view[:k] = self.pending[:k]
        self.pending = self.pending[k:]
        return k


def _refuse(name: str, allow: Allowlist) -> UnsafeContent:
    if name in LEGACY_WRAPPERS:
        line = (f"{name} is the legacy joblib (<0.10) format, which reads arrays from side files with an unrestricted "
                "loader; it is not supported: re-save the model with a current joblib")
    else:
        line = (f"{name} is imported by the payload and is not allowed "
                f"(trust it with --trust {name} if you really mean it)")
    return UnsafeContent(line, offending=[name])


def _resolve(module: str, name: str) -> Any:
    """Import ``module`` and walk ``name``; a missing module or attribute is an environment problem (exit 4)."""
    full = global_name(module, name)
    if "<" in name or not module or not name:
        raise UnsafeContent(f"{full} is not a plain global", offending=[full])
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise EnvironmentMismatch(f"payload needs {full}, which this environment lacks: {exc}") from None
    return obj


class _Guard:
    """The allowlist check shared by both unpickler classes."""

    allow: Allowlist
    _globals_seen: dict[int, str]

    def _find(self, module: str, name: str, mapped: bool) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise IntegrityError("malformed pickle stream: global module and name must be strings")
        if mapped:
            import _compat_pickle

            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        full = global_name(module, name)
        if full in LEGACY_WRAPPERS or not self.allow.may_reference(full):
            raise _refuse(full, self.allow)
        obj = _resolve(module, name)
        if full in UFUNC_RECONSTRUCT:
            obj = self._guarded_ufunc_reconstruct(obj)
        self._globals_seen[id(obj)] = full
        return obj

    def _guarded_ufunc_reconstruct(self, real: Any) -> Any:
        """``_ufunc_reconstruct(module, name)`` imports and returns ``module.name``: judge that name too."""

        def reconstruct(module: str, name: str) -> Any:
            return self._find(module, name, mapped=False)

        del real
        return reconstruct


class _RestrictedUnpickler(_Guard, pickle.Unpickler):
    """The C unpickler with an allowlist-enforcing ``find_class`` (plain pickle payloads, nested object arrays)."""

    def __init__(self, f: BinaryIO, allow: Allowlist) -> None:
        super().__init__(f)
        self.allow = allow
        self._globals_seen = {}

    def find_class(self, module: str, name: str) -> Any:
        if global_name(module, name) == WRAPPER:
            # A plain unpickler would parse joblib's raw array bytes as opcodes: never let it get that far.
            raise IntegrityError("payload contains joblib arrays; it must be loaded with the joblib serializer")
        # The C unpickler does not expose the protocol here; applying the Python 2 name mapping unconditionally is
        # safe because the static scan (which applies it only below protocol 3) has already judged the names.
        return self._find(module, name, mapped=True)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeContent("the payload uses pickle persistent ids, which are never allowed",
                            offending=["<persistent id>"])


def _numpy_unpickler_base() -> type:
    from joblib.numpy_pickle import NumpyUnpickler

    return NumpyUnpickler  # type: ignore[no-any-return]


_JOBLIB_CLASS: type | None = None


def _joblib_unpickler_class() -> type:
    """Build (once) the restricted subclass of joblib's NumpyUnpickler; joblib is imported only when needed."""
    global _JOBLIB_CLASS
    if _JOBLIB_CLASS is not None:
        return _JOBLIB_CLASS
    base = _numpy_unpickler_base()

    class RestrictedNumpyUnpickler(_Guard, base):  # type: ignore[valid-type,misc]
        dispatch: ClassVar[dict[int, Any]] = dict(base.dispatch)  # type: ignore[attr-defined]

        def __init__(self, f: BinaryIO, allow: Allowlist, limits: ScanLimits) -> None:
            try:
                base.__init__(self, "", f, ensure_native_byte_order=True)  # type: ignore[misc]
            except TypeError:  # joblib < 1.3 has no ensure_native_byte_order
                base.__init__(self, "", f)  # type: ignore[misc]
            self.allow = allow
            self.limits = limits
            self._globals_seen = {}
            self._dtype_args: dict[int, tuple[Any, Any]] = {}
            self._dtype_state: dict[int, Any] = {}
            self._layouts: dict[int, tuple[int, bool]] = {}
            import numpy

            self.np = numpy

        def find_class(self, module: str, name: str) -> Any:
            return self._find(module, name, mapped=self.proto < 3 and self.fix_imports)

        def persistent_load(self, pid: Any) -> Any:
            raise UnsafeContent("the payload uses pickle persistent ids, which are never allowed",
                                offending=["<persistent id>"])

        def get_extension(self, code: int) -> None:
            """EXT: always through find_class (never the process-wide extension cache)."""
            key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
            if not key:
                raise IntegrityError(f"malformed pickle stream: unregistered extension code {code}")
            self.append(self.find_class(*key))

        def load_reduce(self) -> None:
            args = self.stack[-1]
            func = self.stack[-2]
            base.load_reduce(self)  # type: ignore[attr-defined]
            if func is self.np.dtype:
                result = self.stack[-1]
                self._dtype_args[id(result)] = (args, result)

        def load_build(self) -> None:
            stack = self.stack
            state = stack[-1]
            inst = stack[-2]
            name = self._globals_seen.get(id(inst))
            if name is not None:
                raise UnsafeContent(f"the payload does BUILD applied to the global {name}: never allowed",
                                    offending=[f"<BUILD applied to the global {name}>"])
            if isinstance(inst, self.np.dtype):
                self._dtype_state[id(inst)] = state
                self._layouts.pop(id(inst), None)  # a new state means a new layout check
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]  # the generic BUILD, not joblib's
            top = stack[-1]
            cls_name = f"{type(top).__module__}.{type(top).__qualname__}"
            if cls_name == WRAPPER:
                stack.pop()
                stack.append(self._read_array(top))
            elif cls_name in LEGACY_WRAPPERS:
                raise _refuse(cls_name, self.allow)

        dispatch[pickle.BUILD[0]] = load_build
        dispatch[pickle.REDUCE[0]] = load_reduce

        # -- arrays ---------------------------------------------------------------------------------------------
        def _symbolic_dtype(self, dt: Any, depth: int = 0) -> tuple[Any, Any]:
            """The (args, state) this dtype was built from, in the scanner's symbolic form."""
            from bundler.safety import scan

            rec = self._dtype_args.get(id(dt))
            if rec is None or rec[1] is not dt or depth > 32:
                raise IntegrityError("malformed pickle stream: joblib array dtype was not built from numpy.dtype")
            args, _ = rec
            state = self._dtype_state.get(id(dt))
            if isinstance(state, tuple) and len(state) >= 8:
                state = list(state)
                fields = state[4]
                if isinstance(fields, dict):
                    sym = scan._Dict()
                    for k, v in fields.items():
                        if not isinstance(v, tuple) or not v:
                            raise IntegrityError("malformed pickle stream: odd dtype field")
                        obj = scan._Obj("dtype", "numpy.dtype", None)
                        obj.args, obj.state = self._symbolic_dtype(v[0], depth + 1)
                        sym.items[k] = (obj, *v[1:])
                    state[4] = sym
                sub = state[2]
                if isinstance(sub, tuple) and len(sub) == 2:
                    obj = scan._Obj("dtype", "numpy.dtype", None)
                    obj.args, obj.state = self._symbolic_dtype(sub[0], depth + 1)
                    state[2] = (obj, sub[1])
                state = tuple(state)
            return args, state

        def _read_array(self, w: Any) -> Any:
            np = self.np
            frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
            if frame is not None and frame.tell() != len(frame.getbuffer()):
                raise IntegrityError("malformed pickle stream: joblib array data inside an unfinished pickle frame")
            dtype = getattr(w, "dtype", None)
            shape = getattr(w, "shape", None)
            if not isinstance(dtype, np.dtype) or type(shape) is not tuple or \
                    not all(type(d) is int and d >= 0 for d in shape):
                raise IntegrityError("malformed pickle stream: joblib array wrapper without a valid dtype and shape")
            layout = self._layouts.get(id(dtype))
            if layout is None:
                # Once per dtype object of this stream (a forest has thousands of arrays, a handful of dtypes);
                # _symbolic_dtype checks the object is the one built here, and _dtype_args keeps it alive.
                args, state = self._symbolic_dtype(dtype)
                try:
                    layout = dtype_layout(args, state)
                except ValueError as exc:
                    raise IntegrityError(f"malformed pickle stream: joblib array dtype: {exc}") from None
                self._layouts[id(dtype)] = layout
            itemsize, hasobject = layout
            if itemsize != dtype.itemsize or hasobject != bool(dtype.hasobject):
                raise IntegrityError("malformed pickle stream: joblib array dtype differs from its static layout")
            fh = self.file_handle
            if hasobject:
                inner = _RestrictedUnpickler(fh, self.allow)
                arr = inner.load()
                if not isinstance(arr, np.ndarray):
                    raise IntegrityError("malformed pickle stream: joblib object array is not an array")
                return arr
            if getattr(w, "numpy_array_alignment_bytes", None) is not None:
                pad = fh.read(1)
                if len(pad) != 1 or len(fh.read(pad[0])) != pad[0]:
                    raise IntegrityError("malformed pickle stream: truncated joblib array padding")
            count = 1
            for d in shape:
                count *= d
            nbytes = count * itemsize
            if nbytes > self.limits.max_bytes:
                raise IntegrityError("malformed pickle stream: joblib array larger than the payload limit")
            arr = np.empty(count, dtype=dtype)
            view = memoryview(arr.view(np.uint8).reshape(-1)) if nbytes else memoryview(b"")
            got = 0
            while got < nbytes:
                k = fh.readinto(view[got:got + CHUNK])
                if not k:
                    raise IntegrityError("malformed pickle stream: truncated joblib array data")
                got += k
            fortran = getattr(w, "order", "C") == "F"
            arr = arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
            try:
                from joblib.numpy_pickle_utils import _ensure_native_byte_order

                arr = _ensure_native_byte_order(arr)
            except ImportError:  # pragma: no cover - joblib < 1.2
                pass
            subclass = getattr(w, "subclass", np.ndarray)
            if subclass not in (np.ndarray, np.memmap) and hasattr(arr, "__array_prepare__"):
                # numpy < 2: re-create the subclass the way joblib does (subclass passed find_class already).
                from numpy.core.multiarray import _reconstruct

                arr = _reconstruct(subclass, (0,), "b").__array_prepare__(arr)
            return arr

    _JOBLIB_CLASS = RestrictedNumpyUnpickler
    return RestrictedNumpyUnpickler


def restricted_load(f: BinaryIO, *, fmt: str, allow: Allowlist, limits: ScanLimits | None = None) -> object:
    """Deserialize a ``"pickle"`` or ``"joblib"`` payload from ``f``, importing only globals ``allow`` permits.

    Run the static scan (and ``allow.audit``) first; this is the second line of defence.  Raises
    ``UnsafeContent`` (a disallowed global: exit 5), ``EnvironmentMismatch`` (an allowed global this environment
    lacks: exit 4) or ``IntegrityError`` (anything malformed, trailing bytes: exit 3).
    """
    if fmt not in ("pickle", "joblib"):
        raise ValueError(f"restricted_load handles 'pickle' and 'joblib', not {fmt!r}")
    lim = limits or DEFAULT_LIMITS
    comp, src = open_source(f, lim)
    if fmt == "pickle" and comp is not None:
        raise IntegrityError(f"a plain pickle payload must not be {comp}-compressed (is it a joblib file?)")
    fh = io.BufferedReader(_ChunkRaw(src), buffer_size=CHUNK)
    copyreg.clear_extension_cache()  # so that EXT opcodes always go through find_class
    try:
        if fmt == "pickle":
            obj = _RestrictedUnpickler(fh, allow).load()
        else:
            obj = _joblib_unpickler_class()(fh, allow, lim).load()
        if fh.read(1):
            raise IntegrityError("malformed pickle stream: trailing bytes after the final STOP")
    except BundleError:
        raise
    except RecursionError:
        raise IntegrityError("payload could not be deserialized: nested too deeply") from None
    except (pickle.UnpicklingError, EOFError, struct.error, IndexError, KeyError) as exc:
        # The pickle machine's own failures (stack or memo underflow, truncation): a malformed stream.
        raise IntegrityError(f"payload could not be deserialized: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        # The stream parsed and every name it uses is allowed; the library code rebuilding an object refused its
        # state (a changed tree layout, an unknown BitGenerator, a renamed attribute). The bytes are the verified
        # ones, so this is this environment's inability to rebuild the model: an environment problem (exit 4).
        text = " ".join(str(exc).split())[:300]
        raise EnvironmentMismatch(f"payload cannot be rebuilt in this environment: {type(exc).__name__}: {text}"
                                  ) from None
    finally:
        copyreg.clear_extension_cache()
    return obj
