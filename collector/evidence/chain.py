"""The evidence chain: one append-only table where every evidence record is chained as it is
written, inside the same transaction as the record itself.

Each entry holds the record it covers as canonical JSON (`payload`) and

    hash = SHA-256("devposture-chain/v1" ‖ prev_hash ‖ seq ‖ kind ‖ at_us ‖ key ‖ payload)

(each field length-prefixed, see `entry_hash`), where `prev_hash` is the hash of the entry
before (32 zero bytes for the first). Changing, removing or reordering any entry changes every
hash after it, so a head hash handed to an auditor pins the whole history before it.

`at_us` is when the entry was written, on the collector's clock, never earlier than the entry
before (so a period of entries is one run of sequence numbers). The record's own times are in
its payload.

Pure standard library: the verifier imports this module on a machine without the collector's
database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GENESIS = bytes(32)
DOMAIN = b"devposture-chain/v1"

# What an entry covers. Each kind's payload fields are listed in docs/audit-evidence.md.
REPORT = "report"
STATE = "state"
WAIVER = "waiver"
DEVICE = "device"
ADMIN = "admin"
KINDS = (REPORT, STATE, WAIVER, DEVICE, ADMIN)

EVIDENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence_chain (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    at_us      INTEGER NOT NULL,
    record_key TEXT NOT NULL,
    payload    BLOB NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_chain_by_time ON evidence_chain(at_us);
CREATE TRIGGER IF NOT EXISTS evidence_chain_is_append_only_update BEFORE UPDATE ON evidence_chain
BEGIN SELECT RAISE(ABORT, 'the evidence chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evidence_chain_is_append_only_delete BEFORE DELETE ON evidence_chain
BEGIN SELECT RAISE(ABORT, 'the evidence chain is append-only'); END;
"""

Payload = Mapping[str, object]


# One encoder for every payload (json.dumps with these options would build one per call).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(payload: Payload) -> bytes:
    """The one byte form of a payload: sorted keys, no spaces, UTF-8."""
    return _CANONICAL.encode(payload).encode("utf-8")


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def entry_hash(
    prev_hash: bytes, seq: int, *, kind: str, at_us: int, key: str, payload: bytes
) -> bytes:
    # The fields joined first and hashed at once (one call, not seven): every stored report
    # and state change is hashed as it is written.
    parts = (DOMAIN, prev_hash, str(seq).encode(), kind.encode(), str(at_us).encode(),
             key.encode("utf-8"), payload)  # fmt: skip
    return hashlib.sha256(b"".join([_field(part) for part in parts])).digest()


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    at_us: int
    key: str
    payload: bytes
    prev_hash: bytes
    hash: bytes

    def recomputed(self) -> bytes:
        return entry_hash(self.prev_hash, self.seq, kind=self.kind, at_us=self.at_us, key=self.key,
                          payload=self.payload)

    def record(self) -> dict[str, object]:
        value = json.loads(self.payload)
        assert isinstance(value, dict)
        return value


def now_us() -> int:
    return time.time_ns() // 1000


def append(
    cur: sqlite3.Cursor, kind: str, key: str, payload: Payload, at_us: int | None = None
) -> int:
    """Chain one record, on the cursor of the transaction that writes the record: one read of
    the head (by primary key), one hash, one INSERT. Returns the new entry's sequence number."""
    return Appender(cur).append(kind, key, payload, at_us)


# (seq, at_us, hash) of the newest entry; (0, 0, GENESIS) before the first.
Head = tuple[int, int, bytes]


