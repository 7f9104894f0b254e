"""bundler: pack a trained model with its pinned requirements, a manifest and a signature; verify before loading.

The public API (``pack``, ``verify``, ``load``, ``inspect`` and the errors) is imported lazily, so that
``import bundler`` (and ``bundler verify``) stays cheap and never pulls in scikit-learn, numpy or joblib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bundler._version import __version__
from bundler.errors import (
    BehaviourDrift,
    BundleError,
    BundlerWarning,
    EnvironmentMismatch,
    IntegrityError,
    SignatureError,
    UnsafeContent,
    UsageError,
)

if TYPE_CHECKING:
    from bundler.api import Report, inspect, load, load_with_report, pack, pack_file, verify
    from bundler.environment import Policy
    from bundler.manifest import Manifest
    from bundler.signing import Ed25519PublicKey, Ed25519Signer, HmacKey

_LAZY = {
    "pack": "bundler.api",
    "pack_file": "bundler.api",
    "verify": "bundler.api",
    "load": "bundler.api",
    "load_with_report": "bundler.api",
    "inspect": "bundler.api",
    "Report": "bundler.api",
    "Manifest": "bundler.manifest",
    "Policy": "bundler.environment",
    "HmacKey": "bundler.signing",
    "Ed25519Signer": "bundler.signing",
    "Ed25519PublicKey": "bundler.signing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bundler' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BehaviourDrift",
    "BundleError",
    "BundlerWarning",
    "Ed25519PublicKey",
    "Ed25519Signer",
    "EnvironmentMismatch",
    "HmacKey",
    "IntegrityError",
    "Manifest",
    "Policy",
    "Report",
    "SignatureError",
    "UnsafeContent",
    "UsageError",
    "__version__",
    "inspect",
    "load",
    "load_with_report",
    "pack",
    "pack_file",
    "verify",
]
