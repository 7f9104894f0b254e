"""The environment: capture it, infer pinned requirements from a payload's globals, compare under a policy.

Requirements are inferred *statically*: the payload's pickle globals name the modules it needs; each module maps to
an installed distribution (``importlib.metadata``), and that distribution's runtime dependencies (Requires-Dist, with
markers evaluated for this interpreter) are added transitively. Nothing is re-imported or re-loaded in a subprocess
(MLflow does that, and pays seconds for it).

Only ``packaging.version``/``specifiers`` are imported at module level: ``verify`` needs them, while the requirement
and marker parsers are only needed when packing.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from bundler.errors import UsageError

RULES = ("exact", "minor", "major", "none")
POLICIES = (*RULES, "default")
#: Distributions whose classes a payload reconstructs but which are data containers rather than model code: under the
#: ``default`` policy they are not held to an exact version.
CONTAINER_LIBRARIES = frozenset({"numpy", "scipy", "pandas", "joblib", "pyarrow", "threadpoolctl"})
#: Always held exact under ``default``, whether or not the payload names them (it is what this tool is about).
ALWAYS_FRAMEWORKS = frozenset({"scikit-learn"})


_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    # PEP 503's own definition; packaging.utils.canonicalize_name is the same, but importing it pulls in
    # packaging.tags, a measurable part of a cold `bundler verify`.
    return _SEPARATORS.sub("-", name).lower()


def capture_interpreter() -> dict[str, str]:
    """Python version and implementation, platform and machine, as the manifest records them."""
    return {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "machine": platform.machine(),
    }


def installed_distributions() -> dict[str, str]:
    """Every installed distribution (normalized name -> version); the first one on sys.path wins, as for imports."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize(name), dist.version)
    return dict(sorted(found.items()))


