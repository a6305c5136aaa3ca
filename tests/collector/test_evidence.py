"""Audit evidence: the hash chain written with every record, signed bundles, and verifying a
bundle on another machine with only the public key.

A real collector (grpc.aio, mutual TLS, a SQLite file or PostgreSQL) receives reports from
real agents; the waiver and the device revocation go through the admin command runner, as IT
would run them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import gc
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import struct
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devposture.agent.transport import open_channel, send_report
from devposture.collector import gc_settle
from devposture.collector import store as store_module
from devposture.collector.admin import commands as commands_module
from devposture.collector.admin.commands import Runner, local_actor
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.compliance import Waiver
from devposture.collector.config import load
from devposture.collector.datadir import initialize
from devposture.collector.evidence import (
    bundle,
    chain,
    html,
    member_bytes,
    signing,
    spooled,
    verify,
)
from devposture.collector.evidence.export import export_bundle
from devposture.collector.evidence.member_lines import MemberLines
from devposture.collector.evidence.summary import PastGrace, Summary
from devposture.collector.evidence.verify import verify_bundle
from devposture.collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    database_errors,
)
from devposture.collector.store.base import to_us
from devposture.collector.store.report_format import FORMAT_4
from devposture.collector.store.target import DatabaseTarget
from devposture.collector.tokens import new_token
from devposture.policy import default_policy
from devposture.policy.reasons import encode
from devposture.v1 import devposture_pb2 as pb
from tests.collector.bundle_members import members_of, resigned, written
from tests.conftest import enroll_agent, make_report, running_collector
from tests.databases import collector_database, fresh_database, raw, unguarded
from tests.full_disk import tmpfs


@dataclass(frozen=True)
class Evidence:
    folder: Path  # another machine: the bundle and the public key, no database
    bundle: Path
    public_key: Path
    failing_device: str
    export_stderr: str
    key_mode: int = 0


def _failing(report_device: str) -> object:
    report = make_report(report_device)
    report.firewall.Clear()
    report.firewall.enabled = False
    return report


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    base = tmp_path_factory.mktemp("evidence")
    data = base / "collector"
    start = utcnow() - dt.timedelta(minutes=1)
    with running_collector(data) as live:
        # Format 4's report groups, whose lines these tests forge (format 5's forgeries:
        # test_export_facts.py, test_verifier_node.py); read at the collector's first report.
        with contextlib.closing(live.store()) as opened:
            opened.report_format.write(FORMAT_4)
        agents = [enroll_agent(live, base / f"agent-{n}", f"laptop-{n}") for n in range(3)]
        for number, agent in enumerate(agents):
            with open_channel(agent.state, agent.enrollment) as channel:
                send_report(channel, make_report(agent.enrollment.device_id))
                if number == 1:  # PASS, then FAIL, then PASS again: three state changes
                    send_report(channel, _failing(agent.enrollment.device_id))  # type: ignore[arg-type]
                    send_report(channel, make_report(agent.enrollment.device_id))
                if number == 2:
                    send_report(channel, _failing(agent.enrollment.device_id))  # type: ignore[arg-type]
        store = live.store()
        try:
            runner = Runner(store, live.config)
            actor = local_actor()
            runner.run(("waiver", "add"), {
                "device": agents[2].enrollment.device_id, "check": "firewall",
                "owner": "Li Wei (IT)", "reason": "新防火墙 rollout <b>",
                "expires": (utcnow() + dt.timedelta(days=30)).isoformat(),
            }, actor, peer="local", remote=False)  # fmt: skip
            runner.run(("device", "revoke"),
                       {"device_id": agents[0].enrollment.device_id, "reason": "laptop stolen"},
                       actor, peer="local", remote=False)  # fmt: skip
            runner.run(("report", "fleet"), {}, actor, peer="local", remote=False)
        finally:
            store.close()
    end = utcnow() + dt.timedelta(seconds=1)
    out = base / "evidence.zip"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert collector_cli(["audit", "export", "--data", str(data), "--from",
                              start.isoformat(), "--to", end.isoformat(), "--out", str(out),
                              "--progress"]) == 0  # fmt: skip
    mode = stat.S_IMODE((data / signing.KEY_NAME).stat().st_mode)
    return Evidence(base, out, base / "key.pem", agents[2].enrollment.device_id, err.getvalue(),
                    mode)  # fmt: skip


@pytest.fixture(scope="module")
def auditor(evidence: Evidence, tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The bundle and the public key copied to another folder; the collector's data deleted."""
    data = evidence.folder / "collector"
    key = signing.load_or_create(data).public_key()
    elsewhere = tmp_path_factory.mktemp("auditor")
    (elsewhere / "collector.pem").write_bytes(signing.public_pem(key))
    shutil.copy(evidence.bundle, elsewhere / "evidence.zip")
    shutil.rmtree(data)
    return Evidence(elsewhere, elsewhere / "evidence.zip", elsewhere / "collector.pem",
                    evidence.failing_device, evidence.export_stderr)  # fmt: skip


