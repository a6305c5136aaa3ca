"""Which volumes the disk-encryption fact keeps when a computer has more than the collector takes.

The collector refuses a whole report whose disk-encryption fact lists more than 256 volumes
(collector/validation.py, `MAX_ITEMS`; `backup_volume.MAX_VOLUMES` here): one volume too many
and the device goes dark. Real computers pass that: every snap revision on Ubuntu is a squashfs
loop device mounted under /snap (hundreds on a developer's laptop), and Docker, LXD, LVM or
multipath add more. So every probe of the fact hands its volumes here, and when they do not
fit, the fact keeps, in this order (each group in the order the probe listed it, which the
backup judgement relies on: of two volumes at one mount point the later is the one seen):

1. the volumes that hold the root, a home or a place a chat backup set is kept (an app's data
   folder, a folder the policy names), and those mounted inside a backup place: what clause
   6.2.1 is judged on (`places`, read only when the volumes do not fit);
2. mounted volumes where people keep files (inside a home, /media, /mnt, /run/media,
   /run/user);
3. every other mounted volume that holds files;
4. the rest: what container engines and the system mount for themselves, a locked LUKS
   container;
5. last, unmounted loop devices and read-only images (squashfs, erofs: snaps).

A volume whose mount point or device is longer than the collector takes is left out too. What
was left out is said, with how many, in a per-source error ("volumes") of the fact: no check
judges the fact itself (the collector judges a backup set by the volume the agent found for it),
so the error costs no verdict, and the chat-backup judgement reads the mounts again when the
fact is full (`backup_volume.OtherMounts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from devposture.agent.host import HostError
from devposture.agent.parsers.mount_volumes import MAX_CHARS, peoples, systems
from devposture.agent.probes import backup_volume, chat_backups
from devposture.agent.probes.chat_layouts import BY_FAMILY
from devposture.agent.probes.outcome import ProbeContext, error
from devposture.agent.probes.report_room import keep
from devposture.v1 import devposture_pb2 as pb

SOURCE = "volumes"
# Read-only images: an app's files (a snap, an AppImage's mount), never a place to write to.
IMAGES = frozenset({"squashfs", "erofs", "cramfs"})


class Rank(IntEnum):
    """How much a volume matters to the report, first kept first."""

    MATTERS = 0
    PEOPLES = 1
    FILES = 2
    OTHER = 3
    LAST = 4


@dataclass(frozen=True)
class Candidate:
    """A volume of the fact, where it is really mounted ("" when not mounted: its mount point
    in the fact may be shown with the home as "~") and how much it matters by what it is."""

    volume: pb.EncryptedVolume
    where: str
    rank: Rank


def rank_of(where: str, homes: Sequence[str], *, loop: bool = False, image: bool = False) -> Rank:
    """What a volume is, before the places that matter are known (Linux's mount points)."""
    if image or where == "/snap" or where.startswith("/snap/"):
        return Rank.LAST
    if not where:
        return Rank.LAST if loop else Rank.OTHER
    if peoples(where, homes):
        return Rank.PEOPLES
    return Rank.OTHER if systems(where) else Rank.FILES


@dataclass(frozen=True)
class Places:
    """Where clause 6.2.1 looks: the homes (under each name they have) and the backup places
    (each chat app's data folder, each folder the policy names, and where each really is)."""

    homes: Sequence[str]
    backups: Sequence[str]


def places(ctx: ProbeContext, homes: Sequence[str]) -> Places:
    """The places of this computer; a folder that cannot be listed is a place fewer (the homes
    above it still count)."""
    found: list[str] = []
    try:
        roots = [root.path for root in chat_backups.data_roots(ctx, BY_FAMILY.get(
            ctx.host.os_family, ()))]  # fmt: skip
        roots += chat_backups.configured_folders(ctx)
    except HostError:
        roots = []  # what a scan cannot list, the homes still cover
    for root in roots:
        found.append(root)
        with contextlib.suppress(HostError):
            found.append(backup_volume.location(ctx.host.real_path(root), ctx.host.os_family))
    return Places(list(homes), list(dict.fromkeys(found)))


def kept(
    candidates: Sequence[Candidate],
    where_it_matters: Callable[[], Places],
    family: pb.OsFamily.ValueType,
) -> tuple[list[pb.EncryptedVolume], int]:
    """The volumes the fact keeps, in the candidates' order, and how many were left out.
    `where_it_matters` (the places) is asked only when the volumes do not fit."""
    most = backup_volume.MAX_VOLUMES
    fitting = [c for c in candidates if _fits(c.volume)]
    if len(fitting) <= most:
        return [c.volume for c in fitting], len(candidates) - len(fitting)
    where = where_it_matters()
    held = [backup_volume.compared(p, family) for p in (*where.homes, *where.backups)]
    inside = [backup_volume.compared(p, family) for p in where.backups]
    chosen, _ = keep(fitting, lambda c: _rank(c, held, inside, family), most)
    return [c.volume for c in chosen], len(candidates) - len(chosen)


def left_out_error(left_out: int, total: int) -> pb.ProbeError | None:
    """The fact's word on what it left out, or None when it holds every volume."""
    if left_out <= 0:
        return None
    message = (
        f"{left_out} of {total} volumes left out of the report (the collector takes"
        f" {backup_volume.MAX_VOLUMES}): those holding the system, the homes and the chat"
        " backups are kept first"
    )
    return error(pb.FACT_DISK_ENCRYPTION, pb.PROBE_ERROR_CODE_UNSPECIFIED, message, SOURCE)


def _rank(
    candidate: Candidate, held: Sequence[str], inside: Sequence[str],
    family: pb.OsFamily.ValueType,
) -> Rank:  # fmt: skip
    """MATTERS for the root, a volume that holds a place and one mounted inside a backup
    place; else what the volume is."""
    where = backup_volume.compared(candidate.where, family) if candidate.where else ""
    if where and (
        where == "/"
        or any(backup_volume.within(place, where) for place in held)
        or any(backup_volume.within(where, place) for place in inside)
    ):
        return Rank.MATTERS
    return candidate.rank


def _fits(volume: pb.EncryptedVolume) -> bool:
    return all(len(text) <= MAX_CHARS for text in (volume.mount_point, volume.device,
                                                      volume.method))  # fmt: skip
