"""``verify`` and ``inspect``: every check short of deserializing, collected into one report.

The order of checks is the contract of docs/design.md: open the archive safely; check the signature over the manifest;
check every member against the manifest (listing, sizes, digests); check the environment under a policy; scan the
payload against an allowlist that does not come from the bundle. Each step is a small function over a
``Checking`` state, and every problem found lands in one ``Report`` instead of stopping at the first.

``verify`` streams the payload (bounded memory, any size). ``load`` asks for the payload *kept*: it is read once
into private memory, hashed as it arrives and scanned from that memory; the unpickler later reads those very bytes
(``Verified.payload``), so a file rewritten in place during the load changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from bundler.container.archive import BundleReader
from bundler.container.manifest import (
    MANIFEST_NAME,
    REQUIREMENTS_NAME,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    parse_manifest,
)
from bundler.environment.capture import InstalledVersions, capture_interpreter
from bundler.environment.pins import pin_problems
from bundler.environment.policy import Policy, compare, differences
from bundler.environment.requirements import requirement_lines
from bundler.errors import BundleError, IntegrityError, SignatureError, UsageError
from bundler.findings import Kind
from bundler.integrity.hashing import BackgroundDigest, HashingReader, SpanDigestReader, chunk_digests
from bundler.integrity.signing import VerifyKey, check_signature
from bundler.pipelines import progress
from bundler.pipelines.payload import default_allowlist, scan_payload
from bundler.pipelines.report import CODE_PACKAGE, Report
from bundler.pipelines.serializers import PAYLOAD_NAMES
from bundler.settings import Settings, resolve

if TYPE_CHECKING:
    from bundler.environment.tested import CompatRecord
    from bundler.safety.allowlist import Allowlist
    from bundler.safety.scan import ScanResult

__all__ = ["Verified", "inspect", "read_member_text", "read_record", "resolve_against", "verify", "verify_open"]

#: Members up to this size are kept in memory when loading (samples and their outputs), so nothing is read twice.
_KEEP_SMALL = 64 << 20


@dataclass
class KeptPayload:
    """The payload as ``load`` will deserialize it: the verified bytes (decompressed for joblib) and their scan."""

    data: Any  # bytearray / memoryview of the (decompressed) stream
    scan: ScanResult | None
    compression: str | None = None


@dataclass
class Verified:
    """What ``verify_open`` established: the report, the allowlist a loader must use, and the kept payload."""

    report: Report
    allow: Allowlist | None = None
    payload: KeptPayload | None = None
    members: dict[str, bytes] = field(default_factory=dict)  # small members, kept as verified (samples)


@dataclass
class _Checking:
    reader: BundleReader
    report: Report
    keep_payload: bool
    manifest: Manifest | None = None
    scan: ScanResult | None = None
    payload_ok: bool = True
    kept: KeptPayload | None = None
    listed: dict[str, FileEntry] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)
    small: dict[str, bytes] = field(default_factory=dict)


def verify_open(reader: BundleReader, *, key: VerifyKey | None, policy: Policy, trust: Iterable[str],
                against: Mapping[str, str] | None, keep_payload: bool = False,
                trust_profiles: Iterable[str] = (), trust_code: bool = False,
                trust_record: bool = False) -> Verified:
    """All checks short of deserializing, on an opened archive. ``trust_record`` lets the ``tested`` policy use
    the tested-compatibility record of a bundle that is not signed by the caller's key."""
    state = _Checking(reader, Report(path=str(reader.path)), keep_payload)
    report = state.report
    manifest_bytes = _required_documents(state)
    if manifest_bytes is None:
        return Verified(report)
    try:
        report.signature = check_signature(reader.read_small(SIGNATURE_NAME, 64 << 10), manifest_bytes, key)
    except SignatureError as exc:
        report.add_error(exc)
        return Verified(report)
    report.notes.append(report.signature.note)
    report.checked.append("signature")
    try:
        state.manifest = parse_manifest(manifest_bytes)
    except IntegrityError as exc:
        report.add_error(exc)
        return Verified(report)
    report.manifest = state.manifest
    _check_listing(state)
    _check_contents(state)
    _check_requirements(state)
    _check_record(state, trust_record, policy)
    report.checked.append("members")
    _check_environment(state.manifest, report, policy, against)
    report.checked.append("environment")
    code_trusted = _check_code(state, trust_code)
    allow = _check_content(state, trust, trust_profiles, code_trusted)
    ok = state.payload_ok and report.ok
    return Verified(report, allow, state.kept if ok else None, state.small if ok else {})


