"""Showing text that comes from a bundle: every line the command line prints goes through :func:`printable`.

It sits below both the command line and the cross-version matrix, which print what bundles contain, so that
neither imports the other for it.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    """``text`` with every control, format, separator and surrogate character escaped (``\\x1b``, ``\\u202e``).

    Messages quote what a bundle contains (global names, member names, manifest fields), and an attacker chooses
    those: a newline would forge a second line (``bundler: OK``), an ANSI escape would rewrite the terminal, a
    right-to-left override would reorder what the reader sees, and a lone surrogate cannot even be written to a
    UTF-8 stream. One problem is one line, shown as the characters it really contains."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)
