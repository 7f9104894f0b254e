"""``pack``, ``verify``, ``load``, ``inspect``: the public operations, composed from the modules below them.

The order of checks is the contract of DESIGN.md: open the archive safely, check the signature over the manifest,
check every member against the manifest, check the environment under a policy, scan the payload against an allowlist
that does not come from the bundle, and only then deserialize. ``verify`` stops before deserializing. Every problem
found is collected into one ``Report`` (a table for people, JSON for tools) instead of stopping at the first.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from bundler import progress
from bundler._version import __version__
from bundler.archive import BundleReader, BundleWriter, check_input_file
from bundler.environment import (
    InstalledVersions,
    Policy,
    capture_interpreter,
    compare,
    differences,
    infer_requirements,
    parse_pins,
    requirement_lines,
)
from bundler.errors import (
    BehaviourDrift,
    BundleError,
    BundlerWarning,
    EnvironmentMismatch,
    IntegrityError,
    SignatureError,
    UnsafeContent,
    UsageError,
)
from bundler.hashing import (
    CHUNK_SIZE,
    CHUNKED_MIN_BYTES,
    DIGEST_CHUNK_BYTES,
    BackgroundDigest,
    HashingReader,
    HashingWriter,
    sha256_bytes,
)
from bundler.manifest import (
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
    parse_manifest,
)
from bundler.serializers import PAYLOAD_NAMES, check_serializer
from bundler.signing import Sha256Signer, SignatureStatus, Signer, VerifyKey, check_signature, signature_document

if TYPE_CHECKING:
    from bundler.allowlist import Allowlist
    from bundler.scan import ScanResult

# Exit-code precedence when several kinds of problem are found: integrity first (nothing else can be trusted),
# then unsafe content (a hostile payload must never be reported as a mere version problem), then environment.
KIND_EXIT = {"signature": 3, "integrity": 3, "unsafe": 5, "environment": 4, "behaviour": 6}
KIND_ORDER = ("signature", "integrity", "unsafe", "environment", "behaviour")
KIND_ERROR: dict[str, type[BundleError]] = {
    "signature": SignatureError,
    "integrity": IntegrityError,
    "unsafe": UnsafeContent,
    "environment": EnvironmentMismatch,
    "behaviour": BehaviourDrift,
}


@dataclass(frozen=True)
class Problem:
    """One problem found, with its kind (integrity, unsafe, environment, behaviour)."""

    kind: str
    message: str
    package: str | None = None
    expected: str | None = None
    found: str | None = None


@dataclass
class Report:
    """The result of ``verify`` (and of the checks ``load`` runs): every problem found, and notes for people."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    signature: SignatureStatus | None = None
    globals: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        kinds = {p.kind for p in self.problems}
        for kind in KIND_ORDER:
            if kind in kinds:
                return KIND_EXIT[kind]
        return 0

    def add(self, kind: str, message: str, **extra: str | None) -> None:
        self.problems.append(Problem(kind, message, **extra))

    def add_error(self, error: BundleError, kind: str) -> None:
        for line in error.problems:
            self.add(kind, line)

    def error(self) -> BundleError | None:
        """The exception for the most serious kind of problem found, carrying every problem line."""
        for kind in KIND_ORDER:
            if any(p.kind == kind for p in self.problems):
                lines = [p.message for p in self.problems]
                if kind == "unsafe":
                    offending = [p.package for p in self.problems if p.kind == "unsafe" and p.package]
                    return UnsafeContent(lines[0], problems=lines, offending=offending)
                return KIND_ERROR[kind](lines[0], problems=lines)
        return None

    def raise_for_problems(self) -> None:
        err = self.error()
        if err is not None:
            raise err

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "path": self.path,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "verified": self.ok,
            "signature": None if self.signature is None else {
                "scheme": self.signature.scheme,
                "key_id": self.signature.key_id,
                "authenticated": self.signature.authenticated,
            },
            "checked": self.checked,
            "problems": [{k: v for k, v in p.__dict__.items() if v is not None} for p in self.problems],
            "notes": self.notes,
            "model_class": m.model_class if m else None,
            "serializer": m.serializer if m else None,
            "created": m.created if m else None,
            "globals": self.globals,
        }


