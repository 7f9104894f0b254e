"""Call guards: which allowed callables a payload may call *with arguments*, and which arguments.

The allowlist says *what* may be called; it says nothing about the arguments, and the arguments come from the
payload. An allowed constructor can allocate without bound (``bytearray(3 << 30)``, ``_reconstruct(ndarray,
(1 << 40,), ...)``, a sparse matrix of shape ``(1 << 40, 1)``), run native code on crafted input (a scipy sparse
constructor converting another, crafted, sparse matrix; ``Tree(n_features, n_classes, n_outputs)`` sizing C buffers
from ``n_outputs``), or spend exponential time (``Fraction("1e999999999")``). So the restricted unpickler runs a
closed world: a call with arguments is refused unless its callee has a guard here, and the guard accepts only the
argument shapes that the library's own pickling writes, charging every size-driven allocation to the payload's
budget before it happens. Calls without arguments (``cls()``, ``cls.__new__(cls)``) need no guard.

Every guard is written from what the library itself pickles (its ``__reduce__``), which ``tests/test_guards.py``
checks against real models, and each one says why the arguments it admits are harmless.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bundler.errors import UnsafeContent
from bundler.safety.limits import Budget, BudgetExceeded
from bundler.safety.machine import MAX_HASH_WEIGHT

__all__ = ["GUARDS", "CallContext", "guard_for", "refuse"]


@dataclass
class CallContext:
    """What a guard may consult: the budget, numpy, and which stack values are globals handed out by the loader."""

    budget: Budget
    np: Any
    is_global: Callable[[Any], str | None]
    may_call: Callable[[Any], bool]
    hash_weight: Callable[[Any], int] = lambda value: 1  # the machine's: how many values hashing it visits


Guard = Callable[[CallContext, str, tuple[Any, ...]], None]


def refuse(name: str, why: str) -> UnsafeContent:
    return UnsafeContent(f"{name} is called with {why}: never written by the library's own pickling; refused",
                         offending=[name])


def _charge(ctx: CallContext, name: str, nbytes: int) -> None:
    try:
        ctx.budget.charge(nbytes, name)
    except BudgetExceeded as exc:
        raise UnsafeContent(f"{exc}; refused before allocating", offending=[name]) from None


_ATOMS: Final = (int, float, complex, bool, str, bytes, type(None))


def _atom(v: Any) -> bool:
    return type(v) in _ATOMS


#: Largest dimension a shape may name (sizes are multiplied: a dimension of millions of digits would make the
#: multiplication itself the attack).
MAX_DIMENSION: Final = 1 << 62


def _ints(v: Any) -> bool:
    return type(v) is tuple and len(v) <= 64 and all(type(d) is int and 0 <= d < MAX_DIMENSION for d in v)


def _count(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


# -- numpy -------------------------------------------------------------------------------------------------------


def _dtype(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``numpy.dtype(spec, align, copy)`` as numpy pickles dtypes: a short type string and two bools."""
    if not (1 <= len(args) <= 3) or type(args[0]) is not str or len(args[0]) > 64 or \
            not all(type(a) is bool for a in args[1:]):
        raise refuse(name, "arguments other than (type string, align, copy)")