def _verify(path: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = collector_cli(["audit", "verify", str(path), "--public-key", str(key)])
    return code, capsys.readouterr().out


_members = members_of


def _tampered(auditor: Evidence, name: str, change: Callable[[dict[str, bytes]], None]) -> Path:
    members = _members(auditor.bundle)
    change(members)
    return written(members, auditor.folder / f"{name}.zip")


def _bodies(members: dict[str, bytes]) -> list[tuple[int, str, bytes]]:
    """(seq, report id, body) of every body in reports.jsonl (a report group's on one line)."""
    found = []
    for line in members[bundle.REPORTS].splitlines():
        seq, bodies = bundle.parse_group_bodies(json.loads(line))
        found += [(seq, report_id, body) for report_id, body in bodies]
    return found


def _chain_lines(members: dict[str, bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in members[bundle.CHAIN].splitlines()]


def _put_chain(members: dict[str, bytes], lines: list[dict[str, object]]) -> None:
    members[bundle.CHAIN] = b"".join(bundle.jsonl(line) for line in lines)


# --- the bundle verifies without the database ----------------------------------------------


def test_a_bundle_verifies_elsewhere_with_only_the_public_key(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not list(auditor.folder.glob("*.db")) and not list(auditor.folder.glob("*.key"))
    code, out = _verify(auditor.bundle, auditor.public_key, capsys)
    assert code == 0, out
    assert out.startswith("VERIFIED:") and "验证通过" in out
    # The period in the company's time zone, as the bundle's context records it.
    assert re.search(r"written \d{4}-\d\d-\d\d \d\d:\d\d \(UTC\+08:00\) – ", out), out
    assert "+00:00" not in out


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_lines_are_read_whole_across_the_reads_of_a_member(
    auditor: Evidence, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """The verifier reads each member a chunk at a time (a megabyte) and cuts lines across
    chunks: with chunks of a byte, a few bytes or a page, every line and every digest is the
    same, and so is the verdict."""
    public = signing.load_public(auditor.public_key.read_bytes())
    whole = verify.check_bundle(auditor.bundle, public).verdict
    monkeypatch.setattr(member_bytes, "CHUNK", chunk)
    cut = verify.check_bundle(auditor.bundle, public).verdict
    assert whole.problems == [] and cut.problems == [] and cut.summary == whole.summary
    with zipfile.ZipFile(auditor.bundle) as archive:
        raw = archive.read(bundle.CHAIN)
        member = MemberLines(archive, bundle.CHAIN, [])
        lines = [line for _, line in member.lines()]
        assert member.digest() == hashlib.sha256(raw).hexdigest()
    assert lines == [json.loads(line) for line in raw.splitlines()] and lines


def test_the_bundle_holds_every_kind_of_record_and_a_bilingual_report(auditor: Evidence) -> None:
    members = _members(auditor.bundle)
    manifest = json.loads(members[bundle.MANIFEST])
    counts = manifest["counts"]
    assert counts[chain.REPORT] == 6
    assert counts[chain.DEVICE] >= 4  # three enrollments and a revocation
    assert counts[chain.WAIVER] == 1 and counts[chain.ADMIN] == 3
    kinds = [line["kind"] for line in _chain_lines(members)]
    assert kinds.count(chain.STATE) == counts[chain.STATE] > 0
    facts = [bundle.facts_of(body) for _, _, body in _bodies(members)]
    assert len(facts) == 6 and all(f and f["firewall"] for f in facts)
    page = members[bundle.HTML].decode("utf-8")
    waivers = page.split("Waivers in force during the period")[1].split("<h2>")[0]
    assert auditor.failing_device in waivers and "Li Wei (IT)" in waivers
    weekly = page.split("Devices compliant at the end of each week")[1].split("<h2>超过宽限期")[0]
    # Three enrolled, one revoked: two counted per clause, neither passing every check of any
    # (make_report's backups and Wi-Fi are not judged PASS).
    assert weekly.count("0/2</small>") == 3
    for text in ("每周合规率", "超过宽限期", "test-host", "UTC+08:00",
                 "新防火墙 rollout &lt;b&gt;", "revoked", "waiver add"):  # fmt: skip
        assert text in page, text
    assert "<b>" not in page.split("<body>")[1].replace("<br>", "")  # escaped, never markup


def test_audit_facts_shows_each_report_body_as_json_without_the_database(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert collector_cli(["audit", "facts", str(auditor.bundle)]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(shown) == 6 and all(item["facts"]["firewall"] for item in shown)
    one = shown[-1]["report_id"]
    assert collector_cli(["audit", "facts", str(auditor.bundle), "--report", one]) == 0
    [only] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only == shown[-1] and only["facts"]["report_id"] == one
    assert collector_cli(["audit", "facts", str(auditor.bundle), "--report", "nope"]) != 0
    assert "holds no body for report nope: check the id" in capsys.readouterr().err


def test_every_member_is_written_as_a_zip64_stream(auditor: Evidence) -> None:
    """A quarter's members pass the 2 GiB a plain zip member holds: each is written with its
    Zip64 sizes (whatever its size, as a stream), and read back by any unzip."""
    data = auditor.bundle.read_bytes()
    with zipfile.ZipFile(auditor.bundle) as archive:
        streamed = [i for i in archive.infolist()
                    if i.filename not in (bundle.MANIFEST, bundle.SIGNATURE)]  # fmt: skip
        assert {i.filename for i in streamed} == set(bundle.MEMBERS)
        for info in streamed:
            # The local file header: name length at 26, extra length at 28, then both.
            at = info.header_offset
            name_length, extra_length = struct.unpack_from("<HH", data, at + 26)
            extra = data[at + 30 + name_length : at + 30 + name_length + extra_length]
            assert extra[:2] == b"\x01\x00", info.filename  # the Zip64 extra field
            assert info.compress_type == zipfile.ZIP_DEFLATED
        assert archive.testzip() is None


def test_export_shows_progress_and_the_key_is_private(evidence: Evidence) -> None:
    # It counts the chain's entries, and says so: a group entry seals many reports, which
    # the closing line counts as records.
    assert re.search(r"audit export: (\d+)/\1 chain entries \(100%\)", evidence.export_stderr)
    # The key was made on first use, in the data folder, readable by its owner only.
    assert evidence.key_mode == 0o600


def test_verify_shows_progress_as_it_goes_and_ends_at_every_record(
    auditor: Evidence, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarter's verification takes minutes: `--progress` (or a terminal) shows it going."""
    monkeypatch.setattr(verify, "PROGRESS_EVERY", 2)
    capsys.readouterr()
    code = collector_cli(["audit", "verify", str(auditor.bundle), "--public-key",
                          str(auditor.public_key), "--progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.out
    span = _manifest(auditor.bundle)["chain"]
    entries = span["last_seq"] - span["first_seq"] + 1  # what progress counts: chain entries
    shown = re.findall(r"audit verify evidence\.zip: (\d+)/(\d+) chain entries", captured.err)
    assert [int(done) for done, _ in shown] == [*range(2, entries + 1, 2), entries]
    assert {int(total) for _, total in shown} == {entries}
    assert captured.err.endswith(f"{entries}/{entries} chain entries (100%)\n")
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")  # the share in the brackets of a Chinese line
    assert collector_cli(["audit", "verify", str(auditor.bundle), "--public-key",
                          str(auditor.public_key), "--progress"]) == 0  # fmt: skip
    assert capsys.readouterr().err.endswith(f"{entries}/{entries} 个证据链条目（100%）\n")


def test_export_and_verify_collect_young_objects_as_a_batch_and_leave_the_thresholds(
    tmp_path: Path,
) -> None:
    """Their runs of rows and lines live thousands of tuples at once: while they run,
    Python's youngest generation is collected every BATCH_YOUNG objects (gc_settle.batch),
    and the process's thresholds are what they were once they end, refused or not."""
    store, data, key = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    before = gc.get_threshold()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(gc.get_threshold()[0])

    out = tmp_path / "bundle.zip"
    export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out,
                  progress=progress)  # fmt: skip
    assert seen and set(seen) == {gc_settle.BATCH_YOUNG}
    assert gc.get_threshold() == before
    with pytest.raises(FileExistsError):  # refused: the thresholds are restored all the same
        export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out,
                      progress=progress)  # fmt: skip
    assert gc.get_threshold() == before
    store.close()
    seen.clear()
    public = signing.load_public(key.read_bytes())
    assert verify.check_bundle(out, public, progress).verdict.ok
    assert seen and set(seen) == {gc_settle.BATCH_YOUNG}
    assert gc.get_threshold() == before


def test_public_key_prints_the_pem_and_its_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_collector(tmp_path / "c") as live:
        data = live.config.data_dir
    capsys.readouterr()
    assert collector_cli(["audit", "public-key", "--data", str(data)]) == 0
    captured = capsys.readouterr()
    key = signing.load_public(captured.out.encode())
    assert signing.fingerprint(key) in captured.err
    assert key == signing.load_or_create(data).public_key()


# --- any single change is caught and named -------------------------------------------------


def test_an_edited_record_is_caught_and_named(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(members: dict[str, bytes]) -> None:
        lines = _chain_lines(members)
        target = next(line for line in lines if line["kind"] == chain.STATE
                      and '"state":"FAIL"' in str(line["payload"]))  # fmt: skip
        target["payload"] = str(target["payload"]).replace('"state":"FAIL"', '"state":"PASS"')
        edit.seq = target["seq"]  # type: ignore[attr-defined]
        _put_chain(members, lines)

    code, out = _verify(_tampered(auditor, "edited", edit), auditor.public_key, capsys)
    assert code == 1
    assert f"state record seq {edit.seq} " in out and "edited" in out  # type: ignore[attr-defined]
    assert "NOT VERIFIED" in out and "验证失败" in out


def test_a_second_copy_of_a_member_is_refused_without_a_key(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    # A forged report.html placed before the genuine members: Python reads the last copy (the
    # signed one), while `unzip -n` or 7-Zip keeping the first shows the auditor the forgery.
    forged = auditor.folder / "second-copy.zip"
    with zipfile.ZipFile(forged, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name: the point
        archive.writestr(bundle.HTML, b"<html>every device compliant</html>")
        for member, data in _members(auditor.bundle).items():
            archive.writestr(member, data)
    code, out = _verify(forged, auditor.public_key, capsys)
    assert code == 1 and "NOT VERIFIED" in out
    assert f"member {bundle.HTML} appears more than once in the bundle" in out


def test_an_entry_hidden_between_members_is_refused_without_a_key(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    # A forged report.html slipped in as a local entry just before the genuine one, named by
    # no central directory entry: a valid zip that unzip and 7-Zip test clean, whose signed
    # members all verified, while a tool reading entries from the zip's start (a streaming
    # unzip) shows the forgery first.
    fake = b"<html>ALL COMPLIANT</html>"
    name = bundle.HTML.encode()
    hidden = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(fake),
                         len(fake), len(fake), len(name), 0) + name + fake  # fmt: skip
    forged = auditor.folder / "hidden-entry.zip"
    with zipfile.ZipFile(forged, "w") as archive:
        for member, data in _members(auditor.bundle).items():
            if member == bundle.HTML:
                assert archive.fp is not None
                archive.fp.write(hidden)
                archive.start_dir = archive.fp.tell()  # the next member after it
            archive.writestr(member, data)
    with zipfile.ZipFile(forged) as archive:  # a zip every tool reads, its members intact
        assert archive.testzip() is None and archive.read(bundle.HTML) != fake
    code, out = _verify(forged, auditor.public_key, capsys)
    assert code == 1 and "NOT VERIFIED" in out
    assert f"the bundle holds {len(hidden)} bytes between its members" in out, out
    # The genuine bundle, zipped again by another tool's order and with a comment.
    with zipfile.ZipFile(forged, "w") as archive:
        for member, data in _members(auditor.bundle).items():
            archive.writestr(member, data)
        archive.comment = b"all devices compliant"
    code, out = _verify(forged, auditor.public_key, capsys)
    assert code == 1 and "the bundle carries a zip comment (21 bytes)" in out, out


@pytest.mark.parametrize("where", ["before", "after"])
def test_bytes_outside_the_members_are_refused(
    auditor: Evidence, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    data, junk = auditor.bundle.read_bytes(), b"not covered by any signature\n" * 4
    padded = auditor.folder / f"padded-{where}.zip"
    padded.write_bytes(junk + data if where == "before" else data + junk)
    code, out = _verify(padded, auditor.public_key, capsys)
    assert code == 1 and "the bundle holds bytes outside its members" in out


def test_a_signature_file_with_more_than_the_signature_is_refused(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    def pad(members: dict[str, bytes]) -> None:
        members[bundle.SIGNATURE] += b"!!!\n"  # not base64: it was skipped over

    code, out = _verify(_tampered(auditor, "signature-junk", pad), auditor.public_key, capsys)
    assert code == 1 and "the signature does not match" in out


@pytest.mark.parametrize("where", [0.2, 0.5, 0.8])
def test_a_damaged_deflate_stream_is_named_not_a_crash(
    auditor: Evidence, capsys: pytest.CaptureFixture[str], where: float
) -> None:
    """Bytes flipped inside a member's compressed data (a bad disk, a truncated copy): ISA-L's
    inflate or the member's CRC-32 fails, and verify says the bundle cannot be read."""
    data = bytearray(auditor.bundle.read_bytes())
    with zipfile.ZipFile(auditor.bundle) as archive:
        info = archive.getinfo(bundle.CHAIN)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    at = start + int(info.compress_size * where)
    data[at : at + 8] = bytes(b ^ 0xA5 for b in data[at : at + 8])
    damaged = auditor.folder / f"damaged-{where}.zip"
    damaged.write_bytes(bytes(data))
    code, out = _verify(damaged, auditor.public_key, capsys)
    assert code == 1
    assert "NOT VERIFIED" in out
    assert "is not a readable audit bundle" in out or bundle.CHAIN in out, out


def test_a_deleted_record_is_caught_and_named(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    removed: dict[str, object] = {}

    def delete(members: dict[str, bytes]) -> None:
        lines = _chain_lines(members)
        removed.update(lines.pop(len(lines) // 2))
        _put_chain(members, lines)

    code, out = _verify(_tampered(auditor, "deleted", delete), auditor.public_key, capsys)
    assert code == 1
    assert (f"{removed['kind']} record seq {removed['seq']} ({removed['key']}) is missing:"
            " deleted") in out  # fmt: skip


def test_two_swapped_records_are_caught_and_named(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    def swap(members: dict[str, bytes]) -> None:
        lines = _chain_lines(members)
        lines[3], lines[4] = lines[4], lines[3]
        swap.seqs = (lines[3]["seq"], lines[4]["seq"])  # type: ignore[attr-defined]
        _put_chain(members, lines)

    code, out = _verify(_tampered(auditor, "swapped", swap), auditor.public_key, capsys)
    later, earlier = swap.seqs  # type: ignore[attr-defined]
    assert code == 1
    assert "reordered" in out and f"seq {earlier} " in out and f"seq {later} " in out


def test_an_edited_report_body_is_caught_and_named(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(members: dict[str, bytes]) -> None:
        lines = [json.loads(line) for line in members[bundle.REPORTS].splitlines()]
        item = lines[0]["reports"][0]  # the first report of the first group: [id, body]
        report = pb.PostureReport.FromString(base64.b64decode(item[1]))
        report.firewall.enabled = not report.firewall.enabled  # the firewall said on, or off
        item[1] = base64.b64encode(report.SerializeToString()).decode()
        edit.report = item[0]  # type: ignore[attr-defined]
        members[bundle.REPORTS] = b"".join(bundle.jsonl(line) for line in lines)

    code, out = _verify(_tampered(auditor, "facts", edit), auditor.public_key, capsys)
    assert code == 1
    assert f"({edit.report}) does not match its chain entry: edited" in out  # type: ignore[attr-defined]




def test_a_body_named_twice_on_a_groups_line_is_caught_and_named(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    """The group's line is worded only when something is wrong with it (a quarter has
    hundreds of thousands): this is such a case."""

    def repeat(members: dict[str, bytes]) -> None:
        lines = [json.loads(line) for line in members[bundle.REPORTS].splitlines()]
        lines[0]["reports"].append(lines[0]["reports"][0])  # the same report and body again
        repeat.seq = lines[0]["seq"]  # type: ignore[attr-defined]
        members[bundle.REPORTS] = b"".join(bundle.jsonl(line) for line in lines)

    code, out = _verify(_tampered(auditor, "twice", repeat), auditor.public_key, capsys)
    assert code == 1
    named = f"the bodies of {chain.REPORT_GROUP} record seq {repeat.seq} ("  # type: ignore[attr-defined]
    assert named in out
    assert "name a report twice: inserted" in out
@pytest.mark.parametrize("payload", ["{}", "not JSON", "[1, 2]"])
def test_a_record_edited_past_recognition_is_named_and_the_verifier_goes_on(
    auditor: Evidence, capsys: pytest.CaptureFixture[str], payload: str
) -> None:
    """A report record whose payload lost its fields, or is not a JSON object at all: the
    verifier names it and says the report cannot be drawn from the records, instead of
    stopping on it."""

    def edit(members: dict[str, bytes]) -> None:
        lines = _chain_lines(members)
        target = next(line for line in lines if line["kind"] == chain.REPORT_GROUP)
        target["payload"] = payload
        edit.seq = target["seq"]  # type: ignore[attr-defined]
        _put_chain(members, lines)

    code, out = _verify(_tampered(auditor, "gutted", edit), auditor.public_key, capsys)
    assert code == 1, out
    assert f"reports record seq {edit.seq} " in out and "does not match its hash" in out  # type: ignore[attr-defined]
    assert "the report cannot be made again from the records" in out


def test_an_edited_manifest_fails_the_signature(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(members: dict[str, bytes]) -> None:
        manifest = json.loads(members[bundle.MANIFEST])
        manifest["period"]["to"] = "2099-01-01T00:00:00+00:00"
        members[bundle.MANIFEST] = json.dumps(manifest).encode()

    code, out = _verify(_tampered(auditor, "manifest", edit), auditor.public_key, capsys)
    assert code == 1 and "the signature does not match" in out


def test_another_public_key_does_not_verify(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    other = auditor.folder / "other.pem"
    other.write_bytes(signing.public_pem(Ed25519PrivateKey.generate().public_key()))
    code, out = _verify(auditor.bundle, other, capsys)
    assert code == 1 and "signed by another key" in out


def test_a_consistently_rehashed_chain_is_still_caught(auditor: Evidence) -> None:
    """An editor who recomputes every hash after the edit still cannot match the signed head."""
    members = _members(auditor.bundle)
    entries = [bundle.parse_entry(line) for line in _chain_lines(members)]
    edited, prev = [], entries[0].prev_hash
    for number, e in enumerate(entries):
        payload = e.payload.replace(b'"FAIL"', b'"PASS"') if number >= 2 else e.payload
        digest = chain.entry_hash(prev, e.seq, kind=e.kind, at_us=e.at_us, key=e.key,
                                  payload=payload)  # fmt: skip
        edited.append(chain.Entry(e.seq, e.kind, e.at_us, e.key, payload, prev, digest))
        prev = digest
    _put_chain(members, [bundle.entry_line(e) for e in edited])
    out = written(members, auditor.folder / "rehashed.zip")
    verdict = verify_bundle(out, signing.load_public(auditor.public_key.read_bytes()))
    assert not verdict.ok
    assert any("replaced" in p or "not the signed last entry" in p for p in verdict.problems)


# --- the chain in the database ---------------------------------------------------------------

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def _enroll(store: Store, device_id: str) -> None:
    token = new_token()
    store.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(token, T0, DeviceRecord(device_id, "01", T0 + dt.timedelta(days=90)))


def _record(report_id: str, device_id: str = "d1") -> ReportRecord:
    return ReportRecord(report_id, device_id, T0, T0, "1", b"body", "h", "linux", "Debian", "12")


def _chain_of(store: Store) -> list[chain.Entry]:
    head = store.evidence.chain_head()
    return store.evidence.chain_entries(1, head.seq) if head else []


def _links(entries: list[chain.Entry]) -> bool:
    prev = chain.GENESIS
    for entry in entries:
        if entry.prev_hash != prev or entry.recomputed() != entry.hash:
            return False
        prev = entry.hash
    return True


def test_the_chain_in_the_database_is_append_only(tmp_path: Path) -> None:
    database = fresh_database(tmp_path, "db.sqlite")
    store = Store.open(database)
    _enroll(store, "d1")
    store.close()
    other = raw(database)
    try:
        with pytest.raises(database_errors(), match="the evidence chain is append-only"):
            other.execute("UPDATE evidence_chain SET payload = ?", (b"\x00",))
        with pytest.raises(database_errors(), match="the evidence chain is append-only"):
            other.execute("DELETE FROM evidence_chain")
        assert other.execute("SELECT COUNT(*) FROM evidence_chain").fetchone()[0] == 1
    finally:
        other.close()


def _refuse_bad_verdicts(store: Store) -> type[Exception]:
    """A trigger that refuses any verdict of the report 'bad' (as a constraint would), and
    the engine's exception for it."""
    if store._db.dialect.is_sqlite:
        store._db.execute(
            "CREATE TEMP TRIGGER refuse_bad BEFORE INSERT ON main.check_results"
            " WHEN NEW.report_id = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        return sqlite3.IntegrityError
    import psycopg  # noqa: PLC0415  (installed wherever the PostgreSQL leg runs)

    # In the test's own schema (the search path's first), so no other test sees it.
    store._db.execute(
        "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.report_id = 'bad' THEN"
        " RAISE EXCEPTION 'refused' USING ERRCODE = 'restrict_violation'; END IF;"
        " RETURN NEW; END $$"
    )
    store._db.execute(
        "CREATE TRIGGER refuse_bad BEFORE INSERT ON check_results"
        " FOR EACH ROW EXECUTE FUNCTION refuse_bad()"
    )
    return psycopg.IntegrityError


def test_a_report_rolled_back_in_its_savepoint_leaves_no_chain_entry(tmp_path: Path) -> None:
    store = Store.open(fresh_database(tmp_path, "db.sqlite"))
    _enroll(store, "d1")
    # Fails after the report and its chain entry were written, inside the report's savepoint.
    refused = _refuse_bad_verdicts(store)
    outcomes = store.reports.store_reports([
        (_record("good"), [CheckResult("firewall", "PASS", "on")]),
        (_record("bad"), [CheckResult("antivirus", "FAIL", "off")]),
    ])  # fmt: skip
    assert isinstance(outcomes[1], refused), outcomes[1]
    assert "refused" in str(outcomes[1])
    store.sealing.seal_all()
    entries = _chain_of(store)
    keys = [(r.kind, r.key) for e in entries for r in chain.as_reports(e)]
    assert (chain.REPORT, "good") in keys and (chain.REPORT, "bad") not in keys
    assert not any(e.kind == chain.STATE and "antivirus" in e.key for e in entries)
    assert _links(entries)
    store.close()


def test_every_writer_chains_its_record_in_its_transaction(tmp_path: Path) -> None:
    store = Store.open(fresh_database(tmp_path, "db.sqlite"))
    _enroll(store, "d1")
    store.reports.store_report(_record("r1"), [CheckResult("firewall", "FAIL", "off")])
    store.waivers.add_waiver(Waiver("w-1", "d1", "firewall", "Li", "rollout", T0,
                                    T0 + dt.timedelta(days=10)), T0)  # fmt: skip
    store.waivers.revoke_waiver("w-1", T0 + dt.timedelta(hours=1), "done")
    store.identity.set_device_status("d1", "revoked", T0, "stolen")
    store.admin.audit(T0, actor="local:it", credential_id=None, role="admin",
                      command="device revoke", arguments={"device_id": "d1"}, outcome="ok",
                      message="", peer="local")  # fmt: skip
    # A report waits for its seal (store/sealing.py): a group entry holds it once sealed.
    assert store.sealing.waiting() == 1
    store.sealing.seal_all()
    entries = _chain_of(store)
    assert [(e.kind, e.key) for e in entries] == [
        (chain.DEVICE, "d1/1"), (chain.STATE, chain.state_key("d1", "firewall", to_us(T0))),
        (chain.WAIVER, "w-1/1"), (chain.WAIVER, "w-1/2"), (chain.DEVICE, "d1/2"),
        (chain.ADMIN, "1"), (chain.REPORT_GROUP, chain.group_key(1, 1)),
    ]  # fmt: skip
    assert [r.key for r in chain.as_reports(entries[-1])] == ["r1"]
    assert store.sealing.waiting() == 0
    assert _links(entries)
    assert [e.at_us for e in entries] == sorted(e.at_us for e in entries)
    store.close()


# A SQLite file of schema 3 migrated to the chain (PostgreSQL databases start at schema 8).
@pytest.mark.sqlite_only
def test_the_migration_chains_a_database_written_before_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Store.open(path)
    _enroll(store, "d1")
    store.reports.store_report(_record("r1"), [CheckResult("firewall", "PASS", "on")])
    store.waivers.add_waiver(Waiver("w-1", "d1", "firewall", "Li", "why", T0,
                            T0 + dt.timedelta(days=3)), T0)  # fmt: skip
    store.admin.audit(T0, actor="local:it", credential_id=None, role="admin", command="waiver add",
                arguments={}, outcome="ok", message="", peer="local")  # fmt: skip
    assert store.sealing.waiting() == 1  # r1 waits for its seal: the migration chains it
    live = {(e.kind, e.key): e.payload for e in _chain_of(store)}
    store.close()
    # The same database as a collector of schema 3 left it: no chain, no report numbers.
    old = sqlite3.connect(path)
    old.executescript(
        "DROP TABLE evidence_chain; DROP TABLE report_groups; DROP INDEX reports_by_number;"
        " DROP TRIGGER reports_are_append_only_update; ALTER TABLE reports DROP COLUMN n;"
        " UPDATE schema_version SET version = 3;"
    )
    old.close()
    upgraded = Store.open(path)
    migrated = _chain_of(upgraded)
    r1 = chain.report_payload(("r1", "d1", to_us(T0), to_us(T0), "1", None), b"body")
    assert {(e.kind, e.key): e.payload for e in migrated} == live | {
        (chain.REPORT, "r1"): chain.canonical(r1)
    }
    assert _links(migrated)
    version = upgraded._db.execute("SELECT version FROM schema_version").fetchone()[0]
    assert version == store_module.SCHEMA_VERSION
    assert upgraded.sealing.waiting() == 0  # chained by the migration, never sealed again
    # Chained once: a later open adds nothing, and new records link on to the migrated head.
    upgraded.close()
    again = Store.open(path)
    again.reports.store_report(_record("r2"), [])
    again.sealing.seal_all()
    after = _chain_of(again)
    assert len(after) == len(migrated) + 1 and _links(after)
    assert [r.key for r in chain.as_reports(after[-1])] == ["r2"]
    again.close()


# --- a later bundle continues an earlier one (`audit verify NEW --after OLD`) ---------------


def _new_collector(base: Path) -> tuple[Store, Path, Path]:
    """A data folder (no server: the store is written directly), its store and public key."""
    config, _ = initialize(base / "collector", "127.0.0.1", database=collector_database())
    key = base / "collector.pem"
    key.write_bytes(signing.public_pem(signing.load_or_create(config.data_dir).public_key()))
    store = Store.open(config.database)
    store.reports.seal_after_us = 0  # each report sealed as written: periods fall between them
    _enroll(store, "d1")
    return store, config.data_dir, key


def _reports(store: Store, *states: str) -> None:
    """One report per state, each a state change of d1's firewall at its own time."""
    for state in states:
        count = len(store.reports.report_ids())
        at = T0 + dt.timedelta(minutes=count)
        record = ReportRecord(f"r{count}", "d1", at, at, "1", b"body", "h", "linux", "Debian",
                              "12")  # fmt: skip
        store.reports.store_report(record, [CheckResult("firewall", state, state.lower())])


def _export(data: Path, start: dt.datetime, end: dt.datetime, out: Path) -> Path:
    assert collector_cli(["audit", "export", "--data", str(data), "--from", start.isoformat(),
                          "--to", end.isoformat(), "--out", str(out)]) == 0  # fmt: skip
    return out


def _moment() -> dt.datetime:
    """Now, between two writes: entries before it and after it fall on either side."""
    moment = utcnow()
    time.sleep(0.002)
    return moment


def _verify_after(
    new: Path, old: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = collector_cli(["audit", "verify", str(new), "--after", str(old), "--public-key",
                          str(key)])  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _manifest(path: Path) -> dict[str, Any]:
    value = json.loads(_members(path)[bundle.MANIFEST])
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True)
class Exports:
    key: Path
    old: Path  # the first period
    next: Path  # the period after it
    overlapping: Path  # both periods
    gap: Path  # starts in the middle of the next period: nothing links it to `old`


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    base = tmp_path_factory.mktemp("continuing")
    store, data, key = _new_collector(base)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL", "PASS")
    boundary = _moment()
    old = _export(data, start, boundary, base / "2026-10.zip")
    _reports(store, "FAIL", "PASS")
    middle = _moment()
    _reports(store, "FAIL")
    end = utcnow() + dt.timedelta(minutes=1)
    store.close()
    return Exports(
        key, old, _export(data, boundary, end, base / "2026-11.zip"),
        _export(data, start, end, base / "2026-10-11.zip"),
        _export(data, middle, end, base / "late-2026-11.zip"),
    )  # fmt: skip


def _resigned(exports: Exports, members: dict[str, bytes], out: Path) -> Path:
    """`members` as one who holds the signing key would ship them (`bundle_members.resigned`):
    only the records' own checks can tell."""
    return resigned(members, exports.key.parent / "collector", out)


@pytest.mark.parametrize("change", ["dropped", "renamed"])
def test_the_index_names_every_entry_of_the_period_as_it_is(
    exports: Exports, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    # Re-signed, an index with a line dropped, or naming another kind and key beside the right
    # hash, verified: only the index's hash was compared, and only where it had a line.
    members = _members(exports.old)
    lines = members[bundle.INDEX].splitlines(keepends=True)
    seq, kind, _key, digest = json.loads(lines[1])
    if change == "dropped":
        del lines[1]
    else:
        lines[1] = (json.dumps([seq, "admin", "1", digest]) + "\n").encode()
    members[bundle.INDEX] = b"".join(lines)
    code, out = _verify(_resigned(exports, members, tmp_path / f"{change}.zip"), exports.key,
                        capsys)  # fmt: skip
    assert code == 1
    expected = "has no line in index.jsonl" if change == "dropped" else "is not the entry the index"
    assert f"{kind} record seq {seq}" in out and expected in out, out


def test_a_chain_line_carries_only_what_its_hash_covers(
    exports: Exports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members = _members(exports.old)
    lines = _chain_lines(members)
    lines[0]["note"] = "approved by the auditor"  # beside the hashed fields: verified before
    _put_chain(members, lines)
    code, out = _verify(_resigned(exports, members, tmp_path / "extra.zip"), exports.key, capsys)
    assert code == 1 and "chain.jsonl line 1: fields other than a chain entry's" in out, out


def test_the_bundle_of_the_next_period_continues_the_last(
    exports: Exports, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _manifest(exports.old)["chain"], _manifest(exports.next)["chain"]
    # Consecutive: the next period links in at the very entry that was the head at export.
    assert new["prev_seq"] == old["head_seq"] == old["last_seq"] == new["first_seq"] - 1
    code, out, _ = _verify_after(exports.next, exports.old, exports.key, capsys)
    assert code == 0, out
    assert out.startswith("VERIFIED: 2026-11.zip continues 2026-10.zip") and "验证通过" in out
    assert f"(seq {old['head_seq']}, hash {old['head_hash'][:16]}…)" in out
    assert "the entry just before 2026-11.zip's period" in out
    assert f"every sequence number both hold (seq {old['head_seq']})" in out


def test_an_overlapping_later_bundle_continues_the_earlier(
    exports: Exports, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _manifest(exports.old)["chain"]
    code, out, _ = _verify_after(exports.overlapping, exports.old, exports.key, capsys)
    assert code == 0, out
    assert "an entry of 2026-10-11.zip's period" in out
    assert f"every sequence number both hold (seq {old['first_seq']}–{old['head_seq']})" in out


def test_the_arguments_the_wrong_way_round_are_refused_clearly(
    exports: Exports, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _verify_after(exports.old, exports.next, exports.key, capsys)
    assert code == 1 and out == ""
    assert "error: 2026-11.zip is not older than 2026-10.zip" in err
    assert "`audit verify 2026-11.zip --after 2026-10.zip`" in err
    # When each was exported, in the company's time zone as the bundles record it, not UTC.
    assert "(UTC+08:00)" in err and "+00:00" not in err, err


def test_a_bundle_after_itself_is_refused_as_the_same_file(
    exports: Exports, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "2026-11.zip continues 2026-11.zip".
    code, out, err = _verify_after(exports.next, exports.next, exports.key, capsys)
    assert code == 1 and out == ""
    assert "2026-11.zip and 2026-11.zip are the same file" in err, err


def test_a_bundle_that_nothing_links_to_the_earlier_is_not_taken_as_continuing(
    exports: Exports, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _manifest(exports.old)["chain"], _manifest(exports.gap)["chain"]
    assert new["prev_seq"] > old["head_seq"]
    code, out, _ = _verify_after(exports.gap, exports.old, exports.key, capsys)
    assert code == 1
    assert f"seq {old['head_seq'] + 1}–{new['prev_seq']} are in neither bundle" in out
    assert "NOT VERIFIED" in out and "无法证明" in out


def test_a_changed_bundle_is_named_before_any_comparison(
    exports: Exports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members = _members(exports.next)
    lines = _chain_lines(members)
    lines[0]["payload"] = str(lines[0]["payload"]) + " "  # any change to a hashed record
    _put_chain(members, lines)
    changed = written(members, tmp_path / "2026-11.zip")
    code, out, _ = _verify_after(changed, exports.old, exports.key, capsys)
    assert code == 1
    assert f"problem: 2026-11.zip: {lines[0]['kind']} record seq {lines[0]['seq']} " in out
    assert "each bundle must verify alone" in out


def test_bundles_of_two_collectors_are_refused_clearly(
    exports: Exports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS")
    store.close()
    other = _export(data, start, utcnow() + dt.timedelta(minutes=1), tmp_path / "other.zip")
    code, _, err = _verify_after(other, exports.old, exports.key, capsys)
    assert code == 1
    assert "the bundles are from different collectors: 2026-10.zip was signed by" in err
    assert _manifest(other)["signing_key"] in err


def test_a_format_1_bundle_still_verifies_alone_and_as_the_earlier(
    exports: Exports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle written before format 2 (no `prev_seq`), signed as that exporter signed it."""
    members = _members(exports.old)
    manifest = json.loads(members[bundle.MANIFEST])
    manifest["format"] = "devposture-audit-bundle/1"
    del manifest["chain"]["prev_seq"]
    members[bundle.MANIFEST] = json.dumps(manifest, sort_keys=True, indent=1).encode()
    old = _resigned(exports, members, tmp_path / "2026-10.zip")
    assert _verify(old, exports.key, capsys)[0] == 0
    code, out, _ = _verify_after(exports.next, old, exports.key, capsys)
    assert code == 0, out


# The table each rewritten kind's record lives in, and the columns its payload gives.
_TABLE_OF = {chain.STATE: ("state_changes", ("device_id", "check_id", "since_us")),
             chain.REPORT_GROUP: ("reports", ("report_id",))}  # fmt: skip


def _rewrite(database: DatabaseTarget, seq: int, old: bytes, new: bytes) -> None:
    """What the operator can do with the database: edit a chained record and its row alike
    (so that the tables still answer to the chain), recompute every later hash so that the
    chain links again, and put the append-only triggers back."""
    with unguarded(database) as db:
        rows = db.execute(
            "SELECT seq, kind, at_us, record_key, payload, prev_hash FROM evidence_chain"
            " WHERE seq >= ? ORDER BY seq", (seq,),
        ).fetchall()  # fmt: skip
        prev = bytes(rows[0][5])
        for number, kind, at_us, key, payload, _ in rows:
            body = bytes(payload).replace(old, new) if number == seq else bytes(payload)
            if number == seq:
                table, keys = _TABLE_OF[kind]
                record = json.loads(body)
                record = record["reports"][0] if kind == chain.REPORT_GROUP else record
                name, value = json.loads(b"{" + new + b"}").popitem()
                db.execute(f"UPDATE {table} SET {name} = ? WHERE "
                           + " AND ".join(f"{k} = ?" for k in keys),
                           (value, *[record[k] for k in keys]))  # fmt: skip
            digest = chain.entry_hash(prev, number, kind=kind, at_us=at_us, key=key,
                                      payload=body)  # fmt: skip
            db.execute(
                "UPDATE evidence_chain SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (body, prev, digest, number),
            )
            prev = digest
    # The triggers are back: the rewrite leaves no trace of itself in the schema.
    check = raw(database)
    try:
        with pytest.raises(database_errors(), match="the evidence chain is append-only"):
            check.execute("DELETE FROM evidence_chain WHERE seq = ?", (seq,))
    finally:
        check.close()


@dataclass(frozen=True)
class Rewritten:
    key: Path
    seq: int  # the record rewritten after `old` was exported
    old: Path
    overlapping: Path  # exported after the rewrite: both periods
    following: Path  # exported after the rewrite: the period after `old`'s


def _rewritten(base: Path, kind: str, old: bytes, new: bytes) -> Rewritten:
    """Export a period; rewrite the first of its records of `kind` holding `old` in the
    database, rehashing the chain after it; export again, overlapping and following."""
    store, data, key = _new_collector(base)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    boundary = _moment()
    earlier = _export(data, start, boundary, base / "2026-10.zip")
    _reports(store, "PASS")
    store.close()
    target = next(line for line in _chain_lines(_members(earlier))
                  if line["kind"] == kind and old.decode() in str(line["payload"]))  # fmt: skip
    seq = int(str(target["seq"]))
    _rewrite(load(data).database, seq, old, new)
    end = utcnow() + dt.timedelta(minutes=1)
    return Rewritten(key, seq, earlier, _export(data, start, end, base / "2026-10-11.zip"),
                     _export(data, boundary, end, base / "2026-11.zip"))  # fmt: skip


def test_a_state_rewritten_between_exports_is_caught_naming_its_seq(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _rewritten(tmp_path, chain.STATE, b'"state":"FAIL"', b'"state":"PASS"')
    seq = history.seq
    # Each new bundle verifies alone: the operator recomputed the chain and signed it.
    assert _verify(history.overlapping, history.key, capsys)[0] == 0
    assert _verify(history.following, history.key, capsys)[0] == 0

    code, out, _ = _verify_after(history.overlapping, history.old, history.key, capsys)
    assert code == 1
    assert (f"the chains diverge at seq {seq}: 2026-10.zip holds state record seq {seq} (d1/"
            in out)  # fmt: skip
    assert f"2026-10-11.zip holds state record seq {seq} (d1/" in out
    assert "with other content" in out and "rewritten after 2026-10.zip was exported" in out
    assert "NOT VERIFIED" in out and "历史被改写" in out
    # The next period links in just after that record (the report group sealing its report
    # follows it), and shows it among its opening entries: named by its seq.
    code, out, _ = _verify_after(history.following, history.old, history.key, capsys)
    assert code == 1
    assert (f"state record seq {seq} (d1/firewall/" in out
            and f"in 2026-10.zip is not what 2026-11.zip holds at seq {seq}" in out)  # fmt: skip
    assert "the entry just before 2026-11.zip's period" in out


def test_an_export_refuses_a_period_whose_tables_were_edited_naming_the_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator edits the state history and a report body, not the chain: the dashboard
    would show what the evidence does not, and the export refuses, naming both rows."""
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    store.close()
    with unguarded(load(data).database) as db:
        db.execute("UPDATE state_changes SET state = 'PASS' WHERE state = 'FAIL'")
        report_id = db.execute("SELECT MIN(report_id) FROM reports").fetchone()[0]
        db.execute("UPDATE reports SET body = ? WHERE report_id = ?", (b"edited", report_id))
    out = tmp_path / "refused.zip"
    capsys.readouterr()
    code = collector_cli(["audit", "export", "--data", str(data), "--from", start.isoformat(),
                          "--to", _moment().isoformat(), "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and not out.exists() and not list(tmp_path.glob("*.partial"))
    assert "audit export refused: the tables no longer hold 2 records of the period" in err, err
    assert "state_changes row [device 'd1', check 'firewall'" in err
    assert "state is 'PASS' here, 'FAIL' in the chain" in err
    # The state change's moment as a person reads it: in the company's zone, as audit check.
    assert "UTC+08:00)" in err and " UTC)" not in err, err
    assert f"reports row [report_id '{report_id}']" in err and "report body was changed" in err
    assert "audit check" in err


def test_a_report_rewritten_between_exports_is_caught_naming_its_seq(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _rewritten(tmp_path, chain.REPORT_GROUP, b'"agent_version":"1"',
                         b'"agent_version":"0"')  # fmt: skip
    code, out, _ = _verify_after(history.overlapping, history.old, history.key, capsys)
    assert code == 1
    assert f"the chains diverge at seq {history.seq}: 2026-10.zip holds reports record" in out
    # The next period holds none of the old period's reports: it says where, at most.
    head = _manifest(history.old)["chain"]["head_seq"]
    code, out, _ = _verify_after(history.following, history.old, history.key, capsys)
    assert code == 1
    assert (f"the chains diverge at or before seq {head}: 2026-10.zip's last entry, its chain"
            " head at export" in out)  # fmt: skip
    assert f"so a record at or before seq {head} was changed, removed or inserted" in out
    assert "neither bundle holds both versions of it in full" in out


# --- the report's layout ----------------------------------------------------------------

# The digest of a fixed report in the current layout. A change to the report's output must
# come with a new html.LAYOUT (and its digest here): a verifier redraws only its own layout,
# so an unannounced change would fail every bundle the previous version signed.
LAYOUT_DIGESTS = {2: "8e48c86d3c3bdb9d1a44acffd15f03152f03a478a8b63a5ab06613a9d77bf270",
                  3: "51e1ae61e3df30f8003e5a580eae08461b54bdf330ce54e91bda66975b269553",
                  4: "89cc2bcfa24baf3a2c65ab891be926805c812c66184fa22e8bc75a4959cf92c8",
                  5: "f4a915244438e4622eb5b32b06a3ed2d78ed49c196419b62229760f0f3777740",
                  # 6 changes the figures of a device that left at a week's very end only
                  # (test_evidence_summary): the fixed report, which has none, draws alike.
                  6: "f4a915244438e4622eb5b32b06a3ed2d78ed49c196419b62229760f0f3777740"}


_FIXED_MANIFEST = {
    "period": {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    "generated_at": "2026-12-01T00:00:01Z",
    "collector": {"hostname": "collector-1", "ca_fingerprint": "sha256:00"},
    "signing_key": "ed25519:00", "counts": {"report": 0},
    "chain": {"first_seq": 1, "last_seq": 0, "last_hash": "00" * 32},
}  # fmt: skip


def _fixed_report(layout: int = html.LAYOUT) -> bytes:
    header = html.header_of(_FIXED_MANIFEST)
    # Layout 4 on: a failure past grace whose reason the exporter worded in both languages.
    reason = 'fw.off {"product":"ufw"}'
    context = {"reason_words": {reason: ["防火墙 ufw 已关闭", "the firewall ufw is off"]}}
    figures = Summary(header, context)
    figures.past_grace[("d1", "firewall")] = PastGrace(
        "d1", "firewall", past_us=3_600_000_000, first_past_us=1_793_000_000_000_000,
        episodes=1, reason=reason,
    )  # fmt: skip
    figures.finish()
    return html.draw(header, context, figures, layout)


def test_the_report_layout_is_named_for_what_it_draws() -> None:
    assert hashlib.sha256(_fixed_report()).hexdigest() == LAYOUT_DIGESTS[html.LAYOUT], (
        "the audit report's output changed: give it a new html.LAYOUT and record its digest"
    )


@pytest.mark.parametrize("layout", html.DRAWS)
def test_an_older_layout_is_still_drawn_as_it_was(layout: int) -> None:
    """A bundle exported by the previous version is redrawn (so verified) in its own layout."""
    assert hashlib.sha256(_fixed_report(layout)).hexdigest() == LAYOUT_DIGESTS[layout]


def test_the_report_shows_the_export_s_time_and_its_events_for_a_reader_in_beijing() -> None:
    """An auditor in Beijing read "Generated 2026-11-30T16:30:00+00:00" (UTC, the day before
    theirs) and the records' English words (enrolled, renewed; ok, denied)."""
    header = html.header_of(_FIXED_MANIFEST | {"generated_at": "2026-11-30T16:30:00+00:00"})
    figures = Summary(header, {})
    figures.device_events.update({"enrolled": 3, "renewed": 2, "relabelled": 1})
    figures.admin_actions.update({("waiver add", "ok"): 2, ("token create", "denied"): 1})
    figures.finish()
    page = html.draw(header, {}, figures).decode()
    assert "2026-12-01 00:30 (2026-11-30T16:30:00+00:00)" in page
    for words in ("注册 enrolled", "证书续期 renewed", "成功 ok", "拒绝 denied", ">relabelled<"):
        assert words in page, words


def test_a_bundle_drawn_by_another_layout_verifies_by_its_signature_and_says_so(
    exports: Exports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle an older devposture exported (layout 1, another report.html), verified by
    this one: its report cannot be redrawn, which the verdict notes; every other check holds,
    and a report.html changed after signing still fails."""
    members = _members(exports.old)
    manifest = json.loads(members[bundle.MANIFEST])
    manifest["report_layout"] = 1
    members[bundle.HTML] = members[bundle.HTML].replace(b"--after", b"")
    members[bundle.MANIFEST] = json.dumps(manifest, sort_keys=True, indent=1).encode()
    code, out = _verify(_resigned(exports, members, tmp_path / "layout-1.zip"), exports.key,
                        capsys)  # fmt: skip
    assert code == 0, out
    assert ("note: report.html was drawn by report layout 1, this devposture draws layout"
            f" {html.LAYOUT}") in out
    members[bundle.HTML] += b"<p>added later</p>"
    code, out = _verify(written(members, tmp_path / "layout-1-changed.zip"), exports.key, capsys)
    assert code == 1 and "member report.html was changed after the collector signed it" in out


def test_the_printable_report_words_each_reason_in_chinese_and_english(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reason is stored as a code with its parameters (issue 19): the report shows it in
    words, in both languages, as the exporter worded it, and the verifier draws it again from
    the bundle alone."""
    store, data, key = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    failing = encode("av.disabled", product="ClamAV")
    collected = utcnow() - dt.timedelta(days=3)  # failing for three days: past its grace
    record = ReportRecord("r-av", "d1", utcnow(), collected, "1", b"body", "h", "linux",
                          "Debian", "12")  # fmt: skip
    store.reports.store_report(record, [CheckResult("antivirus", "FAIL", failing)])
    store.close()
    bundle_path = _export(data, start, _moment(), tmp_path / "worded.zip")
    members = _members(bundle_path)
    context = json.loads(members[bundle.CONTEXT])
    assert context["reason_words"] == {failing: ["ClamAV：已停用", "ClamAV: disabled"]}
    page = members[bundle.HTML].decode("utf-8")
    assert "ClamAV：已停用<br>ClamAV: disabled" in page and failing not in page
    code, out = _verify(bundle_path, key, capsys)
    assert code == 0, out


# --- the bundle's file: whole, under a name that was free ----------------------------------


def test_a_partial_left_by_a_killed_export_neither_stops_the_next_nor_is_taken(
    tmp_path: Path,
) -> None:
    """An export SIGKILLed (or the machine cut off) leaves its partial file behind. The next
    export to the same name once failed on it ("File exists"), then deleted it."""
    store, data, key = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS")
    store.close()
    out = tmp_path / "2026-q4.zip"
    left = [tmp_path / "2026-q4.zip.partial", tmp_path / "2026-q4.zip.0badc0de.partial"]
    for path in left:
        path.write_bytes(b"PK half a bundle")
    _export(data, start, _moment(), out)
    assert collector_cli(["audit", "verify", str(out), "--public-key", str(key)]) == 0
    assert sorted(tmp_path.glob("*.partial")) == sorted(left), "another writing's file taken"
    assert all(path.read_bytes() == b"PK half a bundle" for path in left)


def test_a_file_made_under_the_bundles_name_meanwhile_is_kept_and_the_export_says_so(
    tmp_path: Path,
) -> None:
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    out = tmp_path / "bundle.zip"

    def someone_else(done: int, total: int) -> None:  # while the bundle is being written
        if not out.exists():
            out.write_bytes(b"someone else's file")

    with pytest.raises(FileExistsError, match=r"bundle\.zip exists already: give a new file name"):
        export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out,
                      progress=someone_else)  # fmt: skip
    store.close()
    assert out.read_bytes() == b"someone else's file"
    assert not list(tmp_path.glob("*.partial"))


_TEMPORARY_FILE = tempfile.TemporaryFile


class _SizedSpool:
    """A temporary file the export spools a member into, its size noted as it closes."""

    sizes: ClassVar[list[int]] = []

    def __init__(self) -> None:
        self._file = _TEMPORARY_FILE()  # closed by __exit__

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _SizedSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.flush()
        _SizedSpool.sizes.append(os.fstat(self._file.fileno()).st_size)
        self._file.close()


def test_the_index_and_the_bodies_wait_deflated_not_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip takes one member at a time, so the index and the report bodies wait in temporary
    files while the chain is written. They wait deflated: whole, an hourly quarter's bodies
    took tens of gigabytes of the temporary folder's disk (often the collector's own)."""
    store, data, key = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    for n in range(300):  # real reports: a device's repeat each other, as a fleet's do
        report = make_report("d1", T0 + dt.timedelta(minutes=n))
        at = T0 + dt.timedelta(minutes=n)
        record = ReportRecord(report.report_id, "d1", at, at, "1", report.SerializeToString(),
                              "h", "linux", "Debian", "12")  # fmt: skip
        store.reports.store_report(record, [CheckResult("firewall", "PASS", "pass")])
    _SizedSpool.sizes = []
    monkeypatch.setattr(tempfile, "TemporaryFile", _SizedSpool)  # as the export takes it
    out = tmp_path / "spooled.zip"
    export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out)
    store.close()
    assert collector_cli(["audit", "verify", str(out), "--public-key", str(key)]) == 0
    with zipfile.ZipFile(out) as archive:
        members = [archive.getinfo(name) for name in (bundle.INDEX, bundle.REPORTS)]
        opening = archive.getinfo(bundle.OPENING)  # made first, put in after the period
    assert len(_SizedSpool.sizes) == 3
    # The spools hold the members' deflated bytes, as they are (the index: hashes, which
    # deflate halves; the bodies: in base64, with repeated facts).
    assert sorted(_SizedSpool.sizes) == sorted(m.compress_size for m in [*members, opening])
    index, bodies = members
    assert index.compress_size < index.file_size * 0.6
    assert bodies.compress_size < bodies.file_size / 3


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("", "--out needs a file name for the bundle (a zip)"),
        ("-", "--out needs a file name for the bundle (a zip)"),
        ("missing/q4.zip", "does not exist: create it, or give --out a file in a folder"),
    ],
)
def test_an_out_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, words: str
) -> None:
    # It was refused only when the bundle was done, naming a temporary file nobody typed
    # ("[Errno 2] No such file or directory: '…/q4.zip.48241e9d.partial'"), or wrote "-".
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS")
    store.close()
    target = str(tmp_path / out) if out.startswith("missing") else out
    capsys.readouterr()
    code = collector_cli(["audit", "export", "--data", str(data), "--from", start.isoformat(),
                          "--to", _moment().isoformat(), "--out", target])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and words in err, err
    assert ".partial" not in err and "Errno" not in err
    assert not (tmp_path / "-").exists() and not Path("-").exists()


def test_a_full_temporary_folder_is_named_as_such_on_a_line_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The members wait in TMPDIR; when it filled, the error blamed the bundle's own file (on a
    # disk with 77 GB free) and followed the progress line on the same line.
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    store.close()
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))

    def full(path: Path) -> bool:  # what statvfs says of a full tmpfs, for the spool alone
        return Path(path) == spool

    monkeypatch.setattr(commands_module, "no_space_left", full)

    def write(self: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spooled.Spooled, "write", write)
    capsys.readouterr()
    code = collector_cli(["audit", "export", "--data", str(data), "--from", start.isoformat(),
                          "--to", _moment().isoformat(), "--out", str(tmp_path / "q.zip"),
                          "--progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert f"the temporary folder {spool} is full" in err and "TMPDIR" in err, err
    assert "\ndevposture-collector: error:" in err or err.startswith("devposture-collector:")


def _half_a_bundle(tmp_path: Path) -> tuple[list[str], str]:
    """A collector's export arguments (its folder and a period holding two reports), and a
    tmpfs size of half the bundle they make (which the export checks whole first)."""
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    store.close()
    export = ["audit", "export", "--data", str(data), "--from", start.isoformat(),
              "--to", _moment().isoformat()]  # fmt: skip
    whole = tmp_path / "whole.zip"
    assert collector_cli([*export, "--out", str(whole)]) == 0
    assert zipfile.ZipFile(whole).testzip() is None
    return export, f"{max(1, whole.stat().st_size // 2 // 4096) * 4}k"


def test_a_bundle_whose_own_disk_fills_is_refused_naming_that_disk_and_leaves_nothing_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out` on a real disk that fills while the bundle is written (a tmpfs of half the
    bundle's size): the export ends saying which disk filled and what to do, and leaves no
    file there (neither the bundle nor its temporary name)."""
    export, half = _half_a_bundle(tmp_path)
    with tmpfs(tmp_path / "small", half) as small:
        capsys.readouterr()
        code = collector_cli([*export, "--out", str(small / "q4.zip")])
        err = capsys.readouterr().err
        assert code == 1, err
        assert f"the disk holding {small} is full: free space there, or give --out a file" in err
        assert "Traceback" not in err and ".partial" not in err
        assert list(small.iterdir()) == []


def test_a_temporary_folder_on_a_real_full_disk_is_named_and_the_bundle_not_left_half_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The members wait in the temporary folder while the bundle is written: that folder on a
    real disk of half the bundle's size fills, and the export says so (the other test of it
    mocks the write), leaving no bundle where `--out` pointed."""
    export, half = _half_a_bundle(tmp_path)
    out = tmp_path / "q4.zip"
    with tmpfs(tmp_path / "spool", half) as spool:
        monkeypatch.setattr(tempfile, "tempdir", str(spool))
        capsys.readouterr()
        code = collector_cli([*export, "--out", str(out)])
        err = capsys.readouterr().err
        monkeypatch.undo()
        assert code == 1, err
        assert f"the temporary folder {spool} is full" in err and "TMPDIR" in err, err
        assert "Traceback" not in err
        assert list(spool.iterdir()) == []
    assert not out.exists() and [p.name for p in tmp_path.glob("q4.zip*")] == []


def test_a_bundle_without_its_signature_or_cut_short_is_told_so(
    auditor: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    # A missing manifest.sig read as "the signature does not match ... (this key is sha256:X,
    # the manifest names sha256:X)"; a truncated copy as "changed, or signed by another key".
    members = _members(auditor.bundle)
    del members[bundle.SIGNATURE]
    code, out = _verify(written(members, auditor.folder / "unsigned.zip"), auditor.public_key,
                        capsys)  # fmt: skip
    assert code == 1 and f"member {bundle.SIGNATURE} is missing" in out, out
    assert "the signature does not match" not in out
    cut = auditor.folder / "cut.zip"
    cut.write_bytes(auditor.bundle.read_bytes()[: auditor.bundle.stat().st_size // 2])
    code, out = _verify(cut, auditor.public_key, capsys)
    assert code == 1 and "the file is incomplete (a copy or download cut short)" in out, out


@pytest.mark.sqlite_only  # PostgreSQL's BIGINT column refuses text
def test_a_chain_time_typed_in_as_text_is_named_by_export_and_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps text typed into an INTEGER column: the export and `audit check` ended in
    an AssertionError's traceback where they read the entry. Both name it in one line."""
    store, data, _ = _new_collector(tmp_path)
    start = utcnow() - dt.timedelta(minutes=1)
    _reports(store, "PASS", "FAIL")
    store.close()
    with unguarded(load(data).database) as db:
        seq = db.execute("SELECT MIN(seq) FROM evidence_chain WHERE kind = 'state'").fetchone()[0]
        db.execute("UPDATE evidence_chain SET at_us = 'yesterday' WHERE seq = ?", (seq,))
    out = tmp_path / "refused.zip"
    capsys.readouterr()
    code = collector_cli(["audit", "export", "--data", str(data), "--from", start.isoformat(),
                          "--to", _moment().isoformat(), "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and not out.exists(), err
    assert f"entry at seq {seq} has a time that is not a whole number ('yesterday')" in err, err
    assert "Traceback" not in err
    monkeypatch.setenv("LC_ALL", "zh_CN.UTF-8")  # a Chinese reader
    assert collector_cli(["audit", "check", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"证据链中序号 {seq} 的条目时间不是整数（'yesterday'）" in err, err