def _required_documents(state: _Checking) -> bytes | None:
    names = set(state.reader.members)
    for required in (MANIFEST_NAME, SIGNATURE_NAME):
        if required not in names:
            state.report.add(Kind.INTEGRITY, f"{state.reader.path}: not a bundle or tampered: {required} is missing")
    return state.reader.read_small(MANIFEST_NAME) if state.report.ok else None


def _check_listing(state: _Checking) -> None:
    """Expected members (the manifest) against actual members (the archive): extra, missing, duplicated."""
    manifest, report = state.manifest, state.report
    assert manifest is not None  # noqa: S101 - type narrowing of what the previous step established
    state.listed = {f.path: f for f in manifest.files}
    if len(state.listed) != len(manifest.files):
        report.add(Kind.INTEGRITY, "manifest lists a member more than once")
    state.present = set(state.reader.members) - {MANIFEST_NAME, SIGNATURE_NAME}
    for name in sorted(state.present - set(state.listed)):
        report.add(Kind.INTEGRITY, f"extra member {name!r} is not listed in the manifest")
    for name in sorted(set(state.listed) - state.present):
        report.add(Kind.INTEGRITY, f"member {name!r} is listed in the manifest but missing")
    for name in manifest.payload:
        if name not in state.listed:
            report.add(Kind.INTEGRITY, f"payload {name!r} is not listed among the manifest's files")
    if manifest.serializer in PAYLOAD_NAMES and manifest.payload != [PAYLOAD_NAMES[manifest.serializer]]:
        report.add(Kind.INTEGRITY, f"payload {manifest.payload} does not match serializer {manifest.serializer}")
    # The payload is scanned only when it is all there and intact; other members' problems do not hide what the
    # payload would do.
    state.payload_ok = all(name in state.listed and name in state.present for name in manifest.payload)


def _check_contents(state: _Checking) -> None:
    """Every listed, present member's size and digests; the payload is scanned in the same pass."""
    manifest, report, reader = state.manifest, state.report, state.reader
    assert manifest is not None  # noqa: S101 - type narrowing of what the previous step established
    for name in sorted(set(state.listed) & state.present):
        entry = state.listed[name]
        is_payload = name in manifest.payload
        if reader.members[name].size != entry.size:
            report.add(Kind.INTEGRITY, f"member {name!r} altered: {reader.members[name].size} bytes, "
                                    f"manifest says {entry.size}")
            state.payload_ok = state.payload_ok and not is_payload
            continue
        try:
            if is_payload and state.keep_payload:
                intact, scan_error = _read_payload_once(state, entry)
            elif state.keep_payload and entry.size <= _KEEP_SMALL:
                data = reader.read_small(name, _KEEP_SMALL)
                intact, scan_error = len(data) == entry.size and _sha256(data) == entry.sha256, None
                if intact:
                    state.small[name] = data  # read once: the behaviour check uses these very bytes
            else:
                intact, result, scan_error = _hash_and_scan(reader, entry, manifest.serializer if is_payload else None)
                if result is not None:
                    state.scan = result
        except IntegrityError as exc:
            report.add_error(exc)
            state.payload_ok = state.payload_ok and not is_payload
            continue
        if not intact:
            report.add(Kind.INTEGRITY, f"member {name!r} altered: its SHA-256 does not match the manifest")
            state.payload_ok = state.payload_ok and not is_payload
            state.kept = None if is_payload else state.kept
        elif scan_error is not None:
            report.add_error(scan_error)
            state.payload_ok = False


