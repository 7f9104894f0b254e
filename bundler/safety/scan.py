"""Static scan of pickle and joblib payloads: what a payload imports, calls and holds, found without running any of it.

Why a scanner of our own: ``pickle`` has no "dry run", and ``pickletools.genops`` neither understands joblib (raw
array bytes sit *inside* the pickle stream, right after each ``NumpyArrayWrapper``) nor tells a called global from
one held as a value. The scan is the symbolic backend of the one interpreter (``bundler.safety.machine``) that the
restricted unpickler also runs, so both read every byte the same way. It records

* ``globals``: every global the payload imports (``GLOBAL``, ``STACK_GLOBAL`` with literal, memoized or computed
  names, ``INST``, ``OBJ``'s class, ``EXT`` through the ``copyreg`` registry, ``numpy``'s ufunc reconstructor);
* ``calls``: every global that is *called* while unpickling (callees, and the arguments forwarders instantiate);
* ``values``: every global the payload *holds as a value* (a ``score_func``, a dtype, a function a transformer will
  call later with arguments of the payload's choosing).

A callee that is not a plain global is recorded as ``"<computed callable>"``; anything starting with ``"<"`` can
never be allowlisted. The scan is strict: whenever a real unpickler could read the bytes differently (an opcode
straddling a frame end, a joblib array inside an unfinished frame, a dtype whose size is not statically known,
trailing bytes...), the stream is refused as malformed. Where a symbolic value's type is known (a literal, a
tuple, list, dict or set the payload built), the scan refuses what the restricted unpickler refuses with it: APPEND,
SETITEMS or ADDITEMS onto the wrong container, call arguments that are not a tuple, BUILD with a state on a value
that has neither ``__setstate__`` nor ``__dict__``, unhashable keys and set items (``tests/test_scan_parity.py``).
Only the standard library is imported here (plus ``lz4``
lazily): this runs inside ``bundler verify``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, BinaryIO

from bundler.safety.dtypes import DtypeLayoutError, symbolic_layout
from bundler.safety.limits import DEFAULT_LIMITS, Limits
from bundler.safety.machine import Machine
from bundler.safety.names import (
    COMPUTED_CALLABLE,
    COMPUTED_GLOBAL,
    PERSISTENT_ID,
    ROOT_FROM_ARG0,
    UFUNC_RECONSTRUCT,
    WRAPPER,
    forwarded_positions,
    global_name,
)
from bundler.safety.source import MemorySource, Source, StreamSource, malformed, open_stream

__all__ = [
    "COMPUTED_CALLABLE",
    "ArraySpan",
    "ScanResult",
    "scan_bytes",
    "scan_file",
    "scan_fileobj",
    "scan_memory",
]

_BIT_GENERATOR_CTOR = "numpy.random._pickle.__bit_generator_ctor"
_SMALL_BYTES = 4096


@dataclass(frozen=True)
class ArraySpan:
    """Where one joblib array's data lies in the (decompressed) stream: ``nbytes == -1`` for an object array (a
    nested pickle stream). The unpickler, run over the same bytes, must meet exactly these spans."""

    offset: int
    nbytes: int


@dataclass(frozen=True)
class ScanResult:
    """What a payload imports (``globals``), calls while loading (``calls``) and holds as values (``values``).

    ``format`` is ``"pickle"``, ``"joblib"`` (uncompressed stream with joblib arrays) or ``"joblib+<compressor>"``.
    ``root`` is the ``module.qualname`` of the class (or reconstructor) that produced the top-level object when it
    is statically known, else ``None``. ``arrays`` lists the joblib array spans, in stream order; ``opcodes`` and
    ``size`` are the number of opcodes interpreted and of (decompressed) stream bytes.
    """

    format: str
    globals: tuple[str, ...]
    calls: tuple[str, ...]
    root: str | None
    values: tuple[str, ...] = ()
    arrays: tuple[ArraySpan, ...] = field(default=(), repr=False)
    opcodes: int = 0
    size: int = 0


# -- symbolic values ------------------------------------------------------------------------------------------------


class _Global:
    """A global the payload imported."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


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
    """A dict whose str-keyed items are kept (up to a bound) for the dtype fields and wrapper state the scan reads."""

    __slots__ = ("items", "overflow")

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}
        self.overflow = False


