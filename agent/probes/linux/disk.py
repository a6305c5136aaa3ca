"""Disk encryption on Linux: lsblk's block-device tree, and the other mounts from /proc/self/mounts.

lsblk shows dm-crypt mappings (TYPE crypt) and LUKS containers (FSTYPE crypto_LUKS). The root
file system is always reported: when lsblk does not list it (an overlay in a container, a
network root, ZFS), it is added from /proc/self/mounts. lsblk older than 2.37 lacks MOUNTPOINTS;
it is retried with MOUNTPOINT.

Every other mount that is not a block device's and can hold files (a network share, tmpfs, a
FUSE file system, ecryptfs, a ZFS dataset: agent/parsers/mount_volumes.py) follows lsblk's
volumes, so that a chat backup there is judged by it and not by the block device's mount point
above it. Its mount point and source are shown with the home as "~"; the chat-backup judgement
reads the mounts again to know which home (agent/probes/backup_volume.py).

A ZFS dataset's encryption is ZFS' own (`zfs get`, agent/parsers/zfs_get.py), asked once and
only when a mount is of type zfs. When zfs is missing or fails, or does not list a mounted
dataset, that volume's encryption stays unknown and the error says why: never "not encrypted".

The collector takes 256 volumes; what does not fit is left out, the volumes that matter kept
first, and the fact says how many (agent/probes/volume_room.py).
"""

from __future__ import annotations

import dataclasses

from devposture.agent.host import CommandFailedError, HostError, display_path, printable
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.lsblk import LsblkVolume, parse_lsblk_rows
from devposture.agent.parsers.mount_volumes import Unlisted, unlisted
from devposture.agent.parsers.mounts import Mount
from devposture.agent.parsers.zfs_get import DatasetEncryption, parse_zfs_get
from devposture.agent.probes import backup_volume, volume_room
from devposture.agent.probes.commands import LSBLK, LSBLK_OLD, ZFS_ENCRYPTION
from devposture.agent.probes.linux import mounted
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.agent.probes.volume_room import Candidate, Rank, rank_of
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_DISK_ENCRYPTION
ZFS = "zfs"


def _lsblk(ctx: ProbeContext) -> str:
    timeout = ctx.config.command_timeout
    try:
        return ctx.host.run(LSBLK, timeout).stdout_text()
    except CommandFailedError as exc:
        if b"unknown column" not in exc.stderr:
            raise
    return ctx.host.run(LSBLK_OLD, timeout).stdout_text()


def probe(ctx: ProbeContext) -> FactOutcome:
    rows = parse_lsblk_rows(_lsblk(ctx))
    homes = backup_volume.home_aliases(ctx.host, ctx.host.home_dirs())
    candidates = [_block(row, homes) for row in rows]
    errors: list[pb.ProbeError] = []
    try:
        mounts = mounted.read(ctx.host)
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "mounts", exc))
    else:
        candidates += _others(ctx, candidates, mounts, homes, errors)
    volumes, left_out = volume_room.kept(
        candidates, lambda: volume_room.places(ctx, homes), ctx.host.os_family
    )
    said = volume_room.left_out_error(left_out, len(candidates))
    return FactOutcome(pb.DiskEncryptionFact(volumes=volumes), errors + ([said] if said else []))


def _block(row: LsblkVolume, homes: list[str]) -> Candidate:
    where = row.volume.mount_point
    rank = rank_of(where, homes, loop=row.dev_type == "loop", image=row.fstype in
                   volume_room.IMAGES)  # fmt: skip
    return Candidate(row.volume, where, rank)


def _others(
    ctx: ProbeContext,
    listed: list[Candidate],
    mounts: list[Mount],
    homes: list[str],
    errors: list[pb.ProbeError],
) -> list[Candidate]:
    """The root when lsblk does not list it, then every other mount that can hold files."""
    found: list[Unlisted] = []
    if not any(c.where == "/" for c in listed):
        root = [m for m in mounts if m.mount_point == "/"]
        if root:  # nothing seen says either way, unless ZFS does
            found.append(Unlisted("/", root[-1].device, root[-1].fs_type, None, ""))
    found += unlisted(mounts)
    found = _with_zfs(ctx, found, errors)

    def shown(path: str) -> str:
        return display_path(path, homes)

    others = []
    for mount in found:
        if mount.mount_point == "/":
            volume = pb.EncryptedVolume(mount_point="/", device=printable(mount.source),
                                        method=mount.method)  # fmt: skip
            if mount.encrypted is not None:
                volume.encrypted = mount.encrypted
            others.append(Candidate(volume, "/", Rank.MATTERS))
        else:
            rank = rank_of(mount.mount_point, homes)
            others.append(Candidate(mount.volume(shown), mount.mount_point, rank))
    return others


def _with_zfs(
    ctx: ProbeContext, found: list[Unlisted], errors: list[pb.ProbeError]
) -> list[Unlisted]:
    """`found` with each ZFS dataset's own encryption, where zfs tells it."""
    datasets = [m for m in found if m.fs_type == ZFS]
    if not datasets:
        return found
    try:
        known = parse_zfs_get(ctx.host.run(ZFS_ENCRYPTION, ctx.config.command_timeout)
                              .stdout_text())  # fmt: skip
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, ZFS, exc))
        return found
    judged: list[Unlisted] = []
    unlisted_count = 0
    for mount in found:
        dataset = known.get(mount.source.split("@", 1)[0]) if mount.fs_type == ZFS else None
        if mount.fs_type == ZFS and dataset is None:
            unlisted_count += 1
        judged.append(mount if dataset is None else _judged(mount, dataset))
    if unlisted_count:
        message = (f"zfs get does not list {unlisted_count} mounted ZFS dataset(s): their"
                   " encryption is unknown")  # fmt: skip
        errors.append(error(FACT, pb.PROBE_ERROR_CODE_NO_SOURCE, message, ZFS))
    return judged


def _judged(mount: Unlisted, dataset: DatasetEncryption) -> Unlisted:
    """A mounted dataset (or a snapshot of it, "pool/fs@snap") as ZFS says it is stored."""
    return dataclasses.replace(mount, encrypted=dataset.encrypted, method=dataset.method)
