"""Target environments that are described, not installed: read them, and write the bundle's own pins as a lock file.

``bundler verify BUNDLE --against FILE`` answers "would this bundle be accepted *there*?" before anything is built or
deployed. FILE is what people already have at hand:

* a ``requirements.txt`` whose lines are ``name==version`` pins (hashes, markers and extras allowed);
* the output of ``pip freeze`` (the same, plus ``-e`` and ``name @ URL`` lines whose version cannot be known from the
  text: those are skipped with a note, never guessed);
* a PEP 751 ``pylock.toml`` (``[[packages]]`` with ``name`` and ``version``), read with :mod:`tomllib` (``tomli`` on
  Python 3.10).

A line that does not pin an exact version (``numpy>=1.26``, ``scikit-learn``) is an error: a range says nothing about
what will be installed, and silently picking a version would make the check lie. Every such line is reported at once.

The other direction, :func:`write_pylock`, turns a bundle's pins into a ``pylock.toml`` so a deploy image can be built
from exactly the versions the model was packed with. PEP 751 requires every package entry to name a source (wheels or
an sdist, each with a hash), so the writer records the files of each pinned release; by default they are looked up
on the package index (one request per pin). Offline callers pass ``files`` themselves.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from bundler.environment.requirements import parse_pins
from bundler.environment.versions import parse_version
from bundler.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Simple-repository index recorded for every package a generated lock file names.
PYPI_SIMPLE = "https://pypi.org/simple"
#: Largest index page (PEP 691 JSON listing of every file of a project) we read while writing a lock file.
MAX_INDEX_BYTES = 64 * 1024 * 1024
#: Largest requirements / lock file we agree to read; these are text files listing packages, not data.
MAX_TARGET_BYTES = 4 * 1024 * 1024
#: How deep ``-r other.txt`` includes may nest before we call it a loop.
MAX_INCLUDE_DEPTH = 8


@dataclass
class TargetEnvironment:
    """A described environment: pinned packages plus notes about lines that were skipped and why."""

    packages: dict[str, str]
    kind: str  # "requirements" or "pylock"
    source: str
    notes: list[str] = field(default_factory=list)
    requires_python: str | None = None
    #: Lines skipped because no version can be known from the text (editable installs, direct URLs): fine for
    #: describing a target, not for pinning a bundle's requirements (``read_requirements_file`` refuses them).
    unpinnable: list[str] = field(default_factory=list)


def read_target(path: str | Path) -> dict[str, str]:
    """Return ``{normalized name: version}`` for the environment described by ``path``.

    See :func:`load_target` for the accepted formats; notes about skipped lines are dropped here.
    Raises :class:`UsageError` for an unreadable file or for lines that do not pin an exact version.
    """
    return load_target(path).packages


def load_target(path: str | Path) -> TargetEnvironment:
    """Read a requirements file, a ``pip freeze`` output or a ``pylock.toml`` into a :class:`TargetEnvironment`.

    The format is chosen by the file name (``*.toml`` is a lock file) or, failing that, by content (a first key
    ``lock-version``).
    """
    path = Path(path)
    text = _read_text(path)
    name = path.name.lower()
    looks_like_lock = name.endswith(".toml") or text.lstrip().startswith("lock-version")
    if looks_like_lock:
        return parse_pylock(text, source=str(path))
    return parse_requirements(text, source=str(path), base_dir=path.parent)


def parse_requirements(text: str, *, source: str = "<requirements>", base_dir: Path | None = None,
                       _depth: int = 0) -> TargetEnvironment:
    """Parse requirements / ``pip freeze`` text. Every unpinned line is collected and reported in one UsageError."""
    packages: dict[str, str] = {}
    notes: list[str] = []
    errors: list[str] = []
    unpinnable: list[str] = []
    for lineno, line in _logical_lines(text):
        where = f"{source}:{lineno}"
        if line.startswith("-"):
            _option_line(line, where, base_dir, _depth, packages, notes, errors, unpinnable)
            continue
        requirement_text = _strip_trailing_options(line)
        try:
            req = Requirement(requirement_text)
        except InvalidRequirement as exc:
            errors.append(f"{where}: not a requirement: {line!r} ({exc})")
            continue
        if req.marker is not None and not _marker_applies(req.marker):
            notes.append(f"{where}: skipped {req.name} (marker {req.marker} is false for this interpreter)")
            continue
        if req.url:
            notes.append(f"{where}: skipped {req.name} @ {req.url}: a direct reference has no version to compare")
            unpinnable.append(f"{where}: {req.name} @ {req.url} is a direct reference, not a name==version pin")
            continue
        version = _pinned_version(req)
        if version is None:
            errors.append(f"{where}: {line!r} does not pin an exact version (use name==version)")
            continue
        _add(packages, canonicalize_name(req.name), version, where, errors)
    if errors:
        raise UsageError(f"{source}: {len(errors)} line(s) cannot describe a target environment", problems=errors)
    return TargetEnvironment(packages=packages, kind="requirements", source=source, notes=notes,
                             unpinnable=unpinnable)


def parse_pylock(text: str, *, source: str = "pylock.toml") -> TargetEnvironment:
    """Parse PEP 751 lock text: ``[[packages]]`` with ``name`` and ``version``.

    Packages whose ``marker`` is false for the running interpreter are skipped (a multi-platform lock lists the
    same name more than once); a package without ``version`` (a source tree) is skipped with a note.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from exc
    lock_version = data.get("lock-version")
    if not isinstance(lock_version, str):
        raise UsageError(f"{source}: no lock-version; not a PEP 751 lock file")
    parsed = parse_version(lock_version)
    if parsed is None:
        raise UsageError(f"{source}: lock-version {lock_version!r} is not a version")
    if parsed.major != 1:
        raise UsageError(f"{source}: lock-version {lock_version} is not supported (only 1.x)")
    entries = data.get("packages")
    if not isinstance(entries, list):
        raise UsageError(f"{source}: no [[packages]] array")
    packages: dict[str, str] = {}
    notes: list[str] = []
    errors: list[str] = []
    for index, entry in enumerate(entries):
        where = f"{source}: packages[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f"{where}: no name")
            continue
        name = canonicalize_name(entry["name"])
        marker = entry.get("marker")
        if isinstance(marker, str):
            try:
                if not _marker_applies(Marker(marker)):
                    notes.append(f"{where}: skipped {name} (marker {marker} is false for this interpreter)")
                    continue
            except InvalidMarker as exc:
                errors.append(f"{where}: invalid marker {marker!r}: {exc}")
                continue
        version = entry.get("version")
        if not isinstance(version, str):
            notes.append(f"{where}: skipped {name}: no version recorded (a source tree or direct reference)")
            continue
        if parse_version(version) is None:
            errors.append(f"{where}: {name} has an invalid version {version!r}")
            continue
        _add(packages, name, version, where, errors)
    if errors:
        raise UsageError(f"{source}: {len(errors)} problem(s) in the lock file", problems=errors)
    requires_python = data.get("requires-python")
    return TargetEnvironment(packages=packages, kind="pylock", source=source, notes=notes,
                             requires_python=requires_python if isinstance(requires_python, str) else None)