class _Opaque:
    """A value the scan does not track (large strings/bytes, floats...)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


_OPAQUE_STR = _Opaque("str")
_OPAQUE_BYTES = _Opaque("bytes")
_OPAQUE_INT = _Opaque("int")
_OPAQUE_TUPLE = _Opaque("tuple")
_FLOAT = _Opaque("float")
_NDARRAY = _Inst("numpy.ndarray")
_LIST = _Inst("builtins.list")
_SET = _Inst("builtins.set")
_FROZENSET = _Inst("builtins.frozenset")
_BYTEARRAY = _Inst("builtins.bytearray")
_COMPUTED = _Inst(None)


#: What each symbolic stand-in of a known Python type is, for the checks the restricted unpickler makes on the
#: target of APPEND/SETITEMS/ADDITEMS/BUILD, on call arguments and on keys (``_known_type``).
_STAND_IN_TYPES: dict[int, str] = {
    id(_OPAQUE_STR): "str", id(_OPAQUE_BYTES): "bytes", id(_OPAQUE_INT): "int", id(_OPAQUE_TUPLE): "tuple",
    id(_FLOAT): "float", id(_NDARRAY): "ndarray", id(_LIST): "list", id(_SET): "set", id(_FROZENSET): "frozenset",
    id(_BYTEARRAY): "bytearray",
}
_LITERAL_TYPES: dict[type, str] = {int: "int", bool: "bool", str: "str", tuple: "tuple", type(None): "NoneType"}
#: Known types whose instances cannot be hashed (a dict key, a set item).
_UNHASHABLE = frozenset({"list", "dict", "set", "bytearray", "ndarray"})
#: Known types with neither ``__setstate__`` nor an instance ``__dict__``: BUILD with a state is malformed.
_NO_STATE = frozenset({"int", "bool", "str", "bytes", "float", "NoneType", "tuple", "list", "dict", "set",
                       "frozenset", "bytearray"})


def _known_type(value: Any) -> str | None:
    """The Python type a symbolic value certainly has at load time, or None when the scan cannot know it (the
    result of a call, a global, a dtype...)."""
    t = _LITERAL_TYPES.get(type(value))
    if t is not None:
        return t
    if type(value) is _Dict:
        return "dict"
    return _STAND_IN_TYPES.get(id(value))


def _truthy(value: Any) -> bool | None:
    """Whether a symbolic value is certainly non-empty (True), certainly empty or false (False), or unknown."""
    if type(value) in _LITERAL_TYPES:
        return bool(value)
    if type(value) is _Dict:
        return bool(value.items) or value.overflow
    if value is _OPAQUE_STR or value is _OPAQUE_TUPLE:
        return True  # longer than the symbolic limits
    return None


def _unhashable_in(values: list[Any] | tuple[Any, ...], op: str) -> None:
    """Refuse (malformed, as the unpickler does) a key or set item of a type that cannot be hashed, also inside a
    tuple. Tuples reaching here weigh at most ``MAX_HASH_WEIGHT`` (the machine checked), so this is bounded."""
    todo = list(values)
    while todo:
        value = todo.pop()
        if type(value) is tuple:
            todo.extend(value)
            continue
        t = _known_type(value)
        if t in _UNHASHABLE:
            raise malformed(f"{op} with an unhashable key or item (unhashable type: '{t}')")


class _Found:
    """Findings shared by the outer stream and its nested streams."""

    def __init__(self) -> None:
        self.globals: set[str] = set()
        self.calls: set[str] = set()
        self.values: set[str] = set()
        self.joblib = False
        self.dtype_gen = 0  # bumped by every BUILD of a dtype: invalidates cached dtype layouts
        self.arrays: list[ArraySpan] = []


class SymbolicBackend:
    """Values as small stand-ins; records globals, calls and value uses (see ``bundler.safety.machine``)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.found = _Found()

    # -- literals ------------------------------------------------------------------------------------------------
    def is_global(self, value: Any) -> str | None:
        return value.name if type(value) is _Global else None

    def text(self, raw: bytes, how: str) -> Any:
        if len(raw) > self.limits.max_symbolic_str:
            return _OPAQUE_STR
        try:
            if how == "utf8":
                return raw.decode("utf-8", "surrogatepass")
            if how == "ascii":
                return raw.decode("ascii")
            return str(raw, "raw-unicode-escape")
        except UnicodeDecodeError:
            raise malformed("undecodable string literal") from None

    def text_literal(self, m: Machine, n: int, how: str) -> Any:
        if n > self.limits.max_symbolic_str:
            m.src.skip(n)
            return _OPAQUE_STR
        return self.text(m.src.read(n), how)

    def literal_bytes(self, m: Machine, n: int, kind: str) -> Any:
        if n > _SMALL_BYTES:
            m.src.skip(n)
        else:
            m.src.read(n)
        return _BYTEARRAY if kind == "bytearray" else _OPAQUE_BYTES

    def long_int(self, m: Machine, n: int) -> Any:
        if n > _SMALL_BYTES:
            m.src.skip(n)
            return _OPAQUE_INT
        return int.from_bytes(m.src.read(n), "little", signed=True)

    def float_text(self, line: bytes) -> Any:
        try:
            float(line)
        except ValueError:
            raise malformed("bad FLOAT literal") from None
        return _FLOAT

    def float_bin(self, raw: bytes) -> Any:
        return _FLOAT

    # -- globals and calls -----------------------------------------------------------------------------------------
    def make_global(self, m: Machine, module: Any, name: Any, via: str) -> Any:
        if type(module) is not str or type(name) is not str:
            if module is _OPAQUE_STR or name is _OPAQUE_STR:
                self.found.globals.add(COMPUTED_GLOBAL)
                return _Global(COMPUTED_GLOBAL)
            raise malformed("global module and name must be short strings")
        full = global_name(module, name)
        self.found.globals.add(full)
        return _Global(full)

    def value_use(self, name: str) -> None:
        self.found.values.add(name)

    def mutate_global(self, name: str, what: str) -> None:
        self.found.calls.add(f"<{what} applied to the global {name}>")

    def persistent(self, pid: Any) -> Any:
        self.found.calls.add(PERSISTENT_ID)
        return _COMPUTED

    def call(self, m: Machine, callee: Any, args: Any, via: str, called: list[str]) -> Any:
        _tuple_args(args)
        found = self.found
        if type(callee) is not _Global:
            found.calls.add(COMPUTED_CALLABLE)
            return _COMPUTED
        name = callee.name
        found.calls.add(name)
        if name == WRAPPER:
            raise malformed(f"joblib NumpyArrayWrapper built by {via}, which joblib never writes")
        if name == "numpy.dtype" and via == "REDUCE":
            return _Obj("dtype", name, args)
        if name in UFUNC_RECONSTRUCT and via == "REDUCE":
            if isinstance(args, tuple) and len(args) == 2 and type(args[0]) is str and type(args[1]) is str:
                ref = global_name(args[0], args[1])
                found.globals.add(ref)
                return _Global(ref)
            found.globals.add(COMPUTED_GLOBAL)
            return _Global(COMPUTED_GLOBAL)
        positions = forwarded_positions(name) if via == "REDUCE" else None
        if positions is None:
            return _Inst(name)
        if type(args) is not tuple:
            found.calls.add(COMPUTED_CALLABLE)
            return _COMPUTED
        for name_called in called:
            found.calls.add(name_called)
            if name_called == WRAPPER:
                if name in ("copyreg._reconstructor", "copyreg.__newobj__") and type(args[0]) is _Global and \
                        args[0].name == WRAPPER:
                    obj = _Obj("wrapper", WRAPPER)
                    obj.attrs = {}
                    return obj
                raise malformed(f"joblib NumpyArrayWrapper built by {name}, which joblib never writes")
        for i in positions:
            if i < len(args) and type(args[i]) is not _Global and \
                    not (type(args[i]) is str and name == _BIT_GENERATOR_CTOR):
                found.calls.add(COMPUTED_CALLABLE)
        if name in ROOT_FROM_ARG0 and args and type(args[0]) is _Global:
            return _Inst(args[0].name)
        return _Inst(name)

    def new(self, m: Machine, cls: Any, args: Any, kwargs: Any, via: str) -> Any:
        _tuple_args(args)
        found = self.found
        if type(cls) is not _Global:
            found.calls.add(COMPUTED_CALLABLE)
            return _COMPUTED
        found.calls.add(cls.name)
        if kwargs is not None and _known_type(kwargs) is not None and \
                (_known_type(kwargs) != "dict" or _truthy(kwargs) is not False):
            found.calls.add(f"<instantiate {cls.name} with keyword arguments>")
        if cls.name == WRAPPER:
            obj = _Obj("wrapper", WRAPPER)
            obj.attrs = {}
            return obj
        return _Inst(cls.name)

    def build(self, m: Machine, inst: Any, state: Any) -> Any:
        t = _known_type(inst)
        if t in _NO_STATE:
            self._build_plain(t, state)
            return inst
        if type(inst) is _Obj:
            if inst.kind == "dtype":
                inst.state = state
                self.found.dtype_gen += 1
                return inst
            _merge_wrapper_state(inst, state)
            if not m.joblib_aware:
                raise malformed("joblib array wrapper inside an object array stream")
            return self._array_data(m, inst)
        return inst

    def _build_plain(self, t: str, state: Any) -> None:
        """BUILD on a value of a type without ``__setstate__`` or ``__dict__``: what the unpickler refuses (a state
        that is set is malformed; a slot state dict is unsafe, since no such type declares slots)."""
        slotstate = None
        if type(state) is tuple and len(state) == 2:
            state, slotstate = state
        if _truthy(state):
            if _known_type(state) != "dict":
                raise malformed("instance state is not a dict with string keys")
            raise malformed(f"BUILD of a {t} object, which has no instance dict")
        if _truthy(slotstate):
            if _known_type(slotstate) != "dict":
                raise malformed("slot state is not a dict")
            self.found.calls.add(f"<set slot state on a {t} object, which declares no slots>")

    # -- containers ----------------------------------------------------------------------------------------------
    def empty_list(self) -> Any:
        return _LIST

    def empty_dict(self) -> Any:
        return _Dict()

    def empty_set(self) -> Any:
        return _SET

    def make_tuple(self, m: Machine, items: list[Any]) -> Any:
        return tuple(items) if len(items) <= self.limits.max_container else _OPAQUE_TUPLE

    def make_list(self, items: list[Any]) -> Any:
        return _LIST

    def make_dict(self, m: Machine, items: list[Any]) -> Any:
        _unhashable_in(items[0::2], "DICT")
        d = _Dict()
        self.setitems(m, d, items)
        return d

    def make_frozenset(self, items: list[Any]) -> Any:
        _unhashable_in(items, "FROZENSET")
        return _FROZENSET

    def appends(self, target: Any, items: list[Any]) -> None:
        t = _known_type(target)
        if t is not None and t != "list":
            raise malformed(f"APPEND to a {t} object, which is not a list")

    def additems(self, target: Any, items: list[Any]) -> None:
        t = _known_type(target)
        if t is not None and t != "set":
            raise malformed(f"ADDITEMS on a {t} object, which is not a set")
        _unhashable_in(items, "ADDITEMS")

    def setitems(self, m: Machine, target: Any, items: list[Any]) -> None:
        """Keep str-keyed items of tracked dicts (never hashing anything else: symbolic tuples are not keys)."""
        if type(target) is not _Dict:
            t = _known_type(target)
            if t is not None:
                raise malformed(f"SETITEM on a {t} object, which is not a dict")
        _unhashable_in(items[0::2], "SETITEMS")
        if type(target) is not _Dict or target.overflow:
            return
        store = target.items
        cap = self.limits.max_container
        for i in range(0, len(items), 2):
            key = items[i]
            if type(key) is not str or len(store) >= cap:
                target.overflow = True
                store.clear()
                return
            store[key] = items[i + 1]

    # -- joblib array data ------------------------------------------------------------------------------------------
    def _array_data(self, m: Machine, wrapper: _Obj) -> Any:
        """Account for (skip, or scan for object arrays) the data joblib put right after a wrapper's BUILD."""
        m.end_frame_for_array()
        src = m.src
        attrs = wrapper.attrs or {}
        shape, dtype = attrs.get("shape"), attrs.get("dtype")
        if type(shape) is not tuple:
            raise malformed("joblib array wrapper without a shape tuple")
        count = 1
        if len(shape) > 64:
            raise malformed("joblib array shape has more than 64 dimensions")
        for d in shape:
            if type(d) is not int or not 0 <= d < 1 << 62:
                raise malformed("joblib array shape is not a tuple of non-negative ints")
            count *= d
        if type(dtype) is not _Obj or dtype.kind != "dtype":
            raise malformed("joblib array dtype is not a numpy.dtype")
        cached = dtype.layout
        if cached is not None and cached[0] == self.found.dtype_gen:
            itemsize, hasobject = cached[1], cached[2]
        else:
            try:
                itemsize, hasobject = symbolic_layout(dtype.args, dtype.state)
            except DtypeLayoutError as exc:
                raise malformed(f"joblib array dtype: {exc}") from None
            dtype.layout = (self.found.dtype_gen, itemsize, hasobject)
        subclass = attrs.get("subclass")
        if type(subclass) is _Global:
            if subclass.name not in ("numpy.ndarray", "numpy.memmap"):
                # numpy re-creates other ndarray subclasses with ``_reconstruct(subclass, ...)``: a call.
                self.found.calls.add(subclass.name)
        elif subclass is not None:
            self.found.calls.add(COMPUTED_CALLABLE)
        self.found.joblib = True
        if hasobject:
            self.found.arrays.append(ArraySpan(src.tell(), -1))
            m.nested().run()
            return _NDARRAY
        if attrs.get("numpy_array_alignment_bytes") is not None:
            pad = src.byte()
            if pad:
                src.skip(pad)
        nbytes = count * itemsize
        if nbytes > self.limits.max_bytes:
            raise malformed("joblib array larger than the payload limit")
        self.found.arrays.append(ArraySpan(src.tell(), nbytes))
        src.take(nbytes)
        return _NDARRAY


