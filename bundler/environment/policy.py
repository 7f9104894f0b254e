"""The environment policy: which installed versions a bundle's pins accept (exact, minor, major, none, default,
tested).

``tested`` is ``default`` plus evidence: it also accepts an environment that the bundle's own tested-compatibility
record (``bundler.environment.tested``) shows loading and predicting the same. The rules here are ``default``'s;
the record is consulted by the verify pipeline, which alone knows whether the record is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bundler.environment.capture import normalize
from bundler.environment.versions import parse_version
from bundler.errors import UsageError

__all__ = [
    "ALWAYS_FRAMEWORKS",
    "CONTAINER_LIBRARIES",
    "POLICIES",
    "RULES",
    "Mismatch",
    "Policy",
    "accepts",
    "compare",
    "differences",
]

RULES = ("exact", "minor", "major", "none")
POLICIES = (*RULES, "default", "tested")
#: Distributions whose classes a payload reconstructs but which are data containers rather than model code: under the
#: ``default`` policy they are not held to an exact version.
CONTAINER_LIBRARIES = frozenset({"numpy", "scipy", "pandas", "joblib", "pyarrow", "threadpoolctl"})
#: Always held exact under ``default``, whether or not the payload names them (it is what this tool is about).
ALWAYS_FRAMEWORKS = frozenset({"scikit-learn"})



@dataclass(frozen=True)
class Policy:
    """How strictly installed versions must match the manifest.

    ``base`` is one of exact, minor, major, none, default, tested (whose rules are default's); ``overrides`` maps a
    normalized package name to a rule (exact/minor/major/none) or a PEP 440 specifier string that the installed
    version must satisfy.
    """

    base: str = "default"
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.base not in POLICIES:
            problems.append(f"unknown policy {self.base!r} (choose from {', '.join(POLICIES)})")
        for name, rule in self.overrides.items():
            if rule not in RULES:
                from packaging.specifiers import InvalidSpecifier, SpecifierSet

                try:
                    SpecifierSet(rule)
                except InvalidSpecifier:
                    problems.append(f"policy for {name!r}: {rule!r} is neither a rule ({', '.join(RULES)}) "
                                    "nor a version specifier")
        if problems:
            raise UsageError(problems[0], problems=problems)

    @classmethod
    def of(cls, value: Policy | str | None, overrides: Mapping[str, str] | None = None) -> Policy:
        if isinstance(value, Policy):
            return value if not overrides else cls(value.base, {**value.overrides, **_norm_keys(overrides)})
        return cls(value or "default", _norm_keys(overrides or {}))

    def rule_for(self, name: str, frameworks: Iterable[str]) -> str:
        if name in self.overrides:
            return self.overrides[name]
        if self.base not in ("default", "tested"):
            return self.base
        if name in ALWAYS_FRAMEWORKS or name in frameworks:
            return "exact"
        if name == "numpy":
            return "major"
        return "minor"


def _norm_keys(overrides: Mapping[str, str]) -> dict[str, str]:
    return {normalize(k): v for k, v in overrides.items()}


@dataclass(frozen=True)
class Mismatch:
    """One package whose installed version the policy does not accept (or that is missing)."""

    package: str
    expected: str
    found: str | None
    rule: str

    @property
    def message(self) -> str:
        if self.found is None:
            return f"{self.package}: bundle pins {self.expected}, not installed"
        return f"{self.package}: bundle pins {self.expected}, found {self.found} (policy {self.rule})"


def _release(version: str) -> tuple[int, ...] | None:
    parsed = parse_version(version)
    return None if parsed is None else parsed.release


def accepts(rule: str, expected: str, found: str) -> bool:
    """Whether ``found`` satisfies ``rule`` relative to the pinned ``expected`` version."""
    if rule == "none":
        return True
    if rule == "exact":
        found_v, expected_v = parse_version(found), parse_version(expected)
        if found_v is None or expected_v is None:
            return found == expected
        return found_v == expected_v
    if rule in ("minor", "major"):
        want, have = _release(expected), _release(found)
        if want is None or have is None:
            return found == expected
        width = 2 if rule == "minor" else 1
        pad = (0, 0)
        return (want + pad)[:width] == (have + pad)[:width]
    from packaging.specifiers import SpecifierSet

    try:
        return SpecifierSet(rule).contains(found, prereleases=True)
    except ValueError:  # InvalidSpecifier, InvalidVersion, or a number over int()'s digit limit
        return False


def compare(expected: Mapping[str, str], installed: Mapping[str, str | None], policy: Policy,
            frameworks: Iterable[str] = ()) -> list[Mismatch]:
    """Every pinned package whose installed version the policy refuses. Under ``none`` nothing is refused."""
    fw = set(frameworks)
    out: list[Mismatch] = []
    for name, want in expected.items():
        rule = policy.rule_for(name, fw)
        have = installed.get(name)
        if rule == "none":
            continue
        if have is None or not accepts(rule, want, have):
            out.append(Mismatch(name, want, have, rule))
    return out


def differences(expected: Mapping[str, str], installed: Mapping[str, str | None]) -> list[Mismatch]:
    """Every pinned package whose installed version differs at all (what policy ``none`` still reports)."""
    return [Mismatch(n, v, installed.get(n), "none") for n, v in expected.items() if installed.get(n) != v]
