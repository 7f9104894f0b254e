"""The error hierarchy of bundler and the exit code each error maps to.

Every user-facing failure is a ``BundleError``; the CLI turns it into one line per problem on stderr and its
``exit_code``. Errors carry *every* problem found (``problems``), not only the first, so a user fixes a bundle or an
environment in one round instead of many.
"""

from __future__ import annotations

from collections.abc import Iterable


class BundleError(Exception):
    """Base of every error bundler raises on purpose. ``problems`` holds one line per problem found."""

    exit_code: int = 1

    def __init__(self, message: str | Iterable[str], *, problems: Iterable[str] | None = None) -> None:
        if isinstance(message, str):
            lines = [message] if problems is None else list(problems)
            summary = message
        else:
            lines = list(message)
            summary = "; ".join(lines) if lines else self.__class__.__name__
        self.problems: list[str] = lines if lines else [summary]
        super().__init__(summary)


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
                 offending: Iterable[str] = ()) -> None:
        super().__init__(message, problems=problems)
        self.offending: list[str] = list(offending)


class BehaviourDrift(BundleError):
    """The model predicts the stored sample differently from what it predicted at pack time."""

    exit_code = 6


class BundlerWarning(UserWarning):
    """Something a user should know that does not stop the operation (e.g. a global a default loader would refuse)."""


EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_ENVIRONMENT = 4
EXIT_UNSAFE = 5
EXIT_BEHAVIOUR = 6

__all__ = [
    "BehaviourDrift",
    "BundleError",
    "BundlerWarning",
    "EnvironmentMismatch",
    "IntegrityError",
    "SignatureError",
    "UnsafeContent",
    "UsageError",
]
