"""Reading and writing the zip container, with safety limits. No crypto, no models here.

Reading checks the container's structure *before* any member is used: one entry per name, no path tricks, no
symlinks, no encryption, no bytes before the first entry or after the end record, no overlapping entries, declared
sizes within limits, and reads that stop at the declared size (zip bombs). Writing goes to a temporary file in the
target's directory and is renamed into place only when complete, so a crash or Ctrl-C never leaves a partial bundle
and an existing target is never half-overwritten.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

from bundler.errors import IntegrityError, UsageError

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_DIRECTORY_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_NAME_BYTES",
    "MAX_SMALL_MEMBER_BYTES",
    "BundleReader",
    "BundleWriter",
    "Member",
    "check_input_file",
]

#: Limits a reader enforces. They bound memory and time for hostile input; real bundles are far below them.
MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 64 << 30
MAX_SMALL_MEMBER_BYTES = 16 << 20
MAX_COMPRESSION_RATIO = 200
MAX_NAME_BYTES = 1024
#: The central directory is refused above this size before zipfile parses it: zipfile builds a Python object of some
#: 400 bytes per entry, and an entry can be 46 bytes, so it is the directory's size that bounds memory, not the
#: entry count an end record claims (a 94 MB directory of 2 million entries took 770 MB).
MAX_DIRECTORY_BYTES = MAX_MEMBERS * (46 + MAX_NAME_BYTES + 64)

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD_MAGIC = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_LOCATOR_MAGIC = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_EOCD_MAGIC = b"PK\x06\x06"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_HAVE_PREADV = hasattr(os, "preadv")


@dataclass(frozen=True)
class Member:
    """A member of a checked archive."""

    name: str
    size: int
    compressed_size: int
    data_offset: int
    stored: bool


class _EndRecord(NamedTuple):
    """What the end of central directory record declares, and whether it is the file's last 22 bytes."""

    entries: int
    size: int
    offset: int
    at_end: bool


