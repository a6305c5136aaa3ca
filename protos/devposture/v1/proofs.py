"""Byte formats the contract defines beside its messages: what a device key signs.

Both sides must build these bytes identically, so they live with the contract rather than in
the agent or the collector.
"""

from __future__ import annotations

import hashlib

REESTABLISH_CONTEXT = b"devposture-reestablish/v1"


def reestablish_payload(
    device_id: str, serial_hex: str, signed_at_seconds: int, csr_pem: str
) -> bytes:
    """What the device key signs in a ReestablishRequest (see devposture.proto)."""
    csr_digest = hashlib.sha256(csr_pem.encode("ascii", "replace")).hexdigest()
    return b"\n".join(
        (
            REESTABLISH_CONTEXT,
            device_id.encode("ascii", "replace"),
            serial_hex.lower().encode("ascii", "replace"),
            str(signed_at_seconds).encode("ascii"),
            csr_digest.encode("ascii"),
        )
    )
