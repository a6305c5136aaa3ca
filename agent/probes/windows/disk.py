"""Disk encryption on Windows: BitLocker per volume from `manage-bde -status`.

manage-bde needs an elevated (administrator or LocalSystem) process; otherwise it prints
"ERROR: An attempt to access a required resource was denied." and exits with 0x80041003, which
is reported as PERMISSION_DENIED with that reason (the agent service runs as LocalSystem).
Each volume becomes an EncryptedVolume with its drive letter as mount point; the method is
"BitLocker" plus the algorithm ("BitLocker XTS-AES 128"), or "" for a volume BitLocker has not
encrypted. What counts as encrypted is decided in agent.parsers.windows.manage_bde.
"""

from __future__ import annotations

from devposture.agent.parsers.windows.manage_bde import parse_manage_bde_status
from devposture.agent.probes.commands import MANAGE_BDE
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.windows.commands import run_text
from devposture.v1 import devposture_pb2 as pb


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.DiskEncryptionFact()
    for volume in parse_manage_bde_status(run_text(ctx, MANAGE_BDE)):
        entry = fact.volumes.add(mount_point=volume.mount_point, device=volume.volume)
        if volume.encrypted is not None:
            entry.encrypted = volume.encrypted
        if volume.conversion != "decrypted":
            entry.method = f"BitLocker {volume.algorithm}".strip()
    return FactOutcome(fact)
