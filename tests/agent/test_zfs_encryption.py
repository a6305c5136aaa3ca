"""ZFS native encryption: a dataset is no block device, so lsblk cannot tell; ZFS' own
`encryption` property does (agent/parsers/zfs_get.py). Outputs are real (tests/fixtures/linux/
zfs/README.md); the mounts are stated in each test, one line per dataset of that output.
"""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.zfs_get import DatasetEncryption, parse_zfs_get
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.backup_volume import on_volume
from devposture.agent.probes.commands import LSBLK, ZFS_ENCRYPTION
from devposture.agent.probes.linux import disk
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.phrases import is_phrase
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import FIXTURES, ReplayHost, fixture_text, ok, recorded

# Ubuntu 21.04, OpenZFS 2.0.2: pool tank-enc made with encryption=aes-256-gcm, a dataset in it
# made with encryption=off (openzfs/zfs#12181).
ENCRYPTED_POOL = "zfs/zfs-get-encryption-ubuntu2104-openzfs-12181.out"
# The issue made the pool with mountpoint=none and the dataset at /zfs/tank-enc/ds-clear; the
# pool's mount at /tank-enc is this test's, as a dataset mounts where its mountpoint says.
MOUNTS = (
    b"/dev/vda / ext4 rw,relatime 0 0\n"
    b"tank-enc /tank-enc zfs rw,relatime,xattr,noacl 0 0\n"
    b"tank-enc/ds-clear /zfs/tank-enc/ds-clear zfs rw,relatime,xattr,noacl 0 0\n"
)


def test_each_dataset_by_its_own_encryption_row() -> None:
    found = parse_zfs_get(fixture_text(ENCRYPTED_POOL))
    assert found == {
        "tank-enc": DatasetEncryption("tank-enc", "aes-256-gcm"),
        "tank-enc/ds-clear": DatasetEncryption("tank-enc/ds-clear", "off"),
    }
    assert found["tank-enc"].encrypted and found["tank-enc"].method == "ZFS aes-256-gcm"
    assert not found["tank-enc/ds-clear"].encrypted and found["tank-enc/ds-clear"].method == ""


def test_what_is_not_zfs_gets_table_is_refused_not_guessed() -> None:
    assert parse_zfs_get("") == {}  # no dataset at all
    with pytest.raises(ParseError, match="header"):
        parse_zfs_get((FIXTURES / "zfs" / "zfs-not-loaded-centos8-openzfs-10462.err").read_text())
    shifted = fixture_text(ENCRYPTED_POOL).replace("tank-enc           encryption ",
                                                   "tank-enc            encryption")  # fmt: skip
    with pytest.raises(ParseError, match="columns"):
        parse_zfs_get(shifted)


def host_with(mounts: bytes = MOUNTS) -> ReplayHost:
    host = ReplayHost(homes=["/home/li"]).with_tool("lsblk")
    host.commands[LSBLK] = recorded("lsblk/lsblk-vm-debian12")
    host.files["/proc/self/mounts"] = mounts
    return host


def probed(host: ReplayHost) -> tuple[dict[str, pb.EncryptedVolume], FactOutcome]:
    outcome = run_probe(pb.FACT_DISK_ENCRYPTION, disk.probe,
                        ProbeContext(host, ProbeConfig(), pb.PostureReport()))  # fmt: skip
    assert isinstance(outcome.fact, pb.DiskEncryptionFact), outcome.errors
    return {v.mount_point: v for v in outcome.fact.volumes}, outcome


