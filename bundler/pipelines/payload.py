"""What pack and load share about a payload: its format, its static scan, the allowlist, the structure checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from bundler.safety.allowlist import Allowlist
    from bundler.safety.scan import ScanResult

__all__ = ["default_allowlist", "detect_format", "scan_payload"]


def scan_payload(stream: Any, serializer: str) -> ScanResult:
    """Static scan of a payload stream: globals and calls, without deserializing anything."""
    if serializer == "skops":
        from bundler.safety.skops_audit import scan_skops

        return scan_skops(cast(IO[bytes], stream))
    from bundler.safety.scan import scan_fileobj

    return scan_fileobj(stream)


def default_allowlist(trust: Iterable[str] = (), profiles: Iterable[str] = ()) -> Allowlist:
    """The default allowlist plus the trusted names and the names of the trusted profiles."""
    from bundler.safety.allowlist import DEFAULT_ALLOWLIST

    trust = list(trust)
    allow = DEFAULT_ALLOWLIST.extended(trust) if trust else DEFAULT_ALLOWLIST
    return allow.with_profiles(profiles)


def detect_format(head: bytes) -> str:
    """The serializer a payload file was written with, from its first bytes (never from its file name)."""
    if head.startswith(b"PK\x03\x04"):
        return "skops"
    return "pickle-or-joblib"
