"""Requirements inference: the distributions a model needs at run time, pinned at their installed versions.

The goal is that ``pip install -r requirements.txt`` (plus bundler) is enough to load and run the model. The roots:

* the modules the payload's pickle globals name;
* the modules defining the *bases* of every class among them (their MRO, read from classes already in memory): a
  subclass of a scikit-learn estimator from another package needs scikit-learn although the payload never names it;
* distributions the caller knows the model needs: the serializer's own package (joblib, skops), pandas for a model
  fitted on or sampled with a DataFrame.

Each module maps to an installed distribution, and that distribution's runtime dependencies (Requires-Dist, with
markers evaluated for this interpreter) are added transitively. Nothing is imported or loaded in a subprocess
(MLflow does that, and pays seconds for it). The requirement and marker parsers of ``packaging`` are imported only
when packing.

User pins (``requirements=``, ``--requirement``, ``-r FILE``) must say what is installed: a pin that contradicts the
installed version, or names a package that is not installed, would make a bundle that fails ``verify`` where it was
made. Such a pin is refused unless it is *forced* (``force_requirements=``, ``--force-requirement``), for the
deliberate case of pinning for a deploy image what this environment does not have.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bundler.environment.capture import InstalledVersions, dist_info_folders, normalize
from bundler.environment.policy import CONTAINER_LIBRARIES
from bundler.environment.runtime import base_modules
from bundler.environment.versions import parse_version
from bundler.errors import Hint, UsageError

__all__ = [
    "Inferred",
    "UserPins",
    "distributions_providing",
    "infer_requirements",
    "installed_fingerprint",
    "modules_of",
    "parse_pins",
    "read_requirements_file",
    "requirement_lines",
    "user_pins",
]


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


def infer_requirements(globals_: Iterable[str], constructed: Iterable[str] = (), *,
                       extra: Iterable[str] = ()) -> Inferred:
    """Map the payload's modules (and the modules of their classes' bases) to distributions and pin their runtime
    dependency closure at installed versions.

    ``constructed`` are the globals called while unpickling; the distributions providing them or their bases (other
    than container libraries like numpy) are the model *frameworks* the ``default`` policy holds exact. ``extra``
    names distributions to pin as well (with their closure) when they are installed.
    """
    globals_ = list(globals_)
    constructed = list(constructed)
    named = {m for m in modules_of(globals_) if not _is_stdlib(m)}
    bases = {m for m in base_modules(globals_) if not _is_stdlib(m)}
    called = {m for m in modules_of(constructed) | base_modules(constructed) if not _is_stdlib(m)}
    module_to_dists = distributions_providing(named | bases | called)
    result = Inferred()
    roots: list[str] = []
    for module in sorted(named | bases):
        dists = module_to_dists.get(module)
        if not dists:
            if module in named:
                result.unmapped.append(module)
            continue
        roots.extend(normalize(d) for d in dists)
    roots.extend(normalize(d) for d in extra)
    frameworks = set()
    for module in called:
        for dist in module_to_dists.get(module, []):
            if normalize(dist) not in CONTAINER_LIBRARIES:
                frameworks.add(normalize(dist))
    closure = _dependency_closure(roots)
    result.pins = dict(sorted(closure.items()))
    result.frameworks = sorted(frameworks & set(closure))
    return result


def installed_fingerprint() -> tuple[object, ...]:
    """Every ``NAME-VERSION.dist-info`` folder on ``sys.path``, with its modification time (ns).

    Installing, upgrading or removing a distribution adds, renames or removes such a folder, and reinstalling one
    recreates it (a new mtime), so what was read from the installed metadata under an equal fingerprint is still
    true. (The mtimes of the ``sys.path`` directories themselves would change whenever a file is written next to
    a script, a bundle for instance.) Listing and stating the folders costs about a millisecond; reading the
    metadata, tens."""
    out: list[tuple[str, int]] = []
    for _, _, folder in dist_info_folders():
        try:
            out.append((folder, os.stat(folder).st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


def distributions_providing(modules: Iterable[str]) -> dict[str, list[str]]:
    """Which installed distributions provide each top-level module (``top_level.txt``, else the RECORD).

    This answers ``importlib.metadata.packages_distributions()`` for just the modules a payload names: that function
    parses every file list of every installed distribution (about 100 ms here, most of a small model's pack time),
    while a text search of the raw RECORD files costs a few milliseconds. The answer is remembered for as long as
    the installed set is unchanged (``installed_fingerprint``): a process that packs many models reads the
    metadata once (issue 11: tens of milliseconds of every pack).
    """
    wanted = tuple(sorted(set(modules)))
    if not wanted:
        return {}
    found = _providing(installed_fingerprint(), wanted)
    return {module: list(dists) for module, dists in found.items()}


@functools.lru_cache(maxsize=32)
def _providing(fingerprint: tuple[object, ...],  # noqa: ARG001 - the lru_cache key: installed metadata changed
               wanted: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    import re

    patterns = {m: re.compile(rf"^{re.escape(m)}(/|\.py,|(\.[^/,\n]*)?\.(so|pyd),)", re.MULTILINE) for m in wanted}
    result: dict[str, list[str]] = {}
    for dist, _, folder in dist_info_folders():
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
    return {module: tuple(dists) for module, dists in result.items()}


def dependency_closure(roots: Iterable[str]) -> dict[str, str]:
    """``roots`` and their runtime dependencies (Requires-Dist, markers evaluated here, extras ignored), each at its
    installed version; roots that are not installed are left out."""
    return _dependency_closure(roots)


def _dependency_closure(roots: Iterable[str]) -> dict[str, str]:
    """See ``dependency_closure``; remembered while the installed set is unchanged (``installed_fingerprint``)."""
    return dict(_closure(installed_fingerprint(), tuple(dict.fromkeys(roots))))


@functools.lru_cache(maxsize=32)
def _closure(fingerprint: tuple[object, ...],  # noqa: ARG001 - the lru_cache key: installed metadata changed
             roots: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
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
    return tuple(pinned.items())


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
        if parse_version(specs[0].version) is None:
            bad.append(f"requirement {line!r} has an invalid version")
            continue
        pins[normalize(req.name)] = specs[0].version
    if bad:
        raise UsageError(bad[0], problems=bad)
    return pins


def requirement_lines(pins: Mapping[str, str]) -> list[str]:
    """``name==version`` lines in the stable order of ``pins``."""
    return [f"{name}=={version}" for name, version in pins.items()]


@dataclass
class UserPins:
    """Pins a user asked for: ``checked`` agree with this environment, ``forced`` were taken as given."""

    checked: dict[str, str] = field(default_factory=dict)
    forced: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def user_pins(requirements: Iterable[str] = (), forced: Iterable[str] = ()) -> UserPins:
    """Parse and check user pins; every problem is reported at once (a UsageError with a hint to force them).

    A pin must name an installed distribution at its installed version (``1.5`` and ``1.5.0`` are the same version).
    ``forced`` pins are taken as given; each one that disagrees with this environment is listed in ``notes``.
    """
    checked = parse_pins(requirements)
    forced_pins = parse_pins(forced)
    both = sorted(set(checked) & set(forced_pins))
    if both:
        raise UsageError(f"{both[0]} is both pinned and force-pinned; give it once",
                         problems=[f"{n} is both pinned and force-pinned; give it once" for n in both])
    installed = InstalledVersions()
    bad: list[str] = []
    refused: list[str] = []
    for name, version in checked.items():
        problem = _disagreement(name, version, installed[name])
        if problem:
            bad.append(f"requirement {name}=={version}: {problem}")
            refused.append(f"{name}=={version}")
    if bad:
        raise UsageError(bad[0], problems=bad, hints=[Hint(
            "pack where these versions are installed, or pin them anyway (the bundle then fails verify here)",
            api=f"force_requirements={refused!r}", cli=" ".join(f"--force-requirement {p}" for p in refused))])
    notes = []
    for name, version in forced_pins.items():
        problem = _disagreement(name, version, installed[name])
        if problem:
            notes.append(f"forced pin {name}=={version}: {problem}; verify and load refuse it here unless the "
                         "policy allows it")
    return UserPins(checked=checked, forced=forced_pins, notes=notes)


def _disagreement(name: str, version: str, have: str | None) -> str | None:
    if have is None:
        return f"{name} is not installed in this environment"
    parsed_have, parsed_pin = parse_version(have), parse_version(version)
    same = have == version if parsed_have is None or parsed_pin is None else parsed_have == parsed_pin
    if same:
        return None
    return f"the installed {name} is {have}"


def read_requirements_file(path: str | os.PathLike[str]) -> list[str]:
    """The pins of a requirements file, read as pip reads it: comments, continuations, ``-r`` includes, hashes and
    environment markers (a line whose marker is false here is skipped, as pip skips it). Only exact pins are
    accepted: an editable install, a direct URL or a range has no version to pin, and every such line is reported
    at once (a UsageError)."""
    from pathlib import Path

    from bundler.environment.targets import load_target

    target = load_target(Path(path))
    if target.kind != "requirements":
        raise UsageError(f"{path}: a lock file, not a requirements file (name==version lines, as pip reads them)")
    if target.unpinnable:
        raise UsageError(f"{path}: {len(target.unpinnable)} line(s) cannot be pinned", problems=target.unpinnable)
    return requirement_lines(target.packages)
