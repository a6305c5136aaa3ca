"""Files in the shape of WeChat 4.x's backup files ("RMFH" files), for tests.

The shape is the one a public analysis gives (52pojie thread 2068774, see
tests/fixtures/chat_layouts/README.md): a 128-byte header starting with "RMFH", with the
AES-GCM nonce (12 bytes) at offset 19; the ciphertext; a 128-byte trailer starting with "RMFT",
with the GCM tag (16 bytes) at offset 10; a 16-byte AES key. The ciphertext is made here by a
real AES-GCM (the cryptography package). The header's and trailer's other bytes are not
published: they are zeros here, and the agent's verdict must not depend on them.
"""

from __future__ import annotations

import random
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HEADER = TRAILER = 128
NONCE_AT, TAG_AT = 19, 10


def rmfh_bytes(plaintext: bytes, seed: int) -> bytes:
    """`plaintext` encrypted with AES-128-GCM under a key and nonce drawn from `seed`, framed
    as an RMFH file."""
    draw = random.Random(seed)
    key, nonce = draw.randbytes(16), draw.randbytes(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, None)
    ciphertext, tag = sealed[:-16], sealed[-16:]
    header = bytearray(HEADER)
    header[:4] = b"RMFH"
    header[NONCE_AT : NONCE_AT + 12] = nonce
    trailer = bytearray(TRAILER)
    trailer[:4] = b"RMFT"
    trailer[TAG_AT : TAG_AT + 16] = tag
    return bytes(header) + ciphertext + bytes(trailer)


def rmfh_file(path: Path, plaintext: bytes = b"\x0a" * 512, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rmfh_bytes(plaintext, seed))
    return path
