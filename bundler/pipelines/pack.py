"""``pack`` and ``pack_file``: serialize (or copy) a model into a new bundle, atomically.

Members are hashed as they are written; the manifest (which lists every member's digest) and the signature over
its canonical bytes are written last, and the archive is renamed into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

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
from bundler.environment.requirements import (
    UserPins,
    dependency_closure,
    infer_requirements,
    requirement_lines,
    user_pins,
)
from bundler.environment.runtime import graph_facts
from bundler.errors import (
    BundlerWarning,
    EnvironmentMismatch,
    Hint,
    IntegrityError,
    UsageError,
)
from bundler.integrity.hashing import (
    CHUNK_SIZE,
    CHUNKED_MIN_BYTES,
    DIGEST_CHUNK_BYTES,
    MemoryPayloadWrite,
    sha256_bytes,
)
from bundler.integrity.signing import Sha256Signer, Signer, signature_document
from bundler.pipelines import progress
from bundler.pipelines.payload import default_allowlist, detect_format, scan_payload
from bundler.pipelines.serializers import PAYLOAD_NAMES, check_serializer
from bundler.settings import Settings, resolve

if TYPE_CHECKING:
    from bundler.safety.scan import ScanResult

__all__ = ["pack", "pack_file"]

T = TypeVar("T")


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

    def add_payload(self, name: str, data: memoryview, meanwhile: Callable[[], T]) -> T:
        """Write the payload from memory, hashing exactly the bytes written, and run ``meanwhile()`` (the scan)
        at the same time; return what it returned.

        Writing, the zip CRC, the whole SHA-256, the chunk digests (payloads of ``CHUNKED_MIN_BYTES`` or more, on
        every core) and the ``fdatasync`` of the written payload release the GIL, so they run on worker threads
        (``MemoryPayloadWrite``) while the scan, which is Python, runs here. Nothing is read back. If
        ``meanwhile`` raises, the write is still waited for, then the error propagates (the bundle is aborted)."""
        size = len(data)
        chunked = size >= CHUNKED_MIN_BYTES
        with self.writer.open_member(name) as raw, \
                progress.task(f"writing {name}", size, background=True) as advance:
            writing = MemoryPayloadWrite(raw, data, chunk_size=DIGEST_CHUNK_BYTES if chunked else None,
                                         progress=advance, after_write=self.writer.sync_data)
            try:
                outcome = meanwhile()
            finally:
                digest, chunks = writing.result()
        self.files.append(FileEntry(path=name, sha256=digest, size=size,
                                    chunk_size=DIGEST_CHUNK_BYTES if chunked else None, chunks=chunks))
        return outcome

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


#: The distribution whose code reads each payload format (besides the classes the payload names).
SERIALIZER_DISTRIBUTIONS = {"joblib": ("joblib",), "skops": ("skops",), "pickle": ()}


def _finish(packer: _Packer, *, serializer: str, payload: str, model: Any, scan: ScanResult, sample: Any,
            sample_info: dict[str, Any] | None, metadata: dict[str, Any], pins: UserPins,
            signer: Signer | None, lock: bool) -> Manifest:
    extra = list(SERIALIZER_DISTRIBUTIONS[serializer])
    facts = graph_facts(model)
    if facts.fitted_on_dataframe or facts.holds_pandas or _from_module(sample, "pandas"):
        extra.append("pandas")
    if _from_module(sample, "scipy"):
        extra.append("scipy")  # a sparse sample is rebuilt with scipy.sparse
    inferred = infer_requirements(scan.globals, scan.calls, extra=extra)
    resolved = dict(inferred.pins)
    resolved.update(dependency_closure(pins.checked))
    resolved.update(pins.checked)
    resolved.update(pins.forced)
    resolved = dict(sorted(resolved.items()))
    if inferred.unmapped:
        warnings.warn(BundlerWarning(
            "the payload references modules no installed distribution provides ("
            + ", ".join(inferred.unmapped) + "); a loader needs that code importable"), stacklevel=3)
    for note in pins.notes:
        warnings.warn(BundlerWarning(note), stacklevel=3)
    lines = requirement_lines(resolved)
    packer.add_bytes(REQUIREMENTS_NAME, ("\n".join(lines) + "\n" if lines else "").encode())
    interpreter = capture_interpreter()
    if lock:
        from bundler.environment.targets import write_pylock

        packer.add_bytes(PYLOCK_NAME, write_pylock(lines, interpreter).encode())
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        bundler_version=__version__,
        created=_now(),
        model_class=_qualname(model),
        serializer=serializer,  # type: ignore[arg-type]
        payload=[payload],
        files=sorted(packer.files, key=lambda f: f.path),
        environment=Environment(packages=resolved, **interpreter),
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


def _from_module(obj: Any, package: str) -> bool:
    return (type(obj).__module__ or "").split(".")[0] == package


def _warn_outside_allowlist(scan: ScanResult, trust: Iterable[str], profiles: Iterable[str],
                            code: Iterable[str]) -> None:
    """Warn (never refuse) about globals a default loader would refuse; the bundled code's own are not counted."""
    tops = set(code)
    bad = [b for b in default_allowlist(trust, profiles).offending(scan) if _top_module(b) not in tops]
    if bad:
        warnings.warn(BundlerWarning(
            "a default loader would refuse these globals: " + ", ".join(bad), hints=_loader_trust_hints(bad)),
            stacklevel=3)


