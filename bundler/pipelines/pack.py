"""``pack`` and ``pack_file``: serialize (or copy) a model into a new bundle, atomically.

Members are hashed as they are written; the manifest (which lists every member's digest) and the signature over
its canonical bytes are written last, and the archive is renamed into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bundler._version import __version__
from bundler.container.archive import BundleWriter, check_input_file
from bundler.container.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    PYLOCK_NAME,
    REQUIREMENTS_NAME,
    SIGNATURE_NAME,
    Environment,
    FileEntry,
    Manifest,
    canonical_bytes,
    canonical_json,
)
from bundler.environment.capture import capture_interpreter
from bundler.environment.requirements import infer_requirements, parse_pins, requirement_lines
from bundler.errors import BundlerWarning, EnvironmentMismatch, UsageError
from bundler.integrity.hashing import (
    CHUNK_SIZE,
    CHUNKED_MIN_BYTES,
    DIGEST_CHUNK_BYTES,
    HashingWriter,
    memory_chunk_digests,
    sha256_bytes,
)
from bundler.integrity.signing import Sha256Signer, Signer, signature_document
from bundler.pipelines import progress
from bundler.pipelines.payload import default_allowlist, detect_format, scan_payload
from bundler.pipelines.serializers import PAYLOAD_NAMES, check_serializer

if TYPE_CHECKING:
    from bundler.safety.scan import ScanResult

__all__ = ["pack", "pack_file"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise UsageError("metadata must be a mapping with string keys")
    try:
        encoded = canonical_json(dict(metadata))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"metadata must be plain JSON (no NaN, no objects): {exc}") from None
    import json

    return dict(json.loads(encoded))  # tuples become lists, as they will read back


class _Packer:
    """Collects members as they are written, then writes the manifest and signature last."""

    def __init__(self, writer: BundleWriter) -> None:
        self.writer = writer
        self.files: list[FileEntry] = []

    def add_payload(self, name: str, data: memoryview) -> FileEntry:
        """Write the payload from memory, hashing exactly the bytes written (on another core while they are
        written; chunk digests of large payloads on every core, from the same memory: nothing is read back)."""
        size = len(data)
        with self.writer.open_member(name) as raw, progress.task(f"writing {name}", size) as advance:
            hashing = HashingWriter(raw, advance)
            try:
                for start in range(0, size, CHUNK_SIZE):
                    hashing.write(data[start:start + CHUNK_SIZE])
            finally:
                digest = hashing.hexdigest  # also ends the hashing thread when writing failed
        chunks = memory_chunk_digests(data) if size >= CHUNKED_MIN_BYTES else None
        entry = FileEntry(path=name, sha256=digest, size=size,
                          chunk_size=DIGEST_CHUNK_BYTES if chunks is not None else None, chunks=chunks)
        self.files.append(entry)
        return entry

    def add_bytes(self, name: str, data: bytes) -> None:
        self.writer.write_member(name, data)
        self.files.append(FileEntry(path=name, sha256=sha256_bytes(data), size=len(data)))


def _scan_memory(data: memoryview, serializer: str) -> ScanResult:
    """Static scan of a payload held in memory (the very bytes that will be written)."""
    if serializer == "skops":
        import io

        return scan_payload(io.BytesIO(data), "skops")
    from bundler.safety.scan import scan_memory
    from bundler.safety.source import decompress_all

    compression, plain = decompress_all(data)
    return scan_memory(plain if plain is not None else data, compression=compression)


def _finish(packer: _Packer, *, serializer: str, payload: str, model_class: str, scan: ScanResult,
            sample_info: dict[str, Any] | None, metadata: dict[str, Any], requirements: Iterable[str] | None,
            signer: Signer | None, lock: bool) -> Manifest:
    inferred = infer_requirements(scan.globals, scan.calls)
    pins = dict(inferred.pins)
    pins.update(parse_pins(requirements or []))
    pins = dict(sorted(pins.items()))
    if inferred.unmapped:
        warnings.warn(
            "the payload references modules no installed distribution provides ("
            + ", ".join(inferred.unmapped) + "); a loader needs that code importable", BundlerWarning, stacklevel=3)
    lines = requirement_lines(pins)
    packer.add_bytes(REQUIREMENTS_NAME, ("\n".join(lines) + "\n" if lines else "").encode())
    interpreter = capture_interpreter()
    if lock:
        from bundler.environment.targets import write_pylock

        packer.add_bytes(PYLOCK_NAME, write_pylock(lines, interpreter).encode())
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        bundler_version=__version__,
        created=_now(),
        model_class=model_class,
        serializer=serializer,  # type: ignore[arg-type]
        payload=[payload],
        files=sorted(packer.files, key=lambda f: f.path),
        environment=Environment(packages=pins, **interpreter),
        requirements=lines,
        frameworks=inferred.frameworks,
        globals=list(scan.globals),
        sample=sample_info,
        metadata=metadata,
    )
    manifest_bytes = canonical_bytes(manifest)
    packer.writer.write_member(MANIFEST_NAME, manifest_bytes)
    packer.writer.write_member(SIGNATURE_NAME, signature_document(signer or Sha256Signer(), manifest_bytes))
    packer.writer.commit()
    return manifest


def _warn_outside_allowlist(scan: ScanResult, profiles: Iterable[str] = (), code: Iterable[str] = ()) -> None:
    from bundler.safety.profiles import profiles_for

    tops = set(code)
    bad = [b for b in default_allowlist((), profiles).offending(scan) if b.split(":")[0].split(".")[0] not in tops]
    if bad:
        suggested = profiles_for(bad)
        how = (f"trust_profiles={suggested!r} (--trust-profile {' --trust-profile '.join(suggested)})"
               if suggested else " ".join(f"--trust {b}" for b in bad))
        warnings.warn(
            "a default loader would refuse these globals: " + ", ".join(bad)
            + "; trust them when loading with " + how
            + " (or sign the bundle and load with the key)", BundlerWarning, stacklevel=3)


def pack(model: Any, path: str | os.PathLike[str], *, serializer: str = "joblib", sample: Any = None,
         signer: Signer | None = None, metadata: Mapping[str, Any] | None = None,
         requirements: Iterable[str] | None = None, lock: bool = False,
         code: Iterable[str | os.PathLike[str]] = (), trust_profiles: Iterable[str] = ()) -> Manifest:
    """Serialize ``model`` into a new bundle at ``path`` (atomically) and return its manifest.

    ``sample`` (array-like) stores a small input and the model's outputs for the behaviour check; ``signer`` signs
    (default: checksum only); ``requirements`` adds or overrides ``name==version`` pins; ``lock`` also writes a
    ``pylock.toml``; ``code`` bundles the user's modules (``.py`` files or package folders) as ``code/…`` members,
    imported at load only when trusted. Globals a default loader would refuse produce a ``BundlerWarning`` (naming
    the trust profile that accepts them, ``trust_profiles`` silences it for those), never a refusal.
    """
    from bundler.pipelines.code import code_modules, collect_code

    check_serializer(serializer)
    meta = _check_metadata(metadata)
    parse_pins(requirements or [])
    code_members = collect_code(code)
    from bundler.pipelines.serializers import dump_to_memory

    with progress.task("serializing", 0):
        data = dump_to_memory(model, serializer)
    scan = _scan_memory(data, serializer)
    _warn_outside_allowlist(scan, trust_profiles, code_modules(code_members))
    return _write_bundle(path, data, serializer=serializer, scan=scan, model=model, sample=sample, metadata=meta,
                         requirements=requirements, signer=signer, lock=lock, code=code_members)


def _write_bundle(path: str | os.PathLike[str], data: memoryview, *, serializer: str, scan: ScanResult,
                  model: Any, sample: Any, metadata: dict[str, Any], requirements: Iterable[str] | None,
                  signer: Signer | None, lock: bool, code: Mapping[str, bytes]) -> Manifest:
    """The one pack pipeline behind ``pack`` and ``pack_file``: payload, sample, requirements, manifest, signature,
    written to a temporary file and renamed into place."""
    payload = PAYLOAD_NAMES[serializer]
    with BundleWriter(path) as writer:
        packer = _Packer(writer)
        packer.add_payload(payload, data)
        for name, source in sorted(code.items()):
            packer.add_bytes(name, source)
        sample_info = _add_sample(packer, model, sample)
        return _finish(packer, serializer=serializer, payload=payload, model_class=_qualname(model), scan=scan,
                       sample_info=sample_info, metadata=metadata, requirements=requirements, signer=signer,
                       lock=lock)


def _add_sample(packer: _Packer, model: Any, sample: Any) -> dict[str, Any] | None:
    if sample is None:
        return None
    from bundler.pipelines.behaviour import sample_members

    members, info = sample_members(model, sample)
    for name, data in sorted(members.items()):
        packer.add_bytes(name, data)
    return info


def pack_file(source: str | os.PathLike[str], path: str | os.PathLike[str], *, serializer: str | None = None,
              sample: Any = None, signer: Signer | None = None, metadata: Mapping[str, Any] | None = None,
              requirements: Iterable[str] | None = None, trust: Iterable[str] = (), lock: bool = False,
              code: Iterable[str | os.PathLike[str]] = (), trust_profiles: Iterable[str] = ()) -> Manifest:
    """Bundle an existing ``.joblib`` / ``.pkl`` / ``.skops`` file, whose format is detected from its content.

    The file is read once into memory; those bytes are scanned and refused (``UnsafeContent``) when they name
    globals outside the allowlist, unless the caller trusts them explicitly; then they are loaded with the
    restricted unpickler and every native-backed object's state is validated, so a crafted model is refused at pack
    time too; and exactly those bytes are written into the bundle. ``trust_profiles`` accepts the globals of
    third-party model libraries (``["xgboost"]``); ``code`` bundles the user's modules, which are imported from the
    very bytes bundled while the file is checked (their classes are trusted: they are the caller's own code).
    """
    from bundler.pipelines.code import code_modules, collect_code, install_code

    src = check_input_file(source)
    meta = _check_metadata(metadata)
    parse_pins(requirements or [])
    code_members = collect_code(code)
    allow = default_allowlist(trust, trust_profiles)
    try:
        with open(src, "rb") as fh:
            data = memoryview(bytearray(fh.read()))
    except OSError as exc:
        raise UsageError(f"{src}: cannot read ({exc.strerror})") from None
    if not len(data):
        raise UsageError(f"{src}: empty file, not a model")
    detected = detect_format(bytes(data[:8]))
    scan = _scan_memory(data, "skops" if detected == "skops" else "pickle")
    fmt = "skops" if detected == "skops" else ("joblib" if scan.format.startswith("joblib") else "pickle")
    # A plain pickle is also a valid joblib payload (joblib.load reads it); anything else must match.
    compatible = serializer == "joblib" and fmt == "pickle"
    if serializer is not None and check_serializer(serializer) != fmt and not compatible:
        raise UsageError(f"{src} is a {fmt} payload, not {serializer}")
    fmt = serializer or fmt
    from bundler.safety.loading import audit

    tops = set(code_modules(code_members))
    if tops:
        allow = allow.extended(n for n in scan.globals if n.split(":")[0].split(".")[0] in tops)
    audit(scan, allow)
    install_code(str(src), code_members, strict=False)
    from bundler.pipelines.serializers import load_verified
    from bundler.safety.loading import validate_loaded
    from bundler.safety.source import decompress_all

    _, plain = decompress_all(data) if fmt != "skops" else (None, None)
    try:
        loaded = load_verified(plain if plain is not None else data, fmt, scan, allow=allow)
    except EnvironmentMismatch as exc:
        raise _with_module_hint(exc) from None
    validate_loaded(loaded, allow)
    return _write_bundle(path, data, serializer=fmt, scan=scan, model=loaded.obj, sample=sample, metadata=meta,
                         requirements=requirements, signer=signer, lock=lock, code=code_members)


def _with_module_hint(exc: EnvironmentMismatch) -> EnvironmentMismatch:
    """A module the payload needs cannot be imported: say so when it lies in the current folder."""
    import re

    from bundler.pipelines.code import missing_module_hint

    found = re.search(r"No module named '([A-Za-z0-9_.]+)'", exc.problems[0])
    hint = missing_module_hint(found.group(1)) if found else None
    if hint is None:
        return exc
    return type(exc)(f"{exc.problems[0]}; {hint}", problems=[f"{exc.problems[0]}; {hint}", *exc.problems[1:]])
