"""A wheel of the running bundler, built from its installed files, to install into the test environments.

Why: the matrix must test the bundler the user runs, and a user who installed bundler from a wheel has no source tree
to hand to pip, while a name looked up on a package index could be another project's (or another version). So the
wheel is made here, from the imported package's own files (every file below ``bundler/`` but byte code) and the
installed distribution's metadata (name, version, dependencies, entry points); this works alike for a wheel
install, an editable install and a source checkout that was installed. The result is a plain ``py3-none-any`` wheel
(PEP 427) with a RECORD of SHA-256 digests, cached by content so that an unchanged bundler reuses environments.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import os
import zipfile
from pathlib import Path

from bundler.errors import UsageError

__all__ = ["DIST_NAME", "build_self_wheel"]

DIST_NAME = "bundler"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _package_files() -> list[tuple[str, bytes]]:
    import bundler

    root = Path(bundler.__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"{root.name}/{path.relative_to(root).as_posix()}", path.read_bytes()))
    return files


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def build_self_wheel(outdir: str | os.PathLike[str]) -> Path:
    """Write ``bundler-<version>-py3-none-any.whl`` of the running bundler below ``outdir``; return its path.

    Raises ``UsageError`` when bundler's distribution metadata is not installed (running from an uninstalled
    checkout: ``pip install .`` first).
    """
    try:
        dist = md.distribution(DIST_NAME)
    except md.PackageNotFoundError:
        raise UsageError("bundler's distribution metadata is not installed, so it cannot be installed into the test "
                         "environments: install bundler (pip install bundler, or pip install . in a checkout)"
                         ) from None
    # PKG-INFO: the same core metadata, when the distribution found is an .egg-info (a checkout's setuptools build)
    metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if not metadata:
        raise UsageError(f"bundler {dist.version}: its METADATA is missing; reinstall bundler")
    version = dist.version
    info = f"{DIST_NAME}-{version}.dist-info"
    members = _package_files()
    members.append((f"{info}/METADATA", metadata.encode("utf-8")))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        members.append((f"{info}/entry_points.txt", entry_points.encode("utf-8")))
    members.append((f"{info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: bundler {version} (selfwheel)\n"
                                       "Root-Is-Purelib: true\nTag: py3-none-any\n").encode("ascii")))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members)
    record += f"{info}/RECORD,,\n"
    members.append((f"{info}/RECORD", record.encode("utf-8")))
    digest = hashlib.sha256(record.encode("utf-8")).hexdigest()[:16]
    target = Path(outdir) / f"wheel-{digest}" / f"{DIST_NAME}-{version}-py3-none-any.whl"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for name, data in members:
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    partial.replace(target)
    return target
