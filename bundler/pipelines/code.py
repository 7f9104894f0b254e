"""Bundled code: the user's own modules stored as ``code/…`` members, imported at load only from verified bytes.

A custom transformer (``mymod.Clip``) is a class the loading process must import. ``pack(..., code=["mymod.py"])``
(``--code mymod.py|pkgdir``) stores each module's source as a member (``code/mymod.py``,
``code/pkg/__init__.py``...), hashed and signed like every other member. Loading imports those modules only when
the caller trusts them: ``trust_code=True`` (``--trust-code``), or a signature verified against the caller's key;
never by default, because importing a module runs it. The modules are imported by a meta-path finder over the
verified in-memory members (``VerifiedCode``): nothing is extracted to disk, and no path another process could swap
is ever read. The finder comes *after* the standard finders and a bundled module whose name an installed module or
the standard library already uses is refused, so bundled code can never replace an installed package.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from bundler.errors import EnvironmentMismatch, UnsafeContent, UsageError

__all__ = ["CODE_PREFIX", "VerifiedCode", "code_modules", "collect_code", "install_code", "missing_module_hint"]

CODE_PREFIX = "code/"
#: Bundled sources are small; more than this in total is a mistake (a virtualenv passed as a package folder).
MAX_CODE_BYTES = 16 << 20


def _is_identifier(part: str) -> bool:
    return part.isidentifier() and part.isascii()


def collect_code(paths: Iterable[str | os.PathLike[str]]) -> dict[str, bytes]:
    """Read each module file (``mymod.py``) or package folder (every ``*.py`` below it) once: member name -> bytes.
    Names must be importable identifiers, regular files only, and never the name of an installed module."""
    members: dict[str, bytes] = {}
    for given in paths:
        p = Path(given)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts)
            if not (p / "__init__.py").is_file():
                raise UsageError(f"{p}: a package folder needs an __init__.py")
            pairs = [(f, "/".join((p.name, *f.relative_to(p).parts))) for f in files]
        elif p.is_file() and p.suffix == ".py":
            pairs = [(p, p.name)]
        elif not p.exists():
            raise UsageError(f"{p}: no such file or folder")
        else:
            raise UsageError(f"{p}: --code takes a .py module or a package folder")
        for file, name in pairs:
            parts = name[:-3].split("/")
            if not all(_is_identifier(part) for part in parts):
                raise UsageError(f"{file}: {name!r} is not an importable module name")
            if file.is_symlink() or not file.is_file():
                raise UsageError(f"{file}: not a regular file")
            member = CODE_PREFIX + name
            if member in members:
                raise UsageError(f"{file}: module {name[:-3].replace('/', '.')} is given twice")
            members[member] = file.read_bytes()
    if sum(len(v) for v in members.values()) > MAX_CODE_BYTES:
        raise UsageError(f"bundled code is larger than {MAX_CODE_BYTES >> 20} MiB")
    for top in code_modules(members):
        _refuse_shadowing(top, UsageError)
    return members


def code_modules(members: Iterable[str]) -> list[str]:
    """The top-level module names of the ``code/…`` members among ``members``, sorted."""
    tops = {m[len(CODE_PREFIX):].split("/")[0] for m in members if m.startswith(CODE_PREFIX)}
    return sorted(t[:-3] if t.endswith(".py") else t for t in tops)


def _refuse_shadowing(top: str, error: type[UsageError] | type[UnsafeContent]) -> None:
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top in ("bundler", "__main__"):
        raise error(f"bundled module {top!r} has the name of a standard-library module")
    try:
        from importlib.metadata import packages_distributions

        installed = packages_distributions()
    except Exception:  # noqa: BLE001 - pragma: no cover - broken metadata: nothing to compare against
        installed = {}
    if top in installed:
        raise error(f"bundled module {top!r} has the name of a module installed by {', '.join(installed[top])}")


class VerifiedCode(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports bundled modules from verified member bytes held in memory (``code/<module path>``)."""

    def __init__(self, bundle: str, members: Mapping[str, bytes]) -> None:
        self.bundle = bundle
        self.sources: dict[str, tuple[bytes, bool, str]] = {}
        for member, data in members.items():
            if not member.startswith(CODE_PREFIX) or not member.endswith(".py"):
                continue
            parts = member[len(CODE_PREFIX):-3].split("/")
            package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if package else parts)
            self.sources[name] = (data, package, member)
        self.digests = {name: hashlib.sha256(src).hexdigest() for name, (src, _, _) in self.sources.items()}

    def find_spec(self, fullname: str, path: Any = None,  # noqa: ARG002 - importlib's MetaPathFinder protocol
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:  # noqa: ARG002
        found = self.sources.get(fullname)
        if found is None:
            return None
        _, package, member = found
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=f"{self.bundle}!{member}", is_package=package)
        if package:
            spec.submodule_search_locations = []
        spec.has_location = False
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:  # noqa: ARG002 - Loader protocol
        return None

    def exec_module(self, module: ModuleType) -> None:
        source, _, member = self.sources[module.__name__]
        module.__bundler_sha256__ = self.digests[module.__name__]  # type: ignore[attr-defined]
        exec(compile(source, f"{self.bundle}!{member}", "exec"), module.__dict__)  # noqa: S102 - the bundle's own code, verified, and run only under --trust-code

    def get_source(self, fullname: str) -> str | None:
        found = self.sources.get(fullname)
        return None if found is None else found[0].decode("utf-8", "replace")