# -- pack -------------------------------------------------------------------------------------------------------
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

    def add_stream(self, name: str, fill: Callable[[IO[bytes]], None]) -> FileEntry:
        with self.writer.open_member(name) as raw, progress.task(f"writing {name}", 0) as advance:
            hashing = HashingWriter(raw, advance)
            try:
                fill(cast(IO[bytes], hashing))  # the write side of a binary file is all it needs
            finally:
                digest = hashing.hexdigest  # also ends the hashing thread when ``fill`` failed
        chunks = None
        if hashing.size >= CHUNKED_MIN_BYTES:
            with progress.task(f"hashing {name}", hashing.size) as advance:
                chunks = self.writer.chunk_digests(name, advance)
        entry = FileEntry(path=name, sha256=digest, size=hashing.size,
                          chunk_size=DIGEST_CHUNK_BYTES if chunks is not None else None, chunks=chunks)
        self.files.append(entry)
        return entry

    def add_bytes(self, name: str, data: bytes) -> None:
        self.writer.write_member(name, data)
        self.files.append(FileEntry(path=name, sha256=sha256_bytes(data), size=len(data)))


def _scan_written(writer: BundleWriter, name: str, serializer: str) -> ScanResult:
    with writer.read_back(name) as stream:
        return _scan_payload(stream, serializer)


def _scan_payload(stream: IO[bytes] | HashingReader, serializer: str) -> ScanResult:
    """Static scan of a payload stream: globals and calls, without deserializing anything."""
    if serializer == "skops":
        from bundler.skops_scan import scan_skops

        return scan_skops(cast(IO[bytes], stream))
    from bundler.scan import scan_fileobj

    return scan_fileobj(cast(BinaryIO, stream))


def _default_allowlist(trust: Iterable[str] = ()) -> Allowlist:
    from bundler.allowlist import DEFAULT_ALLOWLIST

    trust = list(trust)
    return DEFAULT_ALLOWLIST.extended(trust) if trust else DEFAULT_ALLOWLIST


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
        from bundler.targets import write_pylock

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


def _warn_outside_allowlist(scan: ScanResult) -> None:
    bad = _default_allowlist().offending(scan)
    if bad:
        warnings.warn(
            "a default loader would refuse these globals: " + ", ".join(bad)
            + "; trust them when loading with " + " ".join(f"--trust {b}" for b in bad)
            + " (or sign the bundle and load with the key)", BundlerWarning, stacklevel=3)


def pack(model: Any, path: str | os.PathLike[str], *, serializer: str = "joblib", sample: Any = None,
         signer: Signer | None = None, metadata: Mapping[str, Any] | None = None,
         requirements: Iterable[str] | None = None, lock: bool = False) -> Manifest:
    """Serialize ``model`` into a new bundle at ``path`` (atomically) and return its manifest.

    ``sample`` (array-like) stores a small input and the model's outputs for the behaviour check; ``signer`` signs
    (default: checksum only); ``requirements`` adds or overrides ``name==version`` pins; ``lock`` also writes a
    ``pylock.toml``. Globals a default loader would refuse produce a ``BundlerWarning``, never a refusal.
    """
    check_serializer(serializer)
    meta = _check_metadata(metadata)
    parse_pins(requirements or [])
    payload = PAYLOAD_NAMES[serializer]
    with BundleWriter(path) as writer:
        packer = _Packer(writer)
        from bundler.serializers import dump

        packer.add_stream(payload, lambda stream: dump(model, stream, serializer))
        scan = _scan_written(writer, payload, serializer)
        _warn_outside_allowlist(scan)
        sample_info = _add_sample(packer, model, sample)
        return _finish(packer, serializer=serializer, payload=payload, model_class=_qualname(model), scan=scan,
                       sample_info=sample_info, metadata=meta, requirements=requirements, signer=signer, lock=lock)


def _add_sample(packer: _Packer, model: Any, sample: Any) -> dict[str, Any] | None:
    if sample is None:
        return None
    from bundler.behaviour import sample_members

    members, info = sample_members(model, sample)
    for name, data in sorted(members.items()):
        packer.add_bytes(name, data)
    return info


def detect_format(head: bytes) -> str:
    """The serializer a payload file was written with, from its first bytes (never from its file name)."""
    if head.startswith(b"PK\x03\x04"):
        return "skops"
    return "pickle-or-joblib"


