"""Helpers for building altered bundles in tests: rewrite members, re-hash, re-sign."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bundler.container.manifest import MANIFEST_NAME, REQUIREMENTS_NAME, SIGNATURE_NAME, canonical_json
from bundler.integrity.hashing import sha256_bytes
from bundler.integrity.signing import Sha256Signer, Signer, signature_document


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def rewrite(src: Path, dst: Path, *, members: Callable[[dict[str, bytes]], object] | None = None,
            manifest: Callable[[dict[str, Any]], object] | None = None, rehash: bool = True,
            signer: Signer | None = None, resign: bool = True) -> Path:
    """Copy a bundle with changes. With ``rehash``/``resign`` the result is internally consistent (checksum only),
    i.e. what an attacker who can rewrite the file produces."""
    m = read_members(src)
    if members is not None:
        members(m)
    doc = json.loads(m[MANIFEST_NAME])
    if manifest is not None:
        manifest(doc)
    if rehash:
        for entry in doc.get("files", []):
            if entry["path"] in m:
                entry["sha256"] = sha256_bytes(m[entry["path"]])
                entry["size"] = len(m[entry["path"]])
    manifest_bytes = canonical_json(doc)
    m[MANIFEST_NAME] = manifest_bytes
    if resign:
        m[SIGNATURE_NAME] = signature_document(signer or Sha256Signer(), manifest_bytes)
    write_members(dst, m)
    return dst


def claim_other_version(src: Path, dst: Path, package: str, version: str) -> Path:
    """Copy a bundle whose manifest claims another version of ``package``, consistently re-hashed (checksum only):
    what a bundle made under another release looks like to a verifier. (The tests' own; they never import the
    demo's code.)"""
    doc = json.loads(read_members(src)[MANIFEST_NAME])
    packages = dict(sorted({**doc["environment"]["packages"], package: version}.items()))
    requirements = [f"{n}=={v}" for n, v in packages.items()]

    def members(m: dict[str, bytes]) -> None:
        m[REQUIREMENTS_NAME] = ("\n".join(requirements) + "\n").encode()

    def manifest(d: dict[str, Any]) -> None:
        d["environment"]["packages"] = packages
        d["requirements"] = requirements

    return rewrite(src, dst, members=members, manifest=manifest)
