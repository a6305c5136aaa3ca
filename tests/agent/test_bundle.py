"""Diagnostic bundles: what is recorded here replays to the same report anywhere, and holds
no chat content."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from devposture.agent.collect import build_report
from devposture.agent.host import Host, LiveHost
from devposture.agent.host.bundle import BundleError, BundleHost, RecordingHost, dumps
from devposture.agent.host.redact import redact_sample
from devposture.agent.parsers.file_headers import sniff
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.facts import FIELDS
from devposture.agent.probes.linux import backups
from devposture.agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb
from tests.agent.test_probes_backups import TempHomeHost

BIN = Path(sys.executable).parent
CHAT_LINE = "2026-11-20 10:02 张经理: 合同报价是 38 万,明天签字"


def _without_id(report: pb.PostureReport) -> pb.PostureReport:
    copy = pb.PostureReport()
    copy.CopyFrom(report)
    copy.ClearField("report_id")
    return copy


# The policy folder the chat tests keep their backups in.
BACKUPS = ProbeConfig(backup_folders=("~/微信备份",))


def _record(host: LiveHost, path: Path, config: ProbeConfig | None = None) -> pb.PostureReport:
    recorder = RecordingHost(host)
    report = build_report(recorder, config or ProbeConfig())
    recorder.save(path, "test", config or ProbeConfig())
    return report


def _replay(path: Path) -> pb.PostureReport:
    """A replay with the configuration the bundle recorded, as `collect --replay` does."""
    bundle = BundleHost.load(path)
    assert bundle.probe_config is not None
    return build_report(bundle, bundle.probe_config)


@pytest.fixture(scope="module")
def this_machine(tmp_path_factory: pytest.TempPathFactory) -> tuple[pb.PostureReport, Path]:
    """This machine, recorded once: (the live report, the bundle file)."""
    path = tmp_path_factory.mktemp("bundle") / "bundle.json"
    return _record(LiveHost(), path), path


def test_this_machine_replays_to_the_same_report(
    this_machine: tuple[pb.PostureReport, Path],
) -> None:
    live, path = this_machine
    replayed = build_report(BundleHost.load(path), ProbeConfig())
    assert _without_id(replayed) == _without_id(live)
    # Every fact was either collected or explained, in the replay as live.
    explained = {e.fact for e in replayed.errors}
    for fact, name in FIELDS.items():
        assert name in _present(replayed) or fact in explained, name


def _present(report: pb.PostureReport) -> set[str]:
    return {field.name for field, _ in report.ListFields()}


def _chat_home(home: Path) -> None:
    folder = home / "微信备份" / "2026-11"
    folder.mkdir(parents=True)
    (folder / "export.txt").write_text(CHAT_LINE * 3, encoding="utf-8")
    with sqlite3.connect(folder / "MSG0.db") as conn:
        conn.execute("create table MSG (content text)")
        conn.execute("insert into MSG values (?)", (CHAT_LINE,))
    os.utime(folder / "export.txt", (1_700_000_000, 1_700_000_000))


def test_bundle_holds_no_chat_content_and_replays_the_same_verdict(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _chat_home(home)
    live = _record(TempHomeHost(home), tmp_path / "bundle.json", BACKUPS)
    raw = (tmp_path / "bundle.json").read_bytes()
    for word in ("张经理", "合同", "报价", "2026-11-20", "签字"):
        assert word.encode() not in raw
        assert json.dumps(word).encode() not in raw  # nor as a JSON escape
    decoded = json.loads(raw)
    samples = [c for c in decoded["calls"] if c["method"] == "read_sample"]
    assert samples, "the backup files were sampled"
    replayed = _replay(tmp_path / "bundle.json")
    assert replayed.chat_backups == live.chat_backups
    (backup,) = live.chat_backups.backups
    assert backup.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED


@pytest.mark.parametrize(
    "sample",
    [
        b"SQLite format 3\x00\x10\x00\x01\x01\x00@  \x00\x00\x00\x02",
        b"age-encryption.org/v1\n-> X25519 abc",
        b"PK\x03\x04\x14\x00\x01\x00\x08\x00\x00\x00!\x00" + b"\x00" * 16 + b"chat_with_lisi.txt",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20 + b"notes.txt",
        random.Random(64).randbytes(64),  # high-entropy bytes, the same in every run
        CHAT_LINE.encode(),
        b"\x1f\x8b\x08\x00",
    ],
)
def test_redaction_keeps_the_verdict(sample: bytes) -> None:
    redacted = redact_sample(sample)
    assert len(redacted) == len(sample)
    assert sniff(redacted) == sniff(sample)


def test_redaction_removes_text() -> None:
    redacted = redact_sample(b"PK\x03\x04" + b"\x00" * 26 + b"chat_with_lisi.txt")
    assert b"lisi" not in redacted and b"chat" not in redacted
    text = redact_sample(CHAT_LINE.encode()).decode("utf-8", "replace")
    assert text.strip("x") == "", text  # one readable run, wholly masked


def test_a_call_the_bundle_lacks_becomes_an_error_not_a_guess(
    this_machine: tuple[pb.PostureReport, Path],
) -> None:
    document = json.loads(this_machine[1].read_text())
    document["calls"] = [c for c in document["calls"] if c["method"] != "net_interfaces"]
    replayed = build_report(BundleHost(document), ProbeConfig())
    messages = [e.message for e in replayed.errors if e.fact == pb.FACT_VPN]
    assert any("bundle does not hold net_interfaces" in m for m in messages), messages
    assert not replayed.HasField("vpn")


def test_not_a_bundle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(BundleError, match="not a devposture diagnostic bundle"):
        BundleHost.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"format": "devposture-bundle", "version": 99}')
    with pytest.raises(BundleError, match="version 99 is not supported"):
        BundleHost.load(tmp_path / "y.json")


def test_cli_records_and_replays(tmp_path: Path) -> None:
    agent = str(BIN / "devposture-agent")
    bundle = tmp_path / "b.json"
    state = ["--state", str(tmp_path / "state")]
    done = subprocess.run(
        [agent, "collect", "--bundle", str(bundle), *state],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert oct(bundle.stat().st_mode & 0o777) == "0o600"
    replay = subprocess.run(
        [agent, "collect", "--replay", str(bundle), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["host"]["osFamily"] == "OS_FAMILY_LINUX"
    bad = subprocess.run(
        [agent, "collect", "--replay", str(tmp_path / "none.json"), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "cannot read" in bad.stderr
    neither = subprocess.run(
        [agent, "collect", *state], capture_output=True, text=True, check=False
    )
    assert neither.returncode == 1 and "--json" in neither.stderr


def test_7z_end_header_is_followed_live_and_redacted_in_the_bundle(tmp_path: Path) -> None:
    seven = shutil.which("7z")
    if seven is None:
        if os.environ.get("CI"):
            pytest.fail("7z is needed (.ci/run installs p7zip-full)")
        pytest.skip("7z is not installed")
    home = tmp_path / "home"
    folder = home / "微信备份"
    folder.mkdir(parents=True)
    (folder / "合同_张经理.txt").write_text(CHAT_LINE, encoding="utf-8")
    # -mhc=off keeps the end header plain, so the file name sits there in UTF-16.
    subprocess.run([seven, "a", "-mhc=off", "chats.7z", "合同_张经理.txt"], cwd=folder,
                   check=True, capture_output=True)  # fmt: skip
    (folder / "合同_张经理.txt").unlink()
    live = _record(TempHomeHost(home), tmp_path / "bundle.json", BACKUPS)
    (backup,) = live.chat_backups.backups
    assert backup.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
    assert "7z archive without encryption" in backup.encryption_evidence
    assert backup.kind == pb.BACKUP_KIND_ARCHIVE and backup.format == "7z archive"
    raw = (tmp_path / "bundle.json").read_bytes()
    assert "合同".encode("utf-16-le") not in raw and "张经理".encode("utf-16-le") not in raw
    decoded = json.loads(raw)
    samples = [
        base64.b64decode(c["result"]) for c in decoded["calls"] if c["method"] == "read_sample"
    ]
    assert not any("张经理".encode("utf-16-le") in s or "合同".encode() in s for s in samples)
    replayed = _replay(tmp_path / "bundle.json")
    assert replayed.chat_backups == live.chat_backups


def test_the_bundle_carries_the_probe_configuration(tmp_path: Path) -> None:
    """The policy's folders and Wi-Fi rules travel with the bundle: a replay on a machine
    with another configuration (or none) asks for the same folders and gets the same facts."""
    home = tmp_path / "home"
    _chat_home(home)
    config = ProbeConfig(
        backup_folders=("~/微信备份", "/srv/chat-archive"),
        trusted_networks=("公司WiFi",),
        public_network_patterns=("CMCC*", "i-Shanghai"),
        network_hash_key=b"\x01\x02key",
        command_timeout=7.5,
        time_zone="Asia/Urumqi",  # the words of a hung probe's time
    )
    live = _record(TempHomeHost(home), tmp_path / "bundle.json", config)
    bundle = BundleHost.load(tmp_path / "bundle.json")
    assert bundle.probe_config == config
    assert len(live.chat_backups.backups) == 1
    assert _without_id(_replay(tmp_path / "bundle.json")) == _without_id(live)
    # Without the recorded configuration the replay would not even look in ~/微信备份.
    bare = build_report(BundleHost.load(tmp_path / "bundle.json"), ProbeConfig())
    assert len(bare.chat_backups.backups) == 0


def test_cli_replays_with_the_recorded_configuration(tmp_path: Path) -> None:
    agent = str(BIN / "devposture-agent")
    home = tmp_path / "home"
    _chat_home(home)
    bundle = tmp_path / "b.json"
    # Recorded as this machine with an extra backup folder given on the command line.
    folder = str(home / "微信备份")
    recorded = subprocess.run(
        [agent, "collect", "--bundle", str(bundle), "--json", "--backup-folder", folder,
         "--state", str(tmp_path / "state")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    replay = subprocess.run(
        [agent, "collect", "--replay", str(bundle), "--json", "--state", str(tmp_path / "s2")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    live_sets = json.loads(recorded.stdout)["chatBackups"]["backups"]
    replayed_sets = json.loads(replay.stdout)["chatBackups"]["backups"]
    assert [b["location"] for b in live_sets] == [b["location"] for b in replayed_sets]
    assert len(replayed_sets) == 1
    # A format 1 bundle (no configuration) still replays, and says so.
    document = json.loads(bundle.read_text(encoding="utf-8"))
    document["version"] = 1
    del document["probe_config"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document), encoding="utf-8")
    replay_old = subprocess.run(
        [agent, "collect", "--replay", str(old), "--json", "--state", str(tmp_path / "s3")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert replay_old.returncode == 0, replay_old.stderr
    assert "does not record the probe configuration" in replay_old.stderr


def test_a_name_that_is_not_valid_text_is_recorded_and_replayed(tmp_path: Path) -> None:
    """A folder named with bytes that are not UTF-8 (a Linux name is bytes): the bundle holds
    it escaped, and the replay reads it under the same name."""
    home = tmp_path / "home"
    folder = home / "微信备份"
    folder.mkdir(parents=True)
    odd = os.fsdecode(bytes(folder) + b"/\xff\xfe-backup.7z")
    Path(odd).write_bytes(b"age-encryption.org/v1\n-> X25519 abc\n" + bytes(64))
    live = _record(TempHomeHost(home), tmp_path / "bundle.json", BACKUPS)
    (backup,) = live.chat_backups.backups
    assert backup.location == "~/微信备份/\\xff\\xfe-backup.7z"
    raw = (tmp_path / "bundle.json").read_bytes()
    raw.decode("utf-8")  # valid UTF-8 throughout
    assert _replay(tmp_path / "bundle.json").chat_backups == live.chat_backups


def _linked_home(tmp_path: Path) -> tuple[Path, pb.PostureReport]:
    """A home whose backup folder is a symbolic link to a second disk, and the fact of that
    computer's disks: "/" encrypted, the second disk not (lsblk's mount points)."""
    home, usb = tmp_path / "home", tmp_path / "usb"
    (usb / "微信备份").mkdir(parents=True)
    (usb / "微信备份" / "chats.txt").write_text(CHAT_LINE, encoding="utf-8")
    home.mkdir()
    (home / "微信备份").symlink_to(usb / "微信备份")
    report = pb.PostureReport()
    report.disk_encryption.volumes.add(mount_point="/", device="nvme0n1p3_crypt",
                                       encrypted=True, method="LUKS2")  # fmt: skip
    report.disk_encryption.volumes.add(mount_point=str(usb), device="sdb1", encrypted=False)
    return home, report


def _backups(host: Host, report: pb.PostureReport) -> pb.ChatBackupFact:
    outcome = backups.probe(ProbeContext(host, BACKUPS, report))
    assert isinstance(outcome.fact, pb.ChatBackupFact), outcome.errors
    return outcome.fact


def test_where_a_link_leads_is_recorded_and_replayed(tmp_path: Path) -> None:
    home, report = _linked_home(tmp_path)
    recorder = RecordingHost(TempHomeHost(home))
    live = _backups(recorder, report)
    (backup,) = live.backups
    assert not backup.on_encrypted_volume and "the files are really in" in backup.volume_evidence
    document = recorder.bundle("test", BACKUPS)
    resolved = [c for c in document["calls"] if c["method"] == "real_path"]
    assert {c["args"]["path"] for c in resolved} == {str(home / "微信备份/chats.txt"), str(home)}
    shutil.rmtree(tmp_path / "usb")  # the replay reads the bundle, never this disk
    assert _backups(BundleHost(json.loads(dumps(document))), report) == live


def test_a_bundle_recorded_before_links_were_followed_replays_as_it_did(tmp_path: Path) -> None:
    """An older agent asked for no real location and judged the volume by the path as spelled:
    its bundle replays to that judgement, not to an error."""
    home, report = _linked_home(tmp_path)
    recorder = RecordingHost(TempHomeHost(home))
    _backups(recorder, report)
    document = recorder.bundle("0.1.0", BACKUPS)
    document["calls"] = [c for c in document["calls"] if c["method"] != "real_path"]
    (backup,) = _backups(BundleHost(document), report).backups
    assert backup.on_encrypted_volume
    assert backup.volume_evidence == "on LUKS2 volume nvme0n1p3_crypt mounted at /"
    # A newer bundle that lacks one place it resolved others: that one is an error, no guess.
    document = recorder.bundle("test", BACKUPS)
    document["calls"] = [
        c for c in document["calls"]
        if c["method"] != "real_path" or c["args"]["path"] == str(home)
    ]  # fmt: skip
    (backup,) = _backups(BundleHost(document), report).backups
    assert not backup.HasField("on_encrypted_volume")
    assert backup.volume_evidence.startswith(
        "where the files really are is unknown: the bundle does not hold real_path"
    )