def _check_requirements(state: _Checking) -> None:
    manifest, report, reader = state.manifest, state.report, state.reader
    assert manifest is not None  # noqa: S101 - type narrowing of what the previous step established
    if REQUIREMENTS_NAME in state.listed and REQUIREMENTS_NAME in state.present and report.ok:
        text = reader.read_small(REQUIREMENTS_NAME).decode("utf-8", "replace")
        if [ln for ln in text.splitlines() if ln.strip()] != manifest.requirements:
            report.add(Kind.INTEGRITY, "requirements.txt does not match the manifest's requirements")
    if sorted(requirement_lines(manifest.environment.packages)) != sorted(manifest.requirements):
        report.add(Kind.INTEGRITY, "manifest: environment.packages and requirements disagree")
    for line in pin_problems(manifest.requirements, manifest.environment.packages):
        report.add(Kind.INTEGRITY, line)


def _check_record(state: _Checking, trust_record: bool, policy: Policy) -> None:
    """Read the tested-compatibility record (``compat/tested.json``) once its member checked out, and decide how
    far it is trusted: as far as the bundle is. A signature verified against the caller's key vouches for it, as
    does the caller's explicit ``trust_record``; otherwise it is shown and never used to accept. Its bytes are
    hashed again as parsed: what is used is what matched the manifest."""
    from bundler.environment.tested import MAX_RECORD_BYTES, TESTED_NAME, RecordUse, parse_record

    manifest, report, reader = state.manifest, state.report, state.reader
    assert manifest is not None  # noqa: S101 - type narrowing of what the previous step established
    entry = state.listed.get(TESTED_NAME)
    if entry is None or TESTED_NAME not in state.present or not report.ok:
        return
    payload = manifest.file(manifest.payload[0]) if manifest.payload else None
    try:
        data = reader.read_small(TESTED_NAME, MAX_RECORD_BYTES)
        if _sha256(data) != entry.sha256:
            raise IntegrityError(f"member {TESTED_NAME!r} altered: its SHA-256 does not match the manifest")
        record = parse_record(data, payload_sha256=payload.sha256 if payload is not None else None)
    except IntegrityError as exc:
        for line in exc.problems:
            report.add(Kind.INTEGRITY, line, subject=TESTED_NAME)
        return
    authenticated = report.signature is not None and report.signature.authenticated
    if authenticated:
        trusted, why = True, "signature verified against your key"
    elif trust_record:
        trusted, why = True, "trusted by the caller (trust_record)"
    elif report.signature is not None and report.signature.scheme != "sha256":
        trusted, why = False, "informational: the bundle is signed but no key was supplied"
    else:
        trusted, why = False, "informational: the bundle is only checksummed"
    report.tested = RecordUse(record, trusted, why, dict(manifest.environment.packages),
                              policy_tested=policy.base == "tested")


def _check_code(state: _Checking, trust_code: bool) -> list[str]:
    """Bundled code (``code/…`` members) runs when the model is loaded: only with the caller's explicit trust or a
    signature verified against the caller's key. Returns the trusted top-level modules (empty when none)."""
    from bundler.pipelines.code import code_modules

    manifest, report = state.manifest, state.report
    if manifest is None:
        return []
    modules = code_modules(f.path for f in manifest.files)
    if not modules:
        return []
    authenticated = report.signature is not None and report.signature.authenticated
    if trust_code or authenticated:
        report.notes.append(f"bundled code trusted ({'signature verified' if authenticated else 'trust_code'}): "
                            + ", ".join(modules))
        return modules
    report.add(Kind.UNSAFE, "the bundle holds code that would run when the model is loaded (modules "
               + ", ".join(modules) + "); it is never imported unless trusted (trust_code=True, or a signature "
               "verified against your key)", subject=CODE_PACKAGE)
    return []