def installed_version(name: str) -> str | None:
    """The installed version of one distribution, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _dist_info_index() -> dict[str, str]:
    """Normalized name -> version read from ``NAME-VERSION.dist-info`` folder names on ``sys.path`` (first wins).

    Reading folder names is a few directory listings; ``importlib.metadata`` parses every METADATA file and costs
    tens of milliseconds at the start of ``bundler verify``. Names not found here fall back to ``importlib.metadata``
    (egg-info installs and the like).
    """
    index: dict[str, str] = {}
    for name, version, _ in _dist_info_folders():
        if version:
            index.setdefault(name, version)
    return index


class InstalledVersions(Mapping[str, "str | None"]):
    """Lazy view of installed versions: only the distributions asked for are looked up (fast environment checks)."""

    def __init__(self) -> None:
        self._cache: dict[str, str | None] = {}
        self._index: dict[str, str] | None = None

    def __getitem__(self, name: str) -> str | None:
        if name not in self._cache:
            if self._index is None:
                self._index = _dist_info_index()
            found = self._index.get(normalize(name))
            self._cache[name] = found if found is not None else installed_version(name)
        return self._cache[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)


# -- requirements inference -------------------------------------------------------------------------------------
def modules_of(globals_: Iterable[str]) -> set[str]:
    """Top-level module names referenced by ``module.qualname`` globals (computed ``<...>`` entries are skipped)."""
    tops: set[str] = set()
    for g in globals_:
        if g.startswith("<") or "." not in g:
            continue
        tops.add(g.split(".", 1)[0])
    return tops


def _is_stdlib(module: str) -> bool:
    return module in sys.stdlib_module_names or module in sys.builtin_module_names or module == "__builtin__"


@dataclass
class Inferred:
    """The result of requirements inference: pins in a stable order, and the modules no distribution provides."""

    pins: dict[str, str] = field(default_factory=dict)
    frameworks: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def infer_requirements(globals_: Iterable[str], constructed: Iterable[str] = ()) -> Inferred:
    """Map the payload's modules to distributions and pin their runtime dependency closure at installed versions.

    ``constructed`` are the globals called while unpickling; the distributions providing them (other than container
    libraries like numpy) are the model *frameworks* the ``default`` policy holds exact.
    """
    wanted = {m for m in modules_of(globals_) | modules_of(constructed) if not _is_stdlib(m)}
    module_to_dists = distributions_providing(wanted)
    result = Inferred()
    roots: list[str] = []
    for module in sorted(modules_of(globals_)):
        if _is_stdlib(module):
            continue
        dists = module_to_dists.get(module)
        if not dists:
            result.unmapped.append(module)
            continue
        roots.extend(normalize(d) for d in dists)
    frameworks = set()
    for module in modules_of(constructed):
        for dist in module_to_dists.get(module, []):
            if normalize(dist) not in CONTAINER_LIBRARIES:
                frameworks.add(normalize(dist))
    closure = _dependency_closure(roots)
    result.pins = dict(sorted(closure.items()))
    result.frameworks = sorted(frameworks & set(closure))
    return result


def _dist_info_folders() -> list[tuple[str, str, str]]:
    """(normalized name, version, folder path) of every ``NAME-VERSION.dist-info`` folder on sys.path, in order."""
    found: list[tuple[str, str, str]] = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                name, _, version = folder[: -len(".dist-info")].partition("-")
                found.append((normalize(name), version, os.path.join(entry or ".", folder)))
    return found


def distributions_providing(modules: Iterable[str]) -> dict[str, list[str]]:
    """Which installed distributions provide each top-level module (``top_level.txt``, else the RECORD).

    This answers ``importlib.metadata.packages_distributions()`` for just the modules a payload names: that function
    parses every file list of every installed distribution (about 100 ms here, most of a small model's pack time),
    while a text search of the raw RECORD files costs a few milliseconds.
    """
    import re

    wanted = sorted(set(modules))
    if not wanted:
        return {}
    patterns = {m: re.compile(rf"^{re.escape(m)}(/|\.py,|(\.[^/,\n]*)?\.(so|pyd),)", re.MULTILINE) for m in wanted}
    result: dict[str, list[str]] = {}
    for dist, _, folder in _dist_info_folders():
        try:
            with open(os.path.join(folder, "top_level.txt"), encoding="utf-8") as fh:
                tops = set(fh.read().split())
        except OSError:
            tops = None
        if tops is not None:
            hits = [m for m in wanted if m in tops]
        else:
            try:
                with open(os.path.join(folder, "RECORD"), encoding="utf-8") as fh:
                    record = fh.read()
            except OSError:
                continue
            hits = [m for m in wanted if patterns[m].search(record)]
        for module in hits:
            if dist not in result.setdefault(module, []):
                result[module].append(dist)
    return result


def _dependency_closure(roots: Iterable[str]) -> dict[str, str]:
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement

    env: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    env["extra"] = ""
    pinned: dict[str, str] = {}
    queue = list(dict.fromkeys(roots))
    while queue:
        name = queue.pop(0)
        if name in pinned:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pinned[name] = dist.version
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            queue.append(normalize(req.name))
    return pinned



def parse_pins(lines: Iterable[str]) -> dict[str, str]:
    """Parse user ``name==version`` pins; every malformed one is reported at once (a UsageError)."""
    from packaging.requirements import InvalidRequirement, Requirement

    pins: dict[str, str] = {}
    bad: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            bad.append(f"requirement {line!r} is not valid: {exc}")
            continue
        specs = list(req.specifier)
        exact = len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version
        if req.url or req.marker or req.extras or not exact:
            bad.append(f"requirement {line!r} must be an exact pin 'name==version'")
            continue
        try:
            Version(specs[0].version)
        except InvalidVersion:
            bad.append(f"requirement {line!r} has an invalid version")
            continue
        pins[normalize(req.name)] = specs[0].version
    if bad:
        raise UsageError(bad[0], problems=bad)
    return pins


def requirement_lines(pins: Mapping[str, str]) -> list[str]:
    """``name==version`` lines in the stable order of ``pins``."""
    return [f"{name}=={version}" for name, version in pins.items()]


# -- policy ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """How strictly installed versions must match the manifest.

    ``base`` is one of exact, minor, major, none, default; ``overrides`` maps a normalized package name to a rule
    (exact/minor/major/none) or a PEP 440 specifier string that the installed version must satisfy.
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
        if self.base != "default":
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
    try:
        return Version(version).release
    except InvalidVersion:
        return None


def accepts(rule: str, expected: str, found: str) -> bool:
    """Whether ``found`` satisfies ``rule`` relative to the pinned ``expected`` version."""
    if rule == "none":
        return True
    if rule == "exact":
        try:
            return Version(found) == Version(expected)
        except InvalidVersion:
            return found == expected
    if rule in ("minor", "major"):
        want, have = _release(expected), _release(found)
        if want is None or have is None:
            return found == expected
        width = 2 if rule == "minor" else 1
        pad = (0, 0)
        return (want + pad)[:width] == (have + pad)[:width]
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(rule).contains(found, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
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
