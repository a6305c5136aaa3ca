"""The agent's outbox: every report is on disk before it is sent, and leaves only when acknowledged.

At-least-once delivery (DESIGN principle 5): a report is written and fsynced (file, then
folder) before `put` returns; a crash before the acknowledgement means it is sent again after
restart, and the collector stores its id once. A report the collector will never accept
(malformed, too large) is set aside in `rejected/` with the reason, so it cannot block the
reports behind it. A file found damaged (bad header, checksum, or undecodable) is moved to
`corrupt/`, counted and logged; the outbox carries on with the others, so a bad disk block
can never put the agent in a crash loop.

The bound. A laptop offline for weeks must not fill its disk: the report files in the outbox
never add up to more than `max_bytes` once `put` returns. When a new report does not fit,
older ones make room, in this order:

1. *coalesced*: inside a run of consecutive reports with the same facts, the periodic
   snapshots between the first and the last of the run. Nothing learned is lost: the first
   says when the state began, the last that it still held; the collector only misses
   "still the same" in between (counted in `coalesced_total`).
2. *dropped*: the oldest remaining periodic snapshots (`dropped_total`).
3. *dropped*, last: the oldest events (network change, new backup, policy change) and state
   changes (facts differing from the report before; this includes the first report carrying
   a Wi-Fi session that closed). These are kept longest because each is the only evidence
   of something that happened, such as a session on a public network and whether a VPN
   covered it.

The report just put is never evicted; a report larger than the whole bound cannot be kept and
is counted as dropped. The counters are cumulative since install (kept in `counters.json`)
and travel to the collector in every report's `delivery`. `rejected/` and `corrupt/` are
bounded apart: at most ASIDE_MAX_FILES reports and ASIDE_MAX_BYTES each (the one just set
aside is always kept), the oldest deleted first.

Deciding what to evict opens no file: names carry the collection time, the kind and a digest
of the facts (see agent.outbox_file), and sizes come from one `os.scandir`. A collection
scans once: `put(report, stamp_delivery=True)` takes the report's delivery stats from the
scan that enforces the bound.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from devposture.agent.outbox_file import (
    PERIODIC,
    SUFFIX,
    CorruptReport,
    Entry,
    collected_micros,
    decode,
    encode,
    entry_for,
    fact_digest,
    file_name,
    kind_of,
)
from devposture.agent.state import (
    ensure_private_dir,
    fsync_dir,
    is_stale_temporary,
    write_atomic,
)
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
ASIDE_MAX_FILES: Final = 100
ASIDE_MAX_BYTES: Final = 4 * 1024 * 1024
COUNTERS_FILE: Final = "counters.json"
_COUNTERS: Final = ("coalesced_total", "dropped_total", "corrupt_total")
# 1990-01-01T00:00:00Z in µs. A report dated before it was collected by a clock that was never
# set (1970 on a computer without a battery-backed clock, before it synchronised): the
# collector refuses any time that early, so such a report's time is no oldest pending time.
PLAUSIBLE_SINCE_MICROS: Final = 631_152_000 * 1_000_000

Outcome = Literal["coalesced_total", "dropped_total"]


@dataclass(frozen=True)
class Pending:
    path: Path
    report: pb.PostureReport


class Outbox:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"the outbox bound must be at least 1 byte, not {max_bytes}")
        self.directory = directory
        self.max_bytes = max_bytes
        self.rejected_dir = directory / "rejected"
        self.corrupt_dir = directory / "corrupt"

    def put(self, report: pb.PostureReport, *, stamp_delivery: bool = False) -> Path:
        """Durably store a report, then make room by evicting older ones if over the bound.

        With `stamp_delivery`, the report's `delivery` is set first to `stats()` as the
        outbox stood just before this report: the report itself is not counted in it, nor
        what making room for it evicts (the next report's stats say that). It comes from
        the same directory scan as the bound, so a collection scans the outbox once.

        Returns the report's path; for a report larger than the whole bound (dropped and
        counted, never stored) that path does not exist."""
        ensure_private_dir(self.directory)
        entries = self._scan()
        if stamp_delivery:
            report.delivery.CopyFrom(self._stats_of(entries))
            _not_after_its_own_time(report)
        path = self.directory / _name_for(report, entries)
        data = encode(report)
        if len(data) > self.max_bytes:
            log.warning(
                "report %s dropped: %d bytes, more than the outbox bound of %d",
                report.report_id,
                len(data),
                self.max_bytes,
            )
            self._count({"dropped_total": 1})
            return path
        write_atomic(path, data, 0o600)
        kept = [e for e in entries if e.name != path.name] + [entry_for(path.name, len(data))]
        self._enforce_bound(sorted(kept, key=lambda e: e.order), keep=path.name)
        return path

    def pending(self, limit: int | None = None) -> list[Pending]:
        """The stored reports, oldest first: all of them, or the `limit` oldest (a full outbox
        holds tens of megabytes; draining it a chunk at a time keeps the agent small). A
        corrupt file is set aside and counted."""
        items: list[Pending] = []
        corrupt = 0
        for entry in self._scan():
            if limit is not None and len(items) >= limit:
                break
            path = self.directory / entry.name
            try:
                report = decode(path.read_bytes(), framed=entry.framed)
            except FileNotFoundError:
                continue  # removed meanwhile (acknowledged or evicted by another process)
            except OSError as exc:
                log.warning("outbox file %s unreadable (%s); skipped", entry.name, exc.strerror)
                continue
            except CorruptReport as exc:
                corrupt += self._move_aside(path, self.corrupt_dir, str(exc))
                continue
            items.append(Pending(path, report))
        if corrupt:
            self._count({"corrupt_total": corrupt})
        return sorted(items, key=_collection_order)

    def remove(self, item: Pending) -> None:
        """Forget a report the collector acknowledged."""
        item.path.unlink(missing_ok=True)
        fsync_dir(self.directory)

    def set_aside(self, path: Path, reason: str) -> None:
        """Move a report the collector refused for good into rejected/, with the reason."""
        self._move_aside(path, self.rejected_dir, reason)

    def rejected_count(self) -> int:
        if not self.rejected_dir.is_dir():
            return 0
        return sum(1 for _ in self.rejected_dir.glob(f"*{SUFFIX}"))

    def stats(self) -> pb.DeliveryStats:
        """What is waiting now and what the bound has cost since install."""
        return self._stats_of(self._scan())

    def _stats_of(self, entries: list[Entry]) -> pb.DeliveryStats:
        """The stats of an outbox holding `entries` (one scan's), with the counters."""
        counters = self._load_counters()
        stats = pb.DeliveryStats(
            pending_reports=len(entries),
            pending_bytes=sum(e.size for e in entries),
            coalesced_total=counters["coalesced_total"],
            dropped_total=counters["dropped_total"],
            corrupt_total=counters["corrupt_total"],
            max_bytes=self.max_bytes,
        )
        # A report dated by an unset clock waits too (the collector says why it refuses it),
        # but its time, copied into every report collected behind it, had the collector
        # refuse each of those, good reports, for good: they say the oldest believable time.
        dated = [e.micros for e in entries if e.micros >= PLAUSIBLE_SINCE_MICROS]
        if dated:
            oldest = min(dated)
            stats.oldest_pending_at.seconds = oldest // 1_000_000
            stats.oldest_pending_at.nanos = oldest % 1_000_000 * 1000
        return stats

    # -- the bound ------------------------------------------------------------------------

    def _enforce_bound(self, entries: list[Entry], keep: str) -> None:
        evicted = plan_eviction(entries, keep, self.max_bytes)
        if not evicted:
            return
        for entry, _ in evicted:
            (self.directory / entry.name).unlink(missing_ok=True)
        fsync_dir(self.directory)
        counts: dict[str, int] = {}
        for _, outcome in evicted:
            counts[outcome] = counts.get(outcome, 0) + 1
        self._count(counts)
        dropped = counts.get("dropped_total", 0)
        # Coalescing loses nothing learned and happens every round of a long outage: info.
        log.log(
            logging.WARNING if dropped else logging.INFO,
            "outbox full (bound %d bytes): %d repeated snapshots coalesced, %d reports dropped",
            self.max_bytes,
            counts.get("coalesced_total", 0),
            dropped,
        )

    # -- files ----------------------------------------------------------------------------

    def _scan(self) -> list[Entry]:
        """The report files, oldest first, from names and sizes; stale temporaries removed."""
        entries: list[Entry] = []
        try:
            listing = os.scandir(self.directory)
        except FileNotFoundError:
            return entries
        with listing:
            for item in listing:
                if is_stale_temporary(item):
                    Path(item.path).unlink(missing_ok=True)
                elif item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                    try:
                        size = item.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
                    entries.append(entry_for(item.name, size))
        return sorted(entries, key=lambda e: e.order)

    def _move_aside(self, path: Path, folder: Path, reason: str) -> int:
        """Move `path` into `folder` with its reason; 1 if moved, 0 if it could not be (a
        full or read-only state folder: it stays, and is met again)."""
        target = folder / path.name
        try:
            ensure_private_dir(folder)
            path.replace(target)
        except OSError as exc:
            log.warning("outbox file %s could not be set aside: %s", path.name, exc.strerror)
            return 0
        try:
            os.utime(target)  # the folder is pruned in the order files were set aside
            write_atomic(target.with_suffix(".reason"), reason[:2000].encode("utf-8"), 0o600)
            fsync_dir(self.directory)
        except OSError as exc:
            log.warning("why %s was set aside was not kept: %s", path.name, exc.strerror)
        log.warning("report %s set aside in %s/: %s", path.name, folder.name, reason)
        _prune(folder, keep=target.name)
        return 1

    def _load_counters(self) -> dict[str, int]:
        path = self.directory / COUNTERS_FILE
        try:
            raw = json.loads(path.read_bytes())
            return {name: _non_negative(raw.get(name, 0)) for name in _COUNTERS}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("outbox %s unreadable (%s); counting from zero", path.name, exc)
        return dict.fromkeys(_COUNTERS, 0)

    def _count(self, added: dict[str, int]) -> None:
        counters = self._load_counters()
        for name, value in added.items():
            counters[name] += value
        data = json.dumps(counters, indent=1).encode("utf-8")
        try:
            ensure_private_dir(self.directory)
            write_atomic(self.directory / COUNTERS_FILE, data, 0o600)
        except OSError as exc:  # a full or read-only state folder: never worth a report
            log.warning("outbox %s not saved (%s): %s", COUNTERS_FILE, exc.strerror, added)


def _name_for(report: pb.PostureReport, entries: list[Entry]) -> str:
    """The file name of `report`, its kind judged against the report collected before it."""
    digest = fact_digest(report)
    key = (collected_micros(report), "")
    before = [e for e in entries if e.order < key]
    return file_name(report, kind_of(report, digest, before[-1].digest if before else None), digest)


def plan_eviction(entries: list[Entry], keep: str, max_bytes: int) -> list[tuple[Entry, Outcome]]:
    """Which of `entries` (oldest first) to evict, and why, to fit in `max_bytes`."""
    excess = sum(e.size for e in entries) - max_bytes
    evicted: list[tuple[Entry, Outcome]] = []
    for entry, outcome in _eviction_candidates(entries, keep):
        if excess <= 0:
            break
        evicted.append((entry, outcome))
        excess -= entry.size
    return evicted


def _eviction_candidates(entries: list[Entry], keep: str) -> Iterator[tuple[Entry, Outcome]]:
    offered = {keep}
    for entry in _coalescible(entries):
        offered.add(entry.name)
        yield entry, "coalesced_total"
    for entry in entries:
        if entry.kind == PERIODIC and entry.name not in offered:
            offered.add(entry.name)
            yield entry, "dropped_total"
    for entry in entries:
        if entry.name not in offered:
            yield entry, "dropped_total"


def _coalescible(entries: list[Entry]) -> Iterator[Entry]:
    """Periodic snapshots between the first and the last of a run of identical facts."""
    for before, entry, after in zip(entries, entries[1:], entries[2:], strict=False):
        same = entry.digest is not None and before.digest == entry.digest == after.digest
        if same and entry.kind == PERIODIC:
            yield entry


def _prune(folder: Path, keep: str) -> None:
    """Delete the oldest reports set aside in `folder` beyond its bound; never `keep`."""
    reports = sorted(_set_aside_reports(folder))
    count = len(reports)
    size = sum(item_size for _, _, item_size in reports)
    for _, name, item_size in reports:
        if count <= ASIDE_MAX_FILES and size <= ASIDE_MAX_BYTES:
            break
        if name == keep:
            continue
        path = folder / name
        path.unlink(missing_ok=True)
        path.with_suffix(".reason").unlink(missing_ok=True)
        count -= 1
        size -= item_size


def _set_aside_reports(folder: Path) -> Iterator[tuple[float, str, int]]:
    """(when set aside, name, size) of each report in `folder`."""
    with os.scandir(folder) as listing:
        for item in listing:
            if not item.name.endswith(SUFFIX):
                continue
            try:
                status = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield status.st_mtime, item.name, status.st_size


def _non_negative(value: object) -> int:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _collection_order(item: Pending) -> tuple[int, str]:
    return collected_micros(item.report), item.path.name


def _not_after_its_own_time(report: pb.PostureReport) -> None:
    """A report waiting since after this one was collected was dated by a clock that ran
    fast (a laptop's clock a day ahead at boot, set right since): the oldest pending time
    says at most this report's own. Copied as it was, it lay more than a day past the
    collector's clock, which refuses such a time, and the collector refused this report,
    a good one, for good."""
    delivery = report.delivery
    if not (delivery.HasField("oldest_pending_at") and report.HasField("collected_at")):
        return
    own = report.collected_at
    if (delivery.oldest_pending_at.seconds, delivery.oldest_pending_at.nanos) > (
        own.seconds,
        own.nanos,
    ):
        delivery.oldest_pending_at.CopyFrom(own)
