"""ClamAV signature database headers (.cvd, .cld, .cud).

Each database starts with a 512-byte ASCII header, padded with spaces:
    ClamAV-VDB:<build time>:<version>:<signatures>:<level>:<md5>:<dsig>:<builder>:<stime>
The build time reads like "16 Apr 2020 07-58 -0400" (no colon, so ':' splits safely); stime is
the same moment in Unix seconds and is preferred when present. Older or truncated headers stop
after the md5; then the build-time text is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from devposture.agent.parsers.errors import ParseError

HEADER_SIZE = 512
_MAGIC = "ClamAV-VDB"
_TIME_FORMAT = "%d %b %Y %H-%M %z"
_FIELD_BUILDER = 7
_FIELD_STIME = 8


@dataclass(frozen=True)
class CvdHeader:
    version: int
    signatures: int
    functionality_level: int
    built_at: datetime  # UTC
    builder: str


def parse_cvd_header(data: bytes) -> CvdHeader:
    """Parse the header at the start of a database file (pass its first 512 bytes)."""
    try:
        text = data[:HEADER_SIZE].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError("ClamAV database header is not ASCII") from exc
    text = text.rstrip(" \x00\r\n")
    parts = text.split(":")
    if parts[0] != _MAGIC or len(parts) < 5:
        raise ParseError("not a ClamAV-VDB header")
    try:
        version, signatures, flevel = int(parts[2]), int(parts[3]), int(parts[4])
    except ValueError as exc:
        raise ParseError("ClamAV header: version, signatures or level is not a number") from exc
    built_at: datetime | None = None
    if len(parts) > _FIELD_STIME and parts[_FIELD_STIME].strip().isdigit():
        built_at = datetime.fromtimestamp(int(parts[_FIELD_STIME].strip()), UTC)
    else:
        try:
            built_at = datetime.strptime(parts[1].strip(), _TIME_FORMAT).astimezone(UTC)
        except ValueError as exc:
            raise ParseError("ClamAV header: build time is not 'DD Mon YYYY HH-MM +ZZZZ'") from exc
    builder = parts[_FIELD_BUILDER] if len(parts) > _FIELD_BUILDER else ""
    return CvdHeader(version, signatures, flevel, built_at, builder)
