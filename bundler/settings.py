"""Defaults from ``[tool.bundler]`` in ``pyproject.toml``.

The nearest ``pyproject.toml`` at or above the working directory is read. Recognized keys:

```toml
[tool.bundler.policy]
"*" = "default"          # the base policy: exact | minor | major | none | default
numpy = "minor"          # a rule for one package ...
scikit-learn = ">=1.5,<1.8"   # ... or a PEP 440 specifier the installed version must satisfy

[tool.bundler]
trust = ["mypackage.models.MyEstimator"]   # extra globals a loader accepts
trust-profiles = ["xgboost"]               # trust profiles of third-party model libraries
```
Command-line flags override the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundler.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Config:
    """The settings found, and where (for error messages)."""

    policy: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    trust: tuple[str, ...] = ()
    source: Path | None = None
    trust_profiles: tuple[str, ...] = ()


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None = None, *, search: bool = True) -> Config:
    """Read ``[tool.bundler]``; a malformed file or section is a UsageError naming every problem."""
    source = path if path is not None else (find_pyproject() if search else None)
    if source is None:
        return Config()
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML ({exc})") from None
    section: Any = data.get("tool", {}).get("bundler", {})
    if not isinstance(section, dict):
        raise UsageError(f"{source}: [tool.bundler] must be a table")
    problems: list[str] = []
    unknown = set(section) - {"policy", "trust", "trust-profiles"}
    if unknown:
        problems.append(f"{source}: unknown keys in [tool.bundler]: {', '.join(sorted(unknown))}")
    policy_table = section.get("policy", {})
    base: str | None = None
    overrides: dict[str, str] = {}
    if not isinstance(policy_table, dict):
        problems.append(f"{source}: [tool.bundler.policy] must be a table")
    else:
        for key, value in policy_table.items():
            if not isinstance(value, str):
                problems.append(f"{source}: [tool.bundler.policy] {key!r} must be a string")
            elif key == "*":
                base = value
            else:
                overrides[key] = value
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
    return Config(policy=base, overrides=overrides, trust=tuple(trust), source=source,
                  trust_profiles=tuple(profiles))
