"""The kernel's list of mounts, read through the host: the source of what lsblk cannot list.

The disk-encryption probe reads it for its fact, and the chat-backup judgement reads it again
where that fact cannot be matched as it is (agent/probes/backup_volume.py). A name that is not
valid UTF-8 is kept as its bytes (surrogate escapes), as the host gives real locations, so that
the two compare; whatever leaves the device is made printable first.
"""

from __future__ import annotations

from devposture.agent.host import Host
from devposture.agent.parsers.mount_volumes import Unlisted, unlisted
from devposture.agent.parsers.mounts import Mount, parse_mounts

MOUNTS = "/proc/self/mounts"
MOUNTS_LIMIT = 1024 * 1024


def read(host: Host) -> list[Mount]:
    """Every mount, in the order they were made (HostError, ParseError)."""
    return parse_mounts(host.read_bytes(MOUNTS, MOUNTS_LIMIT).decode("utf-8", "surrogateescape"))


def unlisted_mounts(host: Host) -> list[Unlisted]:
    """The mounts lsblk does not list that can hold a user's files (HostError, ParseError)."""
    return unlisted(read(host))
