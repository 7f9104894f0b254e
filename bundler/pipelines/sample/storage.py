"""The lowest layer of the sample layout: ``.npy`` members written and read without pickle, and the one-array
encodings (``npy`` and ``objects``) every input kind is built from.

Every array of a stored sample is one archive member below ``sample/``, written with ``np.save(allow_pickle=False)``
and described in the manifest by ``{"member", "dtype", "shape"}``. Reading checks the member name, its size, the
dtype kinds the caller accepts and that the array has exactly the recorded dtype and shape, so a crafted manifest can
neither point outside ``sample/`` nor hand the model something other than what was described.

Arrays of Python objects (strings of any length, missing values, mixed columns) cannot be ``.npy`` without pickle,
so they are stored as an ``objects`` encoding: one code per element saying what it is, plus the values of each kind
in order: strings as UTF-8 bytes with offsets (exact, whatever their length; no fixed-width padding), integers as
int64, floats as float64. See :func:`encode_values`.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from bundler.errors import EnvironmentMismatch, UsageError

__all__ = [
    "MAX_BYTES",
    "MAX_ROWS",
    "PLAIN_KINDS",
    "PREFIX",
    "MemberReader",
    "MemberWriter",
    "MissingPackage",
    "decode_values",
    "encode_values",
    "one_line",
    "require",
    "to_npy",
]

#: Every member of a sample lives below this prefix.
PREFIX = "sample/"
#: All members of one sample (input and outputs) together may take at most this many bytes.
MAX_BYTES = 16 * 1024 * 1024
#: Refuse samples with more rows than this: the check re-runs the model at every load.
MAX_ROWS = 10_000

#: Element codes of the ``objects`` encoding. The numbers are part of the stored layout: never renumber them.
STR, INT, FLOAT, BOOL, NONE, NA, NAT = 0, 1, 2, 3, 4, 5, 6
_CODE_NAMES = {STR: "str", INT: "int", FLOAT: "float", BOOL: "bool", NONE: "None", NA: "pandas.NA", NAT: "pandas.NaT"}

#: numpy dtype kinds an ``npy`` member may hold: bool, integers, floats, complex, fixed-width text, dates.
PLAIN_KINDS = "biufcUSMm"


class MissingPackage(EnvironmentMismatch):
    """The stored sample needs a package this environment lacks: an environment problem (exit 4), not drift."""

    def __init__(self, package: str, what: str) -> None:
        super().__init__(f"the stored sample is {what}, which needs {package}; {package} is not installed "
                         f"in this environment (pip install {package})")
        self.package = package


def require(module: str, package: str, what: str) -> Any:
    """Import ``module`` for reading a sample, or raise :class:`MissingPackage` naming ``package``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackage(package, what) from None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def to_npy(array: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class MemberWriter:
    """Collects the ``.npy`` members of one sample; names are ``sample/<stem>.npy``."""

    def __init__(self) -> None:
        self.members: dict[str, bytes] = {}

    def array(self, stem: str, array: Any) -> dict[str, Any]:
        import numpy as np

        array = np.ascontiguousarray(array)
        if array.dtype.kind not in PLAIN_KINDS:
            raise UsageError(f"internal: {stem} has dtype {array.dtype}, not storable as .npy")
        name = f"{PREFIX}{stem}.npy"
        if name in self.members:
            raise UsageError(f"internal: sample member {name} written twice")
        self.members[name] = to_npy(array)
        return {"member": name, "dtype": array.dtype.str, "shape": [int(n) for n in array.shape]}

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.members.values())


def _check_npy_size(member: Any, data: bytes) -> None:
    """The array a ``.npy`` header describes must be exactly the bytes that follow it.

    ``np.load`` of an in-memory file allocates the whole array its header claims *before* reading the data, so a
    200-byte member claiming shape ``(2**40, 4)`` would ask for 32 TiB (or get gigabytes of address space, then fail
    at the end of the data). The header is read and checked against the member's size first; only then is
    anything allocated, and never more than the member holds."""
    import math

    from numpy.lib import format as npy

    buf = io.BytesIO(data)
    try:
        version = npy.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(buf)
        else:
            raise ValueError(f"npy format version {version}, not 1.0 or 2.0")
    except Exception as exc:  # a bad magic, a header that is not a dict literal, an unknown dtype...
        raise UsageError(f"{member} is not a plain .npy array: {one_line(exc)}") from exc
    if dtype.hasobject:
        return  # np.load(allow_pickle=False) refuses it without allocating
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != len(data) - buf.tell():
        raise UsageError(f"{member}: its header describes {claimed} bytes of data, the member holds "
                         f"{len(data) - buf.tell()}")