def _check_content(state: _Checking, trust: Iterable[str], profiles: Iterable[str] = (),
                   code: Iterable[str] = ()) -> Allowlist | None:
    """The allowlist audit of the scanned payload; the globals a bundle records about itself are trusted only when
    its signature verified against the caller's key. Globals of bundled modules the caller trusts (``code``) are
    accepted: trusting code to run is trusting what it defines."""
    report, manifest = state.report, state.manifest
    scan = state.scan if state.payload_ok else None
    if scan is None or manifest is None:
        return None
    trusted = list(trust)
    if report.signature is not None and report.signature.authenticated:
        trusted += manifest.globals
    tops = set(code)
    trusted += [name for name in scan.globals if name.split(":")[0].split(".")[0] in tops]
    allow = default_allowlist(trusted, profiles)
    report.globals = list(scan.globals)
    if manifest.serializer == "pickle" and scan.format != "pickle":
        report.add(Kind.INTEGRITY, f"the payload is a {scan.format} stream, but the manifest says plain pickle")
    findings = allow.findings(scan)
    report.problems += findings
    from bundler.safety.profiles import profiles_for

    report.suggested_profiles = profiles_for(f.subject for f in findings if f.subject)
    report.checked.append("content")
    return allow


def _hash_and_scan(reader: BundleReader, entry: FileEntry,
                   serializer: str | None) -> tuple[bool, ScanResult | None, BundleError | None]:
    """Check one member's digests and, for the payload, scan it in the same streaming pass.

    Hashing never waits for the scan: a member with chunked digests is hashed chunk by chunk on every core while
    the scan reads it on this thread; other stored members are hashed on a worker thread fed by the scan's own
    reads. A scan error (malformed or hostile stream) is returned, not raised: an altered payload must be reported
    as altered first.
    """
    name = entry.path
    member = reader.members[name]
    scan_result: ScanResult | None = None
    scan_error: BundleError | None = None

    def scan(stream: IO[bytes] | HashingReader | SpanDigestReader) -> None:
        nonlocal scan_result, scan_error
        if serializer is not None:
            try:
                scan_result = scan_payload(stream, serializer)
            except BundleError as exc:
                scan_error = exc

    if not member.stored:
        with reader.open_member(name) as stream:
            hashing = HashingReader(stream)
            scan(hashing)
            hashing.drain()
        return hashing.hexdigest == entry.sha256 and hashing.size == entry.size, scan_result, scan_error
    offset, size = reader.span(name)
    fd = reader.fileno()
    with progress.task(f"verifying {name}", size) as advance:
        if entry.chunks is not None and entry.chunk_size is not None:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(chunk_digests, fd, offset, size, entry.chunk_size, None, advance)
                if serializer is not None:
                    with reader.open_member(name) as stream:
                        scan(stream)
                try:
                    return pending.result() == entry.chunks, scan_result, scan_error
                except EOFError:
                    raise IntegrityError(f"{reader.path}: member {name!r} is truncated") from None
        digest = BackgroundDigest(advance)
        try:
            stream_reader = SpanDigestReader(fd, offset, size, digest)
            scan(stream_reader)
            stream_reader.drain()
        except EOFError:
            raise IntegrityError(f"{reader.path}: member {name!r} is truncated") from None
        finally:
            hexdigest = digest.hexdigest()
        return hexdigest == entry.sha256 and digest.size == entry.size, scan_result, scan_error


