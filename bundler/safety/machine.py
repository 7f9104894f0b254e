"""The one pickle interpreter of bundler: a table of opcode handlers, run by the scan and by the unpickler alike.

Why one interpreter: a scanner and a loader that parse the same bytes with different code can disagree on where an
opcode starts, how long an argument is, or what a frame contains, and every such disagreement is a place to hide an
opcode. Here the parsing, the stack and memo mechanics, the limits, framing, joblib's in-band array data, and the
classification of every global as *called* or *used as a value* are written once. What differs is only what a value
*is*, which a ``Backend`` decides:

* the symbolic backend (``bundler.safety.scan``) keeps small stand-ins for values and records the globals the
  payload imports, calls and uses as values, without importing or calling anything;
* the concrete backend (``bundler.safety.unpickler``) builds the real objects, after checking each call and each
  use against the allowlist, each call's arguments against a guard, and each allocation against a budget.

**Calls and values.** A global is *called* when it is the callee of ``REDUCE``/``NEWOBJ``/``NEWOBJ_EX``/``OBJ``/
``INST``, or sits at an argument position that a forwarder instantiates (``copyreg._reconstructor(cls, base,
state)`` calls ``cls`` and ``base``). Every other consumption of a global (an argument of an ordinary call, an item
of a list, dict, set or nested tuple, a ``BUILD`` state, the returned object) *uses it as a value*: a fitted model
may hold a function (``score_func=f_classif``) and call it later with arguments of the payload's choosing, so values
are held to a different list than calls. A global inside a tuple stays undecided until the tuple itself is consumed
(it may become a forwarder's arguments). Each tuple is examined once, when it is built, so classification stays
linear in the number of opcodes.

**Hashing cost.** Dict keys and set items are hashed; a tuple's hash visits every item, recursively, without
caching, so ``t(i+1) = (t(i), t(i))`` built from the memo costs ``2**i`` to hash. Every tuple's *hash weight* is
computed once when it is built; a key or set item heavier than ``MAX_HASH_WEIGHT`` is refused as unsafe before
anything hashes it.
"""

from __future__ import annotations

import codecs
import copyreg
from collections.abc import Callable
from typing import Any, Final, Protocol

from bundler.errors import UnsafeContent
from bundler.safety.limits import Limits
from bundler.safety.names import fix_imports, forwarded_positions
from bundler.safety.source import Source, malformed

__all__ = ["MAX_HASH_WEIGHT", "Backend", "Machine"]

#: The most values hashing one dict key or set item may visit (a real model's keys are strings or tiny tuples).
MAX_HASH_WEIGHT: Final = 4096


class Backend(Protocol):
    """What a value is: the symbolic scan and the concrete unpickler each implement this."""

    def is_global(self, value: Any) -> str | None: ...
    def text(self, raw: bytes, how: str) -> Any: ...
    def text_literal(self, m: Machine, n: int, how: str) -> Any: ...
    def literal_bytes(self, m: Machine, n: int, kind: str) -> Any: ...
    def long_int(self, m: Machine, n: int) -> Any: ...
    def float_text(self, line: bytes) -> Any: ...
    def float_bin(self, raw: bytes) -> Any: ...
    def make_global(self, m: Machine, module: Any, name: Any, via: str) -> Any: ...
    def call(self, m: Machine, callee: Any, args: Any, via: str, called: list[str]) -> Any: ...
    def new(self, m: Machine, cls: Any, args: Any, kwargs: Any, via: str) -> Any: ...
    def build(self, m: Machine, inst: Any, state: Any) -> Any: ...
    def empty_list(self) -> Any: ...
    def empty_dict(self) -> Any: ...
    def empty_set(self) -> Any: ...
    def make_tuple(self, m: Machine, items: list[Any]) -> Any: ...
    def make_list(self, items: list[Any]) -> Any: ...
    def make_dict(self, m: Machine, items: list[Any]) -> Any: ...
    def make_frozenset(self, items: list[Any]) -> Any: ...
    def appends(self, target: Any, items: list[Any]) -> None: ...
    def setitems(self, m: Machine, target: Any, items: list[Any]) -> None: ...
    def additems(self, target: Any, items: list[Any]) -> None: ...
    def value_use(self, name: str) -> None: ...
    def persistent(self, pid: Any) -> Any: ...
    def mutate_global(self, name: str, what: str) -> None: ...