def _top_module(name: str) -> str:
    return name.split(":")[0].split(".")[0]


def _loader_trust_hints(names: list[str]) -> list[Hint]:
    """What a loader would pass to accept these names (a trust profile when one covers them, else ``trust``)."""
    from bundler.safety.profiles import trust_hints

    return [Hint(f"when loading, {h.text} (or sign the bundle and load with the key)", api=h.api, cli=h.cli)
            for h in trust_hints(names)]


def pack(model: Any, path: str | os.PathLike[str], *, serializer: str = "joblib", sample: Any = None,
         signer: Signer | None = None, metadata: Mapping[str, Any] | None = None,
         requirements: Iterable[str] | None = None, force_requirements: Iterable[str] | None = None,
         lock: bool = False, settings: Settings | None = None, code: Iterable[str | os.PathLike[str]] = (),
         trust_profiles: Iterable[str] = ()) -> Manifest:
    """Serialize ``model`` into a new bundle at ``path`` (atomically) and return its manifest.

    ``sample`` (what the model takes: an array, a list of str, a DataFrame or Series, a sparse matrix) stores a
    small input and the model's outputs for the behaviour check; ``signer`` signs (default: checksum only);
    ``requirements`` adds ``name==version`` pins, each of which must be what is installed here, while
    ``force_requirements`` pins exactly as given; ``lock`` also writes a ``pylock.toml``. Globals a default loader
    would refuse (after ``settings.trust`` and ``trust_profiles``) produce a ``BundlerWarning`` naming the trust
    profile that accepts them, never a refusal. ``code`` bundles the user's modules (``.py`` files or package
    folders) as ``code/...`` members, imported at load only when trusted.
    """
    from bundler.pipelines.code import code_modules, collect_code

    check_serializer(serializer)
    meta = _check_metadata(metadata)
    pins = user_pins(requirements or (), force_requirements or ())
    eff = resolve(settings, trust_profiles=trust_profiles)
    code_members = collect_code(code)
    import io

    from bundler.pipelines.serializers import dump

    buffer = io.BytesIO()
    expected = graph_facts(model).array_bytes if progress.enabled() else 0
    with progress.task("serializing", expected) as advance:
        dump(model, progress.writing(buffer, advance), serializer)
    data = buffer.getbuffer()

    def scan() -> ScanResult:  # runs while the payload is being written and hashed
        result = _scan_memory(data, serializer)
        _warn_outside_allowlist(result, eff.trust, eff.trust_profiles, code_modules(code_members))
        return result

    return _write_bundle(path, data, serializer=serializer, scan=scan, model=model, sample=sample, metadata=meta,
                         pins=pins, signer=signer, lock=lock, code=code_members)


def _write_bundle(path: str | os.PathLike[str], data: memoryview, *, serializer: str,
                  scan: ScanResult | Callable[[], ScanResult],
                  model: Any, sample: Any, metadata: dict[str, Any], pins: UserPins,
                  signer: Signer | None, lock: bool, code: Mapping[str, bytes]) -> Manifest:
    """The one pack pipeline behind ``pack`` and ``pack_file``: payload, sample, requirements, manifest, signature,
    written to a temporary file and renamed into place. ``scan`` is a result, or the scan to run while the payload
    is written (``pack``: writing need not wait for the scan; if the scan raises, the temporary file is dropped and
    the target is left as it was)."""
    payload = PAYLOAD_NAMES[serializer]
    with BundleWriter(path) as writer:
        packer = _Packer(writer)
        scanned = packer.add_payload(payload, data, scan if callable(scan) else lambda: scan)
        for name, source in sorted(code.items()):
            packer.add_bytes(name, source)
        sample_info = _add_sample(packer, model, sample)
        return _finish(packer, serializer=serializer, payload=payload, model=model, scan=scanned, sample=sample,
                       sample_info=sample_info, metadata=metadata, pins=pins, signer=signer, lock=lock)


def _add_sample(packer: _Packer, model: Any, sample: Any) -> dict[str, Any] | None:
    if sample is None:
        return None
    from bundler.pipelines.behaviour import sample_members

    members, info = sample_members(model, sample)
    for name, data in sorted(members.items()):
        packer.add_bytes(name, data)
    return info


