"""Payload backends: joblib (default), pickle, skops. Each writes a model to a stream and loads it back restrictedly.

Imports of joblib, numpy and skops happen inside the functions: ``bundler verify`` must stay free of them, and
``load`` imports only what the payload format needs.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

from bundler.errors import BundleError, EnvironmentMismatch, IntegrityError, UnsafeContent, UsageError
from bundler.safety.profiles import trust_hints

__all__ = ["PAYLOAD_NAMES", "PICKLE_PROTOCOL", "SERIALIZERS", "check_serializer", "dump", "load_verified"]

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


def load_verified(data: Any, serializer: str, scan: Any, *, allow: Any) -> Any:
    """Deserialize a verified, scanned payload held in memory; returns ``bundler.safety.unpickler.Loaded``.

    pickle and joblib run under the restricted unpickler over exactly the scanned bytes (the array spans the scan
    found must be met); skops loads with exactly the types our allowlist accepts as trusted (skops' own default
    trust is not used).
    """
    if serializer in ("joblib", "pickle"):
        from bundler.safety.unpickler import restricted_load_memory

        return restricted_load_memory(data, allow=allow, spans=scan.arrays if scan is not None else None,
                                      fmt=serializer)
    return _load_skops(bytes(data), allow)


def _load_skops(data: bytes, allow: Any) -> Any:
    from bundler.safety.unpickler import Loaded, RebuildError

    sio = _require_skops()
    _check_skops_members(data)
    try:
        untrusted = list(sio.get_untrusted_types(data=data))
        refused = [t for t in untrusted if not allow.may_import(t)]
        if refused:
            raise UnsafeContent([f"{t} is not allowed in a skops payload" for t in refused], offending=refused,
                                hints=trust_hints(refused))
        obj = sio.loads(data, trusted=untrusted)
    except BundleError:
        raise
    except (ImportError, AttributeError) as exc:
        raise EnvironmentMismatch(f"payload needs something this environment lacks: {exc}") from None
    except MemoryError:
        raise UnsafeContent("the skops payload asked for more memory than this process can allocate: refused",
                            offending=["<memory exhaustion>"]) from None
    except Exception as exc:  # noqa: BLE001 - see below
        # Every type is allowed; skops or the library refused the verified bytes (the load pipeline tells a
        # version difference from crafted content).
        text = " ".join(str(exc).split())[:300]
        raise RebuildError(f"payload cannot be rebuilt in this environment: {type(exc).__name__}: {text}") from None
    return Loaded(obj, _resolve_names(untrusted), 0)


def _check_skops_members(data: bytes) -> None:
    """Before skops reads anything: the members it will inflate must fit the allocation budget, and every .npy
    member's header must describe exactly the bytes that follow it (``np.load`` of a zip member allocates the
    whole array its header claims before reading the data: 8 TiB from a 100-byte member)."""
    import io
    import math
    import zipfile

    from numpy.lib import format as npy

    from bundler.safety.limits import DEFAULT_LIMITS

    budget = DEFAULT_LIMITS.budget_for(len(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > budget:
                raise UnsafeContent(f"the skops payload's members inflate to more than the allocation budget "
                                    f"({budget} bytes)", offending=["<skops members>"])
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = npy.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = npy.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = npy.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"npy format version {version}")
                    left = info.file_size - f.tell()
                if not dtype.hasobject and math.prod(shape) * dtype.itemsize != left:
                    raise UnsafeContent(f"skops member {info.filename}: its .npy header describes "
                                        f"{math.prod(shape) * dtype.itemsize} bytes, the member holds {left}",
                                        offending=[info.filename])
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - not a zip, a bad .npy header...
        raise IntegrityError(f"malformed skops payload: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") \
            from None


def _resolve_names(names: list[str]) -> dict[int, str]:
    """id -> name of each global skops resolved for the payload (the validators judge what the model holds)."""
    import importlib

    handed: dict[int, str] = {}
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            handed[id(getattr(importlib.import_module(module), attr))] = name
        except (ImportError, AttributeError, ValueError):
            continue
    return handed
