"""A bundle member's runs are taken by a thread beside the export's pass
(collector/evidence/member_runs.py): in order, whole, and a sink's failure is the pass's."""

from __future__ import annotations

import errno
import hashlib
import threading
import zipfile
from pathlib import Path

import pytest

from devposture.collector.evidence import deflate, member_runs, spooled
from devposture.collector.evidence.export import export_bundle
from devposture.policy import default_policy
from tests.collector.test_evidence import _moment, _new_collector, _reports

LINE = b'{"seq": %d, "payload": "' + b"x" * 300 + b'"}\n'


def test_each_sink_gets_its_lines_whole_and_in_order() -> None:
    taken: dict[str, list[bytes]] = {"chain": [], "index": []}
    with member_runs.Beside() as beside:
        chain = member_runs.Runs(taken["chain"].append, beside)
        index = member_runs.Runs(taken["index"].append, beside)
        for n in range(20_000):  # several runs of a megabyte each, interleaved
            chain.write(LINE % n)
            index.write(b"%d\n" % n)
        chain.flush()
        index.flush()
        beside.drain()
    assert len(taken["chain"]) > 3  # taken in runs, not line by line
    assert b"".join(taken["chain"]) == b"".join(LINE % n for n in range(20_000))
    assert b"".join(taken["index"]) == b"".join(b"%d\n" % n for n in range(20_000))


def test_without_a_thread_the_runs_go_at_once() -> None:
    taken: list[bytes] = []
    runs = member_runs.Runs(taken.append)
    runs.write(b"a\n")
    runs.flush()
    assert taken == [b"a\n"]


def test_a_sinks_failure_is_raised_to_the_pass_and_the_thread_ends() -> None:
    def full(run: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"), member_runs.Beside() as beside:
        runs = member_runs.Runs(full, beside)
        for n in range(20_000):
            runs.write(LINE % n)
        runs.flush()
        beside.drain()
    assert not [t for t in threading.enumerate() if t.name == "devposture-bundle"]


def test_a_spooled_member_goes_into_the_zip_whole_beside_others(tmp_path: Path) -> None:
    """Two members made in one pass, their runs taken by the thread: each is put in after a
    member written meanwhile, whole, with the SHA-256 the manifest gets."""
    lines = [LINE % n for n in range(20_000)]
    out = tmp_path / "two.zip"
    info = zipfile.ZipInfo("reports.jsonl", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with (
        zipfile.ZipFile(out, "w") as archive, member_runs.Beside() as beside,
        spooled.Spooled(beside) as first, spooled.Spooled(beside) as second,
    ):  # fmt: skip
        for line in lines:
            first.write(line)
            second.write(line[::-1])
        archive.writestr("chain.jsonl", b"written meanwhile\n")
        digest = first.put(archive, info)
        other = zipfile.ZipInfo("index.jsonl", date_time=(1980, 1, 1, 0, 0, 0))
        other.compress_type = zipfile.ZIP_DEFLATED
        second.put(archive, other)
    assert digest == hashlib.sha256(b"".join(lines)).hexdigest()
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert archive.read("reports.jsonl") == b"".join(lines)
        assert archive.read("index.jsonl") == b"".join(line[::-1] for line in lines)
        assert archive.getinfo("reports.jsonl").compress_size < len(b"".join(lines)) // 10


def test_an_export_whose_spool_fails_fails_whole_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk under the temporary folder fills while the report bodies wait there: the
    export says so and leaves neither the bundle nor its partial file."""
    store, data, _ = _new_collector(tmp_path)
    start = _moment()
    _reports(store, "PASS", "FAIL", "PASS")

    def full(self: deflate.Deflated, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(deflate.Deflated, "write", full)
    out = tmp_path / "q4.zip"
    with pytest.raises(OSError, match="No space left"):
        export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out)
    store.close()
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))
    assert not [t for t in threading.enumerate() if t.name == "devposture-bundle"]