# ------------------------------------------------------------------------------------------------ writing


def write_pylock(requirements: Sequence[str], environment: Mapping[str, Any],
                 files: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> str:
    """Return the text of a PEP 751 ``pylock.toml`` installing exactly ``requirements`` (``name==version`` lines).

    ``environment`` is the manifest's environment (its ``python_version`` sets ``requires-python`` and selects the
    wheels that fit). ``files`` maps a normalized name to that release's files, each a mapping with ``name`` (file
    name), ``url``, ``hashes`` (``{"sha256": ...}``) and optionally ``size``; wheels and an sdist are told apart by
    the file name. When ``files`` is ``None`` they are looked up on PyPI's simple index. A pin for which no file is
    known is an error, because PEP 751 requires a source for every package and an entry without one installs nothing.
    """
    pins = parse_pins(requirements)  # the same exact-pin rules as pack's --requirement
    python_version = str(environment.get("python_version", "")) if environment else ""
    py = _major_minor(python_version)
    if files is None:
        files = fetch_release_files(pins, python=py)
    lines = ['lock-version = "1.0"']
    if py:
        lines.append(f"requires-python = {_toml_str('>=' + '.'.join(map(str, py)))}")
    lines.append('created-by = "bundler"')
    missing: list[str] = []
    for name, version in sorted(pins.items()):
        release = [f for f in files.get(name, ()) if isinstance(f, Mapping)]
        wheels = [f for f in release if str(f.get("name", "")).endswith(".whl") and _wheel_fits(str(f["name"]), py)]
        sdists = [f for f in release if _is_sdist(str(f.get("name", "")))]
        if not wheels and not sdists:
            missing.append(f"{name}=={version}")
            continue
        lines += ["", "[[packages]]", f"name = {_toml_str(name)}", f"version = {_toml_str(version)}",
                  f"index = {_toml_str(PYPI_SIMPLE)}"]
        if sdists:
            lines.append(f"sdist = {_file_table(sdists[0])}")
        if wheels:
            lines.append("wheels = [")
            lines += [f"    {_file_table(w)}," for w in sorted(wheels, key=lambda f: str(f['name']))]
            lines.append("]")
    if missing:
        raise UsageError("no installable files known for: " + ", ".join(missing),
                         problems=[f"{pin}: no wheel or sdist found; a PEP 751 lock needs one per package"
                                   for pin in missing])
    return "\n".join(lines) + "\n"


def fetch_release_files(pins: Mapping[str, str], *, python: tuple[int, int] | None = None,
                        timeout: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Look up the files of each pinned release on the index (network; one request per pin).

    Uses the JSON form of the Simple Repository API (PEP 691), the same listing installers read, and keeps the
    files whose name carries the pinned version. ``python`` is accepted for symmetry with :func:`write_pylock`,
    which does the wheel filtering.
    """
    import urllib.error
    import urllib.request

    del python
    result: dict[str, list[dict[str, Any]]] = {}
    errors: list[str] = []
    for name, version in sorted(pins.items()):
        request = urllib.request.Request(f"{PYPI_SIMPLE}/{name}/",  # noqa: S310 - a fixed https URL (PYPI_SIMPLE), never a caller's scheme
                                         headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https URL
                payload = json.loads(response.read(MAX_INDEX_BYTES))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{name}=={version}: cannot list files on the index: {exc}")
            continue
        entries = []
        for item in payload.get("files", []):
            filename, url = item.get("filename"), item.get("url")
            digest = (item.get("hashes") or {}).get("sha256")
            if not (isinstance(filename, str) and isinstance(url, str) and digest) or item.get("yanked"):
                continue
            if _file_version(filename) != Version(version):
                continue
            entry: dict[str, Any] = {"name": filename, "url": url, "hashes": {"sha256": digest}}
            if isinstance(item.get("size"), int):
                entry["size"] = item["size"]
            entries.append(entry)
        result[name] = entries
    if errors:
        raise UsageError("cannot write pylock.toml without the release files", problems=errors)
    return result


def _file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if _is_sdist(filename):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


# ------------------------------------------------------------------------------------------------ helpers


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_TARGET_BYTES:
            raise UsageError(f"{path}: larger than {MAX_TARGET_BYTES} bytes; not a requirements or lock file")
        return path.read_text(encoding="utf-8")
    except UsageError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read target environment file: {exc}") from exc


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations, drop comments and blank lines; keep the first physical line number."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = lineno
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        hash_at = stripped.find(" #")
        if hash_at >= 0:
            stripped = stripped[:hash_at].rstrip()
        out.append((start, stripped))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def _strip_trailing_options(line: str) -> str:
    """``numpy==2.0 --hash=sha256:...`` -> ``numpy==2.0`` (pip-compile and freeze-with-hashes output)."""
    cut = line.find(" --")
    return line[:cut].strip() if cut >= 0 else line


def _option_line(line: str, where: str, base_dir: Path | None, depth: int, packages: dict[str, str],
                 notes: list[str], errors: list[str], unpinnable: list[str]) -> None:
    option, _, value = line.partition(" ")
    if "=" in option and option.startswith("--"):
        option, _, value = option.partition("=")
    value = value.strip()
    if option in ("-e", "--editable"):
        notes.append(f"{where}: skipped editable install {value!r}: its version cannot be known from the text")
        unpinnable.append(f"{where}: editable install {value!r} is not a name==version pin")
    elif option in ("-r", "--requirement"):
        if base_dir is None or depth >= MAX_INCLUDE_DEPTH:
            errors.append(f"{where}: cannot follow include {value!r}")
            return
        included = (base_dir / value).resolve()
        try:
            sub = parse_requirements(_read_text(included), source=str(included), base_dir=included.parent,
                                     _depth=depth + 1)
        except UsageError as exc:
            errors.extend(exc.problems)
            return
        notes.extend(sub.notes)
        unpinnable.extend(sub.unpinnable)
        for name, version in sub.packages.items():
            _add(packages, name, version, f"{where} (via {value})", errors)
    elif option in ("-c", "--constraint"):
        notes.append(f"{where}: ignored constraints file {value!r} (constraints do not say what is installed)")
    # every other option (-i, --index-url, --extra-index-url, -f, --find-links, --pre, --hash, ...) says where
    # packages come from, not which versions are installed: ignored on purpose


def _pinned_version(req: Requirement) -> str | None:
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith(".*"):
        return None
    return specs[0].version


def _add(packages: dict[str, str], name: str, version: str, where: str, errors: list[str]) -> None:
    previous = packages.get(name)
    if previous is not None and previous != version:
        errors.append(f"{where}: {name} pinned to {version} but also to {previous}")
        return
    packages[name] = version


def _marker_applies(marker: Marker) -> bool:
    try:
        return bool(marker.evaluate({"extra": ""}))
    except Exception:  # noqa: BLE001 - an unknown variable means "cannot tell": keep the line
        return True


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _wheel_fits(filename: str, py: tuple[int, int] | None) -> bool:
    """Keep wheels that an interpreter of version ``py`` can install (any platform); all of them if ``py`` unknown."""
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    if py is None:
        return True
    major, minor = py
    for tag in tags:
        interp = tag.interpreter
        if interp in (f"py{major}", f"py{major}{minor}") and tag.abi == "none":
            return True
        if interp == f"cp{major}{minor}" and tag.abi in (f"cp{major}{minor}", "abi3", "none"):
            return True
        if tag.abi == "abi3" and interp.startswith(f"cp{major}"):
            try:
                if int(interp[2 + len(str(major)):]) <= minor:
                    return True
            except ValueError:
                continue
    return False


def _is_sdist(filename: str) -> bool:
    return filename.endswith((".tar.gz", ".zip"))


def _toml_str(value: str) -> str:
    """A TOML basic string; JSON escaping with ASCII output is a subset of what TOML accepts."""
    return json.dumps(value, ensure_ascii=True)


def _file_table(entry: Mapping[str, Any]) -> str:
    parts = [f"name = {_toml_str(str(entry['name']))}"]
    if entry.get("url"):
        parts.append(f"url = {_toml_str(str(entry['url']))}")
    if entry.get("path"):
        parts.append(f"path = {_toml_str(str(entry['path']))}")
    if isinstance(entry.get("size"), int):
        parts.append(f"size = {entry['size']}")
    hashes = entry.get("hashes") or {}
    if not hashes:
        raise UsageError(f"{entry['name']}: no hash; a PEP 751 lock requires one for every file")
    parts.append("hashes = { " + ", ".join(f"{k} = {_toml_str(str(v))}" for k, v in sorted(hashes.items())) + " }")
    return "{ " + ", ".join(parts) + " }"


__all__ = ["TargetEnvironment", "fetch_release_files", "load_target", "parse_pylock", "parse_requirements",
           "read_target", "write_pylock"]
