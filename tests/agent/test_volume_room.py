"""A computer with more volumes than the collector takes still reports: the agent keeps the
volumes that matter first and says how many it left out.

The collector refuses a whole report whose disk-encryption fact lists more than 256 volumes
(collector/validation.py), so a laptop with hundreds of snaps (each revision a squashfs loop
device) went dark. These tests run the agent's probes on real recordings and hold their report
to the collector's own validation (imported here, in a test only: the agent never imports the
collector).
"""

from __future__ import annotations

import datetime as dt
import uuid

from devposture.agent.parsers.lsblk import parse_lsblk_rows
from devposture.agent.parsers.mount_volumes import unlisted
from devposture.agent.parsers.mounts import parse_mounts
from devposture.agent.probes import ProbeConfig, backup_volume
from devposture.agent.probes.commands import LSBLK
from devposture.agent.probes.linux import disk
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.collector.validation import MAX_ITEMS, validate_report
from devposture.policy.phrases import is_phrase
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_bytes, fixture_text, recorded

NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)
SNAPS = "lsblk/lsblk-300-snaps-debian12"  # 300 squashfs loops under /snap, /home, a USB disk
SAME_VM_MOUNTS = "mounts/proc-self-mounts-over-mounted-debian12"


def snappy_laptop() -> ReplayHost:
    host = ReplayHost(homes=["/home/dpuser"]).with_tool("lsblk")
    host.commands[LSBLK] = recorded(SNAPS)
    host.files["/proc/self/mounts"] = fixture_bytes(SAME_VM_MOUNTS)
    return host


def reported(outcome: FactOutcome) -> pb.PostureReport:
    """The report the agent sends with this one fact, as the collector receives it."""
    report = pb.PostureReport(report_id=str(uuid.UUID(int=7)), device_id="d", agent_version="t")
    report.collected_at.FromDatetime(NOW)
    assert isinstance(outcome.fact, pb.DiskEncryptionFact), outcome.errors
    report.disk_encryption.CopyFrom(outcome.fact)
    report.errors.extend(outcome.errors)
    return report


def test_the_agent_and_the_collector_agree_on_the_limit() -> None:
    assert MAX_ITEMS["devposture.v1.DiskEncryptionFact.volumes"] == backup_volume.MAX_VOLUMES


def every_volume() -> list[str]:
    """Every mount point the laptop's lsblk and mounts give, before any is left out."""
    lsblk = [row.volume.mount_point for row in parse_lsblk_rows(fixture_text(f"{SNAPS}.out"))]
    mounts = unlisted(parse_mounts(fixture_text(SAME_VM_MOUNTS)))
    return lsblk + [u.mount_point for u in mounts]


def probed(host: ReplayHost) -> FactOutcome:
    context = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_DISK_ENCRYPTION, disk.probe, context)


def test_a_laptop_with_300_snaps_is_reported_and_accepted() -> None:
    outcome = probed(snappy_laptop())
    report = reported(outcome)
    validate_report(report, NOW)  # raised ReportInvalid before: 303 items, at most 256
    volumes = report.disk_encryption.volumes
    assert len(volumes) == 256
    kept = {v.mount_point for v in volumes}
    # The root, the home and the USB disk are kept; only snaps are left out.
    assert {"/", "/home", "/media/dpuser/USB"} <= kept
    every = every_volume()
    assert len(every) > 256
    assert all(m.startswith("/snap/") for m in set(every) - kept)
    (said,) = [e for e in report.errors if e.source == "volumes"]
    assert said.message == (
        f"{len(every) - 256} of {len(every)} volumes left out of the report (the collector"
        " takes 256): those holding the system, the homes and the chat backups are kept first"
    )
    assert is_phrase(said.message)


def test_a_machine_within_the_limit_is_reported_whole_and_says_nothing() -> None:
    """The same VM recorded with a few mounts: every volume, no error."""
    host = ReplayHost(homes=["/home/dpuser"]).with_tool("lsblk")
    host.commands[LSBLK] = recorded("lsblk/lsblk-over-mounted-debian12")
    host.files["/proc/self/mounts"] = fixture_bytes(SAME_VM_MOUNTS)
    outcome = probed(host)
    assert outcome.errors == []
    validate_report(reported(outcome), NOW)