def _read_payload_once(state: _Checking, entry: FileEntry) -> tuple[bool, BundleError | None]:
    """``load``'s payload path: read once into memory (hashing on other cores), scan that memory, keep it.

    A plain pickle/joblib stream is scanned while it is still being read; a compressed one, or a skops file, once
    its digests matched. Scanning bytes that turn out to be altered is harmless (the scan executes nothing); they
    are reported as altered and never kept.
    """
    from bundler.integrity.read_once import MemberRead
    from bundler.safety.source import MemorySource, decompress_all, detect_compression

    manifest, reader = state.manifest, state.reader
    assert manifest is not None  # noqa: S101 - type narrowing of what the previous step established
    name = entry.path
    reading: MemberRead | None = None
    if reader.members[name].stored:
        offset, size = reader.span(name)
        chunked = entry.chunks is not None and entry.chunk_size is not None
        with progress.task(f"reading {name}", size, background=True) as advance:
            reading = MemberRead(reader.fileno(), offset, size, chunk_size=entry.chunk_size if chunked else None,
                                 whole=not chunked, progress=advance).start()
        data: Any = reading.buffer
        reading.fill.wait_for(6)
    else:
        with reader.open_member(name) as stream:
            data = bytearray(stream.read(entry.size + 1))
        if len(data) != entry.size or _sha256(data) != entry.sha256:
            return False, None

    def intact() -> bool:
        return reading is None or _digests_match(reading.result(), entry)

    scan: ScanResult | None = None
    compression = None
    try:
        if manifest.serializer == "skops":
            if not intact():
                return False, None
            from io import BytesIO

            scan = scan_payload(BytesIO(data), "skops")
        elif detect_compression(bytes(data[:6])) is not None:
            if not intact():
                return False, None
            from bundler.safety.scan import scan_memory

            compression, decompressed = decompress_all(data)
            data = decompressed
            scan = scan_memory(data, compression=compression)
        else:
            from bundler.safety.scan import scan_memory

            scan = scan_memory(data, source=MemorySource(data, fill=reading.fill if reading else None))
            if not intact():
                return False, None
    except BundleError as exc:
        return intact(), exc
    state.scan = scan
    state.kept = KeptPayload(data, scan, compression)
    return True, None


def _digests_match(digests: Any, entry: FileEntry) -> bool:
    if entry.chunks is not None and entry.chunk_size is not None:
        return bool(digests.chunks == entry.chunks)
    return bool(digests.sha256 == entry.sha256)


def _sha256(data: Any) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _check_environment(manifest: Manifest, report: Report, policy: Policy, against: Mapping[str, str] | None) -> None:
    installed: Mapping[str, str | None] = InstalledVersions() if against is None else dict(against)
    where = "this environment" if against is None else "the target environment"
    expected = manifest.environment.packages
    mismatches = compare(expected, installed, policy, manifest.frameworks)
    if report.tested is not None and mismatches and _admitted_by_record(report, manifest, policy, installed, where):
        mismatches = []
    for m in mismatches:
        report.add(Kind.ENVIRONMENT, f"{m.message} in {where}", subject=m.package, expected=m.expected,
                   found=m.found)
    if policy.base == "none" or any(v == "none" for v in policy.overrides.values()):
        flagged = {p.subject for p in report.problems if p.kind is Kind.ENVIRONMENT}
        for m in differences(expected, installed):
            if m.package not in flagged:
                report.notes.append(f"differs (not refused by policy): {m.message}")
    if against is None:
        here = capture_interpreter()
        bundled = manifest.environment
        if here["python_version"].split(".")[:2] != bundled.python_version.split(".")[:2]:
            report.notes.append(f"bundled under Python {bundled.python_version}, running {here['python_version']}")


def _admitted_by_record(report: Report, manifest: Manifest, policy: Policy, installed: Mapping[str, str | None],
                        where: str) -> bool:
    """The ``tested`` policy's question, asked only where the default rules refuse: does the bundle's record show
    ``installed`` loading and predicting the same? Only a trusted record may accept; an untrusted one that would
    have is said so, in a note. The behaviour check still runs on load whatever the record claims."""
    from bundler.environment.tested import admitting_entry

    use = report.tested
    assert use is not None  # noqa: S101 - type narrowing of what the previous step established
    frameworks = set(manifest.frameworks)
    expected = manifest.environment.packages
    entry = admitting_entry(use.record, expected, installed, lambda name: policy.rule_for(name, frameworks))
    if entry is None:
        return False
    label = entry.label(expected)
    tested = f"{label} tested identical ({entry.tested_at}, bundler {entry.bundler_version})"
    if policy.base != "tested" or not use.trusted:
        use.would_admit = entry
    if policy.base != "tested":
        trusting = "" if use.trusted else f" if the record were trusted ({use.why})"
        report.notes.append(f"the bundle's record shows {where} {tested}: policy tested would accept it{trusting}")
        return False
    if not use.trusted:
        report.notes.append(f"the bundle's record shows {where} {tested}, but it is not used to accept "
                            f"({use.why}; trust it with trust_record / --trust-record, or load with the signer's key)")
        return False
    use.admitted_by = entry
    report.notes.append(f"environment accepted by the bundle's tested record (policy tested, {use.why}): {tested}; "
                        "the behaviour check still runs on load")
    return True