def pack_file(source: str | os.PathLike[str], path: str | os.PathLike[str], *, serializer: str | None = None,
              sample: Any = None, signer: Signer | None = None, metadata: Mapping[str, Any] | None = None,
              requirements: Iterable[str] | None = None, trust: Iterable[str] = (), lock: bool = False) -> Manifest:
    """Bundle an existing ``.joblib`` / ``.pkl`` / ``.skops`` file, whose format is detected from its content.

    The file is scanned first and refused (``UnsafeContent``) when it names globals outside the allowlist, unless the
    caller trusts them explicitly; then the copy in the bundle is loaded with the restricted unpickler and its tree
    structures are validated, so a crafted model is refused at pack time too. The source is read through one open
    file descriptor, so what was scanned is what gets bundled.
    """
    src = check_input_file(source)
    meta = _check_metadata(metadata)
    parse_pins(requirements or [])
    allow = _default_allowlist(trust)
    with open(src, "rb") as fh:
        head = fh.read(8)
        if not head:
            raise UsageError(f"{src}: empty file, not a model")
        fh.seek(0)
        detected = detect_format(head)
        scan = _scan_payload(fh, "skops" if detected == "skops" else "pickle")
        fmt = "skops" if detected == "skops" else ("joblib" if scan.format.startswith("joblib") else "pickle")
        # A plain pickle is also a valid joblib payload (joblib.load reads it); anything else must match.
        compatible = serializer == "joblib" and fmt == "pickle"
        if serializer is not None and check_serializer(serializer) != fmt and not compatible:
            raise UsageError(f"{src} is a {fmt} payload, not {serializer}")
        fmt = serializer or fmt
        bad = allow.offending(scan)
        if bad:
            lines = allow.audit(scan)
            raise UnsafeContent(lines[0] if lines else f"{src}: unsafe globals", problems=lines or bad, offending=bad)
        payload = PAYLOAD_NAMES[fmt]
        with BundleWriter(path) as writer:
            packer = _Packer(writer)

            def copy(stream: IO[bytes]) -> None:
                fh.seek(0)
                while chunk := fh.read(CHUNK_SIZE):
                    stream.write(chunk)

            packer.add_stream(payload, copy)
            with writer.read_back(payload) as stream:
                from bundler.serializers import load as _load

                model = _load(stream, fmt, allow=allow)
            _validate_structures(model)
            sample_info = _add_sample(packer, model, sample)
            return _finish(packer, serializer=fmt, payload=payload, model_class=_qualname(model), scan=scan,
                           sample_info=sample_info, metadata=meta, requirements=requirements, signer=signer,
                           lock=lock)


# -- verify -----------------------------------------------------------------------------------------------------
def _verify_open(reader: BundleReader, *, key: VerifyKey | None, policy: Policy, trust: Iterable[str],
                 against: Mapping[str, str] | None) -> tuple[Report, Allowlist | None]:
    """All checks short of deserializing. Returns the report and the allowlist a loader must use."""
    report = Report(path=str(reader.path))
    names = set(reader.members)
    for required in (MANIFEST_NAME, SIGNATURE_NAME):
        if required not in names:
            report.add("integrity", f"{reader.path}: not a bundle or tampered: {required} is missing")
    if not report.ok:
        return report, None
    manifest_bytes = reader.read_small(MANIFEST_NAME)
    signature_bytes = reader.read_small(SIGNATURE_NAME, 64 << 10)
    try:
        report.signature = check_signature(signature_bytes, manifest_bytes, key)
    except SignatureError as exc:
        report.add_error(exc, "signature")
        return report, None
    report.notes.append(report.signature.note)
    report.checked.append("signature")
    try:
        manifest = parse_manifest(manifest_bytes)
    except IntegrityError as exc:
        report.add_error(exc, "integrity")
        return report, None
    report.manifest = manifest
    scan = _check_members(reader, manifest, report)
    report.checked.append("members")
    _check_environment(manifest, report, policy, against)
    report.checked.append("environment")
    allow = None
    if scan is not None:
        trusted = list(trust)
        if report.signature.authenticated:
            trusted += manifest.globals
        allow = _default_allowlist(trusted)
        report.globals = list(scan.globals)
        bad = allow.offending(scan)
        if bad:
            lines = allow.audit(scan)
            for name in bad:
                line = next((ln for ln in lines if name in ln), f"{name} is not allowed")
                report.add("unsafe", line, package=name)
        report.checked.append("content")
    return report, allow


