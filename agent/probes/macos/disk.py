"""Disk encryption on macOS: FileVault for the startup volume, from `fdesetup status`.

One EncryptedVolume at "/" with method "FileVault". `fdesetup status` runs without root.
Encryption or decryption in progress is reported as not encrypted: the volume is not (or no
longer) fully protected until the conversion finishes.

The fact holds this one volume, far within the 256 the collector takes
(agent/probes/volume_room.py): macOS' other volumes are under /Volumes, which FileVault's "/"
does not cover (agent/probes/backup_volume.py).
"""

from __future__ import annotations

from devposture.agent.parsers.macos.fdesetup import parse_fdesetup_status
from devposture.agent.probes.commands import FDESETUP_STATUS
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.v1 import devposture_pb2 as pb


def probe(ctx: ProbeContext) -> FactOutcome:
    result = ctx.host.run(FDESETUP_STATUS, ctx.config.command_timeout)
    status = parse_fdesetup_status(result.stdout_text())
    volume = pb.EncryptedVolume(mount_point="/", encrypted=status.encrypted, method="FileVault")
    return FactOutcome(pb.DiskEncryptionFact(volumes=[volume]))