def install_code(bundle: str, members: Mapping[str, bytes], *, strict: bool = True) -> VerifiedCode | None:
    """Make the bundled modules importable (after the standard finders); the caller has established trust.

    A name an installed or standard module already uses is refused (``UnsafeContent``); a module of that name
    already imported in this process from other bytes is an environment problem (load it in a fresh process).
    ``strict=False`` (packing the caller's own files) lets a module on the import path, the very file being
    bundled when the caller runs from its folder, win over the bundled copy."""
    finder = VerifiedCode(bundle, members)
    if not finder.sources:
        return None
    for top in code_modules(members):
        _refuse_shadowing(top, UnsafeContent)
    for name, digest in finder.digests.items():
        existing = sys.modules.get(name)
        if not strict:
            continue
        if existing is not None and getattr(existing, "__bundler_sha256__", None) != digest:
            raise EnvironmentMismatch(f"module {name} is already imported in this process from other code than the "
                                      "bundle's; load the bundle in a fresh process")
        if existing is None and importlib.util.find_spec(name.split(".")[0]) is not None and \
                name.split(".")[0] not in {f.split(".")[0] for f in _bundled_tops()}:
            raise UnsafeContent(f"bundled module {name} would be shadowed by a module of the same name on the import "
                                "path", offending=[name])
    for other in sys.meta_path:
        if isinstance(other, VerifiedCode) and set(other.sources) & set(finder.sources):
            sys.meta_path.remove(other)
    sys.meta_path.append(finder)
    return finder


def _bundled_tops() -> set[str]:
    return {name for f in sys.meta_path if isinstance(f, VerifiedCode) for name in f.sources}


def missing_module_hint(module: str) -> str | None:
    """What to say when a payload needs ``module`` and it cannot be imported: the ``bundler`` command does not see
    the current folder, so a module lying there must be bundled (``--code``) or put on ``PYTHONPATH``."""
    top = module.split(".")[0]
    here = Path.cwd()
    for candidate in (here / f"{top}.py", here / top):
        if candidate.exists():
            return (f"{candidate.name} is in the current folder, but the bundler command does not import from the "
                    f"current folder: bundle it with --code {candidate.name} (or code=[{candidate.name!r}]), or "
                    "put its folder on PYTHONPATH")
    return None