def _check_members(reader: BundleReader, manifest: Manifest, report: Report) -> ScanResult | None:
    listed = {f.path: f for f in manifest.files}
    if len(listed) != len(manifest.files):
        report.add("integrity", "manifest lists a member more than once")
    present = set(reader.members) - {MANIFEST_NAME, SIGNATURE_NAME}
    for name in sorted(present - set(listed)):
        report.add("integrity", f"extra member {name!r} is not listed in the manifest")
    for name in sorted(set(listed) - present):
        report.add("integrity", f"member {name!r} is listed in the manifest but missing")
    for name in manifest.payload:
        if name not in listed:
            report.add("integrity", f"payload {name!r} is not listed among the manifest's files")
    if manifest.serializer in PAYLOAD_NAMES and manifest.payload != [PAYLOAD_NAMES[manifest.serializer]]:
        report.add("integrity", f"payload {manifest.payload} does not match serializer {manifest.serializer}")
    scan = None
    # The payload is scanned for unsafe content only when it is all there and intact; other members' problems do
    # not hide what the payload would do.
    payload_ok = all(name in listed and name in present for name in manifest.payload)
    for name in sorted(set(listed) & present):
        entry = listed[name]
        member = reader.members[name]
        if member.size != entry.size:
            report.add("integrity", f"member {name!r} altered: {member.size} bytes, manifest says {entry.size}")
            payload_ok = payload_ok and name not in manifest.payload
            continue
        try:
            intact, result, scan_error = _hash_and_scan(
                reader, entry, manifest.serializer if name in manifest.payload else None)
        except IntegrityError as exc:
            report.add_error(exc, "integrity")
            payload_ok = payload_ok and name not in manifest.payload
            continue
        if result is not None:
            scan = result
        if not intact:
            report.add("integrity", f"member {name!r} altered: its SHA-256 does not match the manifest")
            payload_ok = payload_ok and name not in manifest.payload
        elif scan_error is not None:
            report.add_error(scan_error, "unsafe" if isinstance(scan_error, UnsafeContent) else "integrity")
            payload_ok = False
    if REQUIREMENTS_NAME in listed and REQUIREMENTS_NAME in present and report.ok:
        text = reader.read_small(REQUIREMENTS_NAME).decode("utf-8", "replace")
        if [ln for ln in text.splitlines() if ln.strip()] != manifest.requirements:
            report.add("integrity", "requirements.txt does not match the manifest's requirements")
    if sorted(requirement_lines(manifest.environment.packages)) != sorted(manifest.requirements):
        report.add("integrity", "manifest: environment.packages and requirements disagree")
    return scan if payload_ok else None


def _hash_and_scan(reader: BundleReader, entry: FileEntry,
                   serializer: str | None) -> tuple[bool, ScanResult | None, BundleError | None]:
    """Check one member's digests and, for the payload, scan it in the same pass: (intact, scan, scan error).

    Hashing never waits for the scan: a member with chunked digests is hashed chunk by chunk on every core while
    the scan reads it on this thread; other stored members are hashed on a worker thread fed by the scan's own
    reads. A scan error (malformed or hostile stream) is returned, not raised: an altered payload must be reported
    as altered first.
    """
    name = entry.path
    member = reader.members[name]
    scan_result: ScanResult | None = None
    scan_error: BundleError | None = None

    def scan(stream: IO[bytes] | HashingReader) -> None:
        nonlocal scan_result, scan_error
        if serializer is not None:
            try:
                scan_result = _scan_payload(stream, serializer)
            except BundleError as exc:
                scan_error = exc

    if not member.stored:
        with reader.open_member(name) as stream:
            hashing = HashingReader(stream)
            scan(hashing)
            hashing.drain()
        return hashing.hexdigest == entry.sha256 and hashing.size == entry.size, scan_result, scan_error
    with progress.task(f"verifying {name}", member.size) as advance:
        if entry.chunks is not None and entry.chunk_size is not None:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(reader.chunk_digests, name, entry.chunk_size, advance)
                if serializer is not None:
                    with reader.open_member(name) as stream:
                        scan(stream)
                return pending.result() == entry.chunks, scan_result, scan_error
        digest = BackgroundDigest(advance)
        try:
            with reader.open_member(name, digest=digest) as stream:
                scan(stream)
                while stream.read(CHUNK_SIZE):
                    pass
        finally:
            hexdigest = digest.hexdigest()
        return hexdigest == entry.sha256 and digest.size == entry.size, scan_result, scan_error


def _check_environment(manifest: Manifest, report: Report, policy: Policy, against: Mapping[str, str] | None) -> None:
    installed: Mapping[str, str | None] = InstalledVersions() if against is None else dict(against)
    where = "this environment" if against is None else "the target environment"
    expected = manifest.environment.packages
    for m in compare(expected, installed, policy, manifest.frameworks):
        report.add("environment", f"{m.message} in {where}", package=m.package, expected=m.expected, found=m.found)
    if policy.base == "none" or any(v == "none" for v in policy.overrides.values()):
        flagged = {p.package for p in report.problems if p.kind == "environment"}
        for m in differences(expected, installed):
            if m.package not in flagged:
                report.notes.append(f"differs (not refused by policy): {m.message}")
    if against is None:
        here = capture_interpreter()
        bundled = manifest.environment
        if here["python_version"].split(".")[:2] != bundled.python_version.split(".")[:2]:
            report.notes.append(f"bundled under Python {bundled.python_version}, running {here['python_version']}")


