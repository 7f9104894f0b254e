"""Versions as packaging reads them, in one place: a string packaging cannot read is no version.

packaging raises ``InvalidVersion`` for most strings that are not PEP 440, but lets a plain ``ValueError`` escape
for a number over ``int()``'s 4300-digit limit (``1.0.post999...``): a crafted pin, record or lock file made every
caller that caught only ``InvalidVersion`` exit 1. Every caller goes through these two functions instead.
"""

from __future__ import annotations

from packaging.version import Version

__all__ = ["parse_version", "version_key"]


def parse_version(text: str) -> Version | None:
    """``text`` as a PEP 440 version, or None when packaging cannot read it, whatever it raises for that."""
    try:
        return Version(text)
    except ValueError:  # InvalidVersion is a ValueError; so is int()'s digit limit
        return None


def version_key(text: str) -> tuple[int, Version, str]:
    """Sort key: PEP 440 order for versions (``1.10`` after ``1.9``), other labels ("not pinned") last."""
    parsed = parse_version(text)
    return (0, parsed, text) if parsed is not None else (1, Version("0"), text)
