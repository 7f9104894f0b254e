"""Signature schemes, key files and key generation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bundler.errors import SignatureError, UsageError
from bundler.integrity.signing import (
    Ed25519PublicKey,
    Ed25519Signer,
    HmacKey,
    Sha256Signer,
    check_signature,
    generate_keypair,
    signature_document,
)

MANIFEST = b'{"format_version":1}'


def test_sha256_is_checksum_only() -> None:
    status = check_signature(signature_document(Sha256Signer(), MANIFEST), MANIFEST, None)
    assert status.scheme == "sha256"
    assert not status.authenticated
    assert "NOT established" in status.note


def test_hmac_roundtrip_and_wrong_key(hmac_key: HmacKey) -> None:
    doc = signature_document(hmac_key, MANIFEST)
    assert check_signature(doc, MANIFEST, hmac_key).authenticated
    with pytest.raises(SignatureError, match="does not verify"):
        check_signature(doc, MANIFEST, HmacKey(os.urandom(32)))
    with pytest.raises(SignatureError, match="does not match manifest"):
        check_signature(doc, MANIFEST + b" ", hmac_key)


def test_ed25519_roundtrip_wrong_key_and_scheme(ed_signer: Ed25519Signer, ed_public: Ed25519PublicKey,
                                                 tmp_path: Path, hmac_key: HmacKey) -> None:
    doc = signature_document(ed_signer, MANIFEST)
    status = check_signature(doc, MANIFEST, ed_public)
    assert status.authenticated
    assert status.key_id == ed_signer.key_id
    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(SignatureError, match="does not verify"):
        check_signature(doc, MANIFEST, Ed25519PublicKey.from_file(other_pub))
    with pytest.raises(SignatureError, match="signed with ed25519"):
        check_signature(doc, MANIFEST, hmac_key)
    with pytest.raises(SignatureError, match="only checksummed"):
        check_signature(signature_document(Sha256Signer(), MANIFEST), MANIFEST, ed_public)
    # Without a key, a signed bundle is reported as signed but not authenticated.
    assert not check_signature(doc, MANIFEST, None).authenticated


@pytest.mark.parametrize(
    "doc",
    [b"", b"garbage", b"[]", b'{"scheme":"rot13","manifest_sha256":"00","signature":null,"key_id":null}',
     b'{"scheme":"sha256"}', b'{"scheme":"ed25519","manifest_sha256":"x","signature":5,"key_id":null}'],
)
def test_garbage_signature_documents(doc: bytes) -> None:
    with pytest.raises(SignatureError):
        check_signature(doc, MANIFEST, None)


def test_unknown_scheme_is_named() -> None:
    from bundler.integrity.hashing import sha256_bytes

    doc = (f'{{"scheme":"rsa","manifest_sha256":"{sha256_bytes(MANIFEST)}","signature":"AA==","key_id":"k"}}').encode()
    with pytest.raises(SignatureError, match="unknown signature scheme 'rsa'"):
        check_signature(doc, MANIFEST, None)


def test_ed25519_signature_not_base64(ed_public: Ed25519PublicKey, ed_signer: Ed25519Signer) -> None:
    import json

    doc = json.loads(signature_document(ed_signer, MANIFEST))
    doc["signature"] = "!!!not base64!!!"
    with pytest.raises(SignatureError, match="does not verify"):
        check_signature(json.dumps(doc).encode(), MANIFEST, ed_public)


def test_keygen_modes_and_no_overwrite(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    assert b"PUBLIC KEY" in public.read_bytes()
    before = private.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        generate_keypair(tmp_path / "k")
    assert private.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"short", b"-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"])
def test_hmac_key_file_that_is_not_a_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(UsageError):
        HmacKey.from_file(path)


BAD_PEM = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("content", [b"", b"not a pem", BAD_PEM])
def test_pem_files_that_are_not_keys(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(UsageError):
        Ed25519Signer.from_file(path)
    with pytest.raises(UsageError):
        Ed25519PublicKey.from_file(path)


def test_private_key_given_as_public_key(keypair: tuple[Path, Path]) -> None:
    with pytest.raises(UsageError, match="private key"):
        Ed25519PublicKey.from_file(keypair[0])


def test_missing_key_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        HmacKey.from_file(tmp_path / "nope")
    with pytest.raises(UsageError, match="not a file"):
        Ed25519PublicKey.from_file(tmp_path)


def test_key_repr_hides_secret(hmac_key: HmacKey) -> None:
    assert hmac_key.secret.decode(errors="replace") not in repr(hmac_key)