def _policy(policy: Policy | str | None, overrides: Mapping[str, str] | None = None) -> Policy:
    if policy is None or isinstance(policy, str):
        from bundler.config import load_config

        config = load_config()
        merged = {**config.overrides, **(overrides or {})}
        return Policy.of(policy or config.policy, merged)
    return Policy.of(policy, overrides)


def verify(path: str | os.PathLike[str], *, key: VerifyKey | None = None, policy: Policy | str | None = None,
           trust: Iterable[str] = (), against: Mapping[str, str] | None = None) -> Report:
    """Check a bundle without deserializing anything; ``Report.ok`` and ``Report.problems`` say what was found.

    ``against`` checks the pins against another environment's versions (see ``bundler.targets.read_target``)
    instead of the running one. Input that cannot be read at all (a missing file) raises ``UsageError``.
    """
    pol = _policy(policy)
    try:
        with BundleReader(path) as reader:
            report, _ = _verify_open(reader, key=key, policy=pol, trust=trust, against=against)
    except IntegrityError as exc:
        report = Report(path=str(path))
        report.add_error(exc, "integrity")
    return report


def load(path: str | os.PathLike[str], *, key: VerifyKey | None = None, policy: Policy | str | None = None,
         trust: Iterable[str] = (), check_behaviour: bool = True) -> Any:
    """Verify, then deserialize under the restricted unpickler, validate tree structures, and (when the bundle has a
    sample) check that the model still predicts it the same. Raises the error of the most serious problem found."""
    model, _ = load_with_report(path, key=key, policy=policy, trust=trust, check_behaviour=check_behaviour)
    return model


def load_with_report(path: str | os.PathLike[str], *, key: VerifyKey | None = None,
                     policy: Policy | str | None = None, trust: Iterable[str] = (),
                     check_behaviour: bool = True) -> tuple[Any, Report]:
    """``load`` that also returns the report (the CLI prints it)."""
    pol = _policy(policy)
    with BundleReader(path) as reader:
        report, allow = _verify_open(reader, key=key, policy=pol, trust=trust, against=None)
        report.raise_for_problems()
        manifest = report.manifest
        assert manifest is not None and allow is not None
        payload = manifest.payload[0]
        with reader.open_member(payload) as stream:
            from bundler.serializers import load as _deserialize

            model = _deserialize(stream, manifest.serializer, allow=allow)
        report.checked.append("deserialized")
        _validate_structures(model)
        if check_behaviour and manifest.sample is not None:
            _behaviour(reader, manifest, model, report)
        elif manifest.sample is None:
            report.notes.append("no stored sample: behaviour not checked")
        else:
            report.notes.append("behaviour check switched off")
    return model, report


def _validate_structures(model: Any) -> None:
    from bundler.treecheck import validate_trees

    problems = validate_trees(model)
    if problems:
        raise UnsafeContent(problems[0], problems=problems, offending=["sklearn.tree._tree.Tree"])


def _behaviour(reader: BundleReader, manifest: Manifest, model: Any, report: Report) -> None:
    from bundler.behaviour import check_behaviour as _check

    def read_member(name: str) -> bytes:
        if manifest.file(name) is None:
            raise IntegrityError(f"sample member {name!r} is not listed in the manifest")
        return reader.read_small(name, 64 << 20)

    problems = _check(model, read_member, manifest.sample or {})
    report.checked.append("behaviour")
    if problems:
        raise BehaviourDrift(problems[0], problems=problems)


def inspect(path: str | os.PathLike[str]) -> Manifest:
    """Read the manifest of a bundle. Nothing is verified: do not take what it says as established."""
    with BundleReader(path) as reader:
        if MANIFEST_NAME not in reader.members:
            raise IntegrityError(f"{reader.path}: not a bundle: {MANIFEST_NAME} is missing")
        return parse_manifest(reader.read_small(MANIFEST_NAME))


def read_member_text(path: str | os.PathLike[str], name: str) -> str:
    """A small text member (requirements.txt, pylock.toml) of a bundle, unverified."""
    with BundleReader(path) as reader:
        if name not in reader.members:
            raise IntegrityError(f"{reader.path}: has no member {name!r}")
        return reader.read_small(name).decode("utf-8")

