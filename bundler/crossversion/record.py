"""``bundler matrix --record``: write the matrix's result into the bundle as ``compat/tested.json``, atomically.

Why here and why so careful: the record is evidence that a loader may accept an environment on, so it must say only
what was observed (one entry per tested environment, from the cells of this very run), about this very payload, and
be signed by whoever signed the bundle. The bundle is verified in full before it is rewritten, and verified again,
on the same open file the members are copied from, right before the rewrite: the members copied are re-hashed
against the manifest as they are copied, so what is re-signed is exactly what was verified. The new bundle is
written to a temporary file beside the old one, flushed to disk and renamed over it; on any failure (a signing key
that cannot sign, a full disk, a bundle changed meanwhile) the original is left untouched.

A signed bundle is re-signed with the caller's key, which must be the key the bundle verifies with: re-signing with
another key would vouch for a payload its owner never signed, and replacing a signature with a checksum would
silently drop it (both refused). A checksummed bundle stays checksummed, and the CLI says so: its record is then
informational to every loader that does not pass ``trust_record``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bundler.container.archive import BundleReader, BundleWriter
from bundler.container.manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry, Manifest, canonical_bytes
from bundler.crossversion.cells import (
    FAILS_TO_LOAD,
    LOADS_PREDICTS_SAME,
    METHOD_RAISES,
    OUTPUTS_DIFFER,
    REFUSED_BY_POLICY,
    SAME_VERSION_OK,
    Cell,
)
from bundler.environment.policy import Policy
from bundler.environment.tested import (
    TESTED_NAME,
    Behaviour,
    CompatEntry,
    CompatRecord,
    merge,
    record_bytes,
)
from bundler.errors import Hint, IntegrityError, UsageError
from bundler.integrity.hashing import CHUNK_SIZE, sha256_bytes
from bundler.integrity.signing import Sha256Signer, SignatureStatus, Signer, VerifyKey, signature_document

__all__ = ["OUTCOMES", "Recorded", "entries_from_cells", "record_into_bundle", "signing_problem"]

#: A cell's status as the record's outcome. ``refused-by-policy`` loaded and predicted the same when forced: the
#: outcome is "same" and the default policy's refusal is kept beside it. ``not-installable`` cells tested nothing
#: and are not recorded.
OUTCOMES = {
    SAME_VERSION_OK: "same",
    LOADS_PREDICTS_SAME: "same",
    REFUSED_BY_POLICY: "same",
    OUTPUTS_DIFFER: "outputs-differ",
    METHOD_RAISES: "raises",
    FAILS_TO_LOAD: "fails-to-load",
}
#: What a cell's environment holds besides packages (recorded in fields of their own).
_NOT_PACKAGES = frozenset({"python", "bundler"})


@dataclass(frozen=True)
class Recorded:
    """What ``record_into_bundle`` did: the record written, how many entries came from this run, what was left out
    (and why), and how the new bundle is signed."""

    record: CompatRecord
    added: int
    skipped: list[str]
    scheme: str
    key_id: str | None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entries_from_cells(cells: Sequence[Cell], manifest: Manifest, *, tested_at: str | None = None,
                       ) -> tuple[list[CompatEntry], list[str]]:
    """One entry per tested cell (exact versions of every pinned package and of the varied one, outcome, the
    behaviour check's figures), and one line per cell left out: nothing installed, or no environment observed."""
    when = tested_at or _now()
    sample = manifest.sample or {}
    methods = sample.get("methods")
    rows = sample.get("rows")
    entries: list[CompatEntry] = []
    skipped: list[str] = []
    for cell in cells:
        outcome = OUTCOMES.get(cell.status)
        label = f"{cell.package} {cell.loaded}"
        if outcome is None:
            skipped.append(f"{label}: {cell.status}, nothing was tested")
            continue
        wanted = set(manifest.environment.packages) | {cell.package}
        packages = {name: version for name, version in cell.environment.items()
                    if name in wanted and name not in _NOT_PACKAGES and version != "-"}
        if cell.package not in packages or "python" not in cell.environment:
            skipped.append(f"{label}: the loading environment was not observed ({cell.error or 'no versions'})")
            continue
        entries.append(CompatEntry(
            package=cell.package,
            packages=dict(sorted(packages.items())),
            python=cell.environment["python"],
            outcome=outcome,  # type: ignore[arg-type]
            default_policy=cell.policy if cell.policy in ("accepted", "refused") else "error",  # type: ignore[arg-type]
            behaviour=Behaviour(rows=rows if isinstance(rows, int) else None,
                                methods=sorted(methods) if isinstance(methods, dict) else [],
                                differs=list(cell.differs), raises=list(cell.raises), error=cell.error),
            adjustments=list(cell.adjustments),
            bundler_version=cell.environment.get("bundler", "?"),
            tested_at=when,
        ))
    return entries, skipped


def signing_problem(signature: SignatureStatus | None, signer: Signer | None) -> UsageError | None:
    """Why the bundle cannot be re-signed as asked, before the (long) matrix runs: a signed bundle needs its key."""
    if signature is None or signature.scheme == "sha256" or signer is not None:
        return None
    return UsageError(
        f"the bundle is signed ({signature.scheme}, key id {signature.key_id}); writing the record re-signs it, "
        "so give its key: refusing to replace a signature with a checksum",
        hints=[Hint("to re-sign", api="record_into_bundle(..., signer=...)",
                    cli="--sign-key PEM (ed25519) or --hmac-key-file F (hmac-sha256)")])


def record_into_bundle(path: str | os.PathLike[str], cells: Sequence[Cell], *, signer: Signer | None = None,
                       key: VerifyKey | None = None, expected: Manifest | None = None) -> Recorded:
    """Verify ``path`` (with ``key``: anything but its valid signature is refused), merge the entries of ``cells``
    into its record, and rewrite it atomically, re-signed by ``signer`` (None: checksummed, allowed only for a
    bundle that is checksummed). ``expected`` is the manifest the matrix ran on: a bundle changed since is refused.
    """
    from bundler.pipelines.verify import verify_open

    target = Path(path)
    with BundleReader(target) as reader:
        verified = verify_open(reader, key=key, policy=Policy("none"), trust=(), against=None)
        report = verified.report
        error = report.error()
        if error is not None:
            raise error
        manifest = report.manifest
        assert manifest is not None  # noqa: S101 - type narrowing of what the previous step established
        if expected is not None and canonical_bytes(expected) != canonical_bytes(manifest):
            raise IntegrityError(f"{target}: the bundle changed while the matrix ran; nothing was recorded")
        problem = signing_problem(report.signature, signer)
        if problem is not None:
            raise problem
        payload = manifest.file(manifest.payload[0])
        assert payload is not None  # noqa: S101 - verified: the payload is listed
        entries, skipped = entries_from_cells(cells, manifest)
        old = report.tested.record if report.tested is not None else None
        record = merge(old, entries, payload_sha256=payload.sha256)
        if not entries:  # nothing was tested: the bundle is left exactly as it is, signature and all
            signature = report.signature
            return Recorded(record, 0, skipped, signature.scheme if signature else "sha256",
                            signature.key_id if signature else None)
        data = record_bytes(record)
        files = [f for f in manifest.files if f.path != TESTED_NAME]
        files.append(FileEntry(path=TESTED_NAME, sha256=sha256_bytes(data), size=len(data)))
        updated = manifest.model_copy(update={"files": sorted(files, key=lambda f: f.path)})
        manifest_bytes = canonical_bytes(updated)
        sign_with = signer or Sha256Signer()
        with BundleWriter(target) as writer:
            for name, member in reader.members.items():
                if name in (MANIFEST_NAME, SIGNATURE_NAME, TESTED_NAME):
                    continue
                entry = manifest.file(name)
                assert entry is not None  # noqa: S101 - verified: every member is listed
                _copy_member(reader, writer, entry, compress=not member.stored)
            writer.write_member(TESTED_NAME, data)
            writer.write_member(MANIFEST_NAME, manifest_bytes)
            writer.write_member(SIGNATURE_NAME, signature_document(sign_with, manifest_bytes))
            writer.commit()
    return Recorded(record, len(entries), skipped, sign_with.scheme, getattr(signer, "key_id", None))


def _copy_member(reader: BundleReader, writer: BundleWriter, entry: FileEntry, *, compress: bool) -> None:
    """Copy one member in bounded chunks, hashing what is copied: bytes that differ from the verified manifest (the
    file rewritten in place since it was verified) abort the rewrite."""
    digest = hashlib.sha256()
    size = 0
    with reader.open_member(entry.path) as source, writer.open_member(entry.path, compress=compress) as sink:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise IntegrityError(f"{reader.path}: member {entry.path!r} changed after it was verified; nothing was "
                             "recorded")
