"""Disk encryption on Windows: BitLocker per volume from `manage-bde -status`.

manage-bde needs an elevated (administrator or LocalSystem) process; otherwise it prints
"ERROR: An attempt to access a required resource was denied." and exits with 0x80041003, which
is reported as PERMISSION_DENIED with that reason (the agent service runs as LocalSystem).
Each volume becomes an EncryptedVolume with its drive letter as mount point; the method is
"BitLocker" plus the algorithm ("BitLocker XTS-AES 128"), or "" for a volume BitLocker has not
encrypted. What counts as encrypted is decided in agent.parsers.windows.manage_bde.

The collector takes 256 volumes: on a server with more, the volumes holding the homes and the
chat backups are kept first, then those with a drive letter, and the fact says how many were
left out (agent/probes/volume_room.py).
"""

from __future__ import annotations

from devposture.agent.parsers.windows.manage_bde import parse_manage_bde_status
from devposture.agent.probes import backup_volume, volume_room
from devposture.agent.probes.commands import MANAGE_BDE
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.volume_room import Candidate, Rank
from devposture.agent.probes.windows.commands import run_text
from devposture.v1 import devposture_pb2 as pb


def probe(ctx: ProbeContext) -> FactOutcome:
    candidates = []
    for volume in parse_manage_bde_status(run_text(ctx, MANAGE_BDE)):
        entry = pb.EncryptedVolume(mount_point=volume.mount_point, device=volume.volume)
        if volume.encrypted is not None:
            entry.encrypted = volume.encrypted
        if volume.conversion != "decrypted":
            entry.method = f"BitLocker {volume.algorithm}".strip()
        rank = Rank.FILES if volume.mount_point else Rank.OTHER
        candidates.append(Candidate(entry, volume.mount_point, rank))
    family = ctx.host.os_family

    def places() -> volume_room.Places:
        homes = backup_volume.home_aliases(ctx.host, ctx.host.home_dirs())
        return volume_room.places(ctx, homes)

    volumes, left_out = volume_room.kept(candidates, places, family)
    said = volume_room.left_out_error(left_out, len(candidates))
    return FactOutcome(pb.DiskEncryptionFact(volumes=volumes), [said] if said else [])
