"""``verify`` and ``inspect``: every check short of deserializing, collected into one report.

The order of checks is the contract of DESIGN.md: open the archive safely, check the signature over the manifest,
check every member against the manifest, check the environment under a policy, and scan the payload against an
allowlist that does not come from the bundle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import IO, TYPE_CHECKING

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
from bundler.environment.policy import Policy, compare, differences
from bundler.environment.requirements import requirement_lines
from bundler.errors import BundleError, IntegrityError, SignatureError, UnsafeContent
from bundler.integrity.hashing import CHUNK_SIZE, BackgroundDigest, HashingReader
from bundler.integrity.signing import VerifyKey, check_signature
from bundler.pipelines import progress
from bundler.pipelines.payload import default_allowlist, scan_payload
from bundler.pipelines.report import Report
from bundler.pipelines.serializers import PAYLOAD_NAMES

if TYPE_CHECKING:
    from bundler.safety.allowlist import Allowlist
    from bundler.safety.scan import ScanResult

__all__ = ["inspect", "read_member_text", "verify"]


def verify_open(reader: BundleReader, *, key: VerifyKey | None, policy: Policy, trust: Iterable[str],
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
        allow = default_allowlist(trusted)
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
                scan_result = scan_payload(stream, serializer)
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


def resolve_policy(policy: Policy | str | None, overrides: Mapping[str, str] | None = None) -> Policy:
    if policy is None or isinstance(policy, str):
        from bundler.settings import load_config

        config = load_config()
        merged = {**config.overrides, **(overrides or {})}
        return Policy.of(policy or config.policy, merged)
    return Policy.of(policy, overrides)


def verify(path: str | os.PathLike[str], *, key: VerifyKey | None = None, policy: Policy | str | None = None,
           trust: Iterable[str] = (), against: Mapping[str, str] | None = None) -> Report:
    """Check a bundle without deserializing anything; ``Report.ok`` and ``Report.problems`` say what was found.

    ``against`` checks the pins against another environment's versions (see ``bundler.environment.targets.read_target``)
    instead of the running one. Input that cannot be read at all (a missing file) raises ``UsageError``.
    """
    pol = resolve_policy(policy)
    try:
        with BundleReader(path) as reader:
            report, _ = verify_open(reader, key=key, policy=pol, trust=trust, against=against)
    except IntegrityError as exc:
        report = Report(path=str(path))
        report.add_error(exc, "integrity")
    return report


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
