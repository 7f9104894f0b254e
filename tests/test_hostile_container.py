"""Red team 3: everything in a bundle but the payload's object state (zip end records, signature.json, version
strings, the stored sample's description, the tested record), through the real CLI in child processes with a bounded
address space. Each row: the bundle as an attacker who can rewrite a checksum-only bundle makes it, the command, the
exact exit code and the reason that names what is wrong. Before the fixes each of these was exit 1 (an internal
error), a directory parsed without bound, or control characters written raw to the terminal."""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundler.container.archive import MAX_DIRECTORY_BYTES
from bundler.integrity.hashing import sha256_bytes

from .helpers import claim_other_version, read_members, rewrite, write_members

ROOT = Path(__file__).resolve().parents[1]
#: packaging raises a plain ValueError for it (int()'s 4300-digit limit), not InvalidVersion
HUGE_VERSION = "1.0.post" + "9" * 5000


def run(*args: object) -> subprocess.CompletedProcess[str]:
    """``python -m bundler ARGS`` in a child limited to 1 GiB of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "bundler", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=180, preexec_fn=limit)


def _end_record_at(raw: bytes | bytearray) -> int:
    at = len(raw) - 22
    assert raw[at:at + 4] == b"PK\x05\x06"
    return at


def directory_offset_past(src: Path, dst: Path) -> None:
    """The end record's central-directory offset points far past the directory: zipfile shifts every entry's offset
    by the difference, to before the start of the file (was: OSError EINVAL on seek, exit 1)."""
    raw = bytearray(src.read_bytes())
    struct.pack_into("<I", raw, _end_record_at(raw) + 16, 0xFFFFFFF0)
    dst.write_bytes(bytes(raw))


def entry_count_lie(src: Path, dst: Path) -> None:
    """The end record declares 3 entries, the directory holds 8 (tools that trust the count see another archive)."""
    raw = bytearray(src.read_bytes())
    struct.pack_into("<HH", raw, _end_record_at(raw) + 8, 3, 3)
    dst.write_bytes(bytes(raw))


def zip64_entry_count(src: Path, dst: Path) -> None:
    """A zip64 end record (which zipfile prefers) claiming 10**12 entries."""
    raw = src.read_bytes()
    at = _end_record_at(raw)
    size, offset = struct.unpack_from("<II", raw, at + 12)
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**12, 10**12, size, offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, at, 1)
    dst.write_bytes(raw[:at] + record + locator + raw[at:])


def huge_directory(src: Path, dst: Path) -> None:  # noqa: ARG001 - same signature as the other builders
    """A central directory of 46-byte entries, larger than MAX_DIRECTORY_BYTES, whose end record says 1 entry:
    zipfile built ~400 bytes of objects per entry (a 94 MB file took 770 MB; exit 1, MemoryError, under a limit)."""
    local = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0x21, 0, 0, 0, 1, 0) + b"a"
    entry = b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    directory = entry * (MAX_DIRECTORY_BYTES // len(entry) + 1)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(directory), len(local), 0)
    dst.write_bytes(local + directory + end)


def legit_zip64(src: Path, dst: Path) -> None:
    """zip64 end records and extra fields everywhere (what a bundle over 4 GiB has): still a valid bundle."""
    members = read_members(src)
    limit = zipfile.ZIP64_LIMIT
    zipfile.ZIP64_LIMIT = 100  # type: ignore[misc]  # every offset and size over it
    try:
        write_members(dst, members)
    finally:
        zipfile.ZIP64_LIMIT = limit  # type: ignore[misc]
    assert b"PK\x06\x06" in dst.read_bytes()


def _signature(doc: dict[str, Any]) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        members = read_members(src)
        digest = sha256_bytes(members["manifest.json"])
        members["signature.json"] = json.dumps({k: digest if v == "DIGEST" else v for k, v in doc.items()}).encode()
        write_members(dst, members)

    return build


def _pinned(version: str) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        def manifest(d: dict[str, Any]) -> None:
            d["environment"]["packages"]["numpy"] = version
            d["requirements"] = [f"numpy=={version}" if r.startswith("numpy==") else r for r in d["requirements"]]

        rewrite(src, dst, manifest=manifest)

    return build


def outputs_not_a_list(src: Path, dst: Path) -> None:
    """A stored method's ``outputs`` is a number (was: TypeError len() of float, exit 1, in the behaviour check)."""
    rewrite(src, dst, manifest=lambda d: d["sample"]["methods"]["predict"].update(outputs=0.5))


def _entry(packages: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"package": "scikit-learn", "packages": packages, "python": "3.11.7", "outcome": "same",
            "default_policy": "accepted", "adjustments": [], "bundler_version": "0.1.0",
            "tested_at": "2026-01-01T00:00:00Z",
            "behaviour": {"rows": 10, "methods": ["predict"], "differs": [], "raises": [], "error": None}, **fields}


def _with_record(src: Path, dst: Path, entries: Callable[[dict[str, str]], list[dict[str, Any]]]) -> None:
    doc = json.loads(read_members(src)["manifest.json"])
    packages = doc["environment"]["packages"]
    record = {"version": 1, "payload_sha256": doc["files"][0]["sha256"], "environments": entries(packages)}

    def members(m: dict[str, bytes]) -> None:
        m["compat/tested.json"] = json.dumps(record).encode()

    def manifest(d: dict[str, Any]) -> None:
        d["files"].append({"path": "compat/tested.json", "sha256": "0" * 64, "size": 0})

    rewrite(src, dst, members=members, manifest=manifest)