def check_input_file(path: str | os.PathLike[str]) -> Path:
    """A readable regular file, or a UsageError saying why not (missing, a directory, unreadable)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{p}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p}: permission denied")
    return p


class BundleReader:
    """An opened, structurally checked bundle. Holds one file descriptor for its lifetime.

    Verification and deserialization read from the same open file, so a bundle renamed or replaced on disk after
    verification cannot be swapped in before loading.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_input_file(path)
        try:
            self._fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot open ({exc.strerror})") from None
        try:
            self._size = os.fstat(self._fh.fileno()).st_size
            self.members = self._check_structure()
        except BaseException:
            self._fh.close()
            raise

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._zip.close()
        self._fh.close()

    # -- structure -------------------------------------------------------------------------------------------
    def _check_structure(self) -> dict[str, Member]:
        if self._size == 0:
            raise IntegrityError(f"{self.path}: not a bundle (empty file)")
        declared = self._end_record()
        if declared is not None:
            if declared.entries > MAX_MEMBERS:
                raise IntegrityError(f"{self.path}: {declared.entries} members, more than the limit of {MAX_MEMBERS}")
            if declared.size > MAX_DIRECTORY_BYTES:
                raise IntegrityError(f"{self.path}: central directory of {declared.size} bytes, more than the limit "
                                     f"of {MAX_DIRECTORY_BYTES}")
        try:
            self._zip = zipfile.ZipFile(self._fh)
        except zipfile.BadZipFile as exc:
            raise IntegrityError(f"{self.path}: not a bundle (not a valid zip archive: {exc})") from None
        except (OSError, EOFError, ValueError, struct.error, NotImplementedError) as exc:
            raise IntegrityError(f"{self.path}: not a bundle (corrupt zip archive: {exc})") from None
        infos = self._zip.infolist()
        problems: list[str] = []
        if len(infos) > MAX_MEMBERS:
            raise IntegrityError(f"{self.path}: {len(infos)} members, more than the limit of {MAX_MEMBERS}")
        if declared is not None and self._zip.start_dir != declared.offset:
            # zipfile shifts every offset by the difference (made for self-extracting stubs); a negative one would
            # point local headers before the start of the file
            shift = self._zip.start_dir - declared.offset
            what = f"{shift} bytes before the first archive entry" if shift > 0 else \
                f"the end record places the central directory {-shift} bytes past where it is"
            raise IntegrityError(f"{self.path}: unsafe or corrupt archive", problems=[f"{self.path}: {what}"])
        if self._zip.comment:
            problems.append("archive has a comment (bytes after the end of the archive)")
        # zipfile found an end record, so _end_record did too (it searches the same way): None only fails closed
        if declared is None or not declared.at_end:
            problems.append("bytes after the end of the archive")
        if declared is not None and declared.entries != len(infos):
            problems.append(f"the end record declares {declared.entries} entries, the central directory holds "
                            f"{len(infos)}")
        members: dict[str, Member] = {}
        for info in infos:
            problems.extend(self._check_info(info, members))
        if infos and min(i.header_offset for i in infos) != 0:
            problems.append("bytes before the first archive entry")
        problems.extend(self._check_layout(list(members.values())))
        if problems:
            lines = [f"{self.path}: {p}" for p in problems]
            raise IntegrityError(f"{self.path}: unsafe or corrupt archive", problems=lines)
        return members

    def _end_record(self) -> _EndRecord | None:
        """The central directory as the end record declares it (the zip64 one when its locator is there), found as
        zipfile finds it; None when there is none (zipfile then says why)."""
        fd = self._fh.fileno()
        # The end record alone first: a bundle has no archive comment, and reading up to 64 KiB of comment space
        # would read payload bytes of a small bundle a second time (load reads them once, to verify).
        tail_start = max(self._size - _EOCD.size, 0)
        tail = os.pread(fd, self._size - tail_start, tail_start)
        if tail[:4] != _EOCD_MAGIC:  # a comment follows the end record (refused later): search as zipfile does
            tail_start = max(self._size - _EOCD.size - 0xFFFF, 0)
            tail = os.pread(fd, self._size - tail_start, tail_start)
        at = len(tail) - _EOCD.size if tail[-_EOCD.size:-_EOCD.size + 4] == _EOCD_MAGIC else tail.rfind(_EOCD_MAGIC)
        if at < 0 or len(tail) - at < _EOCD.size:
            return None
        fields = _EOCD.unpack_from(tail, at)
        entries, size, offset = int(fields[4]), int(fields[5]), int(fields[6])
        locator_at = tail_start + at - _ZIP64_LOCATOR.size
        if locator_at - _ZIP64_EOCD.size >= 0:
            raw = os.pread(fd, _ZIP64_EOCD.size + _ZIP64_LOCATOR.size, locator_at - _ZIP64_EOCD.size)
            if raw[_ZIP64_EOCD.size:_ZIP64_EOCD.size + 4] == _ZIP64_LOCATOR_MAGIC and raw[:4] == _ZIP64_EOCD_MAGIC:
                fields64 = _ZIP64_EOCD.unpack_from(raw)
                entries, size, offset = int(fields64[7]), int(fields64[8]), int(fields64[9])
        return _EndRecord(entries, size, offset, at_end=tail_start + at == self._size - _EOCD.size)

    def _check_info(self, info: zipfile.ZipInfo, members: dict[str, Member]) -> list[str]:
        name = info.filename
        problems: list[str] = []
        shown = name if len(name) < 200 else name[:200] + "..."
        if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            return [f"member name too long: {shown!r}"]
        parts = name.split("/")
        if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
            problems.append(f"member {shown!r} has an absolute or non-portable path")
        if any(p in ("..", ".") for p in parts) or "" in parts:
            problems.append(f"member {shown!r} has a path with '..', '.' or empty parts")
        if "\0" in name:
            problems.append(f"member {shown!r} has a NUL byte in its name")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            problems.append(f"member {shown!r} is a symbolic link")
        elif info.is_dir() or (stat.S_IFMT(mode) and not stat.S_ISREG(mode)):
            problems.append(f"member {shown!r} is not a regular file")
        if info.flag_bits & 0x1:
            problems.append(f"member {shown!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problems.append(f"member {shown!r} uses an unsupported compression method {info.compress_type}")
        if info.file_size > MAX_MEMBER_BYTES:
            problems.append(f"member {shown!r} declares {info.file_size} bytes, "
                            f"more than the limit of {MAX_MEMBER_BYTES}")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            problems.append(f"member {shown!r} is stored but its sizes disagree")
        compressed = info.compress_type != zipfile.ZIP_STORED
        if compressed and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1024):
            problems.append(f"member {shown!r} expands {info.file_size} bytes from {info.compress_size} "
                            f"(compression ratio over {MAX_COMPRESSION_RATIO}: zip bomb?)")
        if name in members:
            problems.append(f"duplicate member name {shown!r}")
            return problems
        if not problems:
            offset = self._local_data_offset(info, problems)
            members[name] = Member(name, info.file_size, info.compress_size, offset,
                                   info.compress_type == zipfile.ZIP_STORED)
        return problems

    def _local_data_offset(self, info: zipfile.ZipInfo, problems: list[str]) -> int:
        self._fh.seek(info.header_offset)
        raw = self._fh.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size:
            problems.append(f"member {info.filename!r}: local header truncated")
            return -1
        fields = _LOCAL_HEADER.unpack(raw)
        if fields[0] != _LOCAL_MAGIC:
            problems.append(f"member {info.filename!r}: bad local header")
            return -1
        local_flags, local_method = int(fields[2]), int(fields[3])
        local_crc, local_sizes = int(fields[6]), (int(fields[7]), int(fields[8]))
        # Other zip tools read the local header: one that says "encrypted", another compression method, CRC or size
        # than the central directory makes them see another archive than the one verified here. Sizes and CRC are
        # compared unless a data descriptor carries them (flag bit 3) or zip64 does (0xFFFFFFFF).
        described = local_flags & 0x8 or 0xFFFFFFFF in local_sizes
        if (local_flags & 0x1) != (info.flag_bits & 0x1) or local_method != info.compress_type or \
                (not described and (local_crc != info.CRC or local_sizes != (info.compress_size, info.file_size))):
            problems.append(f"member {info.filename!r}: local header disagrees with the central directory "
                            f"(encryption flag, compression method, CRC or sizes)")
        name_len, extra_len = int(fields[9]), int(fields[10])
        local_name = self._fh.read(name_len)
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if local_name.decode(encoding, "replace") != info.filename:
            problems.append(f"member {info.filename!r}: local header names a different file")
        return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len

    def _check_layout(self, members: list[Member]) -> list[str]:
        """Entries must not overlap each other or the central directory (overlapping entries are a zip bomb trick),
        and must follow each other with nothing between them: bytes in a gap could hold a local header that tools
        reading the archive from the front take for one more member, which this reader never checked."""
        problems: list[str] = []
        if members and all(m.data_offset >= 0 for m in members):
            ends = {m.name: m.data_offset + m.compressed_size for m in members}
            expected = 0
            for info in sorted(self._zip.infolist(), key=lambda i: i.header_offset):
                slack = 24 if info.flag_bits & 0x8 else 0  # a data descriptor: 12 to 24 bytes after the data
                if not expected <= info.header_offset <= expected + slack:
                    problems.append(f"{info.header_offset - expected} bytes between entries before member "
                                    f"{info.filename!r}")
                expected = ends.get(info.filename, expected)
            last = max(self._zip.infolist(), key=lambda i: i.header_offset)
            if not expected <= self._zip.start_dir <= expected + (24 if last.flag_bits & 0x8 else 0):
                problems.append(f"{self._zip.start_dir - expected} bytes between the last entry and the central "
                                f"directory")
        spans = sorted((m.data_offset, m.data_offset + m.compressed_size, m.name)
                       for m in members if m.data_offset >= 0)
        central_start = self._zip.start_dir
        for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
            if end > next_start:
                problems.append(f"members {name!r} and {next_name!r} overlap")
        if spans and spans[-1][1] > central_start:
            problems.append(f"member {spans[-1][2]!r} runs into the central directory")
        return problems

    # -- reading -----------------------------------------------------------------------------------------------
    def fileno(self) -> int:
        """The one descriptor every read goes through (with ``pread``: no shared file position)."""
        return self._fh.fileno()

    def span(self, name: str) -> tuple[int, int]:
        """``(data offset, size)`` of a stored member, checked to lie before the central directory."""
        member = self.members[name]
        if not member.stored:
            raise ValueError(f"member {name!r} is compressed; it has no raw span")
        if member.data_offset + member.size > self._zip.start_dir:
            raise IntegrityError(f"{self.path}: member {name!r} runs past the end of the archive data")
        return member.data_offset, member.size

    @contextlib.contextmanager
    def open_member(self, name: str) -> Iterator[IO[bytes]]:
        """A stream over one member's bytes that never yields more than the declared size.

        Stored members (the payload) are read straight from the file at their data offset: no CRC pass and no
        zipfile locking, since every member's SHA-256 is checked against the manifest anyway. Compressed members go
        through zipfile, which checks the CRC and stops at the declared size.
        """
        member = self.members[name]
        if member.stored:
            offset, size = self.span(name)
            raw = _PReadMember(self._fh.fileno(), offset, size)
            with io.BufferedReader(raw, buffer_size=1 << 20) as stream:
                yield stream
            return
        try:
            with self._zip.open(name) as stream:
                yield stream
        except zipfile.BadZipFile as exc:
            raise IntegrityError(f"{self.path}: member {name!r} is corrupt ({exc})") from None
        except (zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error) as exc:
            raise IntegrityError(f"{self.path}: member {name!r} cannot be read ({exc})") from None
        except Exception as exc:  # zlib.error and friends from a damaged deflate stream
            if type(exc).__module__ == "zlib":
                raise IntegrityError(f"{self.path}: member {name!r} is corrupt ({exc})") from None
            raise

    def read_small(self, name: str, limit: int = MAX_SMALL_MEMBER_BYTES) -> bytes:
        """Read a small member whole (manifest, signature, requirements), refusing anything over ``limit``."""
        member = self.members[name]
        if member.size > limit:
            raise IntegrityError(f"{self.path}: member {name!r} is {member.size} bytes, more than the limit of {limit}")
        with self.open_member(name) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise IntegrityError(f"{self.path}: member {name!r} is larger than the limit of {limit}")
        return data