class _TupleInfo:
    """What the machine remembers about a tuple it built: undecided globals at top level, and its hash weight."""

    __slots__ = ("keep", "pending", "weight")

    def __init__(self, keep: tuple[Any, ...] | Any, pending: list[tuple[int, str]], weight: int) -> None:
        self.keep = keep  # keeps the tuple alive, so its id is never reused while this entry exists
        self.pending = pending
        self.weight = weight


class Machine:
    """One pickle stream over a ``Source``. Nested streams (joblib object arrays) get their own ``Machine``."""

    __slots__ = ("be", "depth", "frame_end", "joblib_aware", "limits", "memo", "metastack", "ops", "proto",
                 "src", "stack", "tinfo")

    def __init__(self, src: Source, backend: Backend, limits: Limits, *, depth: int = 0,
                 joblib_aware: bool = True) -> None:
        self.src = src
        self.be = backend
        self.limits = limits
        self.depth = depth
        self.joblib_aware = joblib_aware
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.frame_end = -1
        self.ops = 0
        self.tinfo: dict[int, _TupleInfo] = {}

    # -- stack ----------------------------------------------------------------------------------------------------
    def pop(self) -> Any:
        try:
            return self.stack.pop()
        except IndexError:
            raise malformed("stack underflow") from None

    def top(self) -> Any:
        try:
            return self.stack[-1]
        except IndexError:
            raise malformed("stack underflow") from None

    def pop_mark(self) -> list[Any]:
        items = self.stack
        try:
            self.stack = self.metastack.pop()
        except IndexError:
            raise malformed("no MARK to pop") from None
        return items

    # -- classification -------------------------------------------------------------------------------------------
    def use(self, value: Any) -> None:
        """``value`` is consumed as a value: a global is a value use; a tuple's undecided globals become value uses."""
        name = self.be.is_global(value)
        if name is not None:
            self.be.value_use(name)
        elif type(value) is tuple:
            info = self.tinfo.get(id(value))
            if info is not None and info.keep is value:
                for _, pending in info.pending:
                    self.be.value_use(pending)

    def use_all(self, values: list[Any] | tuple[Any, ...]) -> None:
        """``use`` of each value, inlined (a dict's state of twenty items is twenty calls fewer per SETITEMS)."""
        be = self.be
        is_global = be.is_global
        tinfo = self.tinfo
        for value in values:
            name = is_global(value)
            if name is not None:
                be.value_use(name)
            elif type(value) is tuple:
                info = tinfo.get(id(value))
                if info is not None and info.keep is value:
                    for _, pending in info.pending:
                        be.value_use(pending)

    def hash_weight(self, value: Any) -> int:
        if type(value) is tuple:
            info = self.tinfo.get(id(value))
            if info is not None and info.keep is value:
                return info.weight
            return len(value) + 1
        return 1

    def check_hashable(self, values: list[Any] | tuple[Any, ...], what: str) -> None:
        for value in values:
            if type(value) is tuple and self.hash_weight(value) > MAX_HASH_WEIGHT:
                raise UnsafeContent(f"the payload uses a nested tuple as a {what} whose hash would visit more than "
                                    f"{MAX_HASH_WEIGHT} values (exponential-time hashing): never allowed",
                                    offending=["<exponential hash>"])

    def tuple_of(self, items: list[Any]) -> Any:
        """Build a tuple: nested tuples' undecided globals become value uses; record this tuple's own."""
        be = self.be
        pending: list[tuple[int, str]] = []
        weight = 1
        for i, item in enumerate(items):
            name = be.is_global(item)
            if name is not None:
                pending.append((i, name))
                weight += 1
            elif type(item) is tuple:
                info = self.tinfo.get(id(item))
                if info is not None and info.keep is item:
                    for _, nested in info.pending:
                        be.value_use(nested)
                    weight += info.weight
                else:
                    weight += len(item) + 1
            else:
                weight += 1
            if weight > MAX_HASH_WEIGHT:
                weight = MAX_HASH_WEIGHT + 1
        value = be.make_tuple(self, items)
        if type(value) is not tuple:  # the backend dropped the contents: nothing can be decided later
            for _, name in pending:
                be.value_use(name)
            return value
        if pending or weight > len(items) + 1:
            self.tinfo[id(value)] = _TupleInfo(value, pending, weight)
        return value

    def call_args(self, callee_name: str | None, args: Any) -> list[str]:
        """Classify a call's arguments: forwarded positions are calls (returned), the rest are value uses."""
        positions = forwarded_positions(callee_name) if callee_name is not None else None
        called: list[str] = []
        if type(args) is tuple:
            info = self.tinfo.get(id(args))
            if info is not None and info.keep is args:
                for i, name in info.pending:
                    if positions is not None and i in positions:
                        called.append(name)
                    else:
                        self.be.value_use(name)
        else:
            self.use(args)
        return called

    # -- main loop -------------------------------------------------------------------------------------------------
    def run(self) -> Any:
        """Interpret opcodes until STOP; return the top-level value."""
        try:
            return self._run()
        except RecursionError:
            raise malformed("nested too deeply") from None
        except (MemoryError, OverflowError) as exc:
            raise malformed(f"{type(exc).__name__} while unpickling") from None
        except KeyError as exc:
            raise malformed(f"memo key {exc.args[0]!r} not found") from None
        except UnicodeDecodeError:
            raise malformed("undecodable string literal") from None

    def _run(self) -> Any:
        """The opcode loop. Why it looks the way it does: at about a microsecond per opcode, the loop's own overhead
        (attribute lookups, a call per opcode, a call per byte read) was a large share of a forest's scan and load
        (issue 11). So the buffer, memo and table are locals, the counter is a local written back at STOP, and the
        three most frequent opcodes of real payloads (``BINGET`` ~40 %, ``MEMOIZE``, ``BININT1``) are handled
        inline, with exactly the checks of their handlers (``op_binget``, ``op_memoize``, ``op_binint1``), falling
        back to ``Source.byte`` whenever the argument byte is not already in the buffer. Every other opcode goes
        through the table. The frame check and the periodic bounds check run after every opcode, inline or not."""
        src = self.src
        table = _TABLE
        memo = self.memo
        max_memo = self.limits.max_memo
        check_every = 1023
        ops = self.ops
        stop = op_stop
        while True:
            buf = src.buf
            pos = src.pos
            if pos >= len(buf):
                if not src.need(1):
                    raise malformed("truncated (no STOP opcode)")
                buf = src.buf
                pos = src.pos
            start_off = src.off
            op = buf[pos]
            pos += 1
            if op == 0x68:  # BINGET (op_binget)
                if pos < len(buf):
                    idx = buf[pos]
                    src.pos = pos + 1
                else:
                    src.pos = pos
                    idx = src.byte()
                try:
                    self.stack.append(memo[idx])
                except KeyError:
                    raise malformed(f"memo key {idx} not found") from None
            elif op == 0x94:  # MEMOIZE (op_memoize)
                src.pos = pos
                idx = len(memo)
                if idx >= max_memo and idx not in memo:
                    raise malformed(f"more than {max_memo} memo entries")
                stack = self.stack
                if not stack:
                    raise malformed("stack underflow")
                memo[idx] = stack[-1]
            elif op == 0x4B:  # BININT1 (op_binint1)
                if pos < len(buf):
                    self.stack.append(buf[pos])
                    src.pos = pos + 1
                else:
                    src.pos = pos
                    self.stack.append(src.byte())
            else:
                src.pos = pos
                handler = table[op]
                if handler is None:
                    raise malformed(f"unknown opcode {op:#04x} at offset {start_off + pos - 1}")
                if handler is stop:
                    self.ops = ops
                    return self._stop()
                handler(self)
            ops += 1
            fe = self.frame_end
            if fe >= 0:
                here = src.off + src.pos
                if here >= fe:
                    if here > fe:
                        raise malformed(f"opcode at offset {start_off + pos - 1} straddles the end of its frame")
                    self.frame_end = -1
            if not ops & check_every:
                self.ops = ops
                self.check_bounds()

    def _stop(self) -> Any:
        src = self.src
        if self.frame_end >= 0 and src.off + src.pos != self.frame_end:
            raise malformed("STOP inside a frame that has more bytes")
        if self.metastack:
            raise malformed("STOP with an unclosed MARK")
        result = self.pop()
        if self.stack:
            raise malformed("STOP with more than one item on the stack")
        self.use(result)
        return result

    def check_bounds(self) -> None:
        lim = self.limits
        if len(self.memo) > lim.max_memo:
            raise malformed(f"more than {lim.max_memo} memo entries")
        if len(self.stack) + sum(len(m) for m in self.metastack) > lim.max_stack:
            raise malformed(f"stack deeper than {lim.max_stack} items")

    def end_frame_for_array(self) -> None:
        """joblib writes array data after the pickle frame that holds its wrapper: it must start at a frame end."""
        if self.frame_end >= 0:
            if self.src.off + self.src.pos != self.frame_end:
                raise malformed("joblib array data inside an unfinished pickle frame")
            self.frame_end = -1

    def nested(self) -> Machine:
        """A machine for a nested pickle stream (joblib object array) that follows in the same source."""
        if self.depth + 1 > self.limits.max_nesting:
            raise malformed("object arrays nested too deeply")
        return Machine(self.src, self.be, self.limits, depth=self.depth + 1, joblib_aware=False)


