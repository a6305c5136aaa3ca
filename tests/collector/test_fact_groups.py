"""Report groups whose records name each report's fact set (`evidence/fact_groups.py`, bundle
format 5): the columns of a group's payload read back as its reports' records, and the
exporter's shipping and the verifier's replay of the window agree: every report's fact set is
found, each shipped once while the window holds it, and each body rebuilt byte for byte.
An edited part or fact set, or one left out, is caught.

The bodies are real serialized PostureReports (tests/e2e/fleet.py's Linux laptop), as
test_fact_parts.py makes them."""

from __future__ import annotations

import base64
import hashlib
import struct

import orjson
import pytest

from devposture.collector.evidence import fact_groups, fact_sets
from devposture.collector.evidence.chain import GENESIS, REPORT_FIELDS, Entry, entry_hash
from devposture.collector.store.base import to_us
from devposture.v1 import devposture_pb2 as pb
from tests.collector.test_fact_parts import HOUR, T0, _report

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def _entry(seq: int, payload: bytes) -> Entry:
    key = "1-2"
    digest = entry_hash(GENESIS, seq, kind=fact_groups.REPORT_FACTS, at_us=1, key=key,
                        payload=payload)  # fmt: skip
    return Entry(seq, fact_groups.REPORT_FACTS, 1, key, payload, GENESIS, digest)


def _hours(devices: int, hours: int) -> list[list[tuple[str, bytes]]]:
    """Each hour's (device, body) of `devices` devices, as a group."""
    return [[(f"{d:032x}", _report(f"{d:032x}", T0 + h * HOUR, host=f"PC-{d}"))
             for d in range(devices)] for h in range(hours)]  # fmt: skip


def _metadata(body: bytes, k: int) -> tuple[object, ...]:
    """A report's metadata as ingest records it (`intake.record_of`: its ids from the body)."""
    report = pb.PostureReport.FromString(body)
    return (report.report_id, report.device_id, to_us(T0) + k, to_us(T0), "0.1.0",
            None if k else 12)  # fmt: skip


def test_a_groups_columns_read_back_as_its_reports_records() -> None:
    bodies = [body for _, body in _hours(3, 1)[0]]
    cuts = [fact_sets.cut(b) for b in bodies]
    rows, cut_ids = fact_groups.group_rows(
        [_metadata(b, k) for k, b in enumerate(bodies)],
        [fact_groups.own_and_digest(c) for c in cuts],
    )
    assert cut_ids  # an agent writes its ids first: the records keep the rest
    payload = fact_groups.group_canonical(1, 3, rows, cut_ids)
    entry = _entry(5, payload)
    assert fact_groups.ids_cut(entry)
    records = fact_groups.records(entry)
    assert [tuple(r[f] for f in REPORT_FIELDS) for r in records] == [row[:6] for row in rows]
    for record, cut in zip(records, cuts, strict=True):
        assert len(base64.b64decode(str(record["own"]))) == len(cut.own) - 72  # ids: 2+36, 2+32
        assert fact_groups.own_bytes(record, cut_ids=True) == cut.own
        assert record["fact_set"] == cut.fact_set_sha256().hex()
    # One report whose record names another id than its body: the whole group keeps its ids.
    metadata = [_metadata(b, k) for k, b in enumerate(bodies)]
    metadata[1] = ("another-id", *metadata[1][1:])
    rows, cut_ids = fact_groups.group_rows(metadata, [fact_groups.own_and_digest(c) for c in cuts])
    records = fact_groups.records(_entry(5, fact_groups.group_canonical(1, 3, rows, cut_ids)))
    assert not cut_ids
    assert [fact_groups.own_bytes(r, cut_ids=False) for r in records] == [c.own for c in cuts]
    # An edited group (a column cut short) is named, not read as fewer reports.
    edited = orjson.loads(payload)
    edited["columns"]["own"].pop()
    with pytest.raises(ValueError, match="one length"):
        fact_groups.records(_entry(5, orjson.dumps(edited, option=orjson.OPT_SORT_KEYS)))
    del edited["ids_cut"]
    with pytest.raises(ValueError, match="how its own bytes are kept"):
        fact_groups.ids_cut(_entry(5, orjson.dumps(edited, option=orjson.OPT_SORT_KEYS)))


