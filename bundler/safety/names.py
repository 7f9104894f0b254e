"""How pickle names globals, shared by the static scan and the restricted unpickler so the two cannot drift apart.

Both interpret the same opcode stream (``bundler.safety.machine``); this module holds the facts about *names*: the
canonical spelling of a global, Python 2's name mapping, and the handful of globals with special meaning (joblib's
array wrapper, the call forwarders that instantiate one of their arguments, numpy's ufunc reconstructor that is a
``find_class`` in disguise). Standard library only: it runs inside ``bundler verify``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "COMPUTED_CALLABLE",
    "COMPUTED_GLOBAL",
    "FORWARDERS",
    "LEGACY_WRAPPERS",
    "NEWOBJ_HELPER",
    "PERSISTENT_ID",
    "PYX_UNPICKLE",
    "ROOT_FROM_ARG0",
    "UFUNC_RECONSTRUCT",
    "WRAPPER",
    "fix_imports",
    "forwarded_positions",
    "global_name",
]

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

#: Globals that call (instantiate) some of their arguments: the argument positions that are called. Recording those
#: arguments as calls is what stops ``copyreg._reconstructor(<dangerous class>, ...)`` from sneaking past.
FORWARDERS: Final[dict[str, tuple[int, ...]]] = {
    "copyreg._reconstructor": (0, 1),
    "copyreg.__newobj__": (0,),
    "copyreg.__newobj_ex__": (0,),
    "numpy.core.multiarray._reconstruct": (0,),
    "numpy._core.multiarray._reconstruct": (0,),
    "numpy.random._pickle.__randomstate_ctor": (1,),
    "numpy.random._pickle.__generator_ctor": (1,),
    "numpy.random._pickle.__bit_generator_ctor": (0,),
    "numpy.ma.core._mareconstruct": (0, 1),
}
#: Cython's generated ``__pyx_unpickle_<Class>(type, checksum, state)`` instantiates its first argument, and so does
#: scikit-learn's ``newObj(cls)`` helper (``cls.__new__(cls)``) used by KDTree, BallTree and DistanceMetric.
PYX_UNPICKLE: Final = ".__pyx_unpickle_"
NEWOBJ_HELPER: Final = ".newObj"
#: ``numpy.core._ufunc_reconstruct(module, name)`` imports ``module`` and returns attribute ``name``: it is judged as
#: a reference to the global ``module.name``.
UFUNC_RECONSTRUCT: Final = frozenset({"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"})
#: Calls whose result is an instance of their first argument (what the scan reports as the payload's root class).
ROOT_FROM_ARG0: Final = frozenset({
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
})


def global_name(module: str, name: str) -> str:
    """The canonical spelling of a global: ``module.name``; ``module:qual.name`` when the name itself is dotted.

    Why the colon: ``a.b.c`` could mean attribute ``b.c`` of module ``a`` or attribute ``c`` of module ``a.b``,
    which may be different objects. Keeping the split visible makes an allowlist entry mean exactly one thing.
    """
    return f"{module}:{name}" if "." in name else f"{module}.{name}"


def fix_imports(module: str, name: str) -> tuple[str, str]:
    """The Python 2 name mapping ``pickle`` applies below protocol 3 (``fix_imports=True``)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return module, name


def forwarded_positions(name: str) -> tuple[int, ...] | None:
    """Argument positions a call of ``name`` instantiates, or None when it forwards nothing."""
    positions = FORWARDERS.get(name)
    if positions is None and (PYX_UNPICKLE in name or name.endswith(NEWOBJ_HELPER)):
        return (0,)
    return positions
