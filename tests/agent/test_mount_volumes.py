"""The mounts lsblk cannot list, read from real /proc/mounts lists (tests/fixtures/linux/mounts):
network shares, FUSE and stacked encrypting file systems, memory; what cannot hold a user's
files left out; and how they are shown in the disk-encryption fact."""

from __future__ import annotations

import dataclasses

from devposture.agent.host import display_path
from devposture.agent.parsers.mount_volumes import Unlisted, left_out, peoples, systems, unlisted
from devposture.agent.parsers.mounts import parse_mounts
from tests.agent.replay import fixture_text

Row = tuple[str, str, bool | None, str]


def found(name: str) -> list[Unlisted]:
    return unlisted(parse_mounts(fixture_text(f"mounts/{name}")))


def rows(volumes: list[Unlisted]) -> list[Row]:
    return [(u.mount_point, u.fs_type, u.encrypted, u.method) for u in volumes]


def test_encrypting_fuse_file_systems_and_their_reverse_modes() -> None:
    """Recorded with Debian's gocryptfs, encfs, cryfs and sshfs: each forward mode encrypts what
    it stores; gocryptfs' reverse mode (its own type) does not; sshfs and tmpfs cannot tell.
    The block device's "/" and /run/netns, /proc, /sys, /dev and cgroups are not listed."""
    assert rows(found("proc-self-mounts-fuse-debian12")) == [
        ("/tmp/dp-rec/gc-plain", "fuse.gocryptfs", True, "gocryptfs"),
        ("/tmp/dp-rec/gcr-view", "fuse.gocryptfs-reverse", None, ""),
        ("/tmp/dp-rec/ef-plain", "fuse.encfs", True, "EncFS"),
        ("/tmp/dp-rec/efr-view", "fuse.encfs", True, "EncFS"),  # reverse: looks the same
        ("/tmp/dp-rec/cf-plain", "fuse.cryfs", True, "CryFS"),
        ("/tmp/dp-rec/sf-mnt", "fuse.sshfs", None, ""),
        ("/tmp/dp-rec/微信 备份", "tmpfs", None, ""),
    ]


def test_an_ecryptfs_home_and_the_desktops_mounts() -> None:
    """Ubuntu's encrypted home is ecryptfs; lxcfs, schroot sessions, snaps and the kernel's
    views are left out; memory and GNOME's gvfs are listed, their encryption unknown."""
    assert rows(found("proc-mounts-ecryptfs-home-ubuntu")) == [
        ("/run", "tmpfs", None, ""),
        ("/run/lock", "tmpfs", None, ""),
        ("/run/cgmanager/fs", "tmpfs", None, ""),
        ("/run/user/1001", "tmpfs", None, ""),
        ("/home/fme", "ecryptfs", True, "eCryptfs"),
        ("/run/user/1001/gvfs", "fuse.gvfsd-fuse", None, ""),
    ]


def test_ecryptfs_letting_plain_files_through_is_not_known_encrypted() -> None:
    """`ecryptfs_passthrough` (ecryptfs(7)) shows the lower folder's plain files as they are:
    the real ecryptfs line with that option added is unknown, not encrypted."""
    mounts = parse_mounts(fixture_text("mounts/proc-mounts-ecryptfs-home-ubuntu"))
    home = next(m for m in mounts if m.fs_type == "ecryptfs")
    through = dataclasses.replace(home, options=(*home.options, "ecryptfs_passthrough"))
    assert rows(unlisted([through])) == [("/home/fme", "ecryptfs", None, "")]


def test_a_kubernetes_nodes_nfs_share_without_the_container_engines_mounts() -> None:
    """84 mounts, 16 of them containerd overlays with their own /proc, /sys and cgroups: the
    NFS share and the two tmpfs are what can hold a user's files."""
    assert rows(found("proc-mounts-k8s-node-nfs4-containerd")) == [
        ("/nfs", "nfs4", None, ""),
        ("/run", "tmpfs", None, ""),
        ("/run/lock", "tmpfs", None, ""),
    ]


