"""The manifest: what a bundle contains, where it came from, and how to check it.

The manifest is the one document that gets signed, so it must serialize to exactly one byte string: canonical JSON
(sorted keys, no insignificant whitespace, UTF-8, no NaN). Reading is strict: unknown keys, wrong types and unknown
format versions are integrity failures, because a tool that guesses at a manifest it does not understand would
verify something other than what was signed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bundler.errors import IntegrityError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_JSON_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MIN_CHUNK_SIZE",
    "PYLOCK_NAME",
    "REQUIREMENTS_NAME",
    "SIGNATURE_NAME",
    "Environment",
    "FileEntry",
    "Manifest",
    "canonical_bytes",
    "canonical_json",
    "parse_json_document",
    "parse_manifest",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
REQUIREMENTS_NAME = "requirements.txt"
PYLOCK_NAME = "pylock.toml"
#: A manifest larger than this, or nested deeper, is refused before validation (hostile input must stay cheap).
MAX_MANIFEST_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
#: Chunked digests (see ``FileEntry``) may not use chunks smaller than this: a verifier must not be made to do
#: millions of tiny hash calls.
MIN_CHUNK_SIZE = 1 << 20

Serializer = Literal["joblib", "pickle", "skops"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MEMBER = re.compile(r"^(model|sample|code)/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
                     r"|^(requirements\.txt|pylock\.toml|compat/tested\.json)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FileEntry(_Strict):
    """One archive member with its SHA-256 (lowercase hex) and size in bytes.

    Large members also carry ``chunks``: the SHA-256 of each consecutive ``chunk_size`` bytes. SHA-256 of one
    stream cannot be computed in parallel; digests of chunks can, so a verifier uses every core on a large payload.
    The chunk list is signed with the rest of the manifest and covers every byte, so checking it is as strong as
    checking ``sha256``.
    """

    path: str
    sha256: str
    size: int = Field(ge=0)
    chunk_size: int | None = None
    chunks: list[str] | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    @field_validator("chunks")
    @classmethod
    def _chunk_hex(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(_HEX64.match(v) for v in value):
            raise ValueError("chunk digests must be 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _chunk_layout(self) -> FileEntry:
        if (self.chunks is None) != (self.chunk_size is None):
            raise ValueError("chunks and chunk_size go together")
        if self.chunk_size is not None and self.chunks is not None:
            if self.chunk_size < MIN_CHUNK_SIZE:
                raise ValueError(f"chunk_size must be at least {MIN_CHUNK_SIZE}")
            if len(self.chunks) != -(-self.size // self.chunk_size):
                raise ValueError("the number of chunk digests does not match size / chunk_size")
        return self

    @field_validator("path")
    @classmethod
    def _member(cls, value: str) -> str:
        parts = value.split("/")
        if not _MEMBER.match(value) or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not an allowed member name: {value!r}")
        return value


class Environment(_Strict):
    """The interpreter and the pinned packages the model was bundled under."""

    python_version: str
    implementation: str
    platform: str
    machine: str
    packages: dict[str, str]


class Manifest(_Strict):
    """Everything a verifier needs; every member except manifest and signature is listed in ``files``."""

    format_version: int
    bundler_version: str
    created: str
    model_class: str
    serializer: Serializer
    payload: list[str]
    files: list[FileEntry]
    environment: Environment
    requirements: list[str]
    frameworks: list[str] = Field(default_factory=list)
    globals: list[str] = Field(default_factory=list)
    sample: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("format_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(f"unsupported manifest format version {value}")
        return value

    def file(self, path: str) -> FileEntry | None:
        """The entry for ``path``, or None."""
        for entry in self.files:
            if entry.path == path:
                return entry
        return None


def canonical_json(data: Any) -> bytes:
    """Serialize JSON-able data canonically: sorted keys, compact separators, UTF-8, NaN/Infinity refused."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def canonical_bytes(manifest: Manifest) -> bytes:
    """The exact bytes stored as ``manifest.json`` and covered by the signature."""
    return canonical_json(manifest.model_dump(mode="json"))


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_json_document(data: bytes, what: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Any:
    """Parse a small JSON document from a bundle with size and depth limits; any problem is an IntegrityError."""
    if len(data) > max_bytes:
        raise IntegrityError(f"{what} is {len(data)} bytes, more than the limit of {max_bytes}")
    # Deep nesting is cheap to detect on the raw text and would otherwise cost recursion in the parser.
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and _bracket_depth(data) > MAX_JSON_DEPTH:
        raise IntegrityError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"{what} is not valid JSON: {str(exc).splitlines()[0]}") from None
    if not _depth_ok(value, MAX_JSON_DEPTH):
        raise IntegrityError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _bracket_depth(data: bytes) -> int:
    """Maximum nesting of brackets outside strings (an upper bound good enough to refuse early)."""
    depth = best = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            best = max(best, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return best


def parse_manifest(data: bytes) -> Manifest:
    """Read ``manifest.json`` bytes strictly. Every schema problem is reported, in one IntegrityError."""
    value = parse_json_document(data, MANIFEST_NAME)
    if not isinstance(value, dict):
        raise IntegrityError(f"{MANIFEST_NAME} is not a JSON object")
    version = value.get("format_version")
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"{MANIFEST_NAME} has format version {version!r}; this bundler reads version {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate(value)
    except ValidationError as exc:
        problems = [
            f"{MANIFEST_NAME}: {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        ]
        raise IntegrityError(f"{MANIFEST_NAME} has the wrong shape", problems=problems) from None
