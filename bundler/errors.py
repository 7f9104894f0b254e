"""The error hierarchy of bundler and the exit code each error maps to.

Every user-facing failure is a ``BundleError``; the CLI turns it into one line per problem on stderr and its
``exit_code``. Errors carry *every* problem found (``problems``), not only the first, so a user fixes a bundle or an
environment in one round instead of many.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

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
    the caller could do about them (see :class:`Hint`)."""

    exit_code: int = 1

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


class UsageError(BundleError):
    """Bad arguments or an unreadable input file (a missing path, a directory, a key file that is not a key)."""

    exit_code = 2


class IntegrityError(BundleError):
    """The bundle is not a bundle, is corrupt, or was altered: a member missing, extra, or with the wrong hash."""

    exit_code = 3


class SignatureError(IntegrityError):
    """The signature is missing, malformed, of an unknown scheme, or does not match the key the caller supplied."""


class EnvironmentMismatch(BundleError):
    """The running (or target) environment differs from the manifest beyond what the policy allows."""

    exit_code = 4


class UnsafeContent(BundleError):
    """The payload imports or calls globals outside the allowlist; nothing of it was executed."""

    exit_code = 5

    def __init__(self, message: str | Iterable[str], *, problems: Iterable[str] | None = None,
                 offending: Iterable[str] = (), hints: Iterable[Hint | None] = ()) -> None:
        super().__init__(message, problems=problems, hints=hints)
        self.offending: list[str] = list(offending)


class BehaviourDrift(BundleError):
    """The model predicts the stored sample differently from what it predicted at pack time."""

    exit_code = 6


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


EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_ENVIRONMENT = 4
EXIT_UNSAFE = 5
EXIT_BEHAVIOUR = 6

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
    "trust_hint",
]
