"""Authenticode signing of the MSI with osslsigncode, and the check that the signature holds.

    osslsigncode sign -certs CERT -key KEY [-readpass FILE] -h sha256 -n "devposture agent"
                      [-ts URL] -in UNSIGNED -out SIGNED
    osslsigncode verify -in SIGNED -CAfile CA -require-leaf-hash sha256:<the certificate's>

The key's passphrase is read by osslsigncode from a file (-readpass), never put on a command
line, where other users of the machine could read it. The timestamp (which keeps the signature
valid after the certificate expires) is RFC 3161 (-ts), not the legacy Authenticode protocol
(-t). Verification pins the signer: the leaf certificate must be the one given
(-require-leaf-hash), and its chain must end at a certificate of the CA file (by default the
certificate file itself, which works for a self-signed certificate or a file holding the whole
chain up to the root; --sign-ca for another, e.g. the system's CA bundle).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
import subprocess
from pathlib import Path

DESCRIPTION = "devposture agent"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class SigningError(Exception):
    """Signing or its verification failed; the message says why and what to do."""


def leaf_sha256(certificate: Path) -> str:
    """The SHA-256 of the DER form of the first certificate in a PEM file."""
    try:
        text = certificate.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise SigningError(f"{certificate} cannot be read as a PEM certificate: {error}") from error
    match = _PEM.search(text)
    if not match:
        raise SigningError(
            f"{certificate} holds no PEM certificate: give the code-signing certificate as PEM "
            "(-----BEGIN CERTIFICATE-----), the leaf first, then its chain")  # fmt: skip
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(match.group(0))).hexdigest()


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(command[0]) is None:
        raise SigningError("signing needs osslsigncode (Debian: apt-get install osslsigncode)")
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def sign(unsigned: Path, signed: Path, *, certificate: Path, key: Path,
         pass_file: Path | None = None, timestamp_url: str | None = None) -> None:  # fmt: skip
    """Sign `unsigned` into `signed` with SHA-256."""
    leaf_sha256(certificate)  # a clear message for a file that is no certificate
    command = ["osslsigncode", "sign", "-certs", str(certificate), "-key", str(key)]
    if pass_file is not None:
        command += ["-readpass", str(pass_file)]
    command += ["-h", "sha256", "-n", DESCRIPTION]
    if timestamp_url:
        command += ["-ts", timestamp_url]
    command += ["-in", str(unsigned), "-out", str(signed)]
    done = _run(command)
    if done.returncode != 0 or not signed.is_file():
        raise SigningError(
            "osslsigncode could not sign the MSI (a wrong key or passphrase, a key that does "
            "not match the certificate, or an unreachable timestamp server):\n"
            + (done.stderr or done.stdout).strip())  # fmt: skip


def verify(signed: Path, ca_file: Path, certificate: Path) -> str:
    """osslsigncode's report on `signed`, if its signature is valid, made with `certificate`
    and chains to a certificate of `ca_file`; else SigningError."""
    done = _run(["osslsigncode", "verify", "-in", str(signed), "-CAfile", str(ca_file),
                 "-require-leaf-hash", f"sha256:{leaf_sha256(certificate)}"])  # fmt: skip
    if done.returncode != 0:
        raise SigningError(
            f"the signed MSI does not verify against {ca_file} with the signing certificate as "
            "its leaf: give --sign-ca the CA certificates the signing certificate chains to "
            "(or put the whole chain, up to the root, in --sign-cert):\n"
            + (done.stdout + done.stderr).strip()[-2000:])  # fmt: skip
    return done.stdout