def test_an_smb_share_sealed_on_the_wire_is_still_unknown_at_rest() -> None:
    (share,) = found("proc-mounts-cifs-seal-line")
    assert rows([share]) == [("/mnt/test", "cifs", None, "")]
    assert share.volume(str).device == "//10.10.22.143/test2"


def test_the_later_of_two_mounts_at_one_place_is_the_one_seen() -> None:
    """A tmpfs mounted over a bind mount of the disk hides it (listed); the disk's bind mount
    over a tmpfs hides the tmpfs (lsblk's, not listed)."""
    listed = [u.mount_point for u in found("proc-self-mounts-over-mounted-debian12")]
    assert "/tmp/dp-rec2/over-block" in listed
    assert "/tmp/dp-rec2/over-tmpfs" not in listed


def test_shown_with_the_home_as_a_tilde_and_no_user_name() -> None:
    """In the fact a mount point and a folder source under a home read "~"; a source folder
    elsewhere may name a user and reads as its type; sshfs' "user@" is dropped; memory reads
    as its type whatever its source ("none")."""

    def shown(path: str) -> str:
        return display_path(path, ["/home/janarene"])

    volumes = {u.mount_point: u.volume(shown) for u in found("mtab-ecryptfs-home-cifs-ubuntu1104")}
    home = volumes["/home/janarene"]
    assert (home.mount_point, home.device, home.encrypted, home.method) == (
        "~", "~/.Private", True, "eCryptfs",
    )  # fmt: skip
    share = volumes["/home/janarene/mnt/LAN.BACKUP"]
    assert (share.mount_point, share.device, share.HasField("encrypted")) == (
        "~/mnt/LAN.BACKUP", "//TINKERBELL/LAN.BACKUP/", False,
    )  # fmt: skip
    assert volumes["/var/run"].device == "tmpfs"  # source "none"
    assert len(volumes) == 15  # two tmpfs, the home, eleven shares, gvfs
    fuse = {u.mount_point: u.volume(shown) for u in found("proc-self-mounts-fuse-debian12")}
    assert fuse["/tmp/dp-rec/sf-mnt"].device == "localhost:/tmp/dp-rec/sf-remote"
    assert fuse["/tmp/dp-rec/gc-plain"].device == "fuse.gocryptfs"  # /tmp/dp-rec/gc-cipher
    assert fuse["/tmp/dp-rec/cf-plain"].device == "fuse.cryfs"  # cryfs@/tmp/dp-rec/cf-base


def test_where_people_keep_files_and_where_the_system_does() -> None:
    """What the report keeps first when it has no room (agent/probes/volume_room.py)."""
    every = [u.mount_point for u in found("proc-mounts-ecryptfs-home-ubuntu")]
    assert [m for m in every if peoples(m, ["/home/fme"])] == [
        "/run/user/1001", "/home/fme", "/run/user/1001/gvfs",
    ]  # fmt: skip
    assert not any(systems(m) for m in every)
    assert systems("/var/lib/docker/btrfs/subvolumes/x") and systems("/snap/core22/1122")
    assert systems("/home/li/.local/share/containers/storage/overlay")
    assert not peoples("/homework", ["/home/fme"]) and peoples("/media/li/USB", [])


def test_block_devices_left_out_of_a_full_fact_come_back_unknown() -> None:
    """Recorded on one machine: vda at "/", /run/netns and two folders of /tmp/dp-rec2. With
    only "/" in the fact, the one that can hold files is read again, its encryption unknown;
    the one hidden by a later tmpfs is that tmpfs' (unlisted lists it), /run/netns is ip's."""
    mounts = parse_mounts(fixture_text("mounts/proc-self-mounts-over-mounted-debian12"))
    again = left_out(mounts, {"/"})
    assert rows(again) == [("/tmp/dp-rec2/over-tmpfs", "ext4", None, "")]
    assert again[0].volume(str).device == "/dev/vda"
    assert left_out(mounts, {"/", "/tmp/dp-rec2/over-tmpfs"}) == []
