"""Findings: one problem found, as data, and the one table that turns kinds of problem into exit codes.

A check never reports a bare string that some later code has to pair with a name or rank by its wording: it
records a :class:`Finding` (what kind of problem, about which subject, the line a person reads). The report of a
``verify`` or ``load`` is a list of findings; its exit code is the code of the most serious kind among them, by the
order of :class:`Kind` (integrity first: when the bytes cannot be trusted nothing else can; then unsafe content: a
hostile payload must never be reported as a mere version problem; then environment; then behaviour). The error
classes of :mod:`bundler.errors` take their exit codes from the same table, so a code is written down exactly once.

Standard library only: this module sits at the bottom of the import graph.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "Finding", "Kind", "most_serious"]

#: Success, and "bundler itself failed" (a bug: never the verdict on any input, however bad).
EXIT_OK: Final = 0
EXIT_INTERNAL: Final = 1


class Kind(str, enum.Enum):
    """The kinds of problem, most serious first (the order is the precedence); each value is its name in JSON."""

    USAGE = "usage"
    SIGNATURE = "signature"
    INTEGRITY = "integrity"
    UNSAFE = "unsafe"
    ENVIRONMENT = "environment"
    BEHAVIOUR = "behaviour"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]

    @property
    def rank(self) -> int:
        """0 for the most serious kind; lower wins when several kinds are found."""
        return _ORDER.index(self)


#: The exit code of each kind (docs/design.md): the only place these numbers are written.
_EXIT_CODES: Final[dict[Kind, int]] = {
    Kind.USAGE: 2,
    Kind.SIGNATURE: 3,
    Kind.INTEGRITY: 3,
    Kind.UNSAFE: 5,
    Kind.ENVIRONMENT: 4,
    Kind.BEHAVIOUR: 6,
}
_ORDER: Final = tuple(Kind)


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, the line a person reads, and what it is about.

    ``subject`` is the name the problem is about when it has one: the refused global (``unsafe``), the package
    (``environment``), the attribute path of crafted state, the member name (``integrity``). ``expected`` and
    ``found`` are the pinned and the installed version of an environment finding (``found`` is None when the package
    is not installed).
    """

    kind: Kind
    message: str
    subject: str | None = None
    expected: str | None = None
    found: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            object.__setattr__(self, "kind", Kind(self.kind))  # "unsafe" -> Kind.UNSAFE; anything else: ValueError

    @property
    def exit_code(self) -> int:
        return self.kind.exit_code

    @property
    def package(self) -> str | None:
        """The subject under its older name (environment findings name a package)."""
        return self.subject

    def to_dict(self) -> dict[str, str | int]:
        """The JSON form: kind, message, exit code, and whichever of subject/expected/found are set."""
        out: dict[str, str | int] = {"kind": self.kind.value, "message": self.message, "exit_code": self.exit_code}
        for key in ("subject", "expected", "found"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def most_serious(findings: list[Finding]) -> Kind | None:
    """The kind that decides the outcome (and exit code) of these findings; None when there are none."""
    if not findings:
        return None
    return min((f.kind for f in findings), key=lambda k: k.rank)
