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

The standard library and orjson only (payloads are parsed by orjson, at three times the
standard library's speed: every entry of a quarter is parsed by the exporter and the
verifier): the verifier imports this module on a machine without the collector's database.
The chain's table and its SQL are the store's (`collector/store/chain.py`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

GENESIS = bytes(32)
DOMAIN = b"devposture-chain/v1"

# What an entry covers. Each kind's payload fields are listed in docs/audit-evidence.md.
REPORT = "report"
# Reports sealed together (schema 14): one entry for every report stored since the last seal,
# their records in the order they were stored, instead of an entry each.
REPORT_GROUP = "reports"
STATE = "state"
WAIVER = "waiver"
DEVICE = "device"
ADMIN = "admin"
PRUNE = "prune"  # report bodies deleted under the retention policy (schema 12)
KINDS = (REPORT, REPORT_GROUP, STATE, WAIVER, DEVICE, ADMIN, PRUNE)

Payload = Mapping[str, object]


# One encoder for every payload (json.dumps with these options would build one per call).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(payload: Payload) -> bytes:
    """The one byte form of a payload: sorted keys, no spaces, UTF-8."""
    return _CANONICAL.encode(payload).encode("utf-8")


def is_canonical(payload: Payload, written: bytes) -> bool:
    """Whether `written` is `canonical(payload)`, by orjson first: the same bytes for the
    string keys and the string, integer and null values a row holds, in a tenth of the time
    (an export holds every state change and device event of its period to its row). Where
    orjson writes a value otherwise or not at all (a float, an integer past 64 bits), the
    standard library's encoder decides."""
    try:
        if orjson.dumps(payload, option=orjson.OPT_SORT_KEYS) == written:
            return True
    except orjson.JSONEncodeError:
        pass
    return canonical(payload) == written


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

    def __reduce__(self) -> tuple[type[Entry], tuple[object, ...]]:
        """Pickled as its fields alone (the export's workers send entries back for the
        report's figures): its parsed payload is a cache, parsed again where it is read, and
        pickling it doubled an entry's cost."""
        return (Entry, (self.seq, self.kind, self.at_us, self.key, self.payload, self.prev_hash,
                        self.hash))  # fmt: skip

    def recomputed(self) -> bytes:
        return entry_hash(self.prev_hash, self.seq, kind=self.kind, at_us=self.at_us, key=self.key,
                          payload=self.payload)

    def record(self) -> dict[str, object]:
        """The payload as JSON, parsed once per entry (the exporter and the verifier read it
        for the report's figures and again to hold it to its row): read it, never change it.
        Kept in the instance's dict by hand, not by `functools.cached_property`, which on
        Python 3.11 takes a lock shared by every entry at each first read (an export reads
        hundreds of thousands); two threads parsing one entry at once keep equal dicts."""
        found = self.__dict__.get("_record")
        if found is None:
            found = self.__dict__["_record"] = self._parsed()
        return found

    def known_record(self, record: dict[str, object]) -> None:
        """Hand over the payload's parse where the caller holds a record whose canonical
        form equals `payload` byte for byte (the exporter, having held the entry to its row):
        parsing the payload would give an equal dict."""
        self.__dict__["_record"] = record

    def _parsed(self) -> dict[str, object]:
        # orjson.JSONDecodeError is a ValueError. orjson reads an integer past 64 bits as a
        # float, where json.loads keeps it: no payload holds one (times in microseconds,
        # counts, ids; an agent's times are refused far outside the collector's), and the hash
        # is of the bytes, never of what they parse to.
        value = orjson.loads(self.payload)
        if not isinstance(value, dict):
            raise ValueError(f"the payload of seq {self.seq} is not a JSON object")
        return value


def now_us() -> int:
    return time.time_ns() // 1000


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
# `before_us`: every report body received before it is pruned, but those a device's current
# verdicts still name (pruned later, by a later entry).
PRUNE_FIELDS = ("at_us", "before_us", "retention_days", "reports")
REPORT_FIELDS = (
    "report_id", "device_id", "received_us", "collected_us", "agent_version", "clock_skew_ms",
)


def fields(names: tuple[str, ...], values: Sequence[object]) -> dict[str, object]:
    if len(names) != len(values):
        raise ValueError(f"{len(values)} values for the fields {names}")
    return dict(zip(names, values, strict=True))


def report_payload(values: Sequence[object], body: bytes) -> dict[str, object]:
    """A stored report: its metadata and the SHA-256 of its body (the body is in bundles)."""
    report_id, device_id, received_us, collected_us, agent_version, clock_skew_ms = values
    return {
        "report_id": report_id, "device_id": device_id, "received_us": received_us,
        "collected_us": collected_us, "agent_version": agent_version,
        "clock_skew_ms": clock_skew_ms, "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_bytes": len(body),
    }  # fmt: skip


_STRING = json.encoder.encode_basestring  # the C encoder canonical() uses for str
_REPORT_FORM = (
    '{"agent_version":%s,"body_bytes":%d,"body_sha256":"%s","clock_skew_ms":%s,'
    '"collected_us":%d,"device_id":%s,"received_us":%d,"report_id":%s}'
)


def report_canonical(record: Mapping[str, object]) -> bytes:
    """`canonical(record)` of a report payload, written out directly: the exporter compares
    a million rows with their entries, and the general encoder is most of that time. Any
    record not of the usual shape and types goes through `canonical` itself."""
    size, digest = record.get("body_bytes"), record.get("body_sha256")
    if len(record) == 8 and type(size) is int and type(digest) is str and digest.isalnum():
        written = report_canonical_of(
            (record.get("report_id"), record.get("device_id"), record.get("received_us"),
             record.get("collected_us"), record.get("agent_version"),
             record.get("clock_skew_ms")), digest, size,
        )  # fmt: skip
        if written is not None:
            return written
    return canonical(record)


def report_canonical_of(values: Sequence[object], digest: str, size: int) -> bytes | None:
    """`canonical(report_payload(values, body))` for a body of `size` bytes whose SHA-256 is
    `digest` (hex), without the record: an export's run holds each row to its group this way.
    None where a value is not of its usual type (a row typed in by hand): `canonical` of the
    record then says what it is."""
    report, device, received, collected, agent, skew = values
    if (type(agent) is str and (skew is None or type(skew) is int) and type(collected) is int
            and type(device) is str and type(received) is int and type(report) is str):  # fmt: skip
        text = _REPORT_FORM % (
            _STRING(agent), size, digest, "null" if skew is None else skew, collected,
            _STRING(device), received, _STRING(report),
        )  # fmt: skip
        return text.encode("utf-8")
    return None


def state_key(device_id: str, check_id: str, since_us: int) -> str:
    return f"{device_id}/{check_id}/{since_us}"


# A report group's payload: the stored order (`n`, the reports table's own numbering) of its
# first and last report, and each report's record (as a `report` entry's payload holds it).
GROUP_FIELDS = ("first_n", "last_n", "reports")


def group_key(first_n: int, last_n: int) -> str:
    return f"{first_n}-{last_n}"


def group_range(key: str) -> tuple[int, int] | None:
    """(first_n, last_n) that `group_key` wrote, or None when `key` is not two numbers."""
    try:
        first, last = (int(part) for part in key.split("-"))
    except ValueError:
        return None
    return first, last


class SealOrder:
    """Report groups seal numbers in increasing order, each once: fed each group's range in
    sequence order, it tells when a group seals a number an earlier group sealed (its reports
    counted twice in every bundle and figure: a seal made again after its report_groups row
    was deleted by hand, or an entry inserted). `audit check`, the export and verify each
    word it their own way."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (seq, highest number sealed)

    def resealed(self, seq: int, span: tuple[int, int]) -> tuple[int, int] | None:
        """(seq, highest number) of the earlier group when the group at `seq` seals a number
        it sealed already; None otherwise."""
        earlier = self._last if self._last is not None and span[0] <= self._last[1] else None
        if self._last is None or span[1] > self._last[1]:
            self._last = (seq, span[1])
        return earlier


def group_canonical(first_n: int, last_n: int, records: Sequence[bytes]) -> bytes:
    """`canonical` of a group's payload from its reports' canonical records (each written
    once, by `report_canonical`): a group holds hundreds."""
    return (b'{"first_n":%d,"last_n":%d,"reports":[' % (first_n, last_n)
            + b",".join(records) + b"]}")  # fmt: skip


def group_records(entry: Entry) -> list[dict[str, object]]:
    """The report records of a group entry, in stored order. ValueError when the payload is
    not a group's (an edited entry: the caller names it)."""
    reports = entry.record().get("reports")
    if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
        raise ValueError(f"the payload of seq {entry.seq} holds no list of reports")
    return reports


def as_reports(entry: Entry) -> list[Entry]:
    """A group entry as the `report` entries it stands for (each with the group's seq, time
    and hashes; its report id as key and its record as payload); any other entry as itself.
    What reads reports one by one (the printable report's figures, the opening, holding rows
    to the chain) reads a group through this; the chain's links and hashes are checked on
    the group itself. ValueError when a group's payload cannot be read."""
    if entry.kind != REPORT_GROUP:
        return [entry]
    known = entry.__dict__.get("_reports")  # made once per entry: several readers ask
    if known is not None:
        return list(known)
    out = []
    for record in group_records(entry):
        report = Entry(entry.seq, REPORT, entry.at_us, str(record.get("report_id")),
                       report_canonical(record), entry.prev_hash, entry.hash)  # fmt: skip
        report.known_record(record)
        out.append(report)
    entry.__dict__["_reports"] = tuple(out)
    return out
