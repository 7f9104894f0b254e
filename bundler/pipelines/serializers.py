"""Payload backends: joblib (default), pickle, skops. Each writes a model to a stream and loads it back restrictedly.

Imports of joblib, numpy and skops happen inside the functions: ``bundler verify`` must stay free of them, and
``load`` imports only what the payload format needs.
"""

from __future__ import annotations

import pickle
from typing import IO, Any, BinaryIO, cast

from bundler.errors import EnvironmentMismatch, UnsafeContent, UsageError

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


def load(stream: IO[bytes], serializer: str, *, allow: Any) -> Any:
    """Deserialize a verified, scanned payload: pickle and joblib under the restricted unpickler, skops with exactly
    the types our allowlist accepts as trusted (skops' own default trust is not used)."""
    if serializer in ("joblib", "pickle"):
        from bundler.safety.unpickler import restricted_load

        return restricted_load(cast(BinaryIO, stream), fmt=serializer, allow=allow)
    sio = _require_skops()
    data = stream.read()
    try:
        untrusted = list(sio.get_untrusted_types(data=data))
        refused = [t for t in untrusted if t not in allow.constructible and t not in allow.referable]
        if refused:
            raise UnsafeContent(
                [f"{t} is not allowed in a skops payload (trust it with --trust {t} if you really mean it)"
                 for t in refused], offending=refused)
        return sio.loads(data, trusted=untrusted)
    except (ImportError, AttributeError) as exc:
        raise EnvironmentMismatch(f"payload needs something this environment lacks: {exc}") from None
