"""One configuration object, the same for the command line and the Python API: :class:`Settings`.

The library never reads a configuration file by itself: a model that loads in the project folder must load the same
way anywhere else, so ``pack``, ``verify`` and ``load`` take ``settings=`` (default: no configuration at all) and use
it alike. ``[tool.bundler]`` in ``pyproject.toml`` becomes a ``Settings`` only when someone asks for it: the CLI (the
nearest ``pyproject.toml`` at or above the working directory, unless ``--config FILE`` or ``--no-config``), or a
caller with :meth:`Settings.from_pyproject`.

```toml
[tool.bundler.policy]
"*" = "default"               # the base policy: exact | minor | major | none | default
numpy = "minor"               # a rule for one package ...
scikit-learn = ">=1.5,<1.8"   # ... or a PEP 440 specifier the installed version must satisfy

[tool.bundler]
trust = ["mypackage.models.MyEstimator"]   # extra globals pack (of a file), verify and load accept
trust-profiles = ["xgboost"]               # trust profiles of third-party model libraries
```

Explicit choices win over the file, entirely (:meth:`Settings.merged`): a base policy given on the command line
(``--policy``) or in the call (``policy=``) replaces the file's whole policy table, per-package rules from the file
included, so ``--policy exact`` means exact for every package; ``--allow NAME RULE`` replaces the file's rule for
that one package. Trusted names and profiles are grants, so ``--trust``/``trust=`` and
``--trust-profile``/``trust_profiles=`` add to the file's lists.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundler.errors import UsageError

if TYPE_CHECKING:
    from bundler.environment.policy import Policy

__all__ = ["KNOWN_KEYS", "Settings", "find_pyproject", "resolve"]

#: Keys ``[tool.bundler]`` may hold; anything else is a mistake worth reporting (a typo would silently do nothing).
KNOWN_KEYS = frozenset({"policy", "trust", "trust-profiles"})


@dataclass(frozen=True)
class Settings:
    """What a project decided once: the environment policy and the globals it trusts.

    ``policy`` is the base policy (``None``: ``default``), ``rules`` the per-package rules (normalized names to
    ``exact``/``minor``/``major``/``none`` or a specifier), ``trust`` the extra globals pack, verify and load accept,
    ``trust_profiles`` the third-party libraries whose profiles apply (``bundler.safety.profiles``). ``source`` is
    the file the settings came from, for messages. ``Settings()`` is "no configuration".
    """

    policy: str | None = None
    rules: Mapping[str, str] = field(default_factory=dict)
    trust: tuple[str, ...] = ()
    source: Path | None = None
    trust_profiles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.to_policy()  # a bad rule is reported when the settings are made, not at first use
        if self.trust_profiles:
            from bundler.safety.profiles import profile

            for name in self.trust_profiles:
                profile(name)  # an unknown profile is a usage error now, not a silent no-op later

    @classmethod
    def from_pyproject(cls, path: str | os.PathLike[str]) -> Settings:
        """Read ``[tool.bundler]`` from ``path``: a ``pyproject.toml`` file, or a folder, meaning the nearest
        ``pyproject.toml`` at or above it (none found: ``Settings()``). A missing file or a malformed section is a
        :class:`UsageError` naming every problem."""
        p = Path(path)
        if p.is_dir():
            found = find_pyproject(p)
            return cls() if found is None else cls._read(found)
        if not p.exists():
            raise UsageError(f"{p}: no such file")
        return cls._read(p)

    @classmethod
    def discover(cls, start: str | os.PathLike[str] | None = None) -> Settings:
        """What the command line uses: the nearest ``pyproject.toml`` at or above ``start`` (default: the working
        directory)."""
        return cls.from_pyproject(Path.cwd() if start is None else Path(start))

    @classmethod
    def _read(cls, source: Path) -> Settings:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised on 3.10 only
            import tomli as tomllib

        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{source}: cannot read ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{source}: not valid TOML ({exc})") from None
        tool = data.get("tool", {})
        section: Any = tool.get("bundler", {}) if isinstance(tool, dict) else {}
        if not isinstance(section, dict):
            raise UsageError(f"{source}: [tool.bundler] must be a table")
        problems: list[str] = []
        unknown = set(section) - KNOWN_KEYS
        if unknown:
            problems.append(f"{source}: unknown keys in [tool.bundler]: {', '.join(sorted(unknown))}")
        policy_table = section.get("policy", {})
        base: str | None = None
        rules: dict[str, str] = {}
        if not isinstance(policy_table, dict):
            problems.append(f"{source}: [tool.bundler.policy] must be a table")
        else:
            for key, value in policy_table.items():
                if not isinstance(value, str):
                    problems.append(f"{source}: [tool.bundler.policy] {key!r} must be a string")
                elif key == "*":
                    base = value
                else:
                    rules[key] = value
        trust = section.get("trust", [])
        if not isinstance(trust, list) or not all(isinstance(t, str) for t in trust):
            problems.append(f"{source}: [tool.bundler] trust must be a list of strings")
            trust = []
        profiles = section.get("trust-profiles", [])
        if not isinstance(profiles, list) or not all(isinstance(t, str) for t in profiles):
            problems.append(f"{source}: [tool.bundler] trust-profiles must be a list of strings")
            profiles = []
        if problems:
            raise UsageError(problems[0], problems=problems)
        try:
            return cls(policy=base, rules=_normalized(rules), trust=tuple(trust), source=source,
                       trust_profiles=tuple(profiles))
        except UsageError as exc:
            raise UsageError(f"{source}: {exc.problems[0]}",
                             problems=[f"{source}: {line}" for line in exc.problems]) from None

    def merged(self, *, policy: Policy | str | None = None, allow: Mapping[str, str] | None = None,
               trust: Iterable[str] = (), trust_profiles: Iterable[str] = ()) -> Settings:
        """These settings with explicit choices (flags or call arguments) on top; see the module docstring.

        ``policy`` replaces the base policy *and* every per-package rule (a ``Policy`` object brings its own
        rules); ``allow`` replaces the rules of the packages it names; ``trust`` and ``trust_profiles`` add.
        """
        from bundler.environment.policy import Policy

        base, rules = self.policy, dict(self.rules)
        if isinstance(policy, Policy):
            base, rules = policy.base, dict(policy.overrides)
        elif policy is not None:
            base, rules = policy, {}
        rules.update(_normalized(allow or {}))
        extra = tuple(t for t in trust if t not in self.trust)
        profiles = self.trust_profiles + tuple(p for p in trust_profiles if p not in self.trust_profiles)
        return Settings(policy=base, rules=rules, trust=self.trust + extra, source=self.source,
                        trust_profiles=profiles)

    def to_policy(self) -> Policy:
        """The environment policy these settings describe."""
        from bundler.environment.policy import Policy

        return Policy.of(self.policy, self.rules)


def resolve(settings: Settings | None, *, policy: Policy | str | None = None,
            trust: Iterable[str] = (), trust_profiles: Iterable[str] = ()) -> Settings:
    """The settings a call runs with: ``settings`` (default: none at all; the library reads no file) with the call's
    own ``policy=``, ``trust=`` and ``trust_profiles=`` on top, exactly as command-line flags go on top of
    ``[tool.bundler]``."""
    if settings is not None and not isinstance(settings, Settings):
        raise UsageError(f"settings must be a bundler.Settings, not {type(settings).__name__}")
    for name, given in (("trust", trust), ("trust_profiles", trust_profiles)):
        if isinstance(given, str):  # iterating it would trust its letters
            raise UsageError(f"{name} must be a list of names, not the string {given!r}")
    return (settings or Settings()).merged(policy=policy, trust=trust, trust_profiles=trust_profiles)


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the working directory), or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _normalized(rules: Mapping[str, str]) -> dict[str, str]:
    from bundler.environment.capture import normalize

    return {normalize(k): v for k, v in rules.items()}
