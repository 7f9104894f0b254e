"""The running environment: interpreter facts and installed distribution versions, read cheaply.

``bundler verify`` checks a manifest's pins against what is installed; reading ``*.dist-info`` folder names is a few
directory listings, while ``importlib.metadata`` parses every METADATA file. Only the standard library is imported.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterator, Mapping

__all__ = [
    "InstalledVersions",
    "capture_interpreter",
    "dist_info_folders",
    "installed_distributions",
    "installed_version",
    "normalize",
]

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
    for name, version, _ in dist_info_folders():
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

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)



def dist_info_folders() -> list[tuple[str, str, str]]:
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


