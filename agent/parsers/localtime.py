"""The machine's time zone from /etc/localtime (a TZif file), to read times that tools print
in local time without a zone (freshclam's log).

When the file does not exist, the C library takes UTC, and so does the agent. A file that
is not TZif is not understood, never guessed.
"""

from __future__ import annotations

import io
import struct
from datetime import tzinfo
from zoneinfo import ZoneInfo

from devposture.agent.parsers.errors import ParseError

TZIF_MAGIC = b"TZif"


def parse_tzif(data: bytes) -> tzinfo:
    if not data.startswith(TZIF_MAGIC):
        raise ParseError("/etc/localtime is not a TZif time zone file")
    try:
        return ZoneInfo.from_file(io.BytesIO(data), key="localtime")
    except (ValueError, struct.error, IndexError, EOFError) as exc:  # what zoneinfo raises
        raise ParseError("/etc/localtime is a damaged TZif file") from exc
