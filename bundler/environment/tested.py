"""The tested-compatibility record, ``compat/tested.json``: where a bundle was loaded and what it did there.

Why a member of the bundle: evidence of where a model loads and predicts the same is worth exactly as much as the
bundle's signature, so it travels inside the bundle, listed and hashed in the manifest like every other member. A
bundle signed by the caller's key signs its evidence; a record nobody vouches for (a checksummed bundle) is shown,
never used to accept, unless the caller says so (``trust_record``).

This module has one job: the record's schema (strict, versioned), reading it (any problem is an integrity failure
with a one-line reason, since a tool that guesses at evidence it does not understand would accept on a claim nobody
made), merging a newer run into it, and the one question the ``tested`` policy asks: which entry, if any, admits an
environment. Writing it into a bundle is ``bundler.crossversion.record``'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bundler.container.manifest import canonical_json, parse_json_document
from bundler.environment.policy import accepts
from bundler.environment.versions import version_key
from bundler.errors import IntegrityError

__all__ = [
    "MAX_RECORD_BYTES",
    "RECORD_VERSION",
    "SAME",
    "TESTED_NAME",
    "Behaviour",
    "CompatEntry",
    "CompatRecord",
    "RecordUse",
    "admitting_entry",
    "identical_labels",
    "merge",
    "parse_record",
    "record_bytes",
]

#: The member that holds the record (listed and hashed in the manifest like any other).
TESTED_NAME = "compat/tested.json"
#: The record format this bundler writes and reads; any other is an integrity failure (never guessed at).
RECORD_VERSION = 1
MAX_RECORD_BYTES = 4 << 20
#: The only outcome the ``tested`` policy accepts on: loads, every method runs, outputs as at pack time.
SAME = "same"

Outcome = Literal["same", "outputs-differ", "raises", "fails-to-load"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Behaviour(_Strict):
    """What the behaviour check established in that environment: the rows and methods of the stored sample it
    re-ran, and its lines of each kind (each names the method, how many rows differ and by how much)."""

    rows: int | None = None
    methods: list[str] = Field(default_factory=list)
    differs: list[str] = Field(default_factory=list)
    raises: list[str] = Field(default_factory=list)
    error: str | None = None


class CompatEntry(_Strict):
    """One tested environment: the exact versions of every pinned package there (and of the package the matrix
    varied), what the bundle did there, the default policy's verdict, who tested it and when."""

    package: str
    packages: dict[str, str]
    python: str
    outcome: Outcome
    default_policy: Literal["accepted", "refused", "error"]
    behaviour: Behaviour
    adjustments: list[str] = Field(default_factory=list)
    bundler_version: str
    tested_at: str

    @property
    def key(self) -> str:
        """What makes two entries "the same environment" (a later run of it replaces the earlier one)."""
        return canonical_json({"python": self.python, "packages": self.packages}).decode("utf-8")

    @property
    def version(self) -> str:
        """The version of the varied package in this environment."""
        return self.packages.get(self.package, "?")

    def label(self, pinned: Mapping[str, str] | None = None) -> str:
        """``scikit-learn 1.7.2``, plus every other package whose version differs from the bundle's pins."""
        others = [f"{name} {version}" for name, version in sorted(self.packages.items())
                  if name != self.package and pinned is not None and pinned.get(name) not in (None, version)]
        return f"{self.package} {self.version}" + (f" ({', '.join(others)})" if others else "")


class CompatRecord(_Strict):
    """The whole record: its format version, the payload it speaks about, and the tested environments."""

    version: int
    payload_sha256: str
    environments: list[CompatEntry]