def _reconstruct(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``_reconstruct(subtype, shape, typecode)`` allocates ``shape`` elements before ``__setstate__`` fills them."""
    np = ctx.np
    if len(args) != 3 or not isinstance(args[0], type) or not issubclass(args[0], np.ndarray) or \
            not _ints(args[1]) or type(args[2]) not in (bytes, str):
        raise refuse(name, "arguments other than (ndarray subclass, shape, typecode)")
    try:
        itemsize = np.dtype(args[2]).itemsize
    except TypeError:
        raise refuse(name, "an unknown typecode") from None
    _charge(ctx, name, _count(args[1]) * max(itemsize, 1))


def _mareconstruct(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``numpy.ma.core._mareconstruct(subtype, baseclass, baseshape, basetype)`` allocates ``baseshape``."""
    np = ctx.np
    if len(args) != 4 or not isinstance(args[0], type) or not isinstance(args[1], type) or \
            not issubclass(args[1], np.ndarray) or not _ints(args[2]) or type(args[3]) not in (bytes, str):
        raise refuse(name, "arguments other than (subtype, baseclass, baseshape, basetype)")
    _charge(ctx, name, _count(args[2]) * max(np.dtype(args[3]).itemsize, 1) * 2)


def _scalar(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``multiarray.scalar(dtype, data)``: raw bytes of exactly one item, or the object itself for object dtypes."""
    np = ctx.np
    if len(args) not in (1, 2) or not isinstance(args[0], np.dtype):
        raise refuse(name, "arguments other than (dtype, item bytes)")
    dtype = args[0]
    if dtype.hasobject:
        if dtype.kind != "O":
            raise refuse(name, "a structured dtype holding objects")
        return
    if len(args) != 2 or type(args[1]) is not bytes or len(args[1]) != dtype.itemsize:
        raise refuse(name, "item bytes that do not match the dtype's size")


def _frombuffer(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``_frombuffer(buffer, dtype, shape, order)`` (protocol 5 arrays): a view of bytes present in the payload."""
    np = ctx.np
    if len(args) != 4 or type(args[0]) not in (bytes, bytearray) or not isinstance(args[1], np.dtype) or \
            not _ints(args[2]) or args[3] not in ("C", "F", "A"):
        raise refuse(name, "arguments other than (bytes, dtype, shape, order)")
    if args[1].hasobject:
        raise refuse(name, "an object dtype (raw bytes would become object pointers)")
    if _count(args[2]) * args[1].itemsize != len(args[0]):
        raise refuse(name, "a shape that does not match the buffer")


def _random_ctor(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """numpy.random's pickle helpers take a bit generator (instance, class or registered name) and a helper."""
    if len(args) > 2 or not all(type(a) is str or ctx.is_global(a) is not None or
                                type(a).__module__.startswith("numpy.random") for a in args):
        raise refuse(name, "arguments other than bit generators")


def _pyx_unpickle(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """Cython's ``__pyx_unpickle_<Class>(type, checksum, state)``: the type must be that very class; Cython checks
    the checksum against the class layout and converts every state field to its C type."""
    qual = name.rpartition("__pyx_unpickle_")[2]
    cls = args[0] if args else None
    if len(args) != 3 or not isinstance(cls, type) or cls.__name__ != qual or type(args[1]) is not int or \
            not (args[2] is None or type(args[2]) is tuple):
        raise refuse(name, "arguments other than (its own class, checksum, state)")


def _new_obj(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """scikit-learn's ``newObj(cls)`` (``cls.__new__(cls)``) for its own Cython classes, defined next to it."""
    module = name.rpartition(".")[0]
    if len(args) != 1 or not isinstance(args[0], type) or args[0].__module__ != module:
        raise refuse(name, "a class from another module")


def _reconstructor(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``copyreg._reconstructor(cls, base, state)``: ``base.__new__(cls, state)`` then ``base.__init__``; only
    ``object`` (no state) or a builtin container type with a state of that very type."""
    if len(args) != 3 or not isinstance(args[0], type) or not isinstance(args[1], type) or \
            not issubclass(args[0], args[1]):
        raise refuse(name, "arguments other than (class, base class, state)")
    base, state = args[1], args[2]
    if base is object:
        if state is not None:
            raise refuse(name, "a state for object")
    elif base in (dict, list, set, frozenset, tuple, str, bytes, int, float):
        if type(state) is not base:
            raise refuse(name, "a state that is not of its base type")
    else:
        raise refuse(name, f"base class {base.__qualname__}")


def _newobj_helper(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``copyreg.__newobj__(cls, *args)`` is ``NEWOBJ``: only without arguments for the class."""
    if len(args) != 1 or not isinstance(args[0], type):
        raise refuse(name, "arguments for the class")


# -- scikit-learn ---------------------------------------------------------------------------------------------------

#: Largest feature count / class count a tree may declare (what scikit-learn's int32/intp fields hold sensibly).
MAX_TREE_DIM: Final = 1 << 31


def _tree(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``Tree(n_features, n_classes, n_outputs)``: ``__cinit__`` allocates ``n_outputs`` entries and reads
    ``n_classes[k]`` for each, so ``n_classes`` must be a 1-D integer array of exactly ``n_outputs`` positive
    counts; the value buffer it sizes (``n_outputs * max(n_classes)`` doubles per node) is charged to the budget."""
    np = ctx.np
    if len(args) != 3 or type(args[0]) is not int or type(args[2]) is not int:
        raise refuse(name, "arguments other than (n_features, n_classes, n_outputs)")
    n_features, n_classes, n_outputs = args
    if not isinstance(n_classes, np.ndarray) or n_classes.ndim != 1 or n_classes.dtype.kind not in "iu":
        raise refuse(name, "n_classes that is not a 1-D integer array")
    if not (1 <= n_features < MAX_TREE_DIM and 1 <= n_outputs < MAX_TREE_DIM) or n_classes.shape != (n_outputs,):
        raise refuse(name, "sizes that do not agree (n_classes must have n_outputs entries)")
    if int(n_classes.min()) < 1 or int(n_classes.max()) >= MAX_TREE_DIM:
        raise refuse(name, "class counts out of range")
    _charge(ctx, name, 8 * n_outputs * (1 + int(n_classes.max())))


def _numbers(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """Cython losses pickle as ``Loss(*float_parameters)`` (a Tweedie power, a Huber delta, a quantile)."""
    if len(args) > 3 or not all(type(a) in (int, float) for a in args):
        raise refuse(name, "arguments other than a few numbers")


# -- the standard library -------------------------------------------------------------------------------------------


def _bytes_like(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``bytes``/``bytearray`` as pickle writes them below protocol 3/5: from bytes, or from a latin-1 string."""
    if len(args) == 1 and type(args[0]) in (bytes, bytearray):
        return
    if len(args) == 2 and type(args[0]) is str and args[1] in ("latin1", "latin-1", "ascii"):
        return
    if len(args) == 0:
        return
    raise refuse(name, "a size or an iterable (pickle only rebuilds bytes from bytes)")


def _codecs_encode(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
        raise refuse(name, "arguments other than (str, 'latin1')")


def _atoms(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """int, float, complex, str, bool, slice, range, date, datetime, timedelta, timezone, Decimal: atoms only (no
    iterables, no objects whose conversion runs the payload's code)."""
    if len(args) > 4 or not all(_atom(a) or (ctx.is_global(a) is None and _datetime_arg(a)) for a in args):
        raise refuse(name, "arguments other than plain numbers, strings and bytes")
    if name == "decimal.Decimal" and any(type(a) is str and len(a) > 1000 for a in args):
        raise refuse(name, "a string over 1000 characters")


def _datetime_arg(a: Any) -> bool:
    import datetime

    return type(a) in (datetime.timezone, datetime.timedelta)


def _fraction(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``Fraction`` pickles as ``Fraction(numerator, denominator)``; a string (``"1e999999999"``) would compute a
    power of ten of the payload's choosing."""
    if len(args) not in (1, 2) or not all(type(a) is int for a in args):
        raise refuse(name, "arguments other than two integers")


def _container(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """list/tuple/set/frozenset/dict/OrderedDict/Counter/deque from an already built container (linear in the
    payload; never a range or an iterator, whose length is the payload's choice)."""
    concrete = (list, tuple, dict, set, frozenset)
    if len(args) == 0:
        return
    if name == "collections.deque":
        if len(args) > 2 or type(args[0]) not in concrete or \
                (len(args) == 2 and args[1] is not None and (type(args[1]) is not int or args[1] < 0)):
            raise refuse(name, "arguments other than (list, maxlen)")
        return
    if name == "collections.defaultdict":
        factory = args[0]
        if len(args) > 2 or (factory is not None and not ctx.may_call(factory)) or \
                (len(args) == 2 and type(args[1]) not in concrete):
            raise refuse(name, "a default factory that is not an allowed callable")
        return
    if len(args) != 1 or type(args[0]) not in concrete:
        raise refuse(name, "an argument that is not an already built container")
    if name in _HASHING:  # the items become keys: refuse before hashing what would take exponential time
        items = args[0]
        keys = items.keys() if type(items) is dict else \
            [p[0] if name in _PAIRS and type(p) is tuple and p else p for p in items]
        if any(ctx.hash_weight(k) > MAX_HASH_WEIGHT for k in keys):
            raise UnsafeContent(f"{name} would hash a nested tuple that visits more than {MAX_HASH_WEIGHT} values "
                                "(exponential-time hashing): never allowed", offending=[name])


_HASHING: Final = frozenset({"builtins.set", "builtins.frozenset", "builtins.dict", "collections.OrderedDict",
                             "collections.Counter"})
_PAIRS: Final = frozenset({"builtins.dict", "collections.OrderedDict"})


def _partial(ctx: CallContext, name: str, args: tuple[Any, ...]) -> None:
    """``functools.partial`` pickles as ``partial(func)`` plus a BUILD state; ``func`` is held as a value."""
    if len(args) != 1 or not callable(args[0]):
        raise refuse(name, "arguments other than (function,)")


GUARDS: Final[dict[str, Guard]] = {
    "numpy.dtype": _dtype,
    "numpy.core.multiarray._reconstruct": _reconstruct,
    "numpy._core.multiarray._reconstruct": _reconstruct,
    "numpy.ma.core._mareconstruct": _mareconstruct,
    "numpy.core.multiarray.scalar": _scalar,
    "numpy._core.multiarray.scalar": _scalar,
    "numpy.core.numeric._frombuffer": _frombuffer,
    "numpy._core.numeric._frombuffer": _frombuffer,
    "numpy.random._pickle.__randomstate_ctor": _random_ctor,
    "numpy.random._pickle.__generator_ctor": _random_ctor,
    "numpy.random._pickle.__bit_generator_ctor": _random_ctor,
    "copyreg._reconstructor": _reconstructor,
    "copyreg.__newobj__": _newobj_helper,
    "sklearn.tree._tree.Tree": _tree,
    "builtins.bytes": _bytes_like,
    "builtins.bytearray": _bytes_like,
    "_codecs.encode": _codecs_encode,
    "builtins.int": _atoms,
    "builtins.float": _atoms,
    "builtins.complex": _atoms,
    "builtins.str": _atoms,
    "builtins.bool": _atoms,
    "builtins.slice": _atoms,
    "builtins.range": _atoms,
    "datetime.date": _atoms,
    "datetime.datetime": _atoms,
    "datetime.timedelta": _atoms,
    "datetime.timezone": _atoms,
    "decimal.Decimal": _atoms,
    "fractions.Fraction": _fraction,
    "builtins.list": _container,
    "builtins.tuple": _container,
    "builtins.set": _container,
    "builtins.frozenset": _container,
    "builtins.dict": _container,
    "collections.OrderedDict": _container,
    "collections.Counter": _container,
    "collections.deque": _container,
    "collections.defaultdict": _container,
    "functools.partial": _partial,
}

#: Module prefixes whose classes pickle as ``Class(*numbers)`` (Cython loss objects of scikit-learn).
_NUMBER_CLASS_MODULES: Final = ("sklearn._loss._loss.", "_loss.", "sklearn.linear_model._sgd_fast.",
                                "sklearn.linear_model.sgd_fast.", "sklearn._loss.")


def guard_for(name: str) -> Guard | None:
    """The guard for calls of ``name`` with arguments, or None (then only calls without arguments are allowed)."""
    found = GUARDS.get(name)
    if found is not None:
        return found
    if ".__pyx_unpickle_" in name:
        return _pyx_unpickle
    if name.endswith(".newObj"):
        return _new_obj
    if name.startswith(_NUMBER_CLASS_MODULES) and "__pyx" not in name:
        return _numbers
    return None
