"""Signers and verifiers over the canonical manifest bytes.

Only the manifest is signed: it lists the SHA-256 of every other member, so one signature covers the whole bundle
(the same design as sigstore's model signing). Three schemes:

- ``sha256``: a digest only. It detects corruption, not tampering: anyone can rewrite it. Tools say so.
- ``hmac-sha256``: a shared secret read from a key file.
- ``ed25519``: a private key signs, the public key verifies (``bundler keygen``).

When a caller supplies a key, a bundle whose signature is not a valid one from that key is refused, whatever scheme
the bundle claims.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bundler.container.manifest import SIGNATURE_NAME, canonical_json, parse_json_document
from bundler.errors import Hint, IntegrityError, SignatureError, UsageError
from bundler.integrity.hashing import sha256_bytes

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "MIN_HMAC_KEY_BYTES",
    "SCHEMES",
    "Ed25519PublicKey",
    "Ed25519Signer",
    "HmacKey",
    "Sha256Signer",
    "SignatureStatus",
    "Signer",
    "check_signature",
    "generate_keypair",
    "signature_document",
]

SCHEMES = ("sha256", "hmac-sha256", "ed25519")
MIN_HMAC_KEY_BYTES = 16
MAX_KEY_FILE_BYTES = 64 << 10


class Signer(Protocol):
    """Anything that can produce a signature document for manifest bytes."""

    @property
    def scheme(self) -> str: ...

    def sign(self, manifest_bytes: bytes) -> dict[str, Any]: ...


def _doc(scheme: str, manifest_bytes: bytes, signature: str | None, key_id: str | None) -> dict[str, Any]:
    return {"scheme": scheme, "manifest_sha256": sha256_bytes(manifest_bytes), "signature": signature, "key_id": key_id}


def _read_key_file(path: str | os.PathLike[str], what: str) -> bytes:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p} does not exist")
    if not p.is_file():
        raise UsageError(f"{what} {p} is not a file")
    if p.stat().st_size > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{what} {p} is too large to be a key")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {p}: {exc.strerror}") from None


@dataclass(frozen=True)
class Sha256Signer:
    """Checksum only: integrity, not authenticity."""

    scheme: str = "sha256"

    def sign(self, manifest_bytes: bytes) -> dict[str, Any]:
        return _doc(self.scheme, manifest_bytes, None, None)


@dataclass(frozen=True, repr=False)
class HmacKey:
    """A shared secret for ``hmac-sha256``; used both to sign and to verify. Its repr never shows the secret."""

    secret: bytes
    scheme: str = "hmac-sha256"

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_HMAC_KEY_BYTES:
            raise UsageError(f"an HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes long")

    def __repr__(self) -> str:
        return f"HmacKey(key_id={self.key_id!r})"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HmacKey:
        """Read a secret from a file; one trailing newline is ignored, a PEM key is refused (wrong kind of key)."""
        raw = _read_key_file(path, "HMAC key file")
        if raw.lstrip().startswith(b"-----BEGIN"):
            raise UsageError(f"HMAC key file {path} holds a PEM key, not an HMAC secret", hints=[Hint(
                "for an Ed25519 key", api="Ed25519Signer.from_file / Ed25519PublicKey.from_file",
                cli="--sign-key / --public-key")])
        secret = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        if len(secret) < MIN_HMAC_KEY_BYTES:
            raise UsageError(f"HMAC key file {path} is not a key: it holds {len(secret)} bytes, "
                             f"at least {MIN_HMAC_KEY_BYTES} are required")
        return cls(secret)

    @property
    def key_id(self) -> str:
        # A domain-separated digest: it identifies the key without being usable as an HMAC of anything.
        return hashlib.sha256(b"bundler hmac key id\0" + self.secret).hexdigest()[:16]

    def sign(self, manifest_bytes: bytes) -> dict[str, Any]:
        mac = hmac.new(self.secret, manifest_bytes, hashlib.sha256).hexdigest()
        return _doc(self.scheme, manifest_bytes, mac, self.key_id)

    def check(self, signature: str, manifest_bytes: bytes) -> bool:
        expected = hmac.new(self.secret, manifest_bytes, hashlib.sha256).hexdigest()
        # compare_digest raises TypeError on a str with non-ASCII characters: such a signature is simply wrong
        return signature.isascii() and hmac.compare_digest(expected, signature)


def _ed25519_key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


class Ed25519Signer:
    """Signs with an Ed25519 private key (PEM, PKCS#8, unencrypted)."""

    scheme = "ed25519"

    def __init__(self, private_key: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not isinstance(private_key, Ed25519PrivateKey):
            raise UsageError("the signing key is not an Ed25519 private key")
        self._key = private_key

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Ed25519Signer:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        raw = _read_key_file(path, "signing key")
        try:
            key = load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"signing key {path} is not an unencrypted PEM private key ({_first_line(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm for odd keys
            raise UsageError(f"signing key {path} is not a usable private key ({_first_line(exc)})") from None
        return cls(key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey(self._key.public_key())

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, manifest_bytes: bytes) -> dict[str, Any]:
        sig = base64.b64encode(self._key.sign(manifest_bytes)).decode("ascii")
        return _doc(self.scheme, manifest_bytes, sig, self.key_id)


class Ed25519PublicKey:
    """Verifies ``ed25519`` signatures."""

    scheme = "ed25519"

    def __init__(self, public_key: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as _Pub

        if not isinstance(public_key, _Pub):
            raise UsageError("the public key is not an Ed25519 public key")
        self._key = public_key

    def __repr__(self) -> str:
        return f"Ed25519PublicKey(key_id={self.key_id!r})"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Ed25519PublicKey:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        raw = _read_key_file(path, "public key")
        if b"PRIVATE KEY" in raw:
            raise UsageError(f"{path} holds a private key; give the public key (.pub.pem) to verify")
        try:
            key = load_pem_public_key(raw)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"public key {path} is not a PEM public key ({_first_line(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm and others for odd keys
            raise UsageError(f"public key {path} is not a usable public key ({_first_line(exc)})") from None
        return cls(key)

    @property
    def key_id(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return _ed25519_key_id(self._key.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def pem(self) -> bytes:
        """The key as a PEM public key file holds it (to hand a verifier process the key a signer implies)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return bytes(self._key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))

    def check(self, signature: str, manifest_bytes: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            raw = base64.b64decode(signature.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return False
        try:
            self._key.verify(raw, manifest_bytes)
        except InvalidSignature:
            return False
        return True


VerifyKey = HmacKey | Ed25519PublicKey


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def generate_keypair(prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``PREFIX.pem`` (private, mode 0600, created exclusively) and ``PREFIX.pub.pem``.

    Existing files are never overwritten: losing a private key to a typo is not recoverable.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private_path = Path(f"{os.fspath(prefix)}.pem")
    public_path = Path(f"{os.fspath(prefix)}.pub.pem")
    for p in (private_path, public_path):
        if p.exists():
            raise UsageError(f"{p} already exists; refusing to overwrite a key")
        if not p.parent.is_dir():
            raise UsageError(f"directory {p.parent} does not exist")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        os.chmod(private_path, 0o600)
        with open(public_path, "xb") as fh:
            fh.write(public_pem)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


@dataclass(frozen=True)
class SignatureStatus:
    """What the signature check established: the scheme, the key id, and whether authenticity was proven."""

    scheme: str
    key_id: str | None
    authenticated: bool

    @property
    def note(self) -> str:
        if self.scheme == "sha256":
            return "bundle is only checksummed (scheme sha256): integrity checked, authenticity NOT established"
        if self.authenticated:
            return f"signature verified ({self.scheme}, key id {self.key_id})"
        return (f"bundle is signed ({self.scheme}, key id {self.key_id}) but no key was supplied: "
                "integrity checked, authenticity NOT established")


def signature_document(signer: Signer, manifest_bytes: bytes) -> bytes:
    """The bytes of ``signature.json`` for ``manifest_bytes``."""
    return canonical_json(signer.sign(manifest_bytes))


def check_signature(signature_bytes: bytes, manifest_bytes: bytes, key: VerifyKey | None) -> SignatureStatus:
    """Check ``signature.json`` against the manifest bytes (and ``key`` when given). Raises SignatureError."""
    try:
        doc = parse_json_document(signature_bytes, SIGNATURE_NAME, max_bytes=64 << 10)
    except IntegrityError as exc:
        raise SignatureError(str(exc), problems=exc.problems) from None
    if not isinstance(doc, dict):
        raise SignatureError(f"{SIGNATURE_NAME} is not a JSON object")
    problems: list[str] = []
    expected_keys = {"scheme", "manifest_sha256", "signature", "key_id"}
    if set(doc) != expected_keys:
        problems.append(f"{SIGNATURE_NAME} must have exactly the keys {sorted(expected_keys)}, has {sorted(doc)}")
    scheme = doc.get("scheme")
    if scheme not in SCHEMES:
        problems.append(f"unknown signature scheme {scheme!r} (known: {', '.join(SCHEMES)})")
    digest = doc.get("manifest_sha256")
    # compare_digest raises TypeError on a str with non-ASCII characters: such a digest is simply wrong
    actual = sha256_bytes(manifest_bytes)
    digest_ok = isinstance(digest, str) and digest.isascii() and hmac.compare_digest(digest, actual)
    if not digest_ok:
        problems.append(f"{SIGNATURE_NAME} does not match manifest.json (manifest altered or signature replaced)")
    signature = doc.get("signature")
    key_id = doc.get("key_id")
    if scheme == "sha256":
        if signature is not None or key_id is not None:
            problems.append("a sha256 signature must have null signature and key_id")
    elif scheme in SCHEMES and (not isinstance(signature, str) or not isinstance(key_id, str)):
        problems.append(f"{SIGNATURE_NAME}: signature and key_id must be strings for scheme {scheme}")
    if problems:
        raise SignatureError(problems[0], problems=problems)
    assert isinstance(scheme, str)  # noqa: S101 - type narrowing of what the previous step established
    if key is None:
        return SignatureStatus(scheme, key_id if isinstance(key_id, str) else None, False)
    if scheme != key.scheme:
        claim = "only checksummed (sha256), not signed" if scheme == "sha256" else f"signed with {scheme}"
        raise SignatureError(f"a {key.scheme} key was supplied but the bundle is {claim}")
    assert isinstance(signature, str)  # noqa: S101 - type narrowing of what the previous step established
    if not key.check(signature, manifest_bytes):
        raise SignatureError(f"signature does not verify with the supplied key (key id {key.key_id}; "
                             f"bundle claims key id {key_id})")
    return SignatureStatus(scheme, key.key_id, True)
