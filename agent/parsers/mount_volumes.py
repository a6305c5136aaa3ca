"""The mounts of /proc/self/mounts that are not a block device's, as volumes that can hold files.

lsblk lists only block devices, so a network share (NFS, SMB/CIFS, sshfs, WebDAV, GNOME's gvfs),
memory (tmpfs), a stacked file system (ecryptfs, overlay) or any other FUSE file system is
missing from it: a backup set there would be judged by the nearest block device's mount point
above it, usually an encrypted "/" (a false "kept safe", clause 6.2.1). This lists them with
what their type says about encryption at rest:

* encrypted: file systems that encrypt every file they store, in their normal (forward) mode
  (ecryptfs, gocryptfs, EncFS, CryFS; each seen in a real /proc/mounts, see the fixtures'
  README). ecryptfs with `ecryptfs_passthrough` shows plain files of its lower folder as they
  are, so it is unknown. gocryptfs' reverse mode (an encrypted view of plain files) has its own
  type, `fuse.gocryptfs-reverse`, unknown. EncFS' reverse mode looks the same as its forward
  mode, but (with its standard settings) shows only encrypted names, under which no backup set
  is recognised;
* unknown: everything else. A share's own disk is not visible from here (SMB's `seal` and
  NFS' `krb5p` encrypt the wire, not the server's disk); tmpfs and ramfs are memory, lost at
  shutdown and possibly written to swap: not "on an encrypted volume", and not known to be on
  an unencrypted disk either. An automount point (autofs) whose share is not mounted yet is
  unknown too: what will be mounted there is not known.

Left out: a block device's mount (its source is a device node: lsblk's), "/" (the disk probe
adds it when lsblk lacks it), a mount hidden by a later one at the same place, kernel and
pseudo file systems that hold no user's files (proc, sysfs, cgroup ...), and what container
engines, snapd and schroot mount for themselves (hundreds on a busy host).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from devposture.agent.host.paths import printable
from devposture.agent.parsers.mounts import Mount
from devposture.v1 import devposture_pb2 as pb

# File systems that encrypt what they store, by their type in /proc/mounts, and the name the
# evidence gives them.
ENCRYPTING = {
    "ecryptfs": "eCryptfs",
    "fuse.gocryptfs": "gocryptfs",
    "fuse.encfs": "EncFS",
    "fuse.cryfs": "CryFS",
}
_PLAIN_THROUGH = {"ecryptfs": "ecryptfs_passthrough"}  # an option that lets plain files show
_MEMORY = frozenset({"tmpfs", "ramfs"})
_PSEUDO = frozenset({
    "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fuse.lxcfs", "fuse.snapfuse", "fusectl", "hugetlbfs", "mqueue",
    "nfsd", "nsfs", "proc", "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs",
})  # fmt: skip
# Kernel views, and what container engines, snapd and schroot mount for their own use.
_NOT_USERS = (
    "/proc", "/sys", "/dev", "/snap", "/run/containerd", "/run/docker", "/run/netns",
    "/run/snapd", "/var/lib/containerd", "/var/lib/containers", "/var/lib/docker",
    "/var/lib/kubelet", "/var/lib/lxcfs", "/var/lib/schroot",
)  # fmt: skip
_ROOTLESS_CONTAINERS = "/.local/share/containers/"
# Where people and desktops mount shares and disks: kept first when the report has no room.
_PEOPLES = ("/home", "/media", "/mnt", "/run/media", "/run/user")
# "user:password@" in a URL or "user@" before an sshfs host: never reported.
_USER_INFO = re.compile(r"(^|://|#)[^/\s]*@")
MAX_CHARS = 1024  # the collector's limit for a text (collector/validation.py)


@dataclass(frozen=True)
class Unlisted:
    """One mount that lsblk does not list; `mount_point` as the kernel gives it."""

    mount_point: str
    source: str
    fs_type: str
    encrypted: bool | None
    method: str

    def volume(self, shown: Callable[[str], str], mount_shown: bool = True) -> pb.EncryptedVolume:
        """As a volume of the disk-encryption fact: the source without any user or password,
        a local folder shown only under a home ("~/.Private"; elsewhere it may name a user, as
        ecryptfs' /home/.ecryptfs/<user>), memory by its type. `mount_shown` False keeps the
        mount point as it is, for matching a real location."""
        volume = pb.EncryptedVolume(
            mount_point=shown(self.mount_point) if mount_shown else self.mount_point,
            device=_shortened(printable(self.device(shown))),
            method=self.method,
        )
        if self.encrypted is not None:
            volume.encrypted = self.encrypted
        return volume

    def device(self, shown: Callable[[str], str]) -> str:
        source = _USER_INFO.sub(r"\1", self.source)
        if self.fs_type in _MEMORY or source in ("", "none"):
            return self.fs_type
        if source.startswith("/dev/"):  # a block device's node names no one
            return source
        if source.startswith("/") and not source.startswith("//"):  # a folder, not //server
            displayed = shown(source)
            return displayed if displayed.startswith("~") else self.fs_type
        return source


def unlisted(mounts: Sequence[Mount]) -> list[Unlisted]:
    """Every mount that can hold a user's files and is not a block device's, in mount order."""
    visible: dict[str, Mount] = {}
    for mount in mounts:  # the later of two at one place hides the earlier
        visible.pop(mount.mount_point, None)
        visible[mount.mount_point] = mount
    found = []
    for mount in visible.values():
        if not _can_hold_files(mount) or mount.device.startswith("/dev/"):
            continue
        encrypted, method = _encryption(mount)
        found.append(Unlisted(mount.mount_point, mount.device, mount.fs_type, encrypted, method))
    return found


def left_out(mounts: Sequence[Mount], listed: set[str]) -> list[Unlisted]:
    """The block devices' mounts that can hold files and are not at a mount point in
    `listed` (a full disk-encryption fact left them out), their encryption unknown: lsblk's
    word on them was not kept."""
    visible: dict[str, Mount] = {}
    for mount in mounts:
        visible.pop(mount.mount_point, None)
        visible[mount.mount_point] = mount
    return [
        Unlisted(m.mount_point, m.device, m.fs_type, None, "")
        for m in visible.values()
        if m.device.startswith("/dev/") and _can_hold_files(m) and m.mount_point not in listed
    ]


def peoples(path: str, homes: Iterable[str]) -> bool:
    """Whether `path` is where people and desktops keep files and mount disks and shares: a
    home, /media, /mnt, /run/media, /run/user (agent/probes/volume_room.py keeps these first
    when the report has no room for every volume)."""
    places = tuple(h.rstrip("/") for h in homes if h.strip("/")) + _PEOPLES
    return _under(path, places)


def systems(path: str) -> bool:
    """Whether `path` is a kernel view or a place container engines, snapd and schroot mount
    for their own use (/var/lib/docker, /snap, /run/containerd ...): no user's files."""
    return _under(path, _NOT_USERS) or _ROOTLESS_CONTAINERS in path + "/"


def _can_hold_files(mount: Mount) -> bool:
    if mount.mount_point == "/" or mount.fs_type in _PSEUDO:
        return False
    return not systems(mount.mount_point)


def _encryption(mount: Mount) -> tuple[bool | None, str]:
    method = ENCRYPTING.get(mount.fs_type)
    if method is None or _PLAIN_THROUGH.get(mount.fs_type) in mount.options:
        return None, ""
    return True, method


def _under(path: str, places: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in places)


def _shortened(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    head = (MAX_CHARS - 1) // 2
    return text[:head] + "…" + text[len(text) - (MAX_CHARS - 1 - head) :]