def _shipped(
    groups: list[list[tuple[str, bytes]]], window: int, most_bytes: int = fact_groups.WINDOW_BYTES
) -> list[bytes]:  # fmt: skip
    """The lines an exporter writes for `groups`, each group's reports' fact sets named."""
    shipping = fact_groups.Shipping(window, most_bytes)
    lines = []
    for seq, group in enumerate(groups, start=1):
        cuts = [fact_sets.cut(body) for _, body in group]
        packed = {c.fact_set_sha256().hex(): c.fact_set for c in cuts}
        parts = {d: p for c in cuts for d, p in zip(fact_sets.digests(c.fact_set), c.parts,
                                                    strict=True)}  # fmt: skip
        sets, shipped = shipping.group([c.fact_set_sha256().hex() for c in cuts], packed, parts)
        lines.append(fact_groups.line(seq, sets, shipped))
    return lines


def test_a_devices_hourly_fact_set_is_shipped_once_and_every_body_rebuilt() -> None:
    groups = _hours(4, 6)
    lines = _shipped(groups, window=fact_groups.WINDOW_GROUPS)
    replay = fact_groups.Replay()
    shipped_sets = 0
    for line, group in zip(lines, groups, strict=True):
        _, sets, parts = fact_groups.parse_line(orjson.loads(line))
        shipped_sets += len(sets)
        assert replay.take(sets, parts) == []
        for _, body in group:
            cut = fact_sets.cut(body)
            digest = cut.fact_set_sha256().hex()
            assert replay.named(digest)
            packed = replay.window.sets.values[digest]
            assert fact_sets.rebuild(cut.own, packed, replay.part) == body
        replay.done()
    assert shipped_sets == 4  # one per device: its facts did not change within the day


def test_what_falls_out_of_the_window_is_shipped_again_alike() -> None:
    """One device in the groups 0, 70, 71 and 200 of 201 (the others: other devices'), a
    window of two groups swept every 64th: its fact set is dropped at the sweeps of 64 and
    128 (last used in 0 and 71) and shipped again in 70 and 200, but not in 71."""
    assert fact_groups.SWEEP_EVERY == 64
    body = _hours(1, 1)[0][0]
    groups: list[list[tuple[str, bytes]]] = [[] for _ in range(201)]
    for g in (0, 70, 71, 200):
        groups[g] = [body]
    lines = _shipped(groups, window=2)
    counts = [len(fact_groups.parse_line(orjson.loads(x))[1]) for x in lines]
    assert [g for g, c in enumerate(counts) if c] == [0, 70, 200]
    replay = fact_groups.Replay(groups=2)
    for line, group in zip(lines, groups, strict=True):
        _, sets, parts = fact_groups.parse_line(orjson.loads(line))
        assert replay.take(sets, parts) == []
        assert all(replay.named(fact_sets.cut(b).fact_set_sha256().hex()) for _, b in group)
        replay.done()
    # Read with a window the exporter did not use, the report of group 60 is not found.
    replay = fact_groups.Replay(groups=1000)
    lost = fact_groups.Replay(groups=1)
    digest = fact_sets.cut(body[1]).fact_set_sha256().hex()
    for g, line in enumerate(_shipped(groups, window=1000)):
        _, sets, parts = fact_groups.parse_line(orjson.loads(line))
        replay.take(sets, parts)
        lost.take(sets, parts)
        if groups[g]:
            assert replay.named(digest) and lost.named(digest) == (g == 0)
        replay.done()
        lost.done()


def test_past_its_bytes_the_window_drops_the_least_recently_used_alike_on_both_sides() -> None:
    """Eight devices an hour for 70 hours from 09:00 (their facts change at each midnight),
    a window of four fact sets' bytes: the sweep at group 64 keeps the four held last of the
    eight used last, so the other four are shipped again in group 64, and the verifier,
    replaying the same drops, finds every report's."""
    groups = [[(d, body) for d, body in hour] for hour in _hours(8, 70)]
    one = fact_sets.cut(groups[0][0][1])
    most = 4 * (len(one.fact_set) + fact_groups.HELD_COST)
    lines = _shipped(groups, window=1000, most_bytes=most)
    shipped = [len(fact_groups.parse_line(orjson.loads(x))[1]) for x in lines]
    assert [g for g, n in enumerate(shipped) if n] == [0, 15, 39, 63, 64]  # 3 midnights
    assert shipped[64] == 4 and sum(shipped) == 4 * 8 + 4
    replay = fact_groups.Replay(groups=1000, most_bytes=most)
    for line, group in zip(lines, groups, strict=True):
        _, sets, parts = fact_groups.parse_line(orjson.loads(line))
        assert replay.take(sets, parts) == []
        assert all(replay.named(fact_sets.cut(b).fact_set_sha256().hex()) for _, b in group)
        replay.done()
    assert len(replay.window.sets) <= 8


