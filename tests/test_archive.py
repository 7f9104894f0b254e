"""Hostile and broken containers: each is refused with an integrity error before any member is used."""

from __future__ import annotations

import stat
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

import bundler
from bundler.container.archive import MAX_COMPRESSION_RATIO, BundleReader, BundleWriter
from bundler.errors import IntegrityError, UsageError
from tests.helpers import read_members


def _zip(path: Path, entries: Sequence[tuple[zipfile.ZipInfo | str, bytes]],
         compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def _refused(path: Path, fragment: str) -> None:
    with pytest.raises(IntegrityError) as info:
        BundleReader(path).close()
    assert any(fragment in p for p in info.value.problems), info.value.problems
    report = bundler.verify(path)
    assert report.exit_code == 3
    assert not report.ok


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("../evil.txt", "'..'"), ("/etc/passwd", "absolute"), ("model/../../x", "'..'"), ("C:/x", "absolute"),
     ("a\\..\\b", "absolute"), ("model//x", "empty parts")],
)
def test_path_traversal_names(tmp_path: Path, name: str, fragment: str) -> None:
    _refused(_zip(tmp_path / "b.mlbundle", [(name, b"x"), ("manifest.json", b"{}")]), fragment)


def test_symlink_member(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("model/model.joblib")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    _refused(_zip(tmp_path / "b.mlbundle", [(info, b"/etc/passwd")]), "symbolic link")


def test_directory_member(tmp_path: Path) -> None:
    _refused(_zip(tmp_path / "b.mlbundle", [("model/", b"")]), "empty parts")


def test_duplicate_names(tmp_path: Path, packed: Path) -> None:
    members = read_members(packed)
    entries = [*list(members.items()), ("model/model.joblib", b"evil")]
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _zip(tmp_path / "b.mlbundle", entries)
    _refused(path, "duplicate member name")


def test_encrypted_flag(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.mlbundle", [("manifest.json", b"{}")])
    raw = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(sig)
        raw[at + flag_at] |= 1
    path.write_bytes(bytes(raw))
    _refused(path, "encrypted")


@pytest.mark.parametrize(("field_at", "fmt", "value"),
                         [(6, "<H", 1), (8, "<H", zipfile.ZIP_DEFLATED), (14, "<I", 0x5A5A5A5A), (18, "<I", 1),
                          (22, "<I", 1)],
                         ids=["encrypted", "method", "crc", "compressed-size", "size"])
def test_local_header_disagrees_with_central_directory(tmp_path: Path, field_at: int, fmt: str, value: int) -> None:
    """Only the local header says "encrypted", deflated, another CRC or another size: zip tools that read local
    headers would see another archive than the one verified, so the bundle is refused."""
    path = _zip(tmp_path / "b.mlbundle", [("manifest.json", b"{}")])
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x03\x04")
    (current,) = struct.unpack_from(fmt, raw, at + field_at)
    struct.pack_into(fmt, raw, at + field_at, current ^ value)
    path.write_bytes(bytes(raw))
    _refused(path, "local header disagrees with the central directory")


@pytest.mark.parametrize("where", ["between-entries", "before-directory"])
def test_gap_that_hides_a_local_header(tmp_path: Path, where: str) -> None:
    """Bytes between entries (here a whole extra local header and member) that the central directory does not
    list: a tool reading from the front would take them for one more member."""
    hidden = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0, 0, 4, 4, 8, 0) + b"evil.txt" + b"EVIL"
    path = _zip(tmp_path / "b.mlbundle", [("manifest.json", b"{}"), ("requirements.txt", b"")])
    with zipfile.ZipFile(path) as zf:
        second, directory = zf.infolist()[1].header_offset, zf.start_dir
    raw = bytearray(path.read_bytes())
    at = second if where == "between-entries" else directory
    raw[at:at] = hidden
    central = raw.find(b"PK\x01\x02", directory)
    if where == "between-entries":  # the second central entry's local header offset moves with it
        entry = raw.find(b"PK\x01\x02", central + 4)
        struct.pack_into("<I", raw, entry + 42, second + len(hidden))
    end = raw.rfind(b"PK\x05\x06")
    struct.pack_into("<I", raw, end + 16, directory + len(hidden))
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as zf:  # a well-formed zip that lists two members, the hidden one not among them
        assert [i.filename for i in zf.infolist()] == ["manifest.json", "requirements.txt"]
    expected = "bytes between entries" if where == "between-entries" else "bytes between the last entry"
    _refused(path, expected)


def test_declared_zip_bomb(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.mlbundle", [("model/model.joblib", b"\0" * (50 << 20))], zipfile.ZIP_DEFLATED)
    assert path.stat().st_size * MAX_COMPRESSION_RATIO < 50 << 20
    _refused(path, "zip bomb")


def test_actual_size_larger_than_declared(tmp_path: Path, packed: Path) -> None:
    """A member whose headers understate its size: reading stops at the declared size and the CRC fails."""
    members = read_members(packed)
    path = _zip(tmp_path / "b.mlbundle", list(members.items()), zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    target = b"model/model.joblib"
    for sig, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = raw.find(sig)
        while raw[at + name_at: at + name_at + len(target)] != target:
            at = raw.find(sig, at + 1)
        (size,) = struct.unpack_from("<I", raw, at + size_at)
        struct.pack_into("<I", raw, at + size_at, size // 2)
    path.write_bytes(bytes(raw))
    report = bundler.verify(path)
    assert report.exit_code == 3


def test_bytes_before_first_entry(tmp_path: Path, packed: Path) -> None:
    path = tmp_path / "b.mlbundle"
    path.write_bytes(b"#!/bin/sh\necho hi\n" + packed.read_bytes())
    _refused(path, "bytes before the first archive entry")


def test_bytes_after_end(tmp_path: Path, packed: Path) -> None:
    path = tmp_path / "b.mlbundle"
    path.write_bytes(packed.read_bytes() + b"trailing")
    _refused(path, "bytes after the end")


def test_overlapping_entries(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.mlbundle", [("model/a", b"A" * 100), ("model/b", b"B" * 100)])
    raw = bytearray(path.read_bytes())
    first = raw.find(b"PK\x01\x02")
    second = raw.find(b"PK\x01\x02", first + 1)
    (offset_a,) = struct.unpack_from("<I", raw, first + 42)
    struct.pack_into("<I", raw, second + 42, offset_a)
    path.write_bytes(bytes(raw))
    _refused(path, "local header names a different file")


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04" + b"\0" * 40])
def test_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "b.mlbundle"
    path.write_bytes(content)
    _refused(path, "not a bundle")


def test_truncated(tmp_path: Path, packed: Path) -> None:
    data = packed.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        path = tmp_path / f"cut{cut}.mlbundle"
        path.write_bytes(data[:cut])
        assert bundler.verify(path).exit_code == 3


def test_missing_file_and_directory_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        bundler.verify(tmp_path / "missing.mlbundle")
    with pytest.raises(UsageError, match="directory"):
        bundler.verify(tmp_path)


def test_writer_is_atomic_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.mlbundle"
    target.write_bytes(b"previous content")

    def crash_mid_way() -> None:
        with BundleWriter(target) as writer:
            writer.write_member("model/a", b"x" * 1000)
            raise RuntimeError("crash mid-way")

    with pytest.raises(RuntimeError, match="crash mid-way"):
        crash_mid_way()
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mlbundle"]
