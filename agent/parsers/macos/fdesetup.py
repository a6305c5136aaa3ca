"""`fdesetup status`: whether FileVault protects the startup volume.

    FileVault is On.
    FileVault is Off.
    Encryption in progress: Percent completed = 42.5      (may follow "FileVault is On.")
    Decryption in progress: Percent completed = 12.0
Extra lines ("FileVault master keychain appears to be installed.", "Deferred enablement
appears to be active for user ...") do not change the answer. While encryption runs the
volume is not yet fully protected and while decryption runs it is being unprotected, so
both are reported as not (yet) encrypted with the progress kept as the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_ON = "FileVault is On."
_OFF = "FileVault is Off."
_PROGRESS = re.compile(r"^(?P<kind>Encryption|Decryption) in progress", re.IGNORECASE)


@dataclass(frozen=True)
class FileVaultStatus:
    encrypted: bool
    # "", "encryption in progress" or "decryption in progress".
    conversion: str


def parse_fdesetup_status(text: str) -> FileVaultStatus:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        match = _PROGRESS.match(line)
        if match:
            return FileVaultStatus(False, f"{match['kind'].lower()} in progress")
    if _ON in lines:
        return FileVaultStatus(True, "")
    if _OFF in lines:
        return FileVaultStatus(False, "")
    raise ParseError("fdesetup: neither 'FileVault is On.' nor 'FileVault is Off.'")
