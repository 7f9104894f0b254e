"""The report of a verify or load: every problem found (with its kind) and notes for people.

Exit-code precedence when several kinds of problem are found: integrity first (nothing else can be trusted), then
unsafe content (a hostile payload must never be reported as a mere version problem), then environment, then
behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bundler.container.manifest import Manifest
from bundler.errors import (
    BehaviourDrift,
    BundleError,
    EnvironmentMismatch,
    Hint,
    IntegrityError,
    SignatureError,
    UnsafeContent,
)
from bundler.integrity.signing import SignatureStatus

__all__ = ["CODE_PACKAGE", "KIND_EXIT", "KIND_ORDER", "Problem", "Report"]

#: The ``package`` of the problem "the bundle holds code and it is not trusted" (never a trustable global name).
CODE_PACKAGE = "<bundled code>"

KIND_EXIT = {"signature": 3, "integrity": 3, "unsafe": 5, "environment": 4, "behaviour": 6}
KIND_ORDER = ("signature", "integrity", "unsafe", "environment", "behaviour")
KIND_ERROR: dict[str, type[BundleError]] = {
    "signature": SignatureError,
    "integrity": IntegrityError,
    "unsafe": UnsafeContent,
    "environment": EnvironmentMismatch,
    "behaviour": BehaviourDrift,
}



@dataclass(frozen=True)
class Problem:
    """One problem found, with its kind (integrity, unsafe, environment, behaviour)."""

    kind: str
    message: str
    package: str | None = None
    expected: str | None = None
    found: str | None = None


@dataclass
class Report:
    """The result of ``verify`` (and of the checks ``load`` runs): every problem found, and notes for people."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    signature: SignatureStatus | None = None
    globals: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    #: trust profiles that would accept refused globals (``bundler.safety.profiles``)
    suggested_profiles: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        kinds = {p.kind for p in self.problems}
        for kind in KIND_ORDER:
            if kind in kinds:
                return KIND_EXIT[kind]
        return 0

    def add(self, kind: str, message: str, **extra: str | None) -> None:
        self.problems.append(Problem(kind, message, **extra))

    def add_error(self, error: BundleError, kind: str) -> None:
        for line in error.problems:
            self.add(kind, line)

    def hints(self) -> list[Hint]:
        """What the caller could do about the problems found, as data (each audience words it its own way):
        trusting refused globals, allowing the versions found, installing what is missing."""
        hints: list[Hint] = []
        from bundler.safety.profiles import trust_hints

        hints += trust_hints(p.package for p in self.problems if p.kind == "unsafe" and p.package)
        env = [p for p in self.problems if p.kind == "environment" and p.package and p.expected]
        differ = sorted({p.package for p in env if p.found is not None and p.package})
        if differ:
            rules = {name: "none" for name in differ}
            hints.append(Hint("to accept the versions found (the behaviour check still runs on load)",
                              api=f"policy=bundler.Policy('default', {rules!r})",
                              cli=" ".join(f"--allow {name} none" for name in differ)))
        if any(p.package == CODE_PACKAGE for p in self.problems):
            hints.append(Hint("only if you trust the bundle's code (or sign bundles and load with the key)",
                              api="trust_code=True", cli="--trust-code"))
        if any(p.found is None for p in env):
            hints.append(Hint("to install the pinned versions of what is missing",
                              api="pip install -r the bundle's requirements.txt (Report.manifest.requirements)",
                              cli=f"bundler requirements {self.path} > requirements.txt && "
                                  "pip install -r requirements.txt"))
        return hints

    def error(self) -> BundleError | None:
        """The exception for the most serious kind of problem found, carrying every problem line and the hints."""
        for kind in KIND_ORDER:
            if any(p.kind == kind for p in self.problems):
                lines = [p.message for p in self.problems]
                if kind == "unsafe":
                    offending = [p.package for p in self.problems if p.kind == "unsafe" and p.package]
                    return UnsafeContent(lines[0], problems=lines, offending=offending, hints=self.hints())
                return KIND_ERROR[kind](lines[0], problems=lines, hints=self.hints())
        return None

    def raise_for_problems(self) -> None:
        err = self.error()
        if err is not None:
            raise err

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "path": self.path,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "verified": self.ok,
            "signature": None if self.signature is None else {
                "scheme": self.signature.scheme,
                "key_id": self.signature.key_id,
                "authenticated": self.signature.authenticated,
            },
            "checked": self.checked,
            "problems": [{k: v for k, v in p.__dict__.items() if v is not None} for p in self.problems],
            "notes": self.notes,
            "model_class": m.model_class if m else None,
            "serializer": m.serializer if m else None,
            "created": m.created if m else None,
            "globals": self.globals,
            "suggested_trust_profiles": self.suggested_profiles,
            "hints": [{"text": h.text, "api": h.api, "cli": h.cli} for h in self.hints()],
        }
