"""The report of a verify or load: every problem found, as :class:`~bundler.findings.Finding` objects, and notes
for people. Which problem decides the exit code is the precedence of :class:`~bundler.findings.Kind`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bundler.container.manifest import Manifest
from bundler.errors import BundleError, Hint, UnsafeContent, error_for
from bundler.findings import EXIT_OK, Finding, Kind, most_serious
from bundler.integrity.signing import SignatureStatus

if TYPE_CHECKING:
    from bundler.environment.tested import RecordUse

__all__ = ["CODE_PACKAGE", "Finding", "Kind", "Report"]

#: The subject of the finding "the bundle holds code and it is not trusted" (never a trustable global name).
CODE_PACKAGE = "<bundled code>"


@dataclass
class Report:
    """The result of ``verify`` (and of the checks ``load`` runs): every problem found, and notes for people."""

    path: str
    problems: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    signature: SignatureStatus | None = None
    globals: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    #: trust profiles that would accept refused globals (``bundler.safety.profiles``)
    suggested_profiles: list[str] = field(default_factory=list)
    #: the bundle's tested-compatibility record, how far it is trusted, and the entry that admitted the environment
    tested: RecordUse | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        kind = most_serious(self.problems)
        return EXIT_OK if kind is None else kind.exit_code

    def add(self, kind: Kind | str, message: str, *, subject: str | None = None, expected: str | None = None,
            found: str | None = None) -> None:
        self.problems.append(Finding(Kind(kind), message, subject=subject, expected=expected, found=found))

    def add_error(self, error: BundleError) -> None:
        """Every problem of ``error``, as findings of its kind (an unsafe error keeps the names it refused)."""
        subjects: Iterable[str | None] = [None] * len(error.problems)
        if isinstance(error, UnsafeContent) and len(error.offending) == len(error.problems):
            subjects = error.offending
        for finding, subject in zip(error.findings, subjects, strict=True):
            self.add(finding.kind, finding.message, subject=subject)

    def of_kind(self, kind: Kind) -> list[Finding]:
        return [p for p in self.problems if p.kind is kind]

    def hints(self) -> list[Hint]:
        """What the caller could do about the problems found, as data (each audience words it its own way):
        trusting refused globals, allowing the versions found, installing what is missing."""
        hints: list[Hint] = []
        from bundler.safety.profiles import trust_hints

        hints += trust_hints(p.subject for p in self.of_kind(Kind.UNSAFE) if p.subject)
        env = [p for p in self.of_kind(Kind.ENVIRONMENT) if p.subject and p.expected]
        differ = sorted({p.subject for p in env if p.found is not None and p.subject})
        if differ:
            rules = {name: "none" for name in differ}
            hints.append(Hint("to accept the versions found (the behaviour check still runs on load)",
                              api=f"policy=bundler.Policy('default', {rules!r})",
                              cli=" ".join(f"--allow {name} none" for name in differ)))
        tested = self._tested_hint(env)
        if tested is not None:
            hints.append(tested)
        if any(p.subject == CODE_PACKAGE for p in self.problems):
            hints.append(Hint("only if you trust the bundle's code (or sign bundles and load with the key)",
                              api="trust_code=True", cli="--trust-code"))
        if any(p.found is None for p in env):
            hints.append(Hint("to install the pinned versions of what is missing",
                              api="pip install -r the bundle's requirements.txt (Report.manifest.requirements)",
                              cli=f"bundler requirements {self.path} > requirements.txt && "
                                  "pip install -r requirements.txt"))
        return hints

    def _tested_hint(self, env: list[Finding]) -> Hint | None:
        """On an environment refusal: the environments the bundle's record shows loading and predicting the same,
        which the ``tested`` policy would accept (with the record trusted), so the user knows what to pin."""
        from bundler.environment.tested import identical_labels

        use = self.tested
        if use is None or not env:
            return None
        labels = identical_labels(use.record, use.pinned)
        if not labels:
            return None
        if use.would_admit is not None:  # this very environment is in the record: say how to let it count
            text = f"the bundle's record shows this environment tested identical ({use.would_admit.label(use.pinned)})"
            flags = [("policy='tested'", "--policy tested")] if not use.policy_tested else []
            flags += [] if use.trusted else [("trust_record=True", "--trust-record")]
            return Hint(text, api=", ".join(a for a, _ in flags), cli=" ".join(c for _, c in flags))
        text = f"tested identical under {', '.join(labels)}"
        if not use.trusted:
            text += f" (says the bundle's record, {use.why})"
        api, cli = "pin one of those", "pin one of those"
        if not use.policy_tested:
            api, cli = api + " and verify with policy='tested'", cli + " and use --policy tested"
        if not use.trusted:
            api, cli = api + " and trust_record=True", cli + " and --trust-record"
        return Hint(text, api=api, cli=cli)

    def error(self) -> BundleError | None:
        """The exception for the most serious kind of problem found, carrying every problem line and the hints."""
        kind = most_serious(self.problems)
        if kind is None:
            return None
        ordered = sorted(self.problems, key=lambda p: p.kind.rank)  # the deciding problem's line first
        lines = [p.message for p in ordered]
        if kind is Kind.UNSAFE:
            offending = [p.subject for p in self.of_kind(Kind.UNSAFE) if p.subject]
            return UnsafeContent(lines[0], problems=lines, offending=offending, hints=self.hints())
        return error_for(kind)(lines[0], problems=lines, hints=self.hints())

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
            "problems": [p.to_dict() for p in self.problems],
            "notes": self.notes,
            "model_class": m.model_class if m else None,
            "serializer": m.serializer if m else None,
            "created": m.created if m else None,
            "globals": self.globals,
            "suggested_trust_profiles": self.suggested_profiles,
            "tested": None if self.tested is None else self.tested.to_dict(),
            "hints": [{"text": h.text, "api": h.api, "cli": h.cli} for h in self.hints()],
        }
