"""Static audit of a skops payload: the types its ``schema.json`` names, without importing skops.

skops files are zip archives whose schema lists every object to construct; reading that schema with ``zipfile`` and
``json`` lets ``bundler verify`` audit a skops payload with the same allowlist as a pickle, and without importing
scikit-learn. Loading then goes through skops itself.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import IO, Any

from bundler.errors import IntegrityError
from bundler.safety.scan import ScanResult

__all__ = ["MAX_SCHEMA_BYTES", "MAX_SKOPS_BYTES", "scan_skops"]

MAX_SKOPS_BYTES = 8 << 30
#: skops node loaders that do not call the named class: function and type look-ups, arrays and dtypes read from
#: .npy members without pickle.
_VALUE_LOADERS = frozenset({"FunctionNode", "TypeNode", "NdArrayNode", "DTypeNode"})
MAX_SCHEMA_BYTES = 64 << 20


def scan_skops(stream: IO[bytes]) -> ScanResult:
    """Every ``module.class`` and function a skops payload names; functions count as values, the rest as calls."""
    data = stream.read(MAX_SKOPS_BYTES + 1)
    if len(data) > MAX_SKOPS_BYTES:
        raise IntegrityError("skops payload is larger than the limit")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo("schema.json")
            if info.file_size > MAX_SCHEMA_BYTES:
                raise IntegrityError("skops schema.json is larger than the limit")
            schema = json.loads(zf.read(info))
    except IntegrityError:
        raise
    except Exception as exc:  # noqa: BLE001 - see below
        # Whatever zipfile or json refuses (a bad zip, a missing schema, an "encrypted" member, an unsupported or
        # corrupt compression method, a schema too deeply nested) is a malformed payload, never an internal error.
        text = " ".join(str(exc).split())[:200]
        raise IntegrityError(f"malformed skops payload: {type(exc).__name__}: {text}") from None
    names: set[str] = set()
    calls: set[str] = set()
    stack: list[Any] = [schema]
    root = None
    if isinstance(schema, dict):
        module, cls = schema.get("__module__"), schema.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            root = f"{module}.{cls}"
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                names.add(f"{module}.{cls}")
                # Some nodes only look a name up or read array data without pickle (a value, like a score_func or
                # a dtype); the others construct an object of that class.
                if node.get("__loader__") not in _VALUE_LOADERS:
                    calls.add(f"{module}.{cls}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return ScanResult(format="skops", globals=tuple(sorted(names)), calls=tuple(sorted(calls)), root=root)
