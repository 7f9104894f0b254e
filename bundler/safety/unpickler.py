"""Restricted deserialization of pickle and joblib payloads: the concrete backend of the one interpreter.

It runs the very interpreter the static scan runs (``bundler.safety.machine``), so both read every byte the same way
and classify every global the same way; and it enforces on its own, without the scan, everything the scan's audit
enforces:

* every global comes from ``find_class``-like resolution of an allowlisted name (never a dotted attribute walk to
  somewhere else); a called global must be *constructible*, a global held as a value must be *referable*;
* a call with arguments must pass its guard (``bundler.safety.guards``): only the argument shapes the library's own
  pickling writes, with every size-driven allocation charged to a budget derived from the payload's size;
* ``BUILD`` never targets a global; a numpy dtype's state must be the canonical state of its description (no
  forged flags); instance state keys are strings; slot state only sets declared slots;
* ``APPEND``/``SETITEMS``/``ADDITEMS`` only fill real lists, dicts and sets, through the base methods;
* persistent ids, out-of-band buffers and the legacy joblib side-file format are refused;
* joblib array data is taken from the source as a view of the verified payload bytes, after its size has been
  computed from the real, canonical dtype and cross-checked against the span the scan found.

Errors: ``UnsafeContent`` (exit 5) for anything disallowed, ``IntegrityError`` (exit 3) for a malformed stream,
``EnvironmentMismatch`` (exit 4) for an allowed global this environment lacks, and ``RebuildError`` (a kind of
``EnvironmentMismatch``) when library code refuses to rebuild an object from verified bytes; the load pipeline turns
the latter into unsafe content when the bundle was made with the very versions that are installed.
"""

from __future__ import annotations

import importlib
import io
import pickle
import struct
import sys
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from bundler.errors import BundleError, EnvironmentMismatch, IntegrityError, UnsafeContent
from bundler.safety.allowlist import Allowlist
from bundler.safety.build_guards import guard_build
from bundler.safety.dtypes import dtype_state_problem
from bundler.safety.guards import MAX_DIMENSION, CallContext, guard_for
from bundler.safety.limits import DEFAULT_LIMITS, Budget, BudgetExceeded, Limits
from bundler.safety.machine import Machine
from bundler.safety.names import (
    LEGACY_WRAPPERS,
    UFUNC_RECONSTRUCT,
    WRAPPER,
    forwarded_positions,
    global_name,
)
from bundler.safety.nesting import MAX_UNGUARDED_NESTING, deepest_chain, defuse, is_unguarded
from bundler.safety.scan import ArraySpan
from bundler.safety.source import MemorySource, Source, StreamSource, malformed, open_stream

__all__ = ["Loaded", "RebuildError", "restricted_load", "restricted_load_memory"]

#: Arrays smaller than this are copied out of the payload buffer (so they own their memory and the buffer can be
#: freed); larger ones stay zero-copy views of the verified bytes.
COPY_BELOW = 1 << 20
#: ``sklearn.tree._tree.Tree`` copies the arrays of its state (``__setstate__`` memcpys ``nodes`` and ``values`` into
#: memory it allocates), so arrays headed there need no copy of their own (see ``_feeds_copying_state``).
_TREE_MODULE, _TREE_CLASS = "sklearn.tree._tree", "Tree"
_TREE_STATE_ARRAYS = ("nodes", "values")
_BIT_GENERATOR_CTOR = "numpy.random._pickle.__bit_generator_ctor"
#: How joblib's array wrapper is instantiated below protocol 4 (protocols 0-1 and 2-3): never any other forwarder.
_WRAPPER_FORWARDERS = frozenset({"copyreg._reconstructor", "copyreg.__newobj__"})


class RebuildError(EnvironmentMismatch):
    """Library code refused to rebuild an object from the payload's (verified) bytes."""


def _refuse_name(name: str, how: str) -> UnsafeContent:
    if name in LEGACY_WRAPPERS:
        return UnsafeContent(f"{name} is the legacy joblib (<0.10) format, which reads arrays from side files with "
                             "an unrestricted loader; it is not supported: re-save the model with a current joblib",
                             offending=[name])
    return UnsafeContent(f"{name} {how} and is not allowed", offending=[name])


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


