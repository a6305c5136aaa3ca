"""The collector's evidence signing key: Ed25519, made on first use, 0600 in the data folder.

It signs audit bundles and nothing else (the CA key signs certificates). The auditor gets the
public key once, out of band, from `devposture-collector audit public-key`, and checks its
fingerprint with whoever runs the collector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from devposture.policy.cli_messages import Worded

KEY_NAME = "evidence-signing.key"
# Domain separation: this key's signatures cannot be replayed as anything else.
SIGNED_PREFIX = b"devposture-audit-bundle/v1\n"


class SigningKeyError(Worded):
    """The key file cannot be used; the message says why and what to do (worded in the
    reader's language, `Worded`)."""


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_NAME


def load_or_create(data_dir: Path) -> Ed25519PrivateKey:
    """The data folder's signing key, made now (0600, never replaced) if there is none."""
    # Imported here: datadir imports the store, which imports the evidence chain package.
    from devposture.collector.datadir import write_private  # noqa: PLC0415

    path = key_path(data_dir)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            write_private(path, pem)
            return key
        except FileExistsError:
            pass  # made at the same moment by another process: use that one
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyError(
            "{path} is not an Ed25519 key: move it away and run the command again", path=path
        )
    return loaded


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the public key's DER SubjectPublicKeyInfo, as `sha256:` and hex."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise SigningKeyError(
            "not a PEM public key: give the file `devposture-collector audit public-key`"
            " printed, which begins with -----BEGIN PUBLIC KEY-----"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("not an Ed25519 public key: use the one `audit public-key` prints")
    return key


def sign(key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    return key.sign(SIGNED_PREFIX + manifest)


def signature_holds(key: Ed25519PublicKey, manifest: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, SIGNED_PREFIX + manifest)
    except InvalidSignature:
        return False
    return True
