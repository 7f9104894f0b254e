"""Plain exact pins: the only requirement lines a bundle may carry.

Why so strict: ``requirements.txt`` and the manifest's ``requirements`` are handed to pip (``pip install -r``,
``bundler matrix``), and pip treats a requirement line as far more than a name and a version. ``name @ file:///...``
or ``@ https://...`` (a direct reference) makes pip fetch and build code from there; ``--index-url ...`` (an option)
changes where everything comes from; ``name[extra]`` pulls in more packages; ``; marker`` makes a pin silently
vanish. A manifest is only checksummed by default, so anyone can write such lines. docs/design.md therefore allows only
``name==version`` with a PEP 503 normalized name and a PEP 440 version, consistent with ``environment.packages``;
anything else is an integrity failure (exit 3) whatever the policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bundler.environment.versions import parse_version

__all__ = ["Pin", "parse_plain_pin", "pin_problems"]

# A PEP 503 normalized name is also a valid PEP 508 name: lowercase letters and digits in runs joined by single "-".
# (packaging.utils.is_normalized_name says the same, but importing packaging.utils pulls in packaging.tags, a
# measurable part of a cold `bundler verify`.)
_NORMALIZED_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Pin:
    """``name==version`` with a normalized name and a valid version: the one form safe to hand to an installer."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def _check_version(version: str) -> str | None:
    if not version or version.strip() != version or "*" in version:
        return "not an exact version"
    if parse_version(version) is None:
        return "not a PEP 440 version"
    return None


def parse_plain_pin(line: str) -> Pin:
    """Parse one requirement line that must be exactly ``name==version``; ``ValueError`` says why it is not."""
    name, sep, version = line.partition("==")
    if not sep:
        raise ValueError("not of the form name==version")
    if not _NORMALIZED_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a PEP 503 normalized distribution name (a URL, path, option, extra or "
                         "marker is never allowed)")
    why = _check_version(version)
    if why is not None:
        raise ValueError(f"version {version!r} is {why}")
    return Pin(name, version)


def pin_problems(requirements: Iterable[str], packages: Mapping[str, str]) -> list[str]:
    """Every way ``requirements`` fall short of plain exact pins consistent with ``packages`` (empty when fine)."""
    problems: list[str] = []
    pinned: dict[str, str] = {}
    for line in requirements:
        try:
            pin = parse_plain_pin(line)
        except ValueError as exc:
            problems.append(f"manifest: requirement {line!r} is not a plain exact pin: {exc}")
            continue
        if pin.name in pinned:
            problems.append(f"manifest: {pin.name} is pinned more than once")
        pinned[pin.name] = pin.version
    for name, version in packages.items():
        if not _NORMALIZED_NAME.fullmatch(name):
            problems.append(f"manifest: environment.packages name {name!r} is not a PEP 503 normalized name")
        elif _check_version(version) is not None:
            problems.append(f"manifest: environment.packages version {version!r} of {name} is "
                            f"{_check_version(version)}")
        elif name in pinned and pinned[name] != version:
            problems.append(f"manifest: requirement {name}=={pinned[name]} disagrees with environment.packages "
                            f"({name} {version})")
    for name in sorted(set(pinned) - set(packages)):
        problems.append(f"manifest: requirement {name}=={pinned[name]} is not in environment.packages")
    for name in sorted(set(packages) - set(pinned)):
        if _NORMALIZED_NAME.fullmatch(name):
            problems.append(f"manifest: environment.packages {name} has no requirement line")
    return problems