class MemberReader:
    """Reads the ``.npy`` members a sample description names, checking each against its description."""

    def __init__(self, read_member: Callable[[str], bytes]) -> None:
        self._read = read_member
        self.total = 0

    def array(self, spec: Any, *, kinds: str = PLAIN_KINDS, what: str = "array") -> Any:
        """The array ``spec`` (``{"member", "dtype", "shape"}``) describes; UsageError if it is anything else."""
        import numpy as np

        if not isinstance(spec, Mapping):
            raise UsageError(f"{what}: no array description")
        member = spec.get("member")
        data = self.raw(member)
        _check_npy_size(member, data)
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # an object array (which we refuse to unpickle), a bad header...
            raise UsageError(f"{member} is not a plain .npy array: {one_line(exc)}") from exc
        if not isinstance(array, np.ndarray) or array.dtype.kind not in kinds:
            raise UsageError(f"{member}: {what} must have a dtype of kind {kinds!r}, not {array.dtype}")
        if spec.get("dtype") is not None and array.dtype.str != spec.get("dtype"):
            raise UsageError(f"{member}: dtype {array.dtype.str}, the manifest says {spec.get('dtype')}")
        shape = spec.get("shape")
        if shape is not None and list(array.shape) != shape:
            raise UsageError(f"{member}: shape {list(array.shape)}, the manifest says {shape}")
        return array

    def raw(self, member: Any) -> bytes:
        if not isinstance(member, str) or not member.startswith(PREFIX) or ".." in member.split("/"):
            raise UsageError(f"sample member name {member!r} is not below {PREFIX!r}")
        try:
            data = self._read(member)
        except Exception as exc:  # reported as an unreadable sample, not a crash
            raise UsageError(f"cannot read {member}: {one_line(exc)}") from exc
        self.total += len(data)
        if len(data) > MAX_BYTES or self.total > 4 * MAX_BYTES:
            raise UsageError(f"{member}: the sample takes more than the {MAX_BYTES} bytes a sample may take")
        return data


# ------------------------------------------------------------------------------------------ one-array encodings


