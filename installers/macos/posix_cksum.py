"""The POSIX `cksum` CRC of a file, which a Bom records for every file and symbolic link.

POSIX defines it (the `cksum` utility): CRC-32 with the polynomial 0x04C11DB7, most significant
bit first, register starting at 0, over the data followed by the data's length in as few bytes
as it needs (least significant first), then inverted. Apple's mkbom stores exactly this value
(`cksum` on a Mac and GNU `cksum` print it too).

zlib's CRC-32 is the same polynomial taken least significant bit first. Reversing the bits of
every input byte, running zlib's C code with its register starting at 0, and reversing the 32
bits of the result gives the POSIX value: a large frozen program is summed at zlib's speed
rather than a Python loop's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _reverse32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


class PosixCksum:
    """Feed the data in pieces (`update`), then read `value`."""

    def __init__(self) -> None:
        # zlib.crc32(data, start) runs with register ~start: 0xFFFFFFFF starts it at 0.
        self._crc = 0xFFFFFFFF
        self._length = 0

    def update(self, data: bytes) -> None:
        self._crc = zlib.crc32(data.translate(_REVERSED), self._crc)
        self._length += len(data)

    @property
    def value(self) -> int:
        length = self._length
        tail = bytearray()
        while length:
            tail.append(length & 0xFF)
            length >>= 8
        crc = zlib.crc32(bytes(tail).translate(_REVERSED), self._crc)
        # zlib returns the register inverted, which is POSIX's final inversion once reversed.
        return _reverse32(crc)


def cksum(chunks: Iterable[bytes]) -> int:
    """The POSIX cksum of the concatenated chunks."""
    summer = PosixCksum()
    for chunk in chunks:
        summer.update(chunk)
    return summer.value
