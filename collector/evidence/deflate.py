"""Deflate for the audit bundle's members by ISA-L (python-isal) instead of zlib.

Why: a quarter's bundle is gigabytes of JSON lines, and deflating them was the largest
single cost of an export. On the 2,000-device daily quarter of `bench/audit_quarter.py`
(347 MB of members), zlib at its fastest level took 1.4 s of the export's 6.5 s of CPU and
inflating them 0.5 s of the verify; ISA-L's level 1 takes 0.26 s and 0.18 s, into 8 % fewer
bytes. At the hourly quarter's size (tens of gigabytes before compression) zlib alone would
take minutes. python-isal is the maintained binding of Intel's ISA-L (used by xopen and
cutadapt), statically linked, with wheels for every platform the collector and an auditor's
verifier run on.

The members stay plain deflate (zip method 8, which every unzip reads): the bundle's format
does not change, only what deflates and inflates it. zipfile takes no compressor of the
caller's choosing, so a member's handle gets ISA-L's object in place of zlib's before its
first byte (`compressing`, `inflating`): the same methods, the same raw deflate stream.
Where a later zipfile keeps them under other names the member is written or read by zlib as
before, and `tests/collector/test_audit_deflate.py` fails, rather than any bundle.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from typing import IO, Any, cast

from isal import isal_zlib

# ISA-L's levels are 0-3: level 1 packs the bundle's lines tighter than zlib's level 1 (and
# about as tight as its default level 6) at five times zlib's speed.
LEVEL = 1
# A raw deflate stream (no zlib header), as a zip member holds it.
RAW = -zlib.MAX_WBITS

# What a damaged member's stream raises while it is inflated, beside zlib's own error (the
# package's stubs type isal_zlib.error as an instance; it is the exception class).
ERRORS: tuple[type[Exception], ...] = (zlib.error, cast("type[Exception]", isal_zlib.error))


def compressing(handle: IO[bytes], info: zipfile.ZipInfo) -> IO[bytes]:
    """`handle` (ZipFile.open(info, "w"), before anything is written) deflating by ISA-L."""
    if info.compress_type == zipfile.ZIP_DEFLATED and hasattr(handle, "_compressor"):
        handle._compressor = isal_zlib.compressobj(LEVEL, zlib.DEFLATED, RAW)
    return handle


def inflating(handle: IO[bytes]) -> IO[bytes]:
    """`handle` (ZipFile.open(name), before anything is read) inflating by ISA-L, and
    checking the member's CRC-32 by ISA-L's (`_IsalCrc`)."""
    if getattr(handle, "_compress_type", None) == zipfile.ZIP_DEFLATED and hasattr(
        handle, "_decompressor"
    ):
        handle._decompressor = isal_zlib.decompressobj(RAW)
    if all(hasattr(handle, name) for name in _CRC_STATE):
        handle._update_crc = _IsalCrc(handle)  # type: ignore[attr-defined]
    return handle


# What zipfile's reader keeps of a member's CRC-32 (`ZipExtFile._update_crc` reads them).
_CRC_STATE = ("_update_crc", "_expected_crc", "_running_crc", "_eof", "name")


class _IsalCrc:
    """In place of a member reader's `_update_crc`: the same check by ISA-L's CRC-32 (0.02 ms
    a megabyte against zlib's 0.46: 0.7 s of a verify over 1.6 GB of members). A member whose
    bytes do not give the CRC-32 its entry names fails at its end, as with zipfile's own."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def __call__(self, data: bytes) -> None:
        handle: Any = self._handle
        if handle._expected_crc is None:  # no reference value: nothing to compute
            return
        handle._running_crc = isal_zlib.crc32(data, handle._running_crc)
        if handle._eof and handle._running_crc != handle._expected_crc:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {handle.name!r}")


def by_isal(handle: IO[bytes]) -> bool:
    """Whether a member's handle deflates or inflates by ISA-L (what the tests hold)."""
    engine = getattr(handle, "_compressor", None) or getattr(handle, "_decompressor", None)
    return type(engine).__module__.startswith("isal")


class Deflated:
    """A member's bytes deflated into `spool` (a temporary file) as they come, with what its
    zip entry and the manifest need of the bytes themselves: SHA-256, CRC-32 and size."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        self.sha = hashlib.sha256()
        self.crc = 0
        self.size = 0
        self._compressor = isal_zlib.compressobj(LEVEL, zlib.DEFLATED, RAW)

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.crc = isal_zlib.crc32(data, self.crc)  # zlib's, by SIMD: a twentieth of the time
        self.size += len(data)
        self.spool.write(self._compressor.compress(data))

    def finish(self) -> None:
        """End the deflate stream (nothing may be written after)."""
        self.spool.write(self._compressor.flush())


class _AsItIs:
    """In place of a member's compressor: what comes is deflated already."""

    @staticmethod
    def compress(data: bytes) -> bytes:
        return data

    @staticmethod
    def flush() -> bytes:
        return b""


def put_deflated(handle: IO[bytes], info: zipfile.ZipInfo, deflated: Deflated) -> None:
    """Copy the finished `deflated` into `handle` (ZipFile.open(info, "w"), a deflated member,
    nothing written yet) as its stream, and give the entry the size and CRC-32 of the bytes
    themselves (zipfile counted what it was handed). Raises TypeError, before writing, where
    zipfile keeps these elsewhere (`test_audit_deflate.py` holds them)."""
    names = ("_compressor", "_crc", "_file_size")
    if info.compress_type != zipfile.ZIP_DEFLATED or not all(hasattr(handle, n) for n in names):
        raise TypeError("this Python's zipfile cannot take a deflated member as it is")
    handle._compressor = _AsItIs()  # type: ignore[attr-defined]
    deflated.spool.seek(0)
    while chunk := deflated.spool.read(1 << 20):
        handle.write(chunk)
    handle._crc = deflated.crc  # type: ignore[attr-defined]
    handle._file_size = deflated.size  # type: ignore[attr-defined]
