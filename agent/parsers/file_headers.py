"""Telling encrypted from plain files by their first bytes (at most 64), never their content.

Used for chat backups (DESIGN principle 8). Each recogniser is a published format signature:
  * age: "age-encryption.org/v1" text header (age spec, C2SP).
  * OpenPGP (RFC 4880/9580): the first packet's tag. Public-key (1) or symmetric-key (3)
    session keys and encrypted data packets (9, 18, 20) mean encrypted; a literal (11) or
    compressed (8) packet first means a plain OpenPGP wrapper. The packet's version byte is
    checked too, so a random byte with its high bit set is not taken for a packet.
  * ZIP local file header "PK\\x03\\x04": general-purpose flag bit 0 = encrypted entry;
    compression method 99 = WinZip AES. That is the first entry's; the probe then reads the
    central directory at the end of the file (`sniff_zip_directory`): one plain file entry
    makes the archive plain.
  * 7z "7z\\xbc\\xaf\\x27\\x1c": whether it is AES-encrypted is in the header at the end of the
    file, so the start alone cannot tell; its start header says where that end header is, and
    `sniff_7z_end_header` looks there for the AES-256 coder id (06 F1 07 01, 7-Zip's
    7zFormat.txt). It is visible when names are encrypted too (`-mhe=on`, the GUI's "Encrypt
    file names") or headers are not compressed; a compressed plain header hides it: UNKNOWN.
  * SQLite "SQLite format 3\\0": a plain database (SQLCipher databases start with random salt).
  * LUKS "LUKS\\xba\\xbe": an encrypted container file.
  * WeChat 4.x backup files "RMFH": a 128-byte header, AES-GCM ciphertext made on the phone
    with a key found only on the phone, and an "RMFT" trailer (52pojie thread 2068774, which
    found the encryption call that writes each of these files; docs/chat-backups.md 2.2).
  * gzip 1f 8b, xz, zstd, LZ4 frames, lzip and bzip2: compressed, not encrypted (none of these
    formats encrypts; their bytes after the header look random). RAR: its encryption is not
    read (UNKNOWN).
  * OpenSSL `enc` output "Salted__" (or its base64, "U2FsdGVkX1"): encrypted.
  * Readable text (valid UTF-8, no control bytes but tab and line ends): a plain export, such as
    the TXT, HTML or CSV files chat-export tools write; unless it is only base64 or hex
    characters, which may encode ciphertext (unknown).
  * Nothing recognised: a sample that looks random (Shannon entropy of at least 5.2 bits per
    byte over 64 bytes, and mostly unprintable) is reported ENCRYPTED, labelled as weak
    evidence: SQLCipher databases and raw ciphertext look like this, but so could an unknown
    compressed format. 64 random bytes score 5.4 to 6; dense Chinese UTF-8 text about 4.8.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from devposture.v1 import devposture_pb2 as pb

SAMPLE_SIZE = 64
_RANDOM_ENTROPY = 5.2
_RANDOM_MAX_PRINTABLE = 0.75

_ENCRYPTED = pb.ENCRYPTION_STATE_ENCRYPTED
_PLAIN = pb.ENCRYPTION_STATE_NOT_ENCRYPTED
_UNKNOWN = pb.ENCRYPTION_STATE_UNKNOWN

# OpenPGP packet tag -> (acceptable version bytes, encrypted?, description)
_PGP_PACKETS: dict[int, tuple[frozenset[int], bool, str]] = {
    1: (frozenset({3, 6}), True, "public-key encrypted session key"),
    3: (frozenset({4, 5, 6}), True, "passphrase (symmetric-key) encrypted session key"),
    18: (frozenset({1, 2}), True, "integrity-protected encrypted data"),
    20: (frozenset({1}), True, "AEAD encrypted data"),
    8: (frozenset({0, 1, 2, 3}), False, "compressed data (not encrypted)"),
}


@dataclass(frozen=True)
class HeaderVerdict:
    state: pb.EncryptionState.ValueType
    evidence: str
    # What the file is, shown with an archive: "7z archive", "ZIP archive", "" when unknown.
    format: str = ""


def _openpgp(data: bytes) -> HeaderVerdict | None:
    first = data[0]
    if not first & 0x80:
        return None
    if first & 0x40:  # new format: tag in the low six bits, then a length
        tag = first & 0x3F
        if len(data) < 3:
            return None
        length_octet = data[1]
        # One-octet, two-octet, five-octet and partial body lengths (RFC 4880 4.2.2).
        body = (
            2
            if length_octet < 192
            else 3
            if length_octet < 224
            else 6
            if length_octet == 255
            else 2
        )
    else:  # old format: tag in bits 5-2, length type in bits 1-0
        tag = (first >> 2) & 0x0F
        body = 1 + {0: 1, 1: 2, 2: 4, 3: 0}[first & 0x03]
    if tag not in _PGP_PACKETS or len(data) <= body:
        return None
    # The first body byte is the packet version (the algorithm id for compressed data).
    versions, encrypted, what = _PGP_PACKETS[tag]
    if data[body] not in versions:
        return None
    state = _ENCRYPTED if encrypted else _PLAIN
    return HeaderVerdict(state, f"OpenPGP message starting with {what}", "OpenPGP message")


_OPENSSL = "OpenSSL encrypted file"

# Formats whose first bytes alone decide the verdict.
_MAGIC: tuple[tuple[bytes, HeaderVerdict], ...] = (
    (b"age-encryption.org/v1", HeaderVerdict(_ENCRYPTED, "age encrypted file", "age file")),
    (
        b"-----BEGIN AGE ENCRYPTED FILE-----",
        HeaderVerdict(_ENCRYPTED, "age encrypted file (armored)", "age file"),
    ),
    (
        b"-----BEGIN PGP MESSAGE-----",
        HeaderVerdict(
            _UNKNOWN, "armored OpenPGP message (encrypted or only signed)", "OpenPGP message"
        ),
    ),
    (
        b"SQLite format 3\x00",
        HeaderVerdict(_PLAIN, "SQLite format 3 header: plain database", "SQLite database"),
    ),
    (b"LUKS\xba\xbe", HeaderVerdict(_ENCRYPTED, "LUKS encrypted container", "LUKS container")),
    (
        b"RMFH",
        HeaderVerdict(
            _ENCRYPTED,
            "RMFH header: a WeChat 4.x backup file, encrypted by WeChat (AES-GCM)",
            "WeChat 4.x backup file",
        ),
    ),
    (b"Salted__", HeaderVerdict(_ENCRYPTED, "OpenSSL enc encrypted file", _OPENSSL)),
    # The same, base64-armored (`openssl enc -a`): "Salted__" in base64.
    (b"U2FsdGVkX1", HeaderVerdict(_ENCRYPTED, "OpenSSL enc encrypted file (base64)", _OPENSSL)),
    (
        b"7z\xbc\xaf\x27\x1c",
        HeaderVerdict(
            _UNKNOWN, "7z archive: encryption not visible in its first bytes", "7z archive"
        ),
    ),
    # Compressed streams with no encryption of their own: their first bytes look random, and
    # were taken for ciphertext (a plain chat.tar.xz read as ENCRYPTED, a false PASS).
    (b"\xfd7zXZ\x00", HeaderVerdict(_PLAIN, "xz stream: compressed, not encrypted", "xz file")),
    (b"\x28\xb5\x2f\xfd",
     HeaderVerdict(_PLAIN, "zstd frame: compressed, not encrypted", "zstd file")),
    (b"\x04\x22\x4d\x18",
     HeaderVerdict(_PLAIN, "LZ4 frame: compressed, not encrypted", "lz4 file")),
    (b"LZIP", HeaderVerdict(_PLAIN, "lzip stream: compressed, not encrypted", "lzip file")),
    (b"BZh", HeaderVerdict(_PLAIN, "bzip2 stream: compressed, not encrypted", "bzip2 file")),
    (b"Rar!\x1a\x07",
     HeaderVerdict(_UNKNOWN, "RAR archive: its encryption is not read", "RAR archive")),
)  # fmt: skip


def sniff(data: bytes) -> HeaderVerdict:
    """What the first bytes of one file say about its encryption."""
    data = data[:SAMPLE_SIZE]
    if not data:
        return HeaderVerdict(_UNKNOWN, "empty file")
    for magic, verdict in _MAGIC:
        if data.startswith(magic):
            return verdict
    if data.startswith(b"PK\x03\x04") and len(data) >= 10:
        flags = int.from_bytes(data[6:8], "little")
        method = int.from_bytes(data[8:10], "little")
        if method == 99:
            return HeaderVerdict(_ENCRYPTED, "ZIP archive with WinZip AES encryption", _ZIP)
        if flags & 0x1:
            return HeaderVerdict(_ENCRYPTED, "ZIP archive with encrypted entries", _ZIP)
        return HeaderVerdict(_PLAIN, "ZIP archive without encryption", _ZIP)
    if data.startswith(b"\x1f\x8b"):
        return HeaderVerdict(_PLAIN, "gzip stream: compressed, not encrypted", "gzip file")
    pgp = _openpgp(data)
    if pgp is not None:
        return pgp
    if looks_random(data):
        return HeaderVerdict(
            _ENCRYPTED,
            "weak evidence: the first bytes look random (high entropy, no known header),"
            " as in SQLCipher or other encrypted files",
        )
    if looks_like_text(data):
        if _looks_encoded(data):
            return HeaderVerdict(_UNKNOWN, "base64 or hex text: encoded data, encrypted or not")
        return HeaderVerdict(_PLAIN, "readable text: a plain export", "text file")
    return HeaderVerdict(_UNKNOWN, "unrecognised file header")


_ZIP = "ZIP archive"
# Only base64 or hex characters (and line ends): encoded binary, which may be ciphertext.
_ENCODED = re.compile(rb"^[A-Za-z0-9+/=\r\n]+$")


def _looks_encoded(data: bytes) -> bool:
    """Base64 or hex of binary data: only their alphabet, with digits and letters mixed
    (a redacted text, all "x", is not)."""
    if not _ENCODED.match(data):
        return False
    digits = sum(1 for byte in data if 0x30 <= byte <= 0x39)
    letters = sum(1 for byte in data if 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A)
    return digits > 0 and letters > 0
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0c")


def looks_like_text(data: bytes) -> bool:
    """Valid UTF-8 (a character cut at the sample's end allowed) without control bytes but
    tab, line ends and form feed: a text file, which is never encrypted."""
    if any(byte < 0x20 and byte not in _TEXT_CONTROLS for byte in data) or 0x7F in data:
        return False
    for cut in range(4):
        try:
            data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def looks_random(data: bytes) -> bool:
    """High entropy and mostly unprintable: ciphertext, not text (base64 is printable)."""
    if len(data) < SAMPLE_SIZE:
        return False
    counts = Counter(data)
    entropy = -sum(n / len(data) * math.log2(n / len(data)) for n in counts.values())
    printable = sum(1 for byte in data if 0x20 <= byte < 0x7F) / len(data)
    return entropy >= _RANDOM_ENTROPY and printable < _RANDOM_MAX_PRINTABLE


SEVEN_ZIP = b"7z\xbc\xaf\x27\x1c"
_SEVEN_ZIP_START_HEADER = 32
_AES_256_SHA_256 = b"\x06\xf1\x07\x01"
MAX_7Z_END_HEADER = 64 * 1024


def seven_zip_end_header(start: bytes) -> tuple[int, int] | None:
    """(offset, size) of a 7z archive's end header, read from its start header; None if the
    sample is not a 7z start header or the end header is implausibly large."""
    if not start.startswith(SEVEN_ZIP) or len(start) < _SEVEN_ZIP_START_HEADER:
        return None
    offset = int.from_bytes(start[12:20], "little")
    size = int.from_bytes(start[20:28], "little")
    if size == 0 or size > MAX_7Z_END_HEADER:
        return None
    return _SEVEN_ZIP_START_HEADER + offset, size


# A ZIP's end of central directory record (its comment is at most 64 KiB), and its central
# directory's headers; read at most this much of the central directory.
ZIP_END_TAIL = 22 + 65_535
ZIP_DIRECTORY_MOST = 1 << 20
_ZIP_END, _ZIP_CENTRAL = b"PK\x05\x06", b"PK\x01\x02"


def zip_central_directory(tail: bytes, tail_offset: int) -> tuple[int, int] | None:
    """Where a ZIP's central directory is, (offset, size), from the file's last bytes (read
    at `tail_offset`); None when no end record is there or it is a Zip64 one."""
    end = tail.rfind(_ZIP_END)
    if end < 0 or len(tail) < end + 22:
        return None
    size = int.from_bytes(tail[end + 12 : end + 16], "little")
    offset = int.from_bytes(tail[end + 16 : end + 20], "little")
    if 0xFFFFFFFF in (size, offset) or offset + size > tail_offset + end:
        return None
    return offset, size


def sniff_zip_directory(directory: bytes, complete: bool) -> HeaderVerdict:
    """What a ZIP's central directory says of every entry: one plain file entry makes the
    archive plain (its first entry alone said it, so an encrypted first entry hid plain chat
    files after it); encrypted when every file entry is; UNKNOWN when the directory was not
    read whole (`complete`) and every entry read was encrypted."""
    at, files, encrypted = 0, 0, 0
    while directory.startswith(_ZIP_CENTRAL, at) and len(directory) >= at + 46:
        flags = int.from_bytes(directory[at + 8 : at + 10], "little")
        method = int.from_bytes(directory[at + 10 : at + 12], "little")
        size = int.from_bytes(directory[at + 24 : at + 28], "little")
        name_length = int.from_bytes(directory[at + 28 : at + 30], "little")
        extra = int.from_bytes(directory[at + 30 : at + 32], "little")
        comment = int.from_bytes(directory[at + 32 : at + 34], "little")
        name = directory[at + 46 : at + 46 + name_length]
        at += 46 + name_length + extra + comment
        if name.endswith(b"/") or size == 0:  # a folder, or an empty file: nothing to hide
            continue
        files += 1
        if flags & 0x1 or method == 99:
            encrypted += 1
        elif encrypted:  # an encrypted entry before it: a plain one hidden behind it
            return HeaderVerdict(
                _PLAIN, f"ZIP archive with an entry not encrypted ({files} read)", _ZIP
            )
        else:
            return HeaderVerdict(_PLAIN, "ZIP archive without encryption", _ZIP)
    if files and encrypted == files and complete:
        return HeaderVerdict(_ENCRYPTED, f"ZIP archive, all {files} entries encrypted", _ZIP)
    if files:
        return HeaderVerdict(
            _UNKNOWN, f"ZIP archive: its first {files} entries encrypted, the rest not read", _ZIP
        )
    return HeaderVerdict(_UNKNOWN, "ZIP archive: no file entry in its central directory", _ZIP)


def sniff_7z_end_header(end: bytes) -> HeaderVerdict:
    """What a 7z end header says: its coders name AES-256 when anything in it is encrypted."""
    if _AES_256_SHA_256 in end:
        return HeaderVerdict(_ENCRYPTED, "7z archive with AES-256 encryption", _7Z)
    if end[:1] == b"\x01":  # a plain header: every coder is listed, none is AES
        return HeaderVerdict(_PLAIN, "7z archive without encryption", _7Z)
    return HeaderVerdict(
        _UNKNOWN, "7z archive with a compressed header: encryption of its contents not visible", _7Z
    )


_7Z = "7z archive"


def combine(verdicts: list[HeaderVerdict]) -> HeaderVerdict:
    """One verdict for a folder from its sampled files: one plain file makes the backup not
    encrypted; it is encrypted only when every sampled file is; anything else is unknown."""
    plain = [v for v in verdicts if v.state == _PLAIN]
    if plain:
        return HeaderVerdict(_PLAIN, plain[0].evidence)
    encrypted = [v for v in verdicts if v.state == _ENCRYPTED]
    if encrypted and len(encrypted) == len(verdicts):
        return HeaderVerdict(_ENCRYPTED, encrypted[0].evidence)
    unknown = [v for v in verdicts if v.state != _ENCRYPTED]
    if unknown:
        return HeaderVerdict(_UNKNOWN, unknown[0].evidence)
    return HeaderVerdict(_UNKNOWN, "no files to sample")