def test_an_encrypted_dataset_is_encrypted_and_one_made_without_is_not() -> None:
    host = host_with().with_tool("zfs")
    host.commands[ZFS_ENCRYPTION] = recorded_ok(ENCRYPTED_POOL)
    volumes, outcome = probed(host)
    assert outcome.errors == []
    pool, clear = volumes["/tank-enc"], volumes["/zfs/tank-enc/ds-clear"]
    assert (pool.device, pool.encrypted, pool.method) == ("tank-enc", True, "ZFS aes-256-gcm")
    assert (clear.encrypted, clear.method) == (False, "")
    report = pb.PostureReport(disk_encryption=pb.DiskEncryptionFact(volumes=volumes.values()))
    backup = pb.ChatBackup()
    on_volume(backup, "/tank-enc/微信备份", report, pb.OS_FAMILY_LINUX)
    assert backup.on_encrypted_volume
    assert backup.volume_evidence == "on ZFS aes-256-gcm volume tank-enc mounted at /tank-enc"
    assert is_phrase(backup.volume_evidence)


def recorded_ok(stem: str) -> tuple[int, bytes, bytes]:
    return ok((FIXTURES / stem).read_bytes())


def test_no_zfs_tool_leaves_the_datasets_unknown_with_the_reason() -> None:
    volumes, outcome = probed(host_with())
    assert not volumes["/tank-enc"].HasField("encrypted")
    assert not volumes["/zfs/tank-enc/ds-clear"].HasField("encrypted")  # not "not encrypted"
    (said,) = outcome.errors
    assert (said.source, said.code) == ("zfs", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)


def test_zfs_failing_leaves_the_datasets_unknown_with_its_words() -> None:
    host = host_with().with_tool("zfs")
    stderr = (FIXTURES / "zfs" / "zfs-not-loaded-centos8-openzfs-10462.err").read_bytes()
    host.commands[ZFS_ENCRYPTION] = (1, b"", stderr)  # zfs exits 1 when libzfs cannot start
    volumes, outcome = probed(host)
    assert not volumes["/tank-enc"].HasField("encrypted")
    (said,) = outcome.errors
    assert (said.source, said.code) == ("zfs", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    assert said.message == "zfs exited with status 1: The ZFS modules are not loaded."


def test_a_mounted_dataset_zfs_does_not_list_is_unknown() -> None:
    """A dataset under the encrypted pool that this output does not list (it was made after):
    inherited encryption is not assumed from its name."""
    host = host_with(MOUNTS + b"tank-enc/home /home zfs rw,relatime,xattr,noacl 0 0\n")
    host.with_tool("zfs").commands[ZFS_ENCRYPTION] = recorded_ok(ENCRYPTED_POOL)
    volumes, outcome = probed(host)
    assert volumes["/tank-enc"].encrypted
    assert not volumes["/home"].HasField("encrypted")
    (said,) = outcome.errors
    assert (said.source, said.code) == ("zfs", pb.PROBE_ERROR_CODE_NO_SOURCE)
    assert said.message == (
        "zfs get does not list 1 mounted ZFS dataset(s): their encryption is unknown"
    )
    assert is_phrase(said.message)


def test_a_snapshot_mounted_is_judged_by_its_dataset_and_root_on_zfs_too() -> None:
    """Root on ZFS: lsblk lists no "/" (the pool's disk is a zfs_member), the mounts do."""
    mounts = (b"tank-enc / zfs rw,relatime,xattr,noacl 0 0\n"
              b"tank-enc@daily /.zfs/snapshot/daily zfs ro,relatime,xattr,noacl 0 0\n")  # fmt: skip
    host = host_with(mounts).with_tool("zfs")
    host.commands[LSBLK] = ok('{"blockdevices": []}')
    host.commands[ZFS_ENCRYPTION] = recorded_ok(ENCRYPTED_POOL)
    volumes, outcome = probed(host)
    assert outcome.errors == []
    assert volumes["/"].encrypted and volumes["/"].method == "ZFS aes-256-gcm"
    assert volumes["/.zfs/snapshot/daily"].encrypted


def test_zfs_is_not_run_without_a_zfs_mount() -> None:
    host = host_with(b"/dev/vda / ext4 rw,relatime 0 0\n").with_tool("zfs")
    probed(host)
    assert ZFS_ENCRYPTION not in host.calls
