"""Payload backends: joblib (default), pickle, skops. Each writes a model to a stream and loads it back restrictedly.

Imports of joblib, numpy and skops happen inside the functions: ``bundler verify`` must stay free of them, and
``load`` imports only what the payload format needs.
"""

from __future__ import annotations

import pickle
from typing import IO, Any, BinaryIO

from bundler.errors import EnvironmentMismatch, UsageError

SERIALIZERS = ("joblib", "pickle", "skops")
PAYLOAD_NAMES = {"joblib": "model/model.joblib", "pickle": "model/model.pkl", "skops": "model/model.skops"}
PICKLE_PROTOCOL = 4


def check_serializer(name: str) -> str:
    if name not in SERIALIZERS:
        raise UsageError(f"unknown serializer {name!r} (choose from {', '.join(SERIALIZERS)})")
    if name == "skops":
        _require_skops()
    return name


def _require_skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise UsageError("serializer 'skops' needs the optional extra: pip install 'bundler[skops]'") from None
    return sio


def dump(model: Any, stream: IO[bytes], serializer: str) -> None:
    """Serialize ``model`` into ``stream`` (which may hash as it is written)."""
    if serializer == "joblib":
        import joblib

        joblib.dump(model, stream)
    elif serializer == "pickle":
        pickle.dump(model, stream, protocol=PICKLE_PROTOCOL)
    elif serializer == "skops":
        sio = _require_skops()
        stream.write(sio.dumps(model))
    else:  # pragma: no cover - check_serializer ran first
        raise UsageError(f"unknown serializer {serializer!r}")


def load(stream: BinaryIO, serializer: str, *, allow: Any, trusted: list[str]) -> Any:
    """Deserialize a verified, scanned payload under the restricted unpickler (or skops' own audit)."""
    if serializer in ("joblib", "pickle"):
        from bundler.unpickler import restricted_load

        return restricted_load(stream, fmt=serializer, allow=allow)
    sio = _require_skops()
    data = stream.read()
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in trusted]
    if untrusted:
        from bundler.errors import UnsafeContent

        raise UnsafeContent(
            [f"{t} is not trusted by skops (trust it with --trust {t} if you really mean it)" for t in untrusted],
            offending=untrusted,
        )
    try:
        return sio.loads(data, trusted=list(trusted) + list(sio.get_untrusted_types(data=data)))
    except (ImportError, AttributeError) as exc:
        raise EnvironmentMismatch(f"payload needs something this environment lacks: {exc}") from None


def skops_globals(stream: BinaryIO) -> list[str]:
    """The types a skops payload names: they are recorded in the manifest like pickle globals."""
    sio = _require_skops()
    data = stream.read()
    import json
    import zipfile
    from io import BytesIO

    names: set[str] = set()
    with zipfile.ZipFile(BytesIO(data)) as zf:
        schema = json.loads(zf.read("schema.json"))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                names.add(f"{node['__module__']}.{node['__class__']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    del sio
    return sorted(names)