def _tuple_args(args: Any) -> None:
    """Call arguments of a type the scan knows that is not a tuple: the unpickler refuses them as malformed."""
    t = _known_type(args)
    if t is not None and t != "tuple":
        raise malformed(f"call arguments are not a tuple (a {t})")


def _merge_wrapper_state(inst: _Obj, state: Any) -> None:
    attrs = inst.attrs if inst.attrs is not None else {}
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    for part in (state, slotstate):
        if part is None or part is False or part == ():
            continue
        if type(part) is not _Dict or part.overflow:
            raise malformed("joblib array wrapper state is not a plain dict")
        for k, v in part.items.items():
            attrs[k] = v
    inst.attrs = attrs


def _root_of(value: Any) -> str | None:
    if type(value) is _Inst:
        return value.cls
    if type(value) is _Obj:
        return "numpy.dtype" if value.kind == "dtype" else value.cls
    if type(value) is _Dict:
        return "builtins.dict"
    if isinstance(value, tuple) or value is _OPAQUE_TUPLE:
        return "builtins.tuple"
    return None


# -- entry points ---------------------------------------------------------------------------------------------------


def _scan(src: Source, limits: Limits, compression: str | None) -> ScanResult:
    backend = SymbolicBackend(limits)
    machine = Machine(src, backend, limits)
    result = machine.run()
    if not src.at_end():
        raise malformed("trailing bytes after the final STOP")
    found = backend.found
    fmt = f"joblib+{compression}" if compression is not None else ("joblib" if found.joblib else "pickle")
    return ScanResult(format=fmt, globals=tuple(sorted(found.globals)), calls=tuple(sorted(found.calls)),
                      root=_root_of(result), values=tuple(sorted(found.values)), arrays=tuple(found.arrays),
                      opcodes=machine.ops, size=src.tell())


