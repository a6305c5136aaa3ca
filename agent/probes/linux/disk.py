"""Disk encryption on Linux: lsblk's block-device tree, and the other mounts from /proc/self/mounts.

lsblk shows dm-crypt mappings (TYPE crypt) and LUKS containers (FSTYPE crypto_LUKS). The root
file system is always reported: when lsblk does not list it (an overlay in a container, a
network root), it is added from /proc/self/mounts with "encrypted" unset, because nothing
seen says either way. lsblk older than 2.37 lacks MOUNTPOINTS; it is retried with MOUNTPOINT.

Every other mount that is not a block device's and can hold files (a network share, tmpfs, a
FUSE file system, ecryptfs: agent/parsers/mount_volumes.py) follows lsblk's volumes, so that a
chat backup there is judged by it and not by the block device's mount point above it. Its
mount point and source are shown with the home as "~"; the chat-backup judgement reads the
mounts again to know which home (agent/probes/backup_volume.py). They fill the room the
collector leaves (256 volumes), those where people keep files first.
"""

from __future__ import annotations

from devposture.agent.host import CommandFailedError, HostError, display_path, printable
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.lsblk import parse_lsblk_json
from devposture.agent.parsers.mount_volumes import preferred, unlisted
from devposture.agent.parsers.mounts import Mount
from devposture.agent.probes import backup_volume
from devposture.agent.probes.commands import LSBLK, LSBLK_OLD
from devposture.agent.probes.linux import mounted
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.v1 import devposture_pb2 as pb


def _lsblk(ctx: ProbeContext) -> str:
    timeout = ctx.config.command_timeout
    try:
        return ctx.host.run(LSBLK, timeout).stdout_text()
    except CommandFailedError as exc:
        if b"unknown column" not in exc.stderr:
            raise
    return ctx.host.run(LSBLK_OLD, timeout).stdout_text()


def probe(ctx: ProbeContext) -> FactOutcome:
    volumes = parse_lsblk_json(_lsblk(ctx))
    fact = pb.DiskEncryptionFact(volumes=volumes)
    try:
        mounts = mounted.read(ctx.host)
    except (HostError, ParseError) as exc:
        return FactOutcome(fact, [source_error(pb.FACT_DISK_ENCRYPTION, "mounts", exc)])
    if not any(v.mount_point == "/" for v in volumes):
        root = [m for m in mounts if m.mount_point == "/"]
        if root:
            fact.volumes.add(mount_point="/", device=printable(root[-1].device))
    _add_unlisted(ctx, fact, mounts)
    return FactOutcome(fact)


def _add_unlisted(ctx: ProbeContext, fact: pb.DiskEncryptionFact, mounts: list[Mount]) -> None:
    homes = backup_volume.home_aliases(ctx.host, ctx.host.home_dirs())

    def shown(path: str) -> str:
        return display_path(path, homes)

    room = backup_volume.MAX_VOLUMES - len(fact.volumes)
    for found in preferred(unlisted(mounts), homes, room):
        fact.volumes.append(found.volume(shown))