def test_a_pruned_reports_fact_set_is_marked_used_where_held_and_never_shipped() -> None:
    """The exporter marks a pruned report's fact set used where the window holds it, as the
    verifier does for whatever a report names: the two windows stay the same."""
    body = _hours(1, 1)[0][0][1]
    digest = fact_sets.cut(body).fact_set_sha256().hex()
    shipping = fact_groups.Shipping(groups=1)
    cut = fact_sets.cut(body)
    parts = dict(zip(fact_sets.digests(cut.fact_set), cut.parts, strict=True))
    first = shipping.group([digest], {digest: cut.fact_set}, parts)
    assert first == ([cut.fact_set], list(cut.parts))
    for _ in range(fact_groups.SWEEP_EVERY - 1):  # held: its pruned reports keep it held
        assert shipping.group([digest], {}, {}, gone={digest}) == ([], [])
    assert digest in shipping.window.sets
    for _ in range(fact_groups.SWEEP_EVERY):
        shipping.group([], {}, {})
    assert digest not in shipping.window.sets  # dropped: a pruned report no longer ships it
    assert shipping.group([digest], {}, {}, gone={digest}) == ([], [])


def test_an_edited_or_missing_part_or_fact_set_is_found() -> None:
    groups = _hours(2, 1)
    _, sets, parts = fact_groups.parse_line(orjson.loads(_shipped(groups, window=8)[0]))
    cut = fact_sets.cut(groups[0][0][1])
    # A part edited: it hashes to another digest, and the fact set naming it lacks it.
    edited = [p.replace(b"PC-0", b"PC-9") for p in parts]
    problems = fact_groups.Replay().take(sets, edited)
    assert problems and {what for what, _ in problems} == {"part missing"}
    # A fact set edited (its last part moved past one more own field): it hashes to another
    # digest, which no record names.
    replay = fact_groups.Replay()
    moved = [s[:-33] + bytes([s[-33] + 1]) + s[-32:] for s in sets]
    assert replay.take(moved, parts) == []
    assert not replay.named(cut.fact_set_sha256().hex())
    # A fact set left out.
    replay = fact_groups.Replay()
    assert replay.take(sets[1:], parts) == [] and not replay.named(cut.fact_set_sha256().hex())
    assert fact_groups.Replay().take([b"\x00" * 35], []) == [
        ("unreadable", hashlib.sha256(b"\x00" * 35).hexdigest())
    ]


def test_a_line_that_is_not_a_groups_is_refused() -> None:
    for item in ({"seq": 1, "sets": [], "parts": [], "x": 1}, {"seq": "1", "sets": [],
                 "parts": []}, {"seq": 1, "sets": ["@@"], "parts": []}, [1]):  # fmt: skip
        with pytest.raises(ValueError, match="not"):
            fact_groups.parse_line(item)


class _EveryItemSwept:
    """The window as its definition reads (docs/audit-evidence.md, "Format 5"), swept by
    looking at every item held: what `fact_groups.Window`, which reads only the marks of the
    counts it drops and counts bytes as it goes, must equal."""

    def __init__(self, groups: int, most: int) -> None:
        self.groups, self.most, self.clock = groups, most, 0
        self.sets: dict[str, tuple[bytes, int]] = {}

    def use(self, digest: str) -> bool:
        found = self.sets.get(digest)
        if found is not None:
            self.sets[digest] = (found[0], self.clock)
        return found is not None

    def hold(self, digest: str, value: bytes) -> None:
        self.sets[digest] = (value, self.clock)

    def next_group(self) -> None:
        self.clock += 1
        if self.clock % fact_groups.SWEEP_EVERY:
            return
        held = {d: v for d, v in self.sets.items() if v[1] >= self.clock - self.groups}
        total = sum(len(v[0]) + fact_groups.HELD_COST for v in held.values())
        for digest, (value, _) in sorted(held.items(), key=lambda item: item[1][1]):
            if total <= self.most:
                break
            del held[digest]
            total -= len(value) + fact_groups.HELD_COST
        self.sets = held


