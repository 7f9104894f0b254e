"""The error hierarchy of bundler; each error class is one :class:`~bundler.findings.Kind` of problem.

Every user-facing failure is a ``BundleError``; the CLI turns it into one line per problem on stderr and its
``exit_code``, which comes from the kind (:mod:`bundler.findings` holds the one table of exit codes). Errors carry
*every* problem found (``problems``, and the same as :class:`~bundler.findings.Finding` objects in ``findings``), not
only the first, so a user fixes a bundle or an environment in one round instead of many.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from bundler.findings import EXIT_INTERNAL, Finding, Kind

#: Who reads a message: a Python caller (``trust=[...]``) or a command-line user (``--trust X``).
Audience = Literal["api", "cli"]


@dataclass(frozen=True)
class Hint:
    """How to get past a refusal, worded for each audience.

    Problem lines say *what* is wrong and are the same for everyone; what to *do* about it depends on whether the
    reader calls the library or runs the command line, so an error carries its hints as data and whoever shows the
    error picks the wording: ``str(error)`` speaks API, the CLI renders ``cli``.
    """

    text: str
    api: str
    cli: str

    def render(self, audience: Audience) -> str:
        return f"{self.text}: {self.api if audience == 'api' else self.cli}"


def trust_hint(names: Iterable[str]) -> Hint | None:
    """The hint naming the globals a caller could trust; computed pseudo-names (``<...>``) can never be trusted."""
    plain = sorted({n for n in names if n and not n.startswith("<")})
    if not plain:
        return None
    return Hint("only if you trust where this payload came from, accept it with",
                api=f"trust={plain!r}", cli=" ".join(f"--trust {n}" for n in plain))


class BundleError(Exception):
    """Base of every error bundler raises on purpose. ``problems`` holds one line per problem found, ``hints`` what
    the caller could do about them (see :class:`Hint`). Only the subclasses are raised: each names its ``kind``, and
    its ``exit_code`` is that kind's."""

    kind: ClassVar[Kind | None] = None
    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind is not None:
            cls.exit_code = cls.kind.exit_code
            _BY_KIND.setdefault(cls.kind, cls)

    def __init__(self, message: str | Iterable[str], *, problems: Iterable[str] | None = None,
                 hints: Iterable[Hint | None] = ()) -> None:
        if isinstance(message, str):
            lines = [message] if problems is None else list(problems)
            summary = message
        else:
            lines = list(message)
            summary = "; ".join(lines) if lines else self.__class__.__name__
        self.problems: list[str] = lines if lines else [summary]
        self.hints: list[Hint] = [h for h in hints if h is not None]
        super().__init__(summary)

    def __str__(self) -> str:
        summary = super().__str__()
        if not self.hints:
            return summary
        return summary + " (" + "; ".join(h.render("api") for h in self.hints) + ")"

    @property
    def findings(self) -> list[Finding]:
        """The problems as findings of this error's kind."""
        kind = self.kind or Kind.INTEGRITY
        return [Finding(kind, line) for line in self.problems]


_BY_KIND: dict[Kind, type[BundleError]] = {}


def error_for(kind: Kind) -> type[BundleError]:
    """The error class raised for a problem of ``kind``."""
    return _BY_KIND[kind]


class UsageError(BundleError):
    """Bad arguments or an unreadable input file (a missing path, a directory, a key file that is not a key)."""

    kind = Kind.USAGE


class IntegrityError(BundleError):
    """The bundle is not a bundle, is corrupt, or was altered: a member missing, extra, or with the wrong hash."""

    kind = Kind.INTEGRITY


class SignatureError(IntegrityError):
    """The signature is missing, malformed, of an unknown scheme, or does not match the key the caller supplied."""

    kind = Kind.SIGNATURE


class EnvironmentMismatch(BundleError):
    """The running (or target) environment differs from the manifest beyond what the policy allows."""

    kind = Kind.ENVIRONMENT


class UnsafeContent(BundleError):
    """The payload imports or calls globals outside the allowlist; nothing of it was executed."""

    kind = Kind.UNSAFE

    def __init__(self, message: str | Iterable[str], *, problems: Iterable[str] | None = None,
                 offending: Iterable[str] = (), hints: Iterable[Hint | None] = ()) -> None:
        super().__init__(message, problems=problems, hints=hints)
        self.offending: list[str] = list(offending)


class BehaviourDrift(BundleError):
    """The model predicts the stored sample differently from what it predicted at pack time."""

    kind = Kind.BEHAVIOUR


class BundlerWarning(UserWarning):
    """Something a user should know that does not stop the operation (e.g. a global a default loader would refuse).

    Like errors, a warning carries its hints as data: ``str(warning)`` speaks API, the CLI renders its own wording.
    """

    def __init__(self, message: str, *, hints: Iterable[Hint | None] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hints: list[Hint] = [h for h in hints if h is not None]

    def __str__(self) -> str:
        return self.render("api")

    def render(self, audience: Audience) -> str:
        """The message with its hints worded for ``audience``."""
        if not self.hints:
            return self.message
        return self.message + " (" + "; ".join(h.render(audience) for h in self.hints) + ")"


__all__ = [
    "Audience",
    "BehaviourDrift",
    "BundleError",
    "BundlerWarning",
    "EnvironmentMismatch",
    "Hint",
    "IntegrityError",
    "SignatureError",
    "UnsafeContent",
    "UsageError",
    "error_for",
    "trust_hint",
]
