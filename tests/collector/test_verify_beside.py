"""`audit verify` reads a large bundle's report bodies in a process beside its walk
(`collector/evidence/body_lines.py`). Held here: the verdict is the same, word for word and
in the same order, whether the bodies were read beside the walk or in its own process, on a
bundle as exported and on bundles whose `reports.jsonl` was tampered with by a forger who
holds the signing key (so that only the records' own checks can tell); a damaged member is
named unreadable alike; a reading process that is killed stops the verification with an
error that is not a verdict. Real stores and bundles, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from devposture.collector import child_start
from devposture.collector.evidence import body_lines, bundle, export
from devposture.collector.evidence.member_lines import BundleUnreadable
from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.report_format import FORMAT_4
from devposture.policy import default_policy
from devposture.v1 import devposture_pb2 as pb
from tests.collector.bundle_members import members_of, written
from tests.collector.enrolled import enroll
from tests.collector.read_beside import (
    alike,
    damaged,
    forged_alike,
    unguarded_run,
    verdicts_two_ways,
)
from tests.databases import fresh_database
from tests.e2e.fleet import posture_report

T0 = dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC)
DEVICES = 12
ROUNDS = 100  # reports a device: 1,200 in all, in groups of one round


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, bundle): 1,200 real reports sealed in 100 groups, and what else the
    store chains of them (enrollments, state changes)."""
    folder = tmp_path_factory.mktemp("beside")
    store = Store.open(fresh_database(folder, "db.sqlite"))
    # Format 4's report groups, whose lines these tests forge (format 5's: test_export_facts).
    store.report_format.write(FORMAT_4)
    try:
        devices = [f"device-{n:02d}" for n in range(DEVICES)]
        for device in devices:
            enroll(store, device, T0 - dt.timedelta(days=1))
        for hour in range(ROUNDS):
            at = T0 + dt.timedelta(hours=hour)
            group = []
            for device in devices:
                report = posture_report(device, at)
                report.report_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{device}/{hour}"))
                record = ReportRecord(report.report_id, device, at, at, "1.4.2",
                                      report.SerializeToString(), "PC", "linux", "Debian",
                                      "12")  # fmt: skip
                state = "FAIL" if hour % 17 == 3 else "PASS"
                group.append((record, [CheckResult("firewall", state, "on")]))
            store.reports.store_reports(group)
            store.sealing.seal_all(to_us(at + dt.timedelta(minutes=1)))
        first = store.evidence.chain_entries(1, 1)[0]  # the chain's times are its writes'
        start = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=first.at_us)
        end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        out = export.export_bundle(store, default_policy(), folder, start=start, end=end,
                                   out=folder / "bundle.zip")  # fmt: skip
    finally:
        store.close()
    return folder, out.path


def _verdicts(
    path: Path, key_folder: Path, monkeypatch: pytest.MonkeyPatch, *, beside: bool = True
) -> list[tuple[Any, ...]]:  # fmt: skip
    """The verdict read in the walk's process, then beside it (where `beside`: the bundle
    holds a reports member to read there)."""
    return verdicts_two_ways(path, key_folder, monkeypatch, body_lines, body_lines.InProcess,
                             body_lines.Beside if beside else body_lines.InProcess)  # fmt: skip


def _lines(members: dict[str, bytes]) -> list[Any]:
    return [json.loads(line) for line in members[bundle.REPORTS].splitlines()]


def _put(members: dict[str, bytes], lines: Sequence[object]) -> None:
    members[bundle.REPORTS] = b"".join(
        line if isinstance(line, bytes) else bundle.jsonl(line) for line in lines
    )  # fmt: skip