def resolve_against(against: Mapping[str, str] | str | os.PathLike[str] | None) -> Mapping[str, str] | None:
    """``against=`` as given: a mapping of versions, or the path of a requirements / freeze / pylock.toml file."""
    if against is None or isinstance(against, Mapping):
        return against
    if isinstance(against, (str, os.PathLike)):
        from bundler.environment.targets import read_target

        return read_target(os.fspath(against))
    raise UsageError(f"against must be a path or a mapping of versions, not {type(against).__name__}")


def verify(path: str | os.PathLike[str], *, key: VerifyKey | None = None, policy: Policy | str | None = None,
           trust: Iterable[str] = (), against: Mapping[str, str] | str | os.PathLike[str] | None = None,
           settings: Settings | None = None, trust_profiles: Iterable[str] = (), trust_code: bool = False,
           trust_record: bool = False) -> Report:
    """Check a bundle without deserializing anything; ``Report.ok`` and ``Report.problems`` say what was found.

    ``against`` checks the pins against another environment instead of the running one: the path of a
    requirements.txt / ``pip freeze`` output / ``pylock.toml``, or a mapping of versions. ``settings`` (see
    ``bundler.Settings``) is applied with ``policy``/``trust``/``trust_profiles`` on top. ``trust_profiles`` names
    trust profiles (``"xgboost"``, ``"lightgbm"``, ``"catboost"``) whose globals are accepted; ``trust_code``
    accepts code bundled with ``code=`` (it would run at load). ``policy="tested"`` also accepts an environment the
    bundle's tested-compatibility record shows identical, when the record is trusted: signed by ``key``'s owner, or
    ``trust_record=True``. Input that cannot be read at all (a missing file) raises ``UsageError``.
    """
    eff = resolve(settings, policy=policy, trust=trust, trust_profiles=trust_profiles)
    target = resolve_against(against)
    try:
        with BundleReader(path) as reader:
            report = verify_open(reader, key=key, policy=eff.to_policy(), trust=eff.trust, against=target,
                                 trust_profiles=eff.trust_profiles, trust_code=trust_code,
                                 trust_record=trust_record).report
    except IntegrityError as exc:
        report = Report(path=str(path))
        report.add_error(exc)
    return report


def inspect(path: str | os.PathLike[str]) -> Manifest:
    """Read the manifest of a bundle. Nothing is verified: do not take what it says as established."""
    with BundleReader(path) as reader:
        if MANIFEST_NAME not in reader.members:
            raise IntegrityError(f"{reader.path}: not a bundle: {MANIFEST_NAME} is missing")
        return parse_manifest(reader.read_small(MANIFEST_NAME))


def read_record(path: str | os.PathLike[str]) -> CompatRecord | None:
    """The tested-compatibility record of a bundle, unverified (``inspect``); None when it has none. A malformed
    record is an ``IntegrityError``."""
    from bundler.environment.tested import MAX_RECORD_BYTES, TESTED_NAME, parse_record

    with BundleReader(path) as reader:
        if TESTED_NAME not in reader.members or MANIFEST_NAME not in reader.members:
            return None
        manifest = parse_manifest(reader.read_small(MANIFEST_NAME))
        payload = manifest.file(manifest.payload[0]) if manifest.payload else None
        return parse_record(reader.read_small(TESTED_NAME, MAX_RECORD_BYTES),
                            payload_sha256=payload.sha256 if payload is not None else None)


def read_member_text(path: str | os.PathLike[str], name: str) -> str:
    """A small text member (requirements.txt, pylock.toml) of a bundle, unverified."""
    with BundleReader(path) as reader:
        if name not in reader.members:
            raise IntegrityError(f"{reader.path}: has no member {name!r}")
        return reader.read_small(name).decode("utf-8")