def _source_format(data: memoryview, src: os.PathLike[str]) -> str:
    """``"skops"`` or ``"pickle-or-joblib"`` from the file's first bytes; a UsageError for what is no model file
    at all (a bundle, another zip archive, an empty file)."""
    if not len(data):
        raise UsageError(f"{src}: empty file, not a model")
    if detect_format(bytes(data[:8])) != "skops":
        return "pickle-or-joblib"
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UsageError(f"{src}: not a pickle, joblib or skops file (a damaged zip archive: {exc})") from None
    if MANIFEST_NAME in names:
        raise UsageError(f"{src} is already a bundle, not a model file: check or load it as it is", hints=[
            Hint("to check it", api=f"bundler.verify({str(src)!r})", cli=f"bundler verify {src}"),
            Hint("to use the model", api=f"bundler.load({str(src)!r})", cli=f"bundler load {src}")])
    if "schema.json" not in names:
        raise UsageError(f"{src}: a zip archive, but not a skops file (no schema.json); not a model file")
    return "skops"


def _looks_like_pickle(head: bytes) -> bool:
    """Whether a file that failed to scan at least starts like a pickle (protocol 2+) or a compressed joblib file;
    if not, it is some other kind of file, and saying "unknown opcode" would only confuse."""
    from bundler.safety.source import detect_compression

    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    try:
        return detect_compression(head) is not None
    except IntegrityError:  # the legacy "ZF" container: a joblib file, refused as such
        return True


def _read_source(src: Any) -> memoryview:
    """The whole file, read once (with progress): these bytes are scanned, loaded and written."""
    size = src.stat().st_size
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    try:
        with open(src, "rb") as fh, progress.task(f"reading {src.name}", size) as advance:
            while got < size:
                n = fh.readinto(view[got:got + CHUNK_SIZE])
                if not n:
                    break
                got += n
                advance(n)
            rest = fh.read()  # the file grew while being read: take what is there now, as one read would
    except OSError as exc:
        raise UsageError(f"{src}: cannot read ({exc.strerror})") from None
    if got < size:
        return view[:got]
    return memoryview(bytes(data) + rest) if rest else view


def pack_file(source: str | os.PathLike[str], path: str | os.PathLike[str], *, serializer: str | None = None,
              sample: Any = None, signer: Signer | None = None, metadata: Mapping[str, Any] | None = None,
              requirements: Iterable[str] | None = None, force_requirements: Iterable[str] | None = None,
              trust: Iterable[str] = (), lock: bool = False, settings: Settings | None = None,
              code: Iterable[str | os.PathLike[str]] = (), trust_profiles: Iterable[str] = ()) -> Manifest:
    """Bundle an existing ``.joblib`` / ``.pkl`` / ``.skops`` file, whose format is detected from its content.

    The file is read once into memory; those bytes are scanned and refused (``UnsafeContent``) when they name
    globals outside the allowlist, unless the caller trusts them explicitly (``trust``, or ``settings.trust``);
    then they are loaded with the restricted unpickler and every native-backed object's state is validated, so a
    crafted model is refused at pack time too; and exactly those bytes are written into the bundle. A file that is
    no model at all (a bundle, another zip, a CSV...) is a UsageError saying what it is. ``trust_profiles``
    accepts the globals of third-party model libraries (``["xgboost"]``); ``code`` bundles the user's modules, which
    are imported from the very bytes bundled while the file is checked (their classes are trusted: they are the
    caller's own code).
    """
    from bundler.pipelines.code import code_modules, collect_code, install_code

    src = check_input_file(source)
    meta = _check_metadata(metadata)
    pins = user_pins(requirements or (), force_requirements or ())
    eff = resolve(settings, trust=trust, trust_profiles=trust_profiles)
    code_members = collect_code(code)
    allow = default_allowlist(eff.trust, eff.trust_profiles)
    data = _read_source(src)
    detected = _source_format(data, src)
    try:
        scan = _scan_memory(data, "skops" if detected == "skops" else "pickle")
    except IntegrityError:
        if detected != "skops" and not _looks_like_pickle(bytes(data[:8])):
            raise UsageError(f"{src}: not a pickle, joblib or skops file") from None
        raise
    fmt = "skops" if detected == "skops" else ("joblib" if scan.format.startswith("joblib") else "pickle")
    # A plain pickle is also a valid joblib payload (joblib.load reads it); anything else must match.
    compatible = serializer == "joblib" and fmt == "pickle"
    if serializer is not None and check_serializer(serializer) != fmt and not compatible:
        raise UsageError(f"{src} is a {fmt} payload, not {serializer}")
    fmt = serializer or fmt
    from bundler.safety.loading import audit

    tops = set(code_modules(code_members))
    if tops:
        allow = allow.extended(n for n in scan.globals if _top_module(n) in tops)
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
                         pins=pins, signer=signer, lock=lock, code=code_members)


def _with_module_hint(exc: EnvironmentMismatch) -> EnvironmentMismatch:
    """A module the payload needs cannot be imported: say so when it lies in the current folder."""
    import re

    from bundler.pipelines.code import missing_module_hint

    found = re.search(r"No module named '([A-Za-z0-9_.]+)'", exc.problems[0])
    hint = missing_module_hint(found.group(1)) if found else None
    if hint is None:
        return exc
    return type(exc)(f"{exc.problems[0]}; {hint}", problems=[f"{exc.problems[0]}; {hint}", *exc.problems[1:]],
                     hints=exc.hints)