def encode_values(writer: MemberWriter, stem: str, array: Any, what: str) -> dict[str, Any]:
    """Store one numpy array: ``{"encoding": "npy", ...}`` for plain dtypes, ``{"encoding": "objects", ...}`` for
    object arrays; anything else (structured, void) is a UsageError naming ``what``."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype.kind in PLAIN_KINDS:
        return {"encoding": "npy", **writer.array(stem, array)}
    if array.dtype.kind != "O":
        raise UsageError(f"{what} has dtype {array.dtype}, which cannot be stored without pickle")
    flat = array.ravel().tolist()
    codes = np.empty(len(flat), dtype=np.uint8)
    strings: list[bytes] = []
    ints: list[int] = []
    floats: list[float] = []
    bad: set[str] = set()
    for i, value in enumerate(flat):
        if isinstance(value, str):
            codes[i] = STR
            strings.append(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, (bool, np.bool_)):
            codes[i] = BOOL
            ints.append(int(value))
        elif isinstance(value, (int, np.integer)):
            if not -(2**63) <= int(value) < 2**63:
                raise UsageError(f"{what} holds the integer {value}, which does not fit in 64 bits")
            codes[i] = INT
            ints.append(int(value))
        elif isinstance(value, (float, np.floating)):
            codes[i] = FLOAT
            floats.append(float(value))
        elif value is None:
            codes[i] = NONE
        elif _is_pandas_singleton(value, "NAType"):
            codes[i] = NA
        elif _is_pandas_singleton(value, "NaTType"):
            codes[i] = NAT
        else:
            bad.add(f"{type(value).__module__}.{type(value).__qualname__}")
    if bad:
        raise UsageError(f"{what} holds values of type {', '.join(sorted(bad))}, which cannot be stored without "
                         "pickle (use str, int, float, bool or missing values)")
    spec: dict[str, Any] = {"encoding": "objects", "shape": [int(n) for n in array.shape],
                            "codes": writer.array(f"{stem}.codes", codes)}
    if strings:
        offsets = np.zeros(len(strings) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in strings])
        spec["strings"] = writer.array(f"{stem}.utf8", np.frombuffer(b"".join(strings), dtype=np.uint8))
        spec["offsets"] = writer.array(f"{stem}.offsets", offsets)
    if ints:
        spec["ints"] = writer.array(f"{stem}.ints", np.asarray(ints, dtype=np.int64))
    if floats:
        spec["floats"] = writer.array(f"{stem}.floats", np.asarray(floats, dtype=np.float64))
    return spec


def decode_values(reader: MemberReader, spec: Any, what: str, *, max_elements: int) -> Any:
    """The numpy array :func:`encode_values` stored (an object array for ``objects``)."""
    import numpy as np

    if not isinstance(spec, Mapping):
        raise UsageError(f"{what}: no values description")
    encoding = spec.get("encoding")
    if encoding == "npy":
        array = reader.array(spec, what=what)
        if array.size > max_elements:
            raise UsageError(f"{what}: {array.size} values, more than {max_elements}")
        return array
    if encoding != "objects":
        raise UsageError(f"{what}: unknown values encoding {encoding!r}")
    shape = spec.get("shape")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise UsageError(f"{what}: bad shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
    if count > max_elements:
        raise UsageError(f"{what}: {count} values, more than {max_elements}")
    codes = reader.array(spec.get("codes"), kinds="u", what=f"{what} codes")
    if codes.ndim != 1 or codes.size != count or codes.dtype != np.uint8:
        raise UsageError(f"{what}: codes do not match the shape {shape}")
    unknown = set(np.unique(codes).tolist()) - set(_CODE_NAMES)
    if unknown:
        raise UsageError(f"{what}: unknown element codes {sorted(unknown)}")
    n_str = int((codes == STR).sum())
    n_int = int(((codes == INT) | (codes == BOOL)).sum())
    n_float = int((codes == FLOAT).sum())
    strings = _decode_strings(reader, spec, n_str, what) if n_str else []
    ints = _part(reader, spec, "ints", n_int, "i", what)
    floats = _part(reader, spec, "floats", n_float, "f", what)
    pd = None
    if (codes == NA).any() or (codes == NAT).any():
        pd = require("pandas", "pandas", f"{what} with pandas missing values (pandas.NA / NaT)")
    out = np.empty(count, dtype=object)
    si = ii = fi = 0
    for i, code in enumerate(codes.tolist()):
        if code == STR:
            out[i] = strings[si]
            si += 1
        elif code == INT:
            out[i] = int(ints[ii])
            ii += 1
        elif code == BOOL:
            out[i] = bool(ints[ii])
            ii += 1
        elif code == FLOAT:
            out[i] = float(floats[fi])
            fi += 1
        elif code == NONE:
            out[i] = None
        elif code == NA:
            out[i] = pd.NA  # type: ignore[union-attr]
        else:
            out[i] = pd.NaT  # type: ignore[union-attr]
    return out.reshape(shape)


def _part(reader: MemberReader, spec: Mapping[str, Any], key: str, count: int, kind: str, what: str) -> list[Any]:
    if count == 0:
        if key in spec:
            raise UsageError(f"{what}: {key} stored but no element uses them")
        return []
    array = reader.array(spec.get(key), kinds=kind, what=f"{what} {key}")
    if array.ndim != 1 or array.size != count:
        raise UsageError(f"{what}: {array.size} {key} stored, {count} expected")
    return list(array.tolist())


def _decode_strings(reader: MemberReader, spec: Mapping[str, Any], count: int, what: str) -> list[str]:
    import numpy as np

    data = reader.array(spec.get("strings"), kinds="u", what=f"{what} text")
    offsets = reader.array(spec.get("offsets"), kinds="i", what=f"{what} offsets")
    if data.ndim != 1 or data.dtype != np.uint8 or offsets.ndim != 1 or offsets.size != count + 1:
        raise UsageError(f"{what}: text offsets do not match the number of strings")
    if offsets[0] != 0 or offsets[-1] != data.size or (np.diff(offsets) < 0).any():
        raise UsageError(f"{what}: text offsets are not increasing within the text")
    raw = data.tobytes()
    bounds = offsets.tolist()
    try:
        return [raw[a:b].decode("utf-8", "surrogatepass") for a, b in itertools.pairwise(bounds)]
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what}: text is not UTF-8 ({exc})") from None


def _is_pandas_singleton(value: Any, type_name: str) -> bool:
    cls = type(value)
    return cls.__name__ == type_name and cls.__module__.startswith("pandas")