def scan_fileobj(f: BinaryIO | Any, *, limits: Limits | None = None) -> ScanResult:
    """Scan a pickle or joblib payload read from ``f`` with ``f.read(n)`` only, up to its end, in bounded memory.

    Raises ``IntegrityError("malformed pickle stream: ...")`` on any parse problem or exceeded limit, and
    ``UnsafeContent`` for content whose mere loading would exhaust resources. Never imports, calls or constructs
    anything the payload names.
    """
    lim = limits or DEFAULT_LIMITS
    comp, producer = open_stream(f, lim)
    return _scan(StreamSource(producer, keep_arrays=False), lim, comp)


def scan_memory(data: Any, *, compression: str | None = None, limits: Limits | None = None,
                source: MemorySource | None = None) -> ScanResult:
    """Scan an (already decompressed) payload held in memory; ``compression`` only labels the result's format."""
    lim = limits or DEFAULT_LIMITS
    src = source if source is not None else MemorySource(data)
    if src.size == 0:
        raise malformed("empty payload")
    return _scan(src, lim, compression)


def scan_file(path: str | PathLike[str]) -> ScanResult:
    """Scan the payload stored at ``path``."""
    with open(path, "rb") as f:
        return scan_fileobj(f)


def scan_bytes(b: bytes) -> ScanResult:
    """Scan an in-memory payload (compressed or not)."""
    return scan_fileobj(io.BytesIO(b))
