"""One collection scans the outbox folder once: the report's delivery stats and the bound come
from the same `os.scandir`. Measured on a real outbox with a counting wrapper around the real
`os.scandir` (the filesystem is not mocked)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.agent.deliver import collect
from devposture.agent.outbox import Outbox
from devposture.agent.probes import ProbeConfig
from devposture.agent.state import AgentState, Enrollment
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost
from tests.agent.test_outbox import BASE, HOUR, report_at

ENROLLMENT = Enrollment("device-1", "127.0.0.1", 7443, 7444, "sha256:" + "0" * 64)


@pytest.fixture
def outbox_scans(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Path]]:
    """The outbox folder each time `os.scandir` lists it (other folders are not counted)."""
    real = os.scandir
    outbox_dir = (tmp_path / "agent" / "outbox").resolve()
    seen: list[Path] = []

    def counting(path: object = ".") -> object:
        if isinstance(path, str | os.PathLike) and Path(path).resolve() == outbox_dir:
            seen.append(Path(path))
        return real(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", counting)
    yield seen


def test_a_collection_scans_the_outbox_once_and_its_stats_are_right(
    tmp_path: Path, outbox_scans: list[Path]
) -> None:
    state = AgentState(tmp_path / "agent")
    outbox = Outbox(state.outbox_dir, max_bytes=1 << 20)
    waiting = [outbox.put(report_at(BASE + n * HOUR, str(n))) for n in range(3)]
    before = outbox.stats()
    outbox_scans.clear()

    report = collect(state, ENROLLMENT, ReplayHost(), ProbeConfig(), pb.COLLECTION_TRIGGER_MANUAL,
                     outbox=outbox)  # fmt: skip

    assert len(outbox_scans) == 1, f"a collection scanned the outbox {len(outbox_scans)} times"
    # The stats are the outbox as it stood just before the report (the report not counted).
    assert report.delivery == before
    assert report.delivery.pending_reports == 3
    assert report.delivery.pending_bytes == sum(p.stat().st_size for p in waiting)
    assert report.delivery.oldest_pending_at.seconds == BASE
    # What was stored is the stamped report, and the next collection counts it.
    stored = {item.report.report_id: item.report for item in outbox.pending()}
    assert stored[report.report_id].delivery == before
    assert outbox.stats().pending_reports == 4


def test_a_stamped_put_still_enforces_the_bound_and_counts_what_it_cost(
    tmp_path: Path, outbox_scans: list[Path]
) -> None:
    state = AgentState(tmp_path / "agent")
    first = report_at(BASE, "a", pad_to=400)
    outbox = Outbox(state.outbox_dir, max_bytes=900)
    outbox.put(first)
    outbox.put(report_at(BASE + HOUR, "b", pad_to=400))
    outbox_scans.clear()

    newest = report_at(BASE + 2 * HOUR, "c")
    outbox.put(newest, stamp_delivery=True)

    assert len(outbox_scans) == 1
    assert newest.delivery.pending_reports == 2 and newest.delivery.dropped_total == 0
    assert first.report_id not in [i.report.report_id for i in outbox.pending()]
    assert outbox.stats().dropped_total == 1  # the eviction shows in the next report's stats
