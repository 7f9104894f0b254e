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
    Hint,
    IntegrityError,
    SignatureError,
    UnsafeContent,
    UsageError,
)

if TYPE_CHECKING:
    from bundler.container.manifest import Manifest
    from bundler.environment.policy import Policy
    from bundler.integrity.signing import Ed25519PublicKey, Ed25519Signer, HmacKey
    from bundler.pipelines.load import load, load_with_report
    from bundler.pipelines.pack import pack, pack_file
    from bundler.pipelines.report import Report
    from bundler.pipelines.verify import inspect, verify
    from bundler.settings import Settings

_LAZY = {
    "pack": "bundler.pipelines.pack",
    "pack_file": "bundler.pipelines.pack",
    "verify": "bundler.pipelines.verify",
    "load": "bundler.pipelines.load",
    "load_with_report": "bundler.pipelines.load",
    "inspect": "bundler.pipelines.verify",
    "Report": "bundler.pipelines.report",
    "Manifest": "bundler.container.manifest",
    "Policy": "bundler.environment.policy",
    "Settings": "bundler.settings",
    "HmacKey": "bundler.integrity.signing",
    "Ed25519Signer": "bundler.integrity.signing",
    "Ed25519PublicKey": "bundler.integrity.signing",
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
    "Hint",
    "HmacKey",
    "IntegrityError",
    "Manifest",
    "Policy",
    "Report",
    "Settings",
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