class BundleWriter:
    """Writes a bundle to a temporary file next to ``target``; ``commit()`` renames it into place atomically."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        parent = self.target.parent if str(self.target.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"cannot write {self.target}: directory {parent} does not exist")
        if self.target.is_dir():
            raise UsageError(f"cannot write {self.target}: it is a directory")
        try:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{self.target.name}.", suffix=".partial")
        except OSError as exc:
            raise UsageError(f"cannot write in {parent}: {exc.strerror}") from None
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "w+b")
        self._zip = zipfile.ZipFile(self._fh, "w", allowZip64=True)
        self._done = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._done:
            self.abort()

    def _info(self, name: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        info.create_system = 3
        return info

    @contextlib.contextmanager
    def open_member(self, name: str, *, compress: bool = False) -> Iterator[IO[bytes]]:
        """A stream to write one member; payloads are stored uncompressed so a reader can use them in place."""
        with self._zip.open(self._info(name, compress), "w", force_zip64=True) as stream:
            yield stream

    def _span(self, name: str) -> tuple[int, int]:
        """(data offset, size) of a stored member already written to the temporary file."""
        info = self._zip.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError("only stored members can be read back")
        self._fh.flush()
        fields = _LOCAL_HEADER.unpack(os.pread(self._fh.fileno(), _LOCAL_HEADER.size, info.header_offset))
        return info.header_offset + _LOCAL_HEADER.size + int(fields[9]) + int(fields[10]), info.file_size

    def span(self, name: str) -> tuple[int, int]:
        """``(data offset, size)`` of a stored member already written (for chunk digests of what was written)."""
        return self._span(name)

    def fileno(self) -> int:
        self._fh.flush()
        return self._fh.fileno()

    def sync_data(self) -> None:
        """Flush what was written so far to disk (``fdatasync``). Packing calls it from its writing thread right
        after the payload, while the scan runs: the commit's own fsync then only has the small members left."""
        self._fh.flush()
        (getattr(os, "fdatasync", None) or os.fsync)(self._fh.fileno())

    def write_member(self, name: str, data: bytes, *, compress: bool = True) -> None:
        self._zip.writestr(self._info(name, compress), data)

    def commit(self) -> None:
        """Finish the archive, flush it to disk and rename it over the target in one step."""
        self._zip.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self._tmp, 0o644 & ~_umask())
        os.replace(self._tmp, self.target)
        self._done = True

    def abort(self) -> None:
        """Drop the temporary file; the target is left exactly as it was."""
        with contextlib.suppress(Exception):
            self._zip.close()
        with contextlib.suppress(Exception):
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
        self._done = True


class _PReadMember(io.RawIOBase):
    """``size`` bytes of a file descriptor from ``offset``, read with pread (no shared file position)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._end - self._pos)
        if n <= 0:
            return 0
        if _HAVE_PREADV:
            got = os.preadv(self._fd, [view[:n]], self._pos)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(self._fd, n, self._pos)
            got = len(data)
            view[:got] = data
        if got == 0:
            raise IntegrityError("archive ended inside a member (truncated)")
        self._pos += got
        return got


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