def record_huge_version(src: Path, dst: Path) -> None:
    """The bundle pins another scikit-learn, so the tested record is consulted; its entry names a version packaging
    cannot parse (was: ValueError from packaging, exit 1, in verify under every policy)."""
    other = dst.with_suffix(".other")
    claim_other_version(src, other, "scikit-learn", "1.0.0")
    installed = read_members(src)["manifest.json"]
    sklearn = json.loads(installed)["environment"]["packages"]["scikit-learn"]
    _with_record(other, dst, lambda p: [_entry({**p, "scikit-learn": sklearn, "numpy": HUGE_VERSION})])


def record_control_characters(src: Path, dst: Path) -> None:
    """Control characters in the record's fields: ``inspect`` printed them raw in its table."""
    _with_record(src, dst, lambda p: [_entry(p, python="3.11\x1b[2J\nbundler: OK", tested_at="\r\x1b[K",
                                             behaviour={"rows": 1, "methods": [], "differs": ["x\x1b]0;t\x07"],
                                                        "raises": [], "error": None}, outcome="outputs-differ")])


# id: (builder, command (BUNDLE is the path), exit code, a fragment of the reason on stderr)
CASES: dict[str, tuple[Callable[[Path, Path], None], list[str], int, str]] = {
    "directory_offset_past": (directory_offset_past, ["verify", "BUNDLE"], 3,
                              "places the central directory 4294"),
    "directory_offset_past_inspect": (directory_offset_past, ["inspect", "BUNDLE"], 3,
                                      "places the central directory 4294"),
    "entry_count_lie": (entry_count_lie, ["verify", "BUNDLE"], 3,
                        "the end record declares 3 entries, the central directory holds 8"),
    "zip64_entry_count": (zip64_entry_count, ["load", "BUNDLE"], 3,
                          "1000000000000 members, more than the limit of 10000"),
    "huge_directory": (huge_directory, ["verify", "BUNDLE"], 3,
                       f"bytes, more than the limit of {MAX_DIRECTORY_BYTES}"),
    "legit_zip64": (legit_zip64, ["verify", "BUNDLE"], 0, "verified; nothing was deserialized"),
    "signature_digest_non_ascii": (_signature({"scheme": "sha256", "manifest_sha256": "\u00e9" * 64,
                                               "signature": None, "key_id": None}), ["verify", "BUNDLE"], 3,
                                   "signature.json does not match manifest.json"),
    "hmac_signature_non_ascii": (_signature({"scheme": "hmac-sha256", "manifest_sha256": "DIGEST",
                                             "signature": "\u00e9" * 64, "key_id": "k"}),
                                 ["verify", "BUNDLE", "--hmac-key-file", "KEY"], 3,
                                 "signature does not verify with the supplied key"),
    "pin_version_digits": (_pinned(HUGE_VERSION), ["requirements", "BUNDLE"], 3,
                           f"environment.packages version '{HUGE_VERSION}' of numpy is not a PEP 440 version"),
    "pin_version_digits_load": (_pinned(HUGE_VERSION), ["load", "BUNDLE"], 3, "is not a PEP 440 version"),
    "record_version_digits": (record_huge_version, ["verify", "BUNDLE", "--policy", "tested", "--trust-record"], 4,
                              "scikit-learn: bundle pins 1.0.0, found"),
    "outputs_not_a_list": (outputs_not_a_list, ["load", "BUNDLE"], 6,
                           "predict: stored outputs unreadable: not a list of arrays"),
    "record_control_characters": (record_control_characters, ["inspect", "BUNDLE"], 0,
                                  "3.11\\x1b[2J\\x0abundler: OK"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_container(case: str, packed: Path, hmac_file: Path, tmp_path: Path) -> None:
    build, command, code, reason = CASES[case]
    path = tmp_path / f"{case}.mlbundle"
    build(packed, path)
    before = sorted(tmp_path.iterdir())
    proc = run(*[{"BUNDLE": path, "KEY": hmac_file}.get(a, a) for a in command])
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output
    assert "Traceback" not in proc.stderr
    assert "internal error" not in proc.stderr
    assert reason in output, output
    assert not any(ch in output for ch in "\x1b\r\x07"), output
    assert sorted(tmp_path.iterdir()) == before  # nothing left behind


def test_matrix_lines_are_escaped(tmp_path: Path) -> None:
    """``matrix`` prints one line per cell with the worker's error or first behaviour line: they quote the bundle
    (a method name, an exception) and were written raw; a cells file read by ``--merge`` shows the same lines."""
    from bundler.crossversion.cells import FAILS_TO_LOAD, Cell
    from bundler.crossversion.reports import write_json

    cell = Cell(model="m\x1b[2J", bundled="1.5", loaded="1.6", status=FAILS_TO_LOAD,
                error="boom\nbundler: OK\x1b[32m")
    write_json([cell], tmp_path / "job" / "cells.json", meta={"duration_seconds": 1.0})
    proc = run("matrix", "--merge", tmp_path / "job")
    assert proc.returncode == 4, proc.stderr
    assert "\x1b" not in proc.stderr
    assert "m\\x1b[2J: 1.5 -> 1.6: fails-to-load (boom\\x0abundler: OK\\x1b[32m)" in proc.stderr
    assert not any(line.startswith("bundler: OK") for line in proc.stderr.splitlines())