class Appender:
    """Chains many records in one write transaction, reading the head once: a group commit of
    hundreds of reports and their state changes would otherwise read it before every entry.

    Only for a transaction that writes the chain through this object alone (the write lock,
    taken by BEGIN IMMEDIATE, keeps other connections out). When a savepoint is rolled back,
    `rewind` to the `mark` taken when it began, so that the next entry follows what is still
    written."""

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur
        self._head: Head | None = None

    def mark(self) -> Head | None:
        return self._head

    def rewind(self, mark: Head | None) -> None:
        self._head = mark

    def append(self, kind: str, key: str, payload: Payload, at_us: int | None = None) -> int:
        """Chain one record (see `append`); returns the new entry's sequence number."""
        row = self.entry(kind, key, payload, at_us)
        self._cur.execute(_INSERT + _VALUES, row)
        return row[0]

    def entry(
        self, kind: str, key: str, payload: Payload, at_us: int | None = None
    ) -> tuple[int, str, int, str, bytes, bytes, bytes]:
        """The next entry's row, the head moved past it: the caller writes it (`write`) in
        this transaction, entries in order, before anything else is chained."""
        head = self._head
        if head is None:
            row = self._cur.execute(
                "SELECT seq, at_us, hash FROM evidence_chain ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            head = (row[0], row[1], bytes(row[2])) if row else (0, 0, GENESIS)
        seq, prev_at, prev_hash = head[0] + 1, head[1], head[2]
        at = max(now_us() if at_us is None else at_us, prev_at)
        body = canonical(payload)
        digest = entry_hash(prev_hash, seq, kind=kind, at_us=at, key=key, payload=body)
        self._head = (seq, at, digest)
        return (seq, kind, at, key, body, prev_hash, digest)

    def write(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Write entries made by `entry`, up to a hundred per statement."""
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            self._cur.execute(
                _INSERT + ", ".join([_VALUES] * len(chunk)), [v for row in chunk for v in row]
            )


_INSERT = (
    "INSERT INTO evidence_chain(seq, kind, at_us, record_key, payload, prev_hash, hash) VALUES "
)
_VALUES = "(?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_INSERT = 100


def _entry(row: tuple[object, ...]) -> Entry:
    seq, kind, at_us, key, payload, prev_hash, digest = row
    assert isinstance(seq, int) and isinstance(at_us, int)
    return Entry(seq, str(kind), at_us, str(key), bytes(payload),  # type: ignore[call-overload]
                 bytes(prev_hash), bytes(digest))  # type: ignore[call-overload]  # fmt: skip


_COLUMNS = "seq, kind, at_us, record_key, payload, prev_hash, hash"


def entries(db: sqlite3.Connection, first: int, last: int) -> list[Entry]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM evidence_chain WHERE seq BETWEEN ? AND ? ORDER BY seq",  # noqa: S608
        (first, last),
    ).fetchall()
    return [_entry(r) for r in rows]


def entry(db: sqlite3.Connection, seq: int) -> Entry | None:
    found = entries(db, seq, seq)
    return found[0] if found else None


def head(db: sqlite3.Connection) -> Entry | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM evidence_chain ORDER BY seq DESC LIMIT 1"  # noqa: S608
    ).fetchone()
    return None if row is None else _entry(row)


def period(db: sqlite3.Connection, from_us: int, to_us: int) -> tuple[int, int] | None:
    """The first and last sequence numbers of the entries written in [from_us, to_us)."""
    row = db.execute(
        "SELECT MIN(seq), MAX(seq) FROM evidence_chain WHERE at_us >= ? AND at_us < ?",
        (from_us, to_us),
    ).fetchone()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def before(db: sqlite3.Connection, seq: int, kind: str) -> list[Entry]:
    """Every entry of one kind before `seq` (for the standing at the start of a period)."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM evidence_chain WHERE seq < ? AND kind = ? ORDER BY seq",  # noqa: S608
        (seq, kind),
    ).fetchall()
    return [_entry(r) for r in rows]


# --- chaining a database written before the chain existed (schema 3 → 4) -------------------


def chain_existing(connection: sqlite3.Connection) -> None:
    """Chain every evidence row already in the database once, oldest first (by the record's
    own collector time, then by kind and insertion order), inside the migration's
    transaction. From then on, every record is chained as it is written."""
    cur = connection.cursor()
    if cur.execute("SELECT 1 FROM evidence_chain LIMIT 1").fetchone() is not None:
        return
    pending: list[tuple[int, int, int, str, str, dict[str, object]]] = []
    for row in cur.execute(
        "SELECT rowid, report_id, device_id, received_us, collected_us, agent_version,"
        " clock_skew_ms, body FROM reports"
    ):
        pending.append((row[3], 0, row[0], REPORT, row[1], report_payload(row[1:7], row[7])))
    for row in cur.execute(
        "SELECT rowid, device_id, check_id, state, reason, since_us, report_id FROM state_changes"
    ):
        pending.append((row[5], 1, row[0], STATE, state_key(row[1], row[2], row[5]),
                        fields(STATE_FIELDS, row[1:])))  # fmt: skip
    for row in cur.execute(
        "SELECT e.event_id, e.waiver_id, e.action, e.at_us, e.detail, w.device_id, w.check_id,"
        " w.owner, w.reason, w.created_us, w.expires_us FROM waiver_events e"
        " JOIN waivers w ON w.waiver_id = e.waiver_id"
    ):
        pending.append((row[3], 2, row[0], WAIVER, f"{row[1]}/{row[0]}",
                        fields(WAIVER_FIELDS, row)))  # fmt: skip
    for row in cur.execute(
        "SELECT event_id, device_id, action, at_us, detail FROM device_events"
    ):
        pending.append((row[3], 3, row[0], DEVICE, f"{row[1]}/{row[0]}",
                        fields(DEVICE_FIELDS, row)))  # fmt: skip
    for row in cur.execute(
        "SELECT entry_id, at_us, actor, credential_id, role, command, arguments, outcome,"
        " message, peer FROM audit_log"
    ):
        pending.append((row[1], 4, row[0], ADMIN, str(row[0]), fields(ADMIN_FIELDS, row)))
    pending.sort(key=lambda p: (p[0], p[1], p[2]))
    for at_us, _, _, kind, key, payload in pending:
        append(cur, kind, key, payload, at_us=at_us)


# --- the payload of each kind: the record's columns by name, used by the writers and the
# migration alike, so a chained record reads the same whichever wrote it ----------------------

STATE_FIELDS = ("device_id", "check_id", "state", "reason", "since_us", "report_id")
WAIVER_FIELDS = (
    "event_id", "waiver_id", "action", "at_us", "detail", "device_id", "check_id", "owner",
    "reason", "created_us", "expires_us",
)  # fmt: skip
DEVICE_FIELDS = ("event_id", "device_id", "action", "at_us", "detail")
ADMIN_FIELDS = (
    "entry_id", "at_us", "actor", "credential_id", "role", "command", "arguments", "outcome",
    "message", "peer",
)  # fmt: skip
REPORT_FIELDS = (
    "report_id", "device_id", "received_us", "collected_us", "agent_version", "clock_skew_ms",
)


def fields(names: tuple[str, ...], values: Sequence[object]) -> dict[str, object]:
    if len(names) != len(values):
        raise ValueError(f"{len(values)} values for the fields {names}")
    return dict(zip(names, values, strict=True))


def report_payload(values: Sequence[object], body: bytes) -> dict[str, object]:
    """A stored report: its metadata and the SHA-256 of its body (the body is in bundles)."""
    return fields(REPORT_FIELDS, values) | {
        "body_sha256": hashlib.sha256(body).hexdigest(), "body_bytes": len(body),
    }  # fmt: skip


def state_key(device_id: str, check_id: str, since_us: int) -> str:
    return f"{device_id}/{check_id}/{since_us}"