def _edit_a_body(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    item = lines[5]["reports"][3]
    report = pb.PostureReport.FromString(base64.b64decode(item[1]))
    report.firewall.enabled = not report.firewall.enabled
    item[1] = base64.b64encode(report.SerializeToString()).decode()
    _put(members, lines)


def _drop_a_line(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    del lines[40]
    _put(members, lines)


def _repeat_a_line(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    _put(members, [*lines[:10], lines[9], *lines[10:]])


def _swap_two_lines(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    lines[20], lines[21] = lines[21], lines[20]
    _put(members, lines)


def _not_json(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    lines.insert(30, b"{not json\n")
    _put(members, lines)


def _malformed_group(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    lines[60] = {"reports": "none", "seq": 3}
    _put(members, lines)


def _a_body_moved_to_another_group(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    moved = lines[70]["reports"].pop()
    lines[71]["reports"].append(moved)
    _put(members, lines)


def _report_lines_of_old_formats(members: dict[str, bytes]) -> None:
    """A group's bodies written as a format 3 line each (one report, no facts shown)."""
    lines = _lines(members)
    group = lines.pop(50)
    assert isinstance(group, dict)
    for report_id, body in group["reports"]:
        lines.insert(50, {"body": body, "report_id": report_id, "seq": group["seq"]})
    _put(members, lines)


TAMPERED = [
    _edit_a_body, _drop_a_line, _repeat_a_line, _swap_two_lines, _not_json, _malformed_group,
    _a_body_moved_to_another_group, _report_lines_of_old_formats,
]  # fmt: skip


def test_a_bundle_as_exported_verifies_alike_read_beside_or_not(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, path = exported
    in_process = alike(_verdicts, path, folder, monkeypatch)
    assert in_process[0] is True, in_process


@pytest.mark.parametrize("tamper", TAMPERED, ids=lambda f: f.__name__.strip("_"))
def test_a_tampered_bundle_gets_the_same_verdict_read_beside_or_not(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tamper: Callable[[dict[str, bytes]], None],
) -> None:  # fmt: skip
    folder, path = exported
    in_process = forged_alike(_verdicts, path, folder, monkeypatch, tamper,
                              tmp_path / "forged.zip")  # fmt: skip
    assert in_process[0] is False and in_process[1], f"{tamper.__name__} went unseen"


def test_a_damaged_reports_member_is_named_unreadable_alike(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Bytes flipped inside the member's deflate stream: ISA-L's inflate or the CRC-32 fails
    in the reading process, and the walk raises it as its own reading would have."""
    folder, path = exported
    in_process = alike(_verdicts, damaged(path, bundle.REPORTS, tmp_path / "damaged.zip"),
                       folder, monkeypatch)  # fmt: skip
    assert any("is not a readable audit bundle" in p for p in in_process[1])


def test_a_reading_process_killed_stops_the_verification_without_a_verdict(
    exported: tuple[Path, Path],
) -> None:
    """The reading process cannot finish before the walk reads: its values (a hundred bytes a
    report, 1,200 reports) fill the pipe first. Killed, it leaves the walk an error that says
    what happened and what to do, never a verdict on the evidence."""
    _, path = exported
    reader = body_lines.Beside(path, [])
    try:
        reader._process.kill()  # the fault this test is about
        with pytest.raises(BundleUnreadable) as raised:
            for _ in reader.values():
                pass
    finally:
        reader.close()
    said = str(raised.value)
    assert "the process reading reports.jsonl beside the check ended (killed by SIGKILL)" in said
    assert "run `audit verify` again" in said


def test_a_script_without_the_main_guard_gets_its_verdict_read_in_its_own_process(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """The reading process exits by itself before sending anything (it could not start): the
    member is read in the walk's process and the verdict is the bundle's, not an error."""
    if child_start.cores_usable() < 2:
        pytest.skip("one core: the member is read in the walk's process anyway")
    folder, path = exported
    lines = unguarded_run("body_lines", folder, path, tmp_path)
    assert lines[0] == "reader Beside"  # a process beside was asked for
    assert lines[-1] == "verdict True 0"


def test_the_member_is_read_beside_only_when_large(exported: tuple[Path, Path]) -> None:
    _, path = exported
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(bundle.REPORTS).file_size < body_lines.BESIDE_FROM
        reader = body_lines.opened(archive, path, [])
        assert isinstance(reader, body_lines.InProcess)
        reader.close()


def test_a_bundle_written_without_a_reports_member_verifies_alike(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder, path = exported
    members = members_of(path)
    del members[bundle.REPORTS]
    in_process, beside = _verdicts(written(members, tmp_path / "no-bodies.zip"), folder,
                                   monkeypatch, beside=False)  # fmt: skip
    assert in_process == beside
    assert any("reports.jsonl was removed" in p for p in in_process[1])
