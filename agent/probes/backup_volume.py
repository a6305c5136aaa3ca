"""Which volume really holds a backup set: the "kept safe" half of clause 6.2.1.

A set is judged on the volume that holds its files, not on the volume its path is spelled on.
Any folder on the way may lead elsewhere: the set's own folder, a folder the user pointed at
another disk (WeChat's `xwechat_files/Backup`, `Documents`), or the whole data root, moved by
a symbolic link, a Windows junction or a Windows symbolic link. Matching the spelled path would
judge a set on a USB disk by the encrypted system disk its link sits on (a false PASS). So the
host gives the real location (`Host.real_path`: os.path.realpath on a live computer, recorded
in bundles) and that is matched against the disk-encryption fact's mount points, longest first.
A location that cannot be resolved (a link whose target is gone, a loop, a folder the agent may
not read) leaves the volume unknown with its reason: never "encrypted".

What a real location looks like, by OS:

* Windows (realpath asks GetFinalPathNameByHandleW): "C:\\Users\\Li\\…" with the case as
  stored; "\\\\?\\C:\\…" when the prefix cannot be dropped (a long path); "\\\\server\\share\\…"
  or "\\\\?\\UNC\\server\\share\\…" for a link to a network share; "\\\\?\\Volume{GUID}\\…" for a
  volume mounted into a folder without a drive letter (CPython gh-91882: the final path of
  "C:\\Mount\\SystemPartition\\spam.txt"), which CPython 3.11 may give without its prefix,
  "Volume{GUID}\\…" (gh-89760). Each is written with "/" and compared without case; a volume
  GUID path is matched with the volume manage-bde names by that path (its mount point is empty:
  manage-bde does not list folder mount points).
* macOS: realpath does not cross firmlinks, so "/Users/li" stays as it is; a link into
  "/System/Volumes/Data/…" leads to the Data volume, which the FileVault volume ("/", from
  fdesetup) covers. Every other volume (an external disk, a disk image, a network share) is
  mounted under "/Volumes" (eclecticlight.co, "macOS Catalina Boot Volume Layout", 2019), and
  fdesetup says nothing of those: "/" never holds them.
* Linux: the mount points lsblk lists, a bind mount among them (lsblk 2.37 and later list
  every mount of a device; seen with util-linux 2.38.1), and after them every other mount that
  can hold files (a network share, tmpfs, FUSE, ecryptfs: agent/parsers/mount_volumes.py).
  The fact shows a mount under a home as "~/…", which does not say whose home; and it may be
  full (the collector takes 256 volumes). Then the mounts are read again (`OtherMounts`, once
  per scan) and matched where they really are. Of two volumes at one mount point the one listed
  later is taken: the fact lists the other mounts after lsblk's devices, and a mount made over
  another (an NFS share over /home) hides it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence

from devposture.agent.host import Host, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.mount_volumes import left_out, unlisted
from devposture.v1 import devposture_pb2 as pb

# The collector's limit for a text without one of its own (collector/validation.py,
# DEFAULT_MAX_CHARS): a longer evidence would have the whole report refused.
MAX_EVIDENCE = 1024
# The collector's limit for the disk-encryption fact's volumes (collector/validation.py).
MAX_VOLUMES = 256
MACOS_DATA_VOLUME = "/System/Volumes/Data"
_MAC_OTHERS = "/Volumes"  # where macOS mounts every volume but the startup disk's
_UNPREFIXED_VOLUME = re.compile(r"volume\{[0-9a-f-]+\}(/|$)", re.IGNORECASE)


def location(path: str, family: pb.OsFamily.ValueType) -> str:
    """`path` as it is compared and shown. On Windows: with "/" for "\\", and without the
    "\\\\?\\" or "\\\\.\\" prefix where a drive letter or a share follows it; a volume GUID path
    keeps it ("//?/Volume{GUID}/…"), as manage-bde names that volume."""
    if family != pb.OS_FAMILY_WINDOWS:
        return path
    slashed = path.replace("\\", "/")
    if slashed.startswith(("//?/", "//./")):
        rest = slashed[4:]
        if rest[:4].upper() == "UNC/":
            return "//" + rest[4:]
        if rest[1:2] == ":":
            return rest
        return "//?/" + rest
    if _UNPREFIXED_VOLUME.match(slashed):
        return "//?/" + slashed
    return slashed


def compared(path: str, family: pb.OsFamily.ValueType) -> str:
    """The form two locations are compared in: no trailing "/", any case on Windows."""
    shaped = location(path, family)
    shaped = shaped.rstrip("/") if shaped.strip("/") else shaped
    return shaped.casefold() if family == pb.OS_FAMILY_WINDOWS else shaped


def _roots(volume: pb.EncryptedVolume, family: pb.OsFamily.ValueType) -> list[str]:
    """Where `volume` is reached: its mount point, and on Windows its volume GUID path."""
    roots = [volume.mount_point] if volume.mount_point else []
    if family == pb.OS_FAMILY_WINDOWS and compared(volume.device, family).startswith("//?/"):
        roots.append(volume.device)
    return [compared(root, family) for root in roots]


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root if root.endswith("/") else root + "/")


def holding_volume(
    path: str,
    report: pb.PostureReport,
    family: pb.OsFamily.ValueType,
    others: Sequence[pb.EncryptedVolume] = (),
) -> pb.EncryptedVolume | None:
    """The volume of the disk-encryption fact, or of `others` after it, holding the real
    location `path`: the one whose mount point is the longest that contains it, the later
    listed of two at one mount point."""
    where = compared(path, family)
    best: pb.EncryptedVolume | None = None
    best_length = -1
    for volume in (*report.disk_encryption.volumes, *others):
        for root in _roots(volume, family):
            if not within(where, root):
                continue
            if family == pb.OS_FAMILY_MACOS and root == "/" and within(where, _MAC_OTHERS):
                continue  # another volume than the startup disk's: FileVault says nothing of it
            if len(root) >= best_length:
                best, best_length = volume, len(root)
    return best


def on_volume(
    backup: pb.ChatBackup,
    path: str,
    report: pb.PostureReport,
    family: pb.OsFamily.ValueType,
    *,
    others: Sequence[pb.EncryptedVolume] = (),
    shown: Callable[[str], str] = str,
) -> None:
    """Whether the real location `path` lies on an encrypted volume, from the disk-encryption
    fact and `others` (mounts read again, their mount points as they are, shown by `shown`):
    `on_encrypted_volume` (unset when unknown) and the evidence."""
    if not report.HasField("disk_encryption"):
        backup.volume_evidence = "disk encryption could not be read"
        return
    volume = holding_volume(path, report, family, others)
    if volume is None:
        backup.volume_evidence = "no volume in the disk-encryption fact holds it"
        return
    mount = shown(volume.mount_point) if any(v is volume for v in others) else volume.mount_point
    where = f"volume {volume.device} mounted at {mount}"
    if not volume.HasField("encrypted"):
        backup.volume_evidence = f"on {where}, whose encryption is unknown"
        return
    backup.on_encrypted_volume = volume.encrypted
    if volume.encrypted:
        backup.volume_evidence = f"on {volume.method or 'encrypted'} {where}"
    else:
        backup.volume_evidence = f"on {where}, not encrypted"


class OtherMounts:
    """The mounts lsblk does not list, where they really are (no home shown as "~"), read once
    for a scan and only when the disk-encryption fact cannot be matched as it is (Linux)."""

    def __init__(self, host: Host, shown: Callable[[str], str]) -> None:
        self._host = host
        self._shown = shown
        self._volumes: list[pb.EncryptedVolume] | HostError | ParseError | None = None

    @staticmethod
    def needed(report: pb.PostureReport, family: pb.OsFamily.ValueType) -> bool:
        """Whether the fact lists a mount under a home (whose home?) or is full (some left
        out)."""
        volumes = report.disk_encryption.volumes
        if family != pb.OS_FAMILY_LINUX:
            return False
        return len(volumes) >= MAX_VOLUMES or any(v.mount_point.startswith("~") for v in volumes)

    def volumes(self, report: pb.PostureReport | None = None) -> list[pb.EncryptedVolume]:
        """Each as a volume, its mount point as it is (HostError, ParseError: the same for
        every set of the scan). When `report`'s fact is full, the block devices' mounts it
        left out come too, their encryption unknown: a set there is never judged by a volume
        mounted above it (agent/probes/volume_room.py)."""
        if self._volumes is None:
            # Here, not at the top: the Linux probes' package loads the chat-backup scan,
            # which loads this module (and only a Linux agent loads that package at all).
            from devposture.agent.probes.linux import mounted  # noqa: PLC0415

            try:
                mounts = mounted.read(self._host)
                found = unlisted(mounts)
                volumes = report.disk_encryption.volumes if report is not None else ()
                if len(volumes) >= MAX_VOLUMES:
                    found += left_out(mounts, {v.mount_point for v in volumes})
                self._volumes = [u.volume(self._shown, mount_shown=False) for u in found]
            except (HostError, ParseError) as exc:
                self._volumes = exc
        if isinstance(self._volumes, Exception):
            raise self._volumes
        return self._volumes


def judge(
    backup: pb.ChatBackup,
    path: str,
    host: Host,
    report: pb.PostureReport,
    shown: Callable[[str], str],
    *,
    others: OtherMounts | None = None,
) -> None:
    """Judge the set at `path` on the volume that really holds it, and say where that is when
    it is not where the path is spelled (`shown` makes a location fit to leave the device).
    `others` keeps the mounts read again for one scan."""
    if not report.HasField("disk_encryption"):
        on_volume(backup, path, report, host.os_family)
        return
    family = host.os_family
    try:
        real = location(host.real_path(path), family)
    except HostError as exc:
        reason = _shortened(exc.message, MAX_EVIDENCE // 2)
        backup.volume_evidence = f"where the files really are is unknown: {reason}"
        return
    read_again: list[pb.EncryptedVolume] = []
    if OtherMounts.needed(report, family):
        try:
            read_again = (others or OtherMounts(host, shown)).volumes(report)
        except (HostError, ParseError) as exc:
            reason = _shortened(str(exc), MAX_EVIDENCE // 2)
            backup.volume_evidence = f"which mount holds it is unknown: {reason}"
            return
    on_volume(backup, real, report, family, others=read_again, shown=shown)
    evidence = backup.volume_evidence
    really = shown(real)
    if compared(real, family) != compared(path, family) and really != shown(path):
        frame = len(evidence) + len(" (the files are really in )")
        really = _shortened(really, max(64, MAX_EVIDENCE - frame))
        evidence = f"{evidence} (the files are really in {really})"
    backup.volume_evidence = _shortened(evidence, MAX_EVIDENCE)


def home_aliases(host: Host, homes: list[str]) -> list[str]:
    """Each home folder under every name a real location may give it, so that it is shown as
    "~" (a username stays on the device): the home itself, where its own links lead (a /home
    that is a link to /var/home), and on macOS its place on the Data volume."""
    family = host.os_family
    aliases = list(homes)
    for home in homes:
        # One that cannot be resolved is only a name fewer to hide: its own spelling still is.
        with contextlib.suppress(HostError):
            aliases.append(location(host.real_path(home), family))
        if family == pb.OS_FAMILY_MACOS:
            aliases.append(MACOS_DATA_VOLUME + home)
    return list(dict.fromkeys(aliases))


def _shortened(text: str, most: int) -> str:
    """`text` in at most `most` characters, its middle left out ("…")."""
    if len(text) <= most:
        return text
    head = (most - 1) // 2
    return text[:head] + "…" + text[len(text) - (most - 1 - head) :]
