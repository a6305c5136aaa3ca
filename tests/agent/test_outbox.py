"""The agent's outbox, on real files: durable, bounded, and never stopped by a damaged file."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.agent.outbox import ASIDE_MAX_BYTES, ASIDE_MAX_FILES, COUNTERS_FILE, Outbox
from devposture.agent.outbox_file import MAGIC, SUFFIX, encode
from devposture.v1 import devposture_pb2 as pb

HOUR = 3600
BASE = 1_733_040_000  # 2024-12-01, seconds since the epoch
INTERVAL = pb.COLLECTION_TRIGGER_INTERVAL
NETWORK_CHANGE = pb.COLLECTION_TRIGGER_NETWORK_CHANGE


def closed_session(network: str, start: int, end: int) -> pb.WifiSession:
    session = pb.WifiSession(
        network_id=network,
        security=pb.WIFI_SECURITY_OPEN,
        classification=pb.NETWORK_CLASS_PUBLIC,
        interface="wlan0",
        vpn_up=False,
    )
    session.started_at.seconds = start
    session.ended_at.seconds = end
    return session


def report_at(
    seconds: int,
    state: str = "on",
    trigger: pb.CollectionTrigger.ValueType = INTERVAL,
    sessions: tuple[pb.WifiSession, ...] = (),
    pad_to: int = 0,
) -> pb.PostureReport:
    """A report collected at `seconds`; `state` names its facts (same state, same facts).

    With `pad_to`, the hostname is padded so that the stored file is exactly that size."""
    report = pb.PostureReport(
        report_id=str(uuid.uuid4()), device_id="device-1", agent_version="test", trigger=trigger
    )
    report.collected_at.seconds = seconds
    report.host.hostname = "laptop"
    report.host.os_family = pb.OS_FAMILY_LINUX
    report.firewall.enabled = True
    report.firewall.profiles.add(name=f"nft-{state}", enabled=True, default_inbound_action="drop")
    if sessions:
        report.wifi.sessions.extend(sessions)
    if pad_to:
        pad(report, pad_to)
    return report


def pad(report: pb.PostureReport, size: int) -> None:
    """Lengthen the hostname until the stored file is `size` bytes (a length prefix growing
    by a byte may skip a size: a longer agent version then shifts the search)."""
    hostname = report.host.hostname
    for extra in range(3):
        report.agent_version = "test" + "v" * extra
        report.host.hostname = hostname
        estimate = size - len(encode(report))
        for length in range(max(0, estimate - 8), estimate + 1):
            report.host.hostname = hostname + "x" * length
            if len(encode(report)) == size:
                return
    raise AssertionError(f"cannot pad a report to {size} bytes")


def stored_sizes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob(f"*{SUFFIX}"))


def ids(outbox: Outbox) -> list[str]:
    return [item.report.report_id for item in outbox.pending()]


# -- durability and order -------------------------------------------------------------------


def test_a_put_report_survives_a_new_outbox_and_is_framed_and_private(tmp_path: Path) -> None:
    report = report_at(BASE)
    path = Outbox(tmp_path / "outbox").put(report)
    assert path.read_bytes().startswith(MAGIC)
    assert path.stat().st_mode & 0o777 == 0o600
    (item,) = Outbox(tmp_path / "outbox").pending()
    assert item.path == path
    assert item.report == report


def test_pending_is_oldest_first_whatever_the_order_of_puts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    reports = [report_at(BASE + hours * HOUR, state=str(hours)) for hours in (5, 1, 3, 2, 4)]
    for report in reports:
        outbox.put(report)
    expected = sorted(reports, key=lambda r: r.collected_at.seconds)
    assert ids(outbox) == [r.report_id for r in expected]


def test_remove_forgets_only_the_acknowledged_report(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    first, second = report_at(BASE), report_at(BASE + HOUR)
    outbox.put(first)
    outbox.put(second)
    outbox.remove(outbox.pending()[0])
    assert ids(Outbox(tmp_path)) == [second.report_id]


def test_a_report_with_an_unsafe_id_gets_a_safe_file_name(tmp_path: Path) -> None:
    report = report_at(BASE)
    report.report_id = "../../etc/passwd"
    path = Outbox(tmp_path / "outbox").put(report)
    assert path.parent == tmp_path / "outbox"
    assert "/" not in path.name and ".." not in path.name
    assert ids(Outbox(tmp_path / "outbox")) == ["../../etc/passwd"]


def test_file_names_say_the_kind_of_report(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    names = [
        outbox.put(report_at(BASE)).name,  # nothing before it: a state change
        outbox.put(report_at(BASE + 1)).name,  # same facts: a periodic snapshot
        outbox.put(report_at(BASE + 2, state="off")).name,  # new facts: a state change
        outbox.put(report_at(BASE + 3, state="off", trigger=NETWORK_CHANGE)).name,
    ]
    assert [name.split("-")[1] for name in names] == ["c", "p", "c", "e"]
    assert names == sorted(names)


# -- damaged files --------------------------------------------------------------------------


def flip_a_body_byte(data: bytes) -> bytes:
    """Damage a byte inside the hostname: the body still parses, only the checksum tells."""
    at = data.index(b"laptop")
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


DAMAGE = {
    "flipped byte": flip_a_body_byte,
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: os.urandom(len(data)),
    "zero length": lambda data: b"",
    "header only": lambda data: data[:44],
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_corrupt_file_is_set_aside_counted_once_and_the_others_still_come(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    assert callable(damage)
    outbox = Outbox(tmp_path / "outbox")
    before, victim, after = report_at(BASE), report_at(BASE + 1, "x"), report_at(BASE + 2, "y")
    outbox.put(before)
    victim_path = outbox.put(victim)
    outbox.put(after)
    victim_path.write_bytes(damage(victim_path.read_bytes()))

    assert ids(outbox) == [before.report_id, after.report_id]
    assert not victim_path.exists()
    assert (tmp_path / "outbox" / "corrupt" / victim_path.name).exists()
    assert (tmp_path / "outbox" / "corrupt" / victim_path.name).with_suffix(".reason").exists()
    assert outbox.rejected_count() == 0
    assert outbox.stats().corrupt_total == 1
    assert str(tmp_path) not in caplog.text and victim_path.name in caplog.text
    # A second scan, even by a new agent process, does not count it again.
    assert ids(Outbox(tmp_path / "outbox")) == [before.report_id, after.report_id]
    assert Outbox(tmp_path / "outbox").stats().corrupt_total == 1


def test_a_report_file_of_the_previous_agent_is_still_read(tmp_path: Path) -> None:
    legacy = report_at(BASE)
    micros = BASE * 1_000_000
    (tmp_path / f"{micros:020d}-{legacy.report_id}{SUFFIX}").write_bytes(
        legacy.SerializeToString(deterministic=True)
    )
    newer = report_at(BASE + HOUR)
    outbox = Outbox(tmp_path)
    outbox.put(newer)
    assert ids(outbox) == [legacy.report_id, newer.report_id]
    assert outbox.stats().oldest_pending_at.seconds == BASE


@pytest.mark.parametrize("content", [b"", b"\xff\xfe not a report", b"\x12\x03abc"])
def test_a_damaged_file_of_the_previous_agent_is_corrupt(tmp_path: Path, content: bytes) -> None:
    (tmp_path / f"{BASE * 1_000_000:020d}-{uuid.uuid4()}{SUFFIX}").write_bytes(content)
    outbox = Outbox(tmp_path)
    assert outbox.pending() == []
    assert outbox.stats().corrupt_total == 1
    assert len(list((tmp_path / "corrupt").glob(f"*{SUFFIX}"))) == 1


def test_a_leftover_temporary_file_is_removed_and_is_not_corrupt(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    kept = outbox.put(report_at(BASE))
    leftover = tmp_path / f".{kept.name.replace('-c-', '-p-')}.tmp"
    leftover.write_bytes(b"half a rep")
    an_hour_ago = time.time() - HOUR
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    in_progress = tmp_path / ".another.report.tmp"  # another process may be writing it now
    in_progress.write_bytes(b"being written")

    assert len(outbox.pending()) == 1
    assert not leftover.exists()
    assert in_progress.exists()
    assert outbox.stats().corrupt_total == 0
    assert not (tmp_path / "corrupt").exists()


def test_a_damaged_counters_file_does_not_stop_the_outbox(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.put(report_at(BASE))
    (tmp_path / COUNTERS_FILE).write_bytes(b"{ not json")
    assert outbox.stats().dropped_total == 0
    Outbox(tmp_path, max_bytes=10).put(report_at(BASE + 1))  # too big: counted as dropped
    assert outbox.stats().dropped_total == 1


# -- the bound ------------------------------------------------------------------------------


def test_eviction_coalesces_first_then_drops_snapshots_then_events_and_changes(
    tmp_path: Path,
) -> None:
    size = 400
    outbox = Outbox(tmp_path, max_bytes=5 * size)
    wifi = (closed_session("CoffeeShop", BASE + 4 * HOUR, BASE + 5 * HOUR),)

    def put(name: str, hour: int, state: str, **kind: object) -> str:
        report = report_at(BASE + hour * HOUR, state, pad_to=size, **kind)  # type: ignore[arg-type]
        outbox.put(report)
        sent[report.report_id] = name
        assert stored_sizes(tmp_path) <= 5 * size
        return report.report_id

    sent: dict[str, str] = {}

    def kept() -> list[str]:
        return [sent[report_id] for report_id in ids(outbox)]

    for name, hour in (("A", 1), ("B", 2), ("C", 3), ("D", 4)):
        put(name, hour, "on")
    put("E", 5, "on", trigger=NETWORK_CHANGE, sessions=wifi)
    for name, hour in (("F", 6), ("G", 7), ("H", 8), ("I", 9)):
        put(name, hour, "off")
    # Only the snapshots inside runs of the same facts went; each run's first and last stay.
    assert kept() == ["A", "D", "E", "F", "I"]
    assert (outbox.stats().coalesced_total, outbox.stats().dropped_total) == (4, 0)

    put("J", 10, "s3")  # no run to coalesce: the oldest periodic snapshot goes
    assert kept() == ["A", "E", "F", "I", "J"]
    put("K", 11, "s3")
    assert kept() == ["A", "E", "F", "J", "K"]
    put("L", 12, "s3")  # J K L: K is inside a run again
    assert kept() == ["A", "E", "F", "J", "L"]
    assert (outbox.stats().coalesced_total, outbox.stats().dropped_total) == (5, 2)

    put("M", 13, "s4")
    assert kept() == ["A", "E", "F", "J", "M"]
    # Only events and state changes remain: now the oldest of them goes.
    put("N", 14, "s5")
    assert kept() == ["E", "F", "J", "M", "N"]
    put("O", 15, "s6")
    assert kept() == ["F", "J", "M", "N", "O"]
    assert (outbox.stats().coalesced_total, outbox.stats().dropped_total) == (5, 5)


def test_the_report_just_put_is_never_evicted(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, max_bytes=300)
    events = [report_at(BASE + n, str(n), trigger=NETWORK_CHANGE, pad_to=300 - n) for n in range(3)]
    older = report_at(BASE - HOUR, "old", pad_to=200)  # put last, but collected earlier
    for report in (*events, older):
        outbox.put(report)
    assert ids(outbox) == [older.report_id]
    assert outbox.stats().dropped_total == 3


def test_a_report_larger_than_the_bound_is_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path, max_bytes=1000)
    small = report_at(BASE)
    outbox.put(small)
    huge = report_at(BASE + 1, pad_to=1001)
    path = outbox.put(huge)
    assert not path.exists()
    assert ids(outbox) == [small.report_id]
    assert outbox.stats().dropped_total == 1
    assert huge.report_id in caplog.text


def test_counters_persist_across_outbox_instances(tmp_path: Path) -> None:
    size = 300
    for hour in range(6):
        Outbox(tmp_path, max_bytes=3 * size).put(report_at(BASE + hour * HOUR, pad_to=size))
    Outbox(tmp_path, max_bytes=3 * size).put(report_at(BASE + 9 * HOUR, pad_to=4 * size))
    stats = Outbox(tmp_path).stats()
    assert (stats.coalesced_total, stats.dropped_total) == (3, 1)


def test_stats_describe_what_is_waiting(tmp_path: Path) -> None:
    empty = Outbox(tmp_path / "none", max_bytes=12345).stats()
    assert empty == pb.DeliveryStats(max_bytes=12345)
    outbox = Outbox(tmp_path / "outbox", max_bytes=12345)
    paths = [outbox.put(report_at(BASE + n * HOUR, str(n))) for n in (3, 1, 2)]
    stats = outbox.stats()
    assert stats.pending_reports == 3
    assert stats.pending_bytes == sum(path.stat().st_size for path in paths)
    assert stats.oldest_pending_at.seconds == BASE + HOUR
    assert stats.max_bytes == 12345
    assert (stats.coalesced_total, stats.dropped_total, stats.corrupt_total) == (0, 0, 0)


def test_a_report_stamped_after_one_dated_by_a_fast_clock_is_not_dated_after_itself(
    tmp_path: Path,
) -> None:
    # Collected with the clock 30 h fast and not sent; the clock set right, the next report
    # carried that future time as its oldest pending one, and the collector refused it (a
    # time more than a day ahead of its clock) for good. It says its own time at most.
    outbox = Outbox(tmp_path)
    outbox.put(report_at(BASE + 30 * HOUR, "fast"), stamp_delivery=True)
    later = report_at(BASE, "right")
    outbox.put(later, stamp_delivery=True)
    assert later.delivery.pending_reports == 1
    assert later.delivery.oldest_pending_at == later.collected_at
    earlier = report_at(BASE + 31 * HOUR, "after")
    outbox.put(earlier, stamp_delivery=True)  # a genuinely older one pending: kept as it is
    assert earlier.delivery.oldest_pending_at.seconds == BASE


def test_a_report_dated_by_an_unset_clock_is_not_the_oldest_pending_of_those_behind_it(
    tmp_path: Path,
) -> None:
    # A computer without a battery-backed clock starts at 1970 and collects before it
    # synchronises. That report waited, and every report collected behind it carried 1970 as
    # its oldest pending time: the collector refuses a time before 1990, and refused each of
    # them, good reports, for good. They say the oldest believable time pending.
    outbox = Outbox(tmp_path)
    outbox.put(report_at(42, "unset"), stamp_delivery=True)  # 1970-01-01T00:00:42Z
    first = report_at(BASE, "set")
    outbox.put(first, stamp_delivery=True)
    assert first.delivery.pending_reports == 1
    assert not first.delivery.HasField("oldest_pending_at")
    second = report_at(BASE + HOUR, "set")
    outbox.put(second, stamp_delivery=True)
    assert second.delivery.pending_reports == 2
    assert second.delivery.oldest_pending_at.seconds == BASE
    assert outbox.stats().oldest_pending_at.seconds == BASE


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("put"),
                st.integers(min_value=150, max_value=900),  # size of the file
                st.sampled_from(["a", "b", "c"]),  # its facts
                st.sampled_from([INTERVAL, NETWORK_CHANGE, pb.COLLECTION_TRIGGER_START_UP]),
            ),
            st.tuples(st.just("remove"), st.just(0), st.just(""), st.just(INTERVAL)),
        ),
        max_size=25,
    )
)
def test_the_bound_always_holds_and_the_newest_report_is_kept(
    operations: list[tuple[str, int, str, pb.CollectionTrigger.ValueType]],
) -> None:
    max_bytes = 2000
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        outbox = Outbox(directory, max_bytes=max_bytes)
        put = removed = 0
        for step, (operation, size, state, trigger) in enumerate(operations):
            if operation == "remove":
                waiting = outbox.pending()
                if waiting:
                    outbox.remove(waiting[0])
                    removed += 1
                continue
            newest = report_at(BASE + step, state, trigger=trigger, pad_to=size)
            outbox.put(newest)
            put += 1
            assert stored_sizes(directory) <= max_bytes
            assert newest.report_id in ids(outbox)
        stats = outbox.stats()
        assert stats.pending_bytes == stored_sizes(directory) <= max_bytes
        accounted = stats.pending_reports + stats.coalesced_total + stats.dropped_total
        assert accounted + removed == put


@pytest.mark.parametrize("sessions_ride_along", [True, False])
def test_a_week_offline_keeps_every_event_within_the_bound(
    tmp_path: Path, sessions_ride_along: bool
) -> None:
    """Hourly snapshots for a week, a few network changes, a bound of about 40 reports.

    With sessions_ride_along, every report after a network change carries the closed
    sessions too, as agent.sessions does until a report carrying them is acknowledged."""
    changes_at = {20: "Airport", 50: "Hotel", 90: "CoffeeShop", 130: "Station"}
    reports: list[pb.PostureReport] = []
    closed: list[pb.WifiSession] = []
    for hour in range(7 * 24):
        at = BASE + hour * HOUR
        carried = tuple(closed) if sessions_ride_along else ()
        reports.append(report_at(at, sessions=carried))
        if hour in changes_at:
            closed.append(closed_session(changes_at[hour], at - HOUR, at + 1800))
            event = report_at(at + 1800, trigger=NETWORK_CHANGE, sessions=tuple(closed))
            reports.append(event)
    events = [r.report_id for r in reports if r.trigger == NETWORK_CHANGE]
    max_bytes = 40 * max(len(encode(r)) for r in reports)
    outbox = Outbox(tmp_path, max_bytes=max_bytes)
    for report in reports:
        outbox.put(report)
        assert stored_sizes(tmp_path) <= max_bytes

    kept = ids(outbox)
    stats = outbox.stats()
    assert set(events) <= set(kept)
    assert kept[0] == reports[0].report_id and kept[-1] == reports[-1].report_id
    assert stats.pending_reports + stats.coalesced_total + stats.dropped_total == len(reports)
    assert stats.coalesced_total > 0 and stats.dropped_total == 0  # nothing learned was lost
    assert stats.pending_bytes <= max_bytes


# -- rejected/ and corrupt/ are bounded too -------------------------------------------------


def test_rejected_reports_are_bounded_in_number(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    paths = [outbox.put(report_at(BASE + n, str(n))) for n in range(ASIDE_MAX_FILES + 5)]
    for path in paths:
        outbox.set_aside(path, "INVALID_ARGUMENT: refused")
    assert outbox.rejected_count() == ASIDE_MAX_FILES
    left = sorted(p.name for p in (tmp_path / "rejected").glob(f"*{SUFFIX}"))
    assert left == sorted(p.name for p in paths[5:])  # the oldest went, with their reasons
    assert len(list((tmp_path / "rejected").glob("*.reason"))) == ASIDE_MAX_FILES
    assert outbox.pending() == []


def test_corrupt_files_are_bounded_in_bytes_and_the_newest_is_kept(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    big = ASIDE_MAX_BYTES // 2 + 1000
    paths = [outbox.put(report_at(BASE + n, str(n), pad_to=big)) for n in range(3)]
    for path in paths:
        path.write_bytes(flip_a_body_byte(path.read_bytes()))
        assert path not in [item.path for item in outbox.pending()]
    left = list((tmp_path / "corrupt").glob(f"*{SUFFIX}"))
    assert [p.name for p in left] == [paths[-1].name]
    assert outbox.stats().corrupt_total == 3