def _slot_names(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    return names


class ConcreteBackend:
    """Real values, every call and use checked (see the module docstring)."""

    def __init__(self, allow: Allowlist, limits: Limits, budget: Budget, *,
                 spans: tuple[ArraySpan, ...] | None = None) -> None:
        import numpy

        self.np = numpy
        self.allow = allow
        self.limits = limits
        self.budget = budget
        self.handed: dict[int, str] = {}  # id of a global handed out -> its label (first name)
        self.aliases: dict[str, set[str]] = {}  # label -> every name it was imported under
        self.keep: list[Any] = []  # globals produced by calls (ufunc reconstruct) stay alive: ids stay unique
        self.dtype_args: dict[int, tuple[Any, Any]] = {}
        self.unguarded: list[Any] = []  # deques, defaultdicts, arrays: freed recursively in C (bundler.safety.nesting)
        self.spans: Iterator[ArraySpan] | None = iter(spans) if spans is not None else None
        from joblib.numpy_pickle import NumpyArrayWrapper

        self.wrapper_cls = NumpyArrayWrapper
        self.ctx = CallContext(budget=budget, np=numpy, is_global=self.is_global, may_call=self._may_call_value)

    # -- globals ---------------------------------------------------------------------------------------------------
    def is_global(self, value: Any) -> str | None:
        return self.handed.get(id(value))

    def _names(self, label: str) -> set[str]:
        return self.aliases.get(label, {label})

    def _constructible(self, label: str) -> str | None:
        """A name under which this global may be called (object-based: any alias will do), or None."""
        for name in sorted(self._names(label)):
            if self.allow.may_call(name):
                return name
        return None

    def _may_call_value(self, value: Any) -> bool:
        label = self.is_global(value)
        return label is not None and self._constructible(label) is not None

    def make_global(self, m: Machine, module: Any, name: Any, via: str) -> Any:
        if type(module) is not str or type(name) is not str:
            raise malformed("global module and name must be strings")
        full = global_name(module, name)
        if full in LEGACY_WRAPPERS or not self.allow.may_import(full):
            raise _refuse_name(full, "is imported by the payload")
        obj = _resolve(module, name)
        label = self.handed.get(id(obj))
        if label is None:
            self.handed[id(obj)] = full
            self.aliases[full] = {full}
        else:
            self.aliases[label].add(full)
        return obj

    def value_use(self, label: str) -> None:
        # A name allowed only at one known place passes here; the validators check its place after loading.
        if not any(self.allow.may_hold_somewhere(n) for n in self._names(label)):
            raise _refuse_name(label, "is held as a value by the payload (a function or class a model could call "
                                      "later with arguments of the payload's choosing)")

    def mutate_global(self, name: str, what: str) -> None:
        raise UnsafeContent(f"the payload does {what} applied to the global {name}: never allowed",
                            offending=[f"<{what} applied to the global {name}>"])

    def persistent(self, pid: Any) -> Any:
        raise UnsafeContent("the payload uses pickle persistent ids, which are never allowed",
                            offending=["<persistent id>"])

    # -- literals ------------------------------------------------------------------------------------------------
    def text(self, raw: bytes, how: str) -> Any:
        try:
            if how == "utf8":
                return raw.decode("utf-8", "surrogatepass")
            if how == "ascii":
                return raw.decode("ascii")
            return str(raw, "raw-unicode-escape")
        except UnicodeDecodeError:
            raise malformed("undecodable string literal") from None

    def text_literal(self, m: Machine, n: int, how: str) -> Any:
        return self.text(m.src.read(n), how)

    def literal_bytes(self, m: Machine, n: int, kind: str) -> Any:
        data = m.src.read(n)
        return bytearray(data) if kind == "bytearray" else data

    def long_int(self, m: Machine, n: int) -> Any:
        return int.from_bytes(m.src.read(n), "little", signed=True)

    def float_text(self, line: bytes) -> Any:
        try:
            return float(line)
        except ValueError:
            raise malformed("bad FLOAT literal") from None

    def float_bin(self, raw: bytes) -> Any:
        return struct.unpack(">d", raw)[0]

    # -- calls -------------------------------------------------------------------------------------------------------
    def _callable_name(self, callee: Any, via: str) -> str:
        label = self.is_global(callee)
        if label is None:
            raise UnsafeContent("the payload calls something that is not a plain global (the result of another "
                                "call, a string...): never allowed", offending=["<computed callable>"])
        name = self._constructible(label)
        if name is None:
            how = "is referable as a value only, but is called while loading" if \
                any(self.allow.may_hold(n) for n in self._names(label)) else "is called while loading"
            raise _refuse_name(label, how)
        return name

    def _guard(self, m: Machine, name: str, label_callee: Any, args: Any) -> None:
        if type(args) is not tuple:
            raise malformed(f"{name}: call arguments are not a tuple")
        if not args:
            return
        self.ctx.hash_weight = m.hash_weight
        guard = None
        for alias in sorted(self._names(self.is_global(label_callee) or name)):
            guard = guard_for(alias)
            if guard is not None:
                break
        if guard is None:
            raise UnsafeContent(f"{name} is called with arguments, which no allowlisted payload does "
                                "(only argument-free construction is allowed for it)", offending=[name])
        try:
            guard(self.ctx, name, args)
        except BudgetExceeded as exc:
            raise UnsafeContent(str(exc), offending=[name]) from None

    def call(self, m: Machine, callee: Any, args: Any, via: str, called: list[str]) -> Any:
        name = self._callable_name(callee, via)
        if name == WRAPPER:
            raise malformed(f"joblib NumpyArrayWrapper built by {via}, which joblib never writes")
        if name in UFUNC_RECONSTRUCT:
            if type(args) is not tuple or len(args) != 2 or type(args[0]) is not str or type(args[1]) is not str:
                raise UnsafeContent(f"{name} with computed arguments: never allowed", offending=[name])
            return self.make_global(m, args[0], args[1], "UFUNC")
        positions = forwarded_positions(name) if via == "REDUCE" else None
        if positions is not None:
            if type(args) is not tuple:
                raise UnsafeContent(f"{name} with computed arguments: never allowed", offending=[name])
            for i in positions:
                if i >= len(args):
                    continue
                arg = args[i]
                label = self.is_global(arg)
                if label is None:
                    if type(arg) is str and name == _BIT_GENERATOR_CTOR:
                        continue
                    if name.startswith("numpy.random._pickle.") and type(arg).__module__.startswith("numpy.random"):
                        continue  # a bit generator instance, not called
                    raise UnsafeContent(f"{name} would instantiate something that is not a plain global: "
                                        "never allowed", offending=["<computed callable>"])
                if self._constructible(label) is None:
                    raise _refuse_name(label, f"is instantiated through {name} while loading")
                if WRAPPER in self._names(label) and not (i == 0 and name in _WRAPPER_FORWARDERS):
                    raise malformed(f"joblib NumpyArrayWrapper built by {name}, which joblib never writes")
        self._guard(m, name, callee, args)
        result = callee(*args)
        if isinstance(result, (deque, defaultdict, self.np.ndarray)):
            self.unguarded.append(result)  # an array may become an object array when BUILD sets its state
        if callee is self.np.dtype:
            self.dtype_args[id(result)] = (args, result)
        return result

    def new(self, m: Machine, cls: Any, args: Any, kwargs: Any, via: str) -> Any:
        name = self._callable_name(cls, via)
        if not isinstance(cls, type):
            raise malformed(f"{via} of {name}, which is not a class")
        if kwargs is not None and (type(kwargs) is not dict or kwargs):
            raise UnsafeContent(f"{name} is instantiated with keyword arguments, which no allowlisted payload "
                                "does", offending=[name])
        self._guard(m, name, cls, args)
        result = cls.__new__(cls, *args)
        if isinstance(result, (deque, defaultdict, self.np.ndarray)):
            self.unguarded.append(result)
        return result

    # -- BUILD -----------------------------------------------------------------------------------------------------
    def build(self, m: Machine, inst: Any, state: Any) -> Any:
        np = self.np
        if isinstance(inst, np.dtype):
            rec = self.dtype_args.get(id(inst))
            if rec is None or rec[1] is not inst:
                raise malformed("BUILD of a dtype that was not made by numpy.dtype in this payload")
            problem = dtype_state_problem(np, rec[0], state)
            if problem is not None:
                raise UnsafeContent(f"forged numpy dtype: {problem}", offending=["<forged dtype>"])
            inst.__setstate__(state)
            return inst
        if type(inst) is self.wrapper_cls:
            if type(state) is not dict or not all(type(k) is str for k in state):
                raise malformed("joblib array wrapper state is not a plain dict")
            inst.__dict__.update(state)
            if not m.joblib_aware:
                if m.depth == 0:
                    raise IntegrityError("payload contains joblib arrays; it must be loaded with the joblib "
                                         "serializer")
                raise malformed("joblib array wrapper inside an object array stream")
            return self._array(m, inst)
        state = guard_build(inst, state)  # third-party boosters: model bytes validated before native code parses them
        setstate = getattr(inst, "__setstate__", None)
        if setstate is not None:
            setstate(state)
            return inst
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        if state:
            if type(state) is not dict or not all(type(k) is str for k in state):
                raise malformed("instance state is not a dict with string keys")
            try:
                inst_dict = inst.__dict__
            except AttributeError:
                raise malformed(f"BUILD of a {type(inst).__qualname__} object, which has no instance dict") from None
            for k, v in state.items():
                inst_dict[sys.intern(k)] = v
        if slotstate:
            if type(slotstate) is not dict:
                raise malformed("slot state is not a dict")
            slots = _slot_names(type(inst))
            for k, v in slotstate.items():
                if type(k) is not str or k not in slots:
                    raise UnsafeContent(f"slot state sets {k!r}, which {type(inst).__qualname__} does not declare",
                                        offending=["<slot state>"])
                setattr(inst, k, v)
        return inst

    def _array(self, m: Machine, w: Any) -> Any:
        np = self.np
        m.end_frame_for_array()
        src = m.src
        dtype = w.__dict__.get("dtype")
        shape = w.__dict__.get("shape")
        if not isinstance(dtype, np.dtype) or type(shape) is not tuple or len(shape) > 64 or \
                not all(type(d) is int and 0 <= d < MAX_DIMENSION for d in shape):
            raise malformed("joblib array wrapper without a valid dtype and shape")
        subclass = w.__dict__.get("subclass", np.ndarray)
        if subclass is not np.ndarray and subclass is not getattr(np, "memmap", None):
            label = self.is_global(subclass)
            if label is None or not isinstance(subclass, type) or not issubclass(subclass, np.ndarray):
                raise UnsafeContent("joblib array of a subclass that is not an allowed ndarray subclass",
                                    offending=["<array subclass>"])
        if dtype.hasobject:
            self._meet_span(src.tell(), -1)
            arr = m.nested().run()
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
                raise malformed("joblib object array is not an array of its declared dtype")
            return arr
        if w.__dict__.get("numpy_array_alignment_bytes") is not None:
            pad = src.byte()
            if pad:
                src.skip(pad)
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if nbytes > self.limits.max_bytes:
            raise malformed("joblib array larger than the payload limit")
        self._meet_span(src.tell(), nbytes)
        view = src.take(nbytes)  # bytes present in the payload: bounded by its (decompressed) size, not charged
        if view is None:  # pragma: no cover - the loader's sources always keep array data
            raise malformed("array data was not kept")
        arr = np.frombuffer(view, dtype=dtype, count=count) if count else np.empty(0, dtype=dtype)
        if not arr.flags.aligned or (nbytes < COPY_BELOW and not _feeds_copying_state(m)):
            arr = arr.copy()
        order = w.__dict__.get("order", "C")
        arr = arr.reshape(shape[::-1]).transpose() if order == "F" else arr.reshape(shape)
        if not arr.dtype.isnative:
            arr = arr.byteswap().view(arr.dtype.newbyteorder("="))
        return arr

    def _meet_span(self, offset: int, nbytes: int) -> None:
        """The scan and the unpickler must agree on every array's place and size (same bytes, same interpreter)."""
        if self.spans is None:
            return
        span = next(self.spans, None)
        if span is None or span.offset != offset or span.nbytes != nbytes:
            raise malformed("joblib array data where the scan found none (scan and loader disagree)")

    # -- containers ----------------------------------------------------------------------------------------------
    def empty_list(self) -> Any:
        return []

    def empty_dict(self) -> Any:
        return {}

    def empty_set(self) -> Any:
        return set()

    def make_tuple(self, m: Machine, items: list[Any]) -> Any:
        return tuple(items)

    def make_list(self, items: list[Any]) -> Any:
        return list(items)

    def make_dict(self, m: Machine, items: list[Any]) -> Any:
        try:
            return {items[i]: items[i + 1] for i in range(0, len(items), 2)}
        except TypeError as exc:
            raise _unhashable("DICT", exc) from None

    def make_frozenset(self, items: list[Any]) -> Any:
        try:
            return frozenset(items)
        except TypeError as exc:
            raise _unhashable("FROZENSET", exc) from None

    def appends(self, target: Any, items: list[Any]) -> None:
        if isinstance(target, list):
            list.extend(target, items)
        elif isinstance(target, deque):
            deque.extend(target, items)
        else:
            raise malformed(f"APPEND to a {type(target).__qualname__} object, which is not a list")

    def setitems(self, m: Machine, target: Any, items: list[Any]) -> None:
        if not isinstance(target, dict):
            raise malformed(f"SETITEM on a {type(target).__qualname__} object, which is not a dict")
        try:
            for i in range(0, len(items), 2):
                dict.__setitem__(target, items[i], items[i + 1])
        except TypeError as exc:
            raise _unhashable("SETITEMS", exc) from None

    def additems(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, set):
            raise malformed(f"ADDITEMS on a {type(target).__qualname__} object, which is not a set")
        try:
            set.update(target, items)
        except TypeError as exc:
            raise _unhashable("ADDITEMS", exc) from None


def _unhashable(op: str, exc: TypeError) -> IntegrityError:
    """A key or set item that cannot be hashed (a list): no pickler writes that, so the stream is malformed, not
    a problem of this environment."""
    return malformed(f"{op} with an unhashable key or item ({' '.join(str(exc).split())[:100]})")


def _feeds_copying_state(m: Machine) -> bool:
    """Whether the array being built is the ``nodes`` or ``values`` item of the state dict of a ``Tree`` (the
    pattern pickle writes: ``Tree`` and its state dict on the stack below the MARK, the key just below the array).

    Why: a forest is hundreds of trees with two arrays each, and ``Tree.__setstate__`` copies both into memory of
    its own; copying them out of the payload first doubled the allocations of a forest load (about a third of its
    unpickling time, issue 11). A small array is otherwise copied so that it does not keep the whole payload
    buffer alive; a view handed here is dropped with the state dict once the tree copied it. This decides only
    *copy or view* of bytes already verified, never what is built: a payload that places such an array elsewhere
    too (through the memo) merely keeps the buffer alive, as a large array always does."""
    stack, meta = m.stack, m.metastack
    if len(stack) < 2 or not meta:
        return False
    key, below = stack[-2], meta[-1]
    if type(key) is not str or key not in _TREE_STATE_ARRAYS or len(below) < 2 or type(below[-1]) is not dict:
        return False
    tree = getattr(sys.modules.get(_TREE_MODULE), _TREE_CLASS, None)
    return tree is not None and type(below[-2]) is tree


@dataclass(frozen=True)
class Loaded:
    """A deserialized object, the globals the unpickler handed out (id -> name, for the state validators, which
    judge every class or function the model holds), and the number of opcodes it took."""

    obj: Any
    handed: dict[int, str]
    opcodes: int


def _run(src: Source, allow: Allowlist, limits: Limits, budget: Budget,
         spans: tuple[ArraySpan, ...] | None, fmt: str) -> Loaded:
    backend = ConcreteBackend(allow, limits, budget, spans=spans)
    machine = Machine(src, backend, limits, joblib_aware=fmt == "joblib")
    try:
        obj = _run_machine(src, backend, machine)
    except BundleError:
        raise
    except RecursionError:
        raise IntegrityError("payload could not be deserialized: nested too deeply") from None
    except MemoryError:
        raise UnsafeContent("the payload asked for more memory than this process can allocate: refused",
                            offending=["<memory exhaustion>"]) from None
    except (pickle.UnpicklingError, EOFError, struct.error, IndexError, KeyError) as exc:
        raise IntegrityError(f"payload could not be deserialized: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - library code refusing crafted state, whatever it raises, is a refusal
        # Every name it uses is allowed and every call passed its guard; library code rebuilding an object refused
        # its state (a changed tree layout, an unknown BitGenerator, a renamed attribute).
        text = " ".join(str(exc).split())[:300]
        raise RebuildError(f"payload cannot be rebuilt in this environment: {type(exc).__name__}: {text}") from None
    return Loaded(obj, backend.handed, machine.ops)


def _run_machine(src: Source, backend: ConcreteBackend, machine: Machine) -> Any:
    try:
        obj = machine.run()
        if not src.at_end():
            raise malformed("trailing bytes after the final STOP")
        if backend.spans is not None and next(backend.spans, None) is not None:
            raise malformed("the scan found joblib array data the loader never met")
        _check_nesting(backend)
    except BaseException:
        # Whatever the failure, the half-built payload is about to be freed: never recursively (a SIGSEGV).
        if len(backend.unguarded) > MAX_UNGUARDED_NESTING:
            defuse(backend.np, backend.unguarded)
        raise
    finally:
        backend.unguarded.clear()
    return obj


def _check_nesting(backend: ConcreteBackend) -> None:
    """Refuse deques, defaultdicts and object arrays nested deeper than ``MAX_UNGUARDED_NESTING`` in one another
    (their C deallocation recurses: a deep chain kills the process when it is freed). A chain cannot be longer
    than the number of such containers, so the common case costs nothing."""
    np = backend.np
    roots = [o for o in backend.unguarded if is_unguarded(np, o)]
    if len(roots) <= MAX_UNGUARDED_NESTING:
        return
    depth = deepest_chain(np, roots, MAX_UNGUARDED_NESTING)
    if depth > MAX_UNGUARDED_NESTING:
        raise UnsafeContent(f"deques, defaultdicts or object arrays nested more than {MAX_UNGUARDED_NESTING} deep "
                            "(freeing them would overflow the C stack): never allowed",
                            offending=["<nested containers>"])


def restricted_load(f: BinaryIO | Any, *, fmt: str, allow: Allowlist, limits: Limits | None = None) -> object:
    """Deserialize a ``"pickle"`` or ``"joblib"`` payload read from ``f``, enforcing the allowlist, the call guards
    and the allocation budget on its own (no prior scan needed; ``load`` runs both).

    Raises ``UnsafeContent`` (exit 5), ``IntegrityError`` (malformed: exit 3), ``EnvironmentMismatch`` (an allowed
    global this environment lacks: exit 4) or ``RebuildError`` (library code refused the state).
    """
    if fmt not in ("pickle", "joblib"):
        raise ValueError(f"restricted_load handles 'pickle' and 'joblib', not {fmt!r}")
    lim = limits or DEFAULT_LIMITS
    size = _stream_size(f)
    comp, producer = open_stream(f, lim)
    if fmt == "pickle" and comp is not None:
        raise IntegrityError(f"a plain pickle payload must not be {comp}-compressed (is it a joblib file?)")
    return _run(StreamSource(producer, keep_arrays=True), allow, lim, Budget(lim.budget_for(size)), None,
                fmt).obj


def restricted_load_memory(data: Any, *, allow: Allowlist, spans: tuple[ArraySpan, ...] | None,
                           fmt: str = "joblib", limits: Limits | None = None,
                           source: MemorySource | None = None) -> Loaded:
    """Deserialize an (already decompressed, verified and scanned) payload held in memory; ``spans`` are the joblib
    array spans the scan found, which the loader must meet exactly."""
    lim = limits or DEFAULT_LIMITS
    src = source if source is not None else MemorySource(data)
    return _run(src, allow, lim, Budget(lim.budget_for(src.size)), spans, fmt)


def _stream_size(f: Any) -> int:
    """Best effort size of what is left in ``f`` (for the budget); unknown sizes get the floor only."""
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
        return int(end - here)
    except (OSError, AttributeError, ValueError):
        return 0