# -- opcode handlers --------------------------------------------------------------------------------------------------


def _u(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def op_stop(m: Machine) -> None:  # pragma: no cover - STOP is handled by the main loop
    raise AssertionError("STOP is handled by Machine.run")


def op_mark(m: Machine) -> None:
    if len(m.metastack) >= m.limits.max_marks:
        raise malformed(f"more than {m.limits.max_marks} nested MARKs")
    m.metastack.append(m.stack)
    m.stack = []


def op_pop(m: Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def op_pop_mark(m: Machine) -> None:
    m.pop_mark()


def op_dup(m: Machine) -> None:
    m.stack.append(m.top())


def op_proto(m: Machine) -> None:
    proto = m.src.byte()
    if proto > 5:
        raise malformed(f"unsupported pickle protocol {proto}")
    m.proto = proto


def op_frame(m: Machine) -> None:
    src = m.src
    size = _u(src.read(8))
    here = src.off + src.pos
    if m.frame_end >= 0 and here != m.frame_end:
        raise malformed("a new frame begins before the end of the current frame")
    m.frame_end = here + size


# ints, floats, None, bools

def op_int(m: Machine) -> None:
    line = m.src.readline(m.limits.max_line)
    if line == b"00":
        m.stack.append(False)
    elif line == b"01":
        m.stack.append(True)
    else:
        try:
            m.stack.append(int(line, 0))
        except ValueError:
            raise malformed("bad INT literal") from None


def op_long(m: Machine) -> None:
    line = m.src.readline(m.limits.max_line)
    if line[-1:] == b"L":
        line = line[:-1]
    try:
        m.stack.append(int(line, 0))
    except ValueError:
        raise malformed("bad LONG literal") from None


def op_binint(m: Machine) -> None:
    m.stack.append(int.from_bytes(m.src.read(4), "little", signed=True))


def op_binint1(m: Machine) -> None:
    m.stack.append(m.src.byte())


def op_binint2(m: Machine) -> None:
    m.stack.append(_u(m.src.read(2)))


def op_long1(m: Machine) -> None:
    n = m.src.byte()
    m.stack.append(int.from_bytes(m.src.read(n), "little", signed=True))


def op_long4(m: Machine) -> None:
    n = int.from_bytes(m.src.read(4), "little", signed=True)
    if n < 0:
        raise malformed("LONG pickle has negative byte count")
    m.stack.append(m.be.long_int(m, n))


def op_float(m: Machine) -> None:
    m.stack.append(m.be.float_text(m.src.readline(m.limits.max_line)))


def op_binfloat(m: Machine) -> None:
    m.stack.append(m.be.float_bin(m.src.read(8)))


def op_none(m: Machine) -> None:
    m.stack.append(None)


def op_true(m: Machine) -> None:
    m.stack.append(True)


def op_false(m: Machine) -> None:
    m.stack.append(False)


# strings and bytes

def op_string(m: Machine) -> None:
    data = m.src.readline(m.limits.max_line)
    if len(data) >= 2 and data[0] == data[-1] and data[0] in b"\"'":
        data = data[1:-1]
    else:
        raise malformed("the STRING opcode argument must be quoted")
    try:
        raw = codecs.escape_decode(data)[0]
    except ValueError:
        raise malformed("bad STRING escape") from None
    m.stack.append(m.be.text(raw, "ascii"))


def _bin_str(m: Machine, lenbytes: int, how: str) -> None:
    n = _u(m.src.read(lenbytes))
    if lenbytes == 4 and how == "ascii" and n >= 1 << 31:
        raise malformed("negative BINSTRING length")
    m.stack.append(m.be.text_literal(m, n, how))


def op_binstring(m: Machine) -> None:
    _bin_str(m, 4, "ascii")


def op_short_binstring(m: Machine) -> None:
    _bin_str(m, 1, "ascii")


def op_unicode(m: Machine) -> None:
    m.stack.append(m.be.text(m.src.readline(m.limits.max_line), "raw"))


def op_binunicode(m: Machine) -> None:
    _bin_str(m, 4, "utf8")


def op_short_binunicode(m: Machine) -> None:
    _bin_str(m, 1, "utf8")


def op_binunicode8(m: Machine) -> None:
    _bin_str(m, 8, "utf8")


def op_binbytes(m: Machine) -> None:
    m.stack.append(m.be.literal_bytes(m, _u(m.src.read(4)), "bytes"))


def op_short_binbytes(m: Machine) -> None:
    m.stack.append(m.be.literal_bytes(m, m.src.byte(), "bytes"))


def op_binbytes8(m: Machine) -> None:
    m.stack.append(m.be.literal_bytes(m, _u(m.src.read(8)), "bytes"))


def op_bytearray8(m: Machine) -> None:
    m.stack.append(m.be.literal_bytes(m, _u(m.src.read(8)), "bytearray"))


def op_buffer(m: Machine) -> None:
    raise malformed("out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) are not supported")


# containers

def op_empty_list(m: Machine) -> None:
    m.stack.append(m.be.empty_list())


def op_empty_dict(m: Machine) -> None:
    m.stack.append(m.be.empty_dict())


def op_empty_set(m: Machine) -> None:
    m.stack.append(m.be.empty_set())


def op_empty_tuple(m: Machine) -> None:
    m.stack.append(())


def op_list(m: Machine) -> None:
    items = m.pop_mark()
    m.use_all(items)
    m.stack.append(m.be.make_list(items))


def op_dict(m: Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise malformed("odd number of items for DICT")
    m.check_hashable(items[0::2], "dict key")
    m.use_all(items)
    m.stack.append(m.be.make_dict(m, items))


def op_frozenset(m: Machine) -> None:
    items = m.pop_mark()
    m.check_hashable(items, "frozenset item")
    m.use_all(items)
    m.stack.append(m.be.make_frozenset(items))


def op_tuple(m: Machine) -> None:
    items = m.pop_mark()
    m.stack.append(m.tuple_of(items))


def op_tuple1(m: Machine) -> None:
    m.stack.append(m.tuple_of([m.pop()]))


def op_tuple2(m: Machine) -> None:
    b = m.pop()
    a = m.pop()
    m.stack.append(m.tuple_of([a, b]))


def op_tuple3(m: Machine) -> None:
    c = m.pop()
    b = m.pop()
    a = m.pop()
    m.stack.append(m.tuple_of([a, b, c]))


def op_append(m: Machine) -> None:
    value = m.pop()
    target = m.top()
    m.use(value)
    _mutation(m, target, "APPEND")
    m.be.appends(target, [value])


def op_appends(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    m.use_all(items)
    _mutation(m, target, "APPENDS")
    m.be.appends(target, items)


def op_setitem(m: Machine) -> None:
    value = m.pop()
    key = m.pop()
    target = m.top()
    m.check_hashable([key], "dict key")
    m.use(key)
    m.use(value)
    _mutation(m, target, "SETITEMS")
    m.be.setitems(m, target, [key, value])


def op_setitems(m: Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise malformed("odd number of items for SETITEMS")
    target = m.top()
    m.check_hashable(items[0::2], "dict key")
    m.use_all(items)
    _mutation(m, target, "SETITEMS")
    m.be.setitems(m, target, items)


def op_additems(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_hashable(items, "set item")
    m.use_all(items)
    _mutation(m, target, "ADDITEMS")
    m.be.additems(target, items)


def _mutation(m: Machine, target: Any, what: str) -> None:
    """APPEND/SETITEM/ADDITEMS/BUILD on a global would monkeypatch a class or call one of its methods."""
    name = m.be.is_global(target)
    if name is not None:
        m.be.mutate_global(name, what)


# memo

def _memo_get(m: Machine, idx: int) -> None:
    try:
        m.stack.append(m.memo[idx])
    except KeyError:
        raise malformed(f"memo key {idx} not found") from None


def _memo_put(m: Machine, idx: int) -> None:
    if idx < 0:
        raise malformed("negative PUT argument")
    memo = m.memo
    if idx not in memo and len(memo) >= m.limits.max_memo:
        raise malformed(f"more than {m.limits.max_memo} memo entries")
    memo[idx] = m.top()


def op_get(m: Machine) -> None:
    try:
        idx = int(m.src.readline(m.limits.max_line))
    except ValueError:
        raise malformed("bad GET argument") from None
    _memo_get(m, idx)


def op_binget(m: Machine) -> None:
    _memo_get(m, m.src.byte())


def op_long_binget(m: Machine) -> None:
    _memo_get(m, _u(m.src.read(4)))


def op_put(m: Machine) -> None:
    try:
        idx = int(m.src.readline(m.limits.max_line))
    except ValueError:
        raise malformed("bad PUT argument") from None
    _memo_put(m, idx)


def op_binput(m: Machine) -> None:
    _memo_put(m, m.src.byte())


def op_long_binput(m: Machine) -> None:
    _memo_put(m, _u(m.src.read(4)))


def op_memoize(m: Machine) -> None:
    _memo_put(m, len(m.memo))


# globals and calls

def _text_line(m: Machine, how: str) -> Any:
    raw = m.src.readline(m.limits.max_line)
    try:
        return raw.decode("utf-8" if how == "utf8" else "ascii")
    except UnicodeDecodeError:
        raise malformed("undecodable global name") from None


def _named_global(m: Machine, module: Any, name: Any, via: str) -> Any:
    if type(module) is str and type(name) is str and m.proto < 3:
        module, name = fix_imports(module, name)
    return m.be.make_global(m, module, name, via)


def op_global(m: Machine) -> None:
    module = _text_line(m, "utf8")
    name = _text_line(m, "utf8")
    m.stack.append(_named_global(m, module, name, "GLOBAL"))


def op_stack_global(m: Machine) -> None:
    name = m.pop()
    module = m.pop()
    m.stack.append(_named_global(m, module, name, "STACK_GLOBAL"))


def _ext(m: Machine, nbytes: int) -> None:
    code = _u(m.src.read(nbytes))
    key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
    if not key:
        raise malformed(f"unregistered extension code {code}")
    m.stack.append(m.be.make_global(m, key[0], key[1], "EXT"))


def op_ext1(m: Machine) -> None:
    _ext(m, 1)


def op_ext2(m: Machine) -> None:
    _ext(m, 2)


def op_ext4(m: Machine) -> None:
    _ext(m, 4)


def op_reduce(m: Machine) -> None:
    args = m.pop()
    callee = m.pop()
    name = m.be.is_global(callee)
    called = m.call_args(name, args)
    m.stack.append(m.be.call(m, callee, args, "REDUCE", called))


def op_newobj(m: Machine) -> None:
    args = m.pop()
    cls = m.pop()
    m.call_args(None, args)
    m.stack.append(m.be.new(m, cls, args, None, "NEWOBJ"))


def op_newobj_ex(m: Machine) -> None:
    kwargs = m.pop()
    args = m.pop()
    cls = m.pop()
    m.call_args(None, args)
    m.use(kwargs)
    m.stack.append(m.be.new(m, cls, args, kwargs, "NEWOBJ_EX"))


def op_obj(m: Machine) -> None:
    items = m.pop_mark()
    if not items:
        raise malformed("OBJ without a class")
    cls = items[0]
    args = m.tuple_of(items[1:])
    m.call_args(None, args)
    m.stack.append(m.be.call(m, cls, args, "OBJ", []))


def op_inst(m: Machine) -> None:
    module = _text_line(m, "ascii")
    name = _text_line(m, "ascii")
    cls = _named_global(m, module, name, "INST")
    items = m.pop_mark()
    args = m.tuple_of(items)
    m.call_args(None, args)
    m.stack.append(m.be.call(m, cls, args, "INST", []))


def op_build(m: Machine) -> None:
    state = m.pop()
    inst = m.top()
    m.use(state)
    _mutation(m, inst, "BUILD")
    m.stack[-1] = m.be.build(m, inst, state)


def op_persid(m: Machine) -> None:
    pid = m.src.readline(m.limits.max_line)
    m.stack.append(m.be.persistent(pid))


def op_binpersid(m: Machine) -> None:
    pid = m.pop()
    m.use(pid)
    m.stack.append(m.be.persistent(pid))


_HANDLERS: dict[int, Callable[[Machine], None]] = {
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
_TABLE: Final[list[Callable[[Machine], None] | None]] = [_HANDLERS.get(i) for i in range(256)]
