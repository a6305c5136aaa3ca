"""Redact the sample of a user's file before it goes into a diagnostic bundle.

A chat backup's first 64 bytes decide whether it is encrypted, and a bundle must reproduce
that verdict on another machine. But a plain-text export starts with a message, and a bundle
must never carry chat content (DESIGN principle 8). So a sample keeps:

* a recognised format signature (the bytes `agent.parsers.file_headers` decides on: SQLite,
  age, OpenPGP armour, ZIP's fixed header up to, not including, the file name ...), and
* the non-text bytes after it (ciphertext and binary headers carry no message),

while every run of readable text (ASCII letters and digits, or any multi-byte UTF-8
character, which covers Chinese) of two or more characters becomes "x" of the same length.
What is left cannot be read, and sniffs the same: a signature still matches, and text that
matched nothing still matches nothing. A sample from inside a file (a 7z archive's end header)
keeps even less: see `redact_end_header`.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.file_headers import looks_random

# Signatures kept verbatim, with how many bytes of each to keep. ZIP's local header is fixed
# for 30 bytes; the file name follows and may say who a chat was with.
_KEEP: tuple[tuple[bytes, int], ...] = (
    (b"SQLite format 3\x00", 16),
    (b"age-encryption.org/v1", 21),
    (b"-----BEGIN AGE ENCRYPTED FILE-----", 34),
    (b"-----BEGIN PGP MESSAGE-----", 27),
    (b"LUKS\xba\xbe", 6),
    (b"7z\xbc\xaf\x27\x1c", 32),  # the whole start header: versions, offsets, CRCs
    (b"PK\x03\x04", 30),
    (b"\x1f\x8b", 2),
    (b"Salted__", 8),  # OpenSSL enc; the salt after it is random
    (b"U2FsdGVkX1", 10),  # the same, base64; the rest is base64 of ciphertext
)
_MIN_RUN = 2


def _text_runs(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each run of readable characters, decoding UTF-8 where it is valid."""
    runs: list[tuple[int, int]] = []
    start, chars, i = -1, 0, 0
    while i < len(data):
        byte = data[i]
        width = 0
        if 0x20 <= byte < 0x7F or byte in (0x09, 0x0A, 0x0D):
            width = 1
        elif byte >= 0xC2:
            width = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4 if byte < 0xF5 else 0
            if width:
                try:
                    data[i : i + width].decode("utf-8")
                except UnicodeDecodeError:
                    width = 0
        if width:
            if start < 0:
                start, chars = i, 0
            chars += 1
            i += width
            continue
        if start >= 0 and chars >= _MIN_RUN:
            runs.append((start, i))
        start = -1
        i += 1
    if start >= 0 and chars >= _MIN_RUN:
        runs.append((start, len(data)))
    return runs


def redact_sample(data: bytes) -> bytes:
    """The sample with its signature kept and every readable text run replaced by "x"s.

    A sample that looks random (ciphertext, a SQLCipher salt) is kept whole: it is mostly
    unprintable by definition, so it holds no readable text, and masking its chance printable
    pairs would lower its entropy and change the verdict."""
    if looks_random(data):
        return data
    keep = 0
    for magic, length in _KEEP:
        if data.startswith(magic):
            keep = length
            break
    head, tail = data[:keep], bytearray(data[keep:])
    for start, end in _text_runs(bytes(tail)):
        tail[start:end] = b"x" * (end - start)
    return head + bytes(tail)


_KEPT_IN_END_HEADERS = (b"\x06\xf1\x07\x01",)  # 7z's AES-256 coder id


def redact_end_header(data: bytes) -> bytes:
    """A sample read from inside a file (a 7z end header, which lists file names in UTF-16)
    keeps only what the verdict reads: its first byte (the header's kind) and the coder ids
    it looks for. Everything else becomes zero bytes."""
    kept = bytearray(len(data))
    kept[:1] = data[:1]
    for marker in _KEPT_IN_END_HEADERS:
        start = data.find(marker)
        while start >= 0:
            kept[start : start + len(marker)] = marker
            start = data.find(marker, start + 1)
    return bytes(kept)


# pppd's options whose value is a secret or names a person (pppd(8): `password` is the PAP
# password itself; `user`, `name` and `remotename` the account and the peer's name). They stand
# in its peer files (/etc/ppp/peers/*), one per line, and in its command line, NUL-separated.
_PPP_OPTION_VALUES = re.compile(
    rb"(?:^|(?<=[\x00\s]))(?:password|user|name|remotename)[ \t\x00]+"
    rb"(?:\"([^\"\n\x00]*)\"|'([^'\n\x00]*)'|([^\s\x00]+))",
    re.MULTILINE,
)


def redact_ppp_options(data: bytes) -> bytes:
    """pppd's options (a peer file, or pppd's command line from /proc) with the value of each
    option that holds a password or an account name replaced by "x"s of its length. What the
    VPN probe reads of them (`plugin`, `pty`, `ifname`, `unit`, `linkname`, `call`) is kept, so
    a bundle replays to the same verdict and carries no dial-up or VPN credential."""

    def masked(found: re.Match[bytes]) -> bytes:
        value = next(group for group in (1, 2, 3) if found.group(group) is not None)
        start, end = found.span(value)
        whole, at = found.group(0), found.start()
        return whole[: start - at] + b"x" * (end - start) + whole[end - at :]

    return _PPP_OPTION_VALUES.sub(masked, data)