def parse_record(data: bytes, *, payload_sha256: str | None = None) -> CompatRecord:
    """Read ``compat/tested.json`` strictly; ``payload_sha256`` (the manifest's) must be the one it speaks about.

    Every problem is an :class:`IntegrityError` with one line: the record is evidence, and evidence of an unknown
    shape or version, or about another payload (a record copied from another bundle), is no evidence.
    """
    value = parse_json_document(data, TESTED_NAME, max_bytes=MAX_RECORD_BYTES)
    if not isinstance(value, dict):
        raise IntegrityError(f"{TESTED_NAME} is not a JSON object")
    if value.get("version") != RECORD_VERSION:
        raise IntegrityError(f"{TESTED_NAME} has record version {value.get('version')!r}; this bundler reads "
                             f"version {RECORD_VERSION}")
    try:
        record = CompatRecord.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise IntegrityError(f"{TESTED_NAME} is malformed: {where}: {err['msg']}{more}") from None
    if payload_sha256 is not None and record.payload_sha256 != payload_sha256:
        raise IntegrityError(f"{TESTED_NAME} speaks about another payload (sha256 {record.payload_sha256[:16]}...) "
                             f"than this bundle's ({payload_sha256[:16]}...)")
    return record


def record_bytes(record: CompatRecord) -> bytes:
    """The canonical bytes of a record, as stored (sorted keys, so the same record is always the same member)."""
    return canonical_json(record.model_dump(mode="json"))


def merge(old: CompatRecord | None, new: Iterable[CompatEntry], *, payload_sha256: str) -> CompatRecord:
    """``old``'s environments with ``new``'s merged in: an environment tested again (same key) takes the newer
    result, others are kept. Sorted by varied package and version, so a table reads in order."""
    by_key: dict[str, CompatEntry] = {} if old is None else {e.key: e for e in old.environments}
    for entry in new:
        previous = by_key.get(entry.key)
        if previous is None or entry.tested_at >= previous.tested_at:
            by_key[entry.key] = entry
    ordered = sorted(by_key.values(), key=lambda e: (e.package, version_key(e.version), e.key))
    return CompatRecord(version=RECORD_VERSION, payload_sha256=payload_sha256, environments=ordered)


def admits(entry: CompatEntry, pinned: Mapping[str, str], installed: Mapping[str, str | None],
           rule_for: Callable[[str], str]) -> bool:
    """Whether ``entry`` admits the ``installed`` versions: outcome "same", the varied package exactly the tested
    version, and every pinned package within ``rule_for`` (the default policy's rules: exact for scikit-learn and
    the model frameworks) of the version *tested*, not of the pin."""
    if entry.outcome != SAME:
        return False
    for name in sorted(set(pinned) | {entry.package}):
        tested, have = entry.packages.get(name), installed.get(name)
        if tested is None or have is None:
            return False
        rule = "exact" if name == entry.package else rule_for(name)
        if not accepts(rule, tested, have):
            return False
    return True


def admitting_entry(record: CompatRecord, pinned: Mapping[str, str], installed: Mapping[str, str | None],
                    rule_for: Callable[[str], str]) -> CompatEntry | None:
    """The newest entry that admits ``installed`` (see :func:`admits`), or None."""
    found = [e for e in record.environments if admits(e, pinned, installed, rule_for)]
    return max(found, key=lambda e: e.tested_at) if found else None


def identical_labels(record: CompatRecord, pinned: Mapping[str, str] | None = None) -> list[str]:
    """The environments the record shows loading and predicting the same, as labels, in order."""
    return list(dict.fromkeys(e.label(pinned) for e in record.environments if e.outcome == SAME))


@dataclass
class RecordUse:
    """A verified bundle's record and how far it is trusted (``why``); ``admitted_by`` is the entry that accepted
    the environment under the ``tested`` policy (None when the record did not decide), ``would_admit`` one that
    matches it but was not used."""

    record: CompatRecord
    trusted: bool
    why: str
    pinned: dict[str, str]
    policy_tested: bool = False
    admitted_by: CompatEntry | None = None
    #: an entry that matches the environment but was not used (policy not ``tested``, or the record not trusted)
    would_admit: CompatEntry | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": TESTED_NAME,
            "trusted": self.trusted,
            "trust": self.why,
            "environments": len(self.record.environments),
            "identical": identical_labels(self.record, self.pinned),
            "admitted_by": None if self.admitted_by is None else self.admitted_by.model_dump(mode="json"),
            "would_admit": None if self.would_admit is None else self.would_admit.model_dump(mode="json"),
        }