@pytest.mark.parametrize("seed", range(12))
def test_the_window_swept_by_its_marks_holds_what_sweeping_every_item_holds(seed: int) -> None:
    import random  # noqa: PLC0415 - this test's alone

    rng = random.Random(seed)
    groups, most = rng.choice([(3, 1 << 20), (5, 4000), (2, 1500)])
    window = fact_groups.Window(groups, most)
    reference = _EveryItemSwept(groups, most)
    for _ in range(fact_groups.SWEEP_EVERY * 8):
        if rng.random() < 0.3:  # a group's column of fact sets marked together
            column = {f"{rng.randrange(60):04x}" for _ in range(rng.randrange(8))}
            present = column & window.sets.values.keys()
            window.sets.use_all(present, window.clock)
            assert present == {d for d in column if reference.use(d)}
        for _ in range(rng.randrange(12)):
            digest = f"{rng.randrange(60):04x}"
            if rng.random() < 0.6:
                assert (window.set_of(digest) is not None) == reference.use(digest)
            else:
                value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
                window.hold_set(digest, value)
                reference.hold(digest, value)
        window.next_group()
        reference.next_group()
        assert list(window.sets.items()) == list(reference.sets.items())
        assert window.sets.bytes == sum(len(v) + fact_groups.HELD_COST
                                        for v in window.sets.values.values())  # fmt: skip


def _shipped_report_by_report(
    window: fact_groups.Window, fact_sets_named: list[str], packed: dict[str, bytes],
    parts: dict[bytes, bytes], gone: set[str],
) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
    """A group's shipping as its definition reads, one report's fact set at a time: each one
    the window lacks (and not gone) shipped where first named, with the parts it lacks; each
    one held marked used. What `Shipping.look` and `ship`, by sets, must equal."""
    ship_sets: list[bytes] = []
    ship_parts: list[bytes] = []
    for digest in fact_sets_named:
        if window.set_of(digest) is not None or digest in gone:
            continue
        for _, part_digest in fact_sets.references(packed[digest]):
            if window.part_of(part_digest) is None:
                window.hold_part(part_digest, parts[part_digest])
                ship_parts.append(parts[part_digest])
        window.hold_set(digest, packed[digest])
        ship_sets.append(packed[digest])
    window.next_group()
    return ship_sets, ship_parts


@pytest.mark.parametrize("seed", range(8))
def test_shipping_by_sets_ships_and_holds_what_shipping_report_by_report_does(seed: int) -> None:
    """Groups of random sizes naming fact sets from a pool, some named twice in a group, some
    of pruned reports, some groups with more new fact sets than `look` searches one by one:
    the same lines, and the same window after each group, as shipping report by report."""
    import random  # noqa: PLC0415 - this test's alone

    rng = random.Random(seed)
    part_pool = {hashlib.sha256(bytes([k])).digest(): bytes([k]) * (k + 1) for k in range(40)}
    digests = list(part_pool)
    packed: dict[str, bytes] = {}
    for _ in range(120):  # fact sets of 1-4 references to the parts
        refs = b"".join(struct.pack(">I", k) + rng.choice(digests)
                        for k in range(rng.randrange(1, 5)))  # fmt: skip
        packed[hashlib.sha256(refs).hexdigest()] = refs
    pool = list(packed)
    shipping = fact_groups.Shipping(groups=3, most_bytes=rng.choice([1 << 20, 2500]))
    reference = fact_groups.Window(groups=3, most_bytes=shipping.window.most_bytes)
    for _ in range(fact_groups.SWEEP_EVERY * 6):
        size = rng.choice([0, 1, 3, 12, 40])
        named = [f"{int(rng.choice(pool), 16):064x}" for _ in range(size)]  # new objects
        gone = {d for d in named if rng.random() < 0.1}
        look = shipping.look(named, gone)
        want = {d: packed[d] for d in look.lacking}
        assert shipping.ship(look, want, part_pool) == _shipped_report_by_report(
            reference, named, packed, part_pool, gone)  # fmt: skip
        for mine, theirs in ((shipping.window.sets, reference.sets),
                             (shipping.window.parts, reference.parts)):  # fmt: skip
            assert mine.items() == theirs.items()
            assert mine.bytes == theirs.bytes
