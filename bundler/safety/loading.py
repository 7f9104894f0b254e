"""The safety pipeline over payload bytes held in memory: scan, audit, restricted load, state validation.

``load`` and ``pack FILE`` compose these steps around their own reading and hashing; ``safe_load`` runs all of them
on bytes a caller already holds (tests, tools). Nothing here reads a file: the bytes given are the bytes used.
"""

from __future__ import annotations

from typing import Any

from bundler.errors import UnsafeContent
from bundler.safety.allowlist import Allowlist
from bundler.safety.scan import ScanResult

__all__ = ["audit", "safe_load", "validate_loaded"]


def audit(scan: ScanResult, allow: Allowlist) -> None:
    """Raise ``UnsafeContent`` naming every global the allowlist refuses (how it is called, held or imported)."""
    findings = allow.findings(scan)
    if findings:
        from bundler.safety.profiles import trust_hints

        lines = [f.message for f in findings]
        offending = sorted({f.subject for f in findings if f.subject})
        raise UnsafeContent(lines[0], problems=lines, offending=offending, hints=trust_hints(offending))


def validate_loaded(loaded: Any, allow: Allowlist) -> None:
    """Run the state validators on a freshly deserialized model; raise ``UnsafeContent`` naming every path."""
    from bundler.safety.validators import validate_model

    problems = validate_model(loaded.obj, handed=loaded.handed, allow=allow,
                              max_objects=2 * loaded.opcodes + 100_000)
    if problems:
        lines = [p.line for p in problems]
        raise UnsafeContent(lines[0], problems=lines, offending=[p.path for p in problems])


def safe_load(data: Any, fmt: str, allow: Allowlist) -> Any:
    """Scan, audit, deserialize and validate a ``"pickle"`` or ``"joblib"`` payload held in memory; return the
    model. Raises ``IntegrityError`` (malformed), ``UnsafeContent`` or ``EnvironmentMismatch``."""
    from bundler.safety.scan import scan_memory
    from bundler.safety.source import decompress_all
    from bundler.safety.unpickler import restricted_load_memory

    compression, plain = decompress_all(data)
    stream = plain if plain is not None else data
    scan = scan_memory(stream, compression=compression)
    audit(scan, allow)
    loaded = restricted_load_memory(stream, allow=allow, spans=scan.arrays, fmt=fmt)
    validate_loaded(loaded, allow)
    return loaded.obj
