"""Diagnostic bundles: what is recorded here replays to the same report anywhere, and holds
no chat content."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.collect import build_report
from agent.host import LiveHost
from agent.host.bundle import BundleError, BundleHost, RecordingHost
from agent.host.redact import redact_sample
from agent.parsers.file_headers import sniff
from agent.probes import ProbeConfig
from agent.probes.facts import FIELDS
from devposture.v1 import devposture_pb2 as pb
from tests.agent.test_probes_backups import TempHomeHost

BIN = Path(sys.executable).parent
CHAT_LINE = "2026-11-20 10:02 张经理: 合同报价是 38 万,明天签字"


def _without_id(report: pb.PostureReport) -> pb.PostureReport:
    copy = pb.PostureReport()
    copy.CopyFrom(report)
    copy.ClearField("report_id")
    return copy


def _record(host: LiveHost, path: Path) -> pb.PostureReport:
    recorder = RecordingHost(host)
    report = build_report(recorder, ProbeConfig())
    recorder.save(path, "test")
    return report


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
    folder = home / "Documents" / "WeChat Files" / "wxid_test" / "Backup"
    folder.mkdir(parents=True)
    (folder / "export.txt").write_text(CHAT_LINE * 3, encoding="utf-8")
    with sqlite3.connect(folder / "MSG0.db") as conn:
        conn.execute("create table MSG (content text)")
        conn.execute("insert into MSG values (?)", (CHAT_LINE,))
    os.utime(folder / "export.txt", (1_700_000_000, 1_700_000_000))


def test_bundle_holds_no_chat_content_and_replays_the_same_verdict(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _chat_home(home)
    live = _record(TempHomeHost(home), tmp_path / "bundle.json")
    raw = (tmp_path / "bundle.json").read_bytes()
    for word in ("张经理", "合同", "报价", "2026-11-20", "签字"):
        assert word.encode() not in raw
        assert json.dumps(word).encode() not in raw  # nor as a JSON escape
    decoded = json.loads(raw)
    samples = [c for c in decoded["calls"] if c["method"] == "read_sample"]
    assert samples, "the backup files were sampled"
    replayed = build_report(BundleHost.load(tmp_path / "bundle.json"), ProbeConfig())
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
        os.urandom(64),
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
    folder = home / "Documents" / "WeChat Files" / "Backup"
    folder.mkdir(parents=True)
    (folder / "合同_张经理.txt").write_text(CHAT_LINE, encoding="utf-8")
    # -mhc=off keeps the end header plain, so the file name sits there in UTF-16.
    subprocess.run([seven, "a", "-mhc=off", "chats.7z", "合同_张经理.txt"], cwd=folder,
                   check=True, capture_output=True)  # fmt: skip
    (folder / "合同_张经理.txt").unlink()
    live = _record(TempHomeHost(home), tmp_path / "bundle.json")
    (backup,) = live.chat_backups.backups
    assert backup.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
    assert "7z archive without encryption" in backup.encryption_evidence
    raw = (tmp_path / "bundle.json").read_bytes()
    assert "合同".encode("utf-16-le") not in raw and "张经理".encode("utf-16-le") not in raw
    decoded = json.loads(raw)
    samples = [
        base64.b64decode(c["result"]) for c in decoded["calls"] if c["method"] == "read_sample"
    ]
    assert not any("张经理".encode("utf-16-le") in s or "合同".encode() in s for s in samples)
    replayed = build_report(BundleHost.load(tmp_path / "bundle.json"), ProbeConfig())
    assert replayed.chat_backups == live.chat_backups
