"""Helpers for building altered bundles in tests: rewrite members, re-hash, re-sign."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bundler.container.manifest import MANIFEST_NAME, SIGNATURE_NAME, canonical_json
from bundler.integrity.hashing import sha256_bytes
from bundler.integrity.signing import Sha256Signer, Signer, signature_document


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def rewrite(src: Path, dst: Path, *, members: Callable[[dict[str, bytes]], None] | None = None,
            manifest: Callable[[dict[str, Any]], None] | None = None, rehash: bool = True,
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
