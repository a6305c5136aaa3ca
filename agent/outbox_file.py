"""One report in the agent's outbox: how it is framed on disk and what its file name says.

Framing. A protobuf parser may accept damaged bytes without complaint (a flipped bit in a
string is still a string), so each report is stored behind a small header: the magic
b"DPO1", the body's length and the SHA-256 of the body. A file whose header does not match
its body is corrupt. Files written by earlier agents hold a bare serialized report and are
still read (the upgrade path); their names have no kind letter.

Naming. The outbox's bound is enforced on every collection, over possibly thousands of
files, so what eviction needs is in the name and no file is opened to decide:

    <collected_at in µs, 20 digits>-<kind>-<fact digest, 12 hex>-<report id>.report

Names of one format sort by collection time. The kind says how long a report is worth
keeping when the outbox is full: `e` an event (a network change, a new backup, a policy
change), `c` a state change (its facts differ from the report before it), `p` a periodic
snapshot that repeats the facts of the report before it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from typing import Final, Literal

from google.protobuf.message import DecodeError

from devposture.v1 import devposture_pb2 as pb

SUFFIX: Final = ".report"
MAGIC: Final = b"DPO1"
_HEADER: Final = struct.Struct(">4sQ32s")  # magic, body length, SHA-256 of the body
DIGEST_CHARS: Final = 12

Kind = Literal["e", "c", "p"]
EVENT: Final[Kind] = "e"
CHANGE: Final[Kind] = "c"
PERIODIC: Final[Kind] = "p"

EVENT_TRIGGERS: Final = frozenset(
    {
        pb.COLLECTION_TRIGGER_NETWORK_CHANGE,
        pb.COLLECTION_TRIGGER_NEW_BACKUP,
        pb.COLLECTION_TRIGGER_POLICY_CHANGE,
    }
)

_FRAMED_NAME: Final = re.compile(
    rf"^(\d{{20}})-([ecp])-([0-9a-f]{{{DIGEST_CHARS}}})-[A-Za-z0-9_-]+{re.escape(SUFFIX)}$"
)
_LEGACY_NAME: Final = re.compile(rf"^(\d+)-.+{re.escape(SUFFIX)}$")
_SAFE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class CorruptReport(Exception):
    """An outbox file that does not hold a whole, intact report; the message says why."""


@dataclass(frozen=True)
class Entry:
    """What the outbox knows about one of its files from the name and size alone."""

    name: str
    size: int
    micros: int  # collection time; 0 when the name does not say
    kind: Kind
    digest: str | None  # None for legacy files: they are never coalesced
    framed: bool

    @property
    def order(self) -> tuple[int, str]:
        return self.micros, self.name


def entry_for(name: str, size: int) -> Entry:
    framed = _FRAMED_NAME.match(name)
    if framed:
        kind: Kind = EVENT if framed[2] == EVENT else CHANGE if framed[2] == CHANGE else PERIODIC
        return Entry(name, size, int(framed[1]), kind, framed[3], framed=True)
    legacy = _LEGACY_NAME.match(name)
    # A legacy file's worth is unknown without reading it: keep it with the state changes.
    return Entry(name, size, int(legacy[1]) if legacy else 0, CHANGE, None, framed=False)


def collected_micros(report: pb.PostureReport) -> int:
    return report.collected_at.seconds * 1_000_000 + report.collected_at.nanos // 1000


def fact_digest(report: pb.PostureReport) -> str:
    """The same for two reports that observed the same facts, whenever and why collected."""
    facts = pb.PostureReport()
    facts.CopyFrom(report)
    for field in ("report_id", "collected_at", "trigger", "delivery"):
        facts.ClearField(field)
    body = facts.SerializeToString(deterministic=True)
    return hashlib.sha256(body).hexdigest()[:DIGEST_CHARS]


def kind_of(report: pb.PostureReport, digest: str, previous_digest: str | None) -> Kind:
    """Events first; then anything new (a Wi-Fi session closing changes the session list, so
    the first report to carry a closed session is a state change); the rest are repeats."""
    if report.trigger in EVENT_TRIGGERS:
        return EVENT
    return PERIODIC if digest == previous_digest else CHANGE


def file_name(report: pb.PostureReport, kind: Kind, digest: str) -> str:
    report_id = report.report_id
    if not _SAFE_ID.match(report_id):  # never let an id shape a path
        report_id = "x" + hashlib.sha256(report_id.encode("utf-8")).hexdigest()[:32]
    return f"{collected_micros(report):020d}-{kind}-{digest}-{report_id}{SUFFIX}"


def encode(report: pb.PostureReport) -> bytes:
    body = report.SerializeToString(deterministic=True)
    return _HEADER.pack(MAGIC, len(body), hashlib.sha256(body).digest()) + body


def decode(data: bytes, *, framed: bool) -> pb.PostureReport:
    """The report in a file's bytes; `framed` says the file's name promises a header."""
    if data.startswith(MAGIC):
        body = _unframe(data)
    elif framed:
        raise CorruptReport("the file has no outbox header")
    else:
        body = data  # written by an earlier agent: a bare report
    if not body:
        raise CorruptReport("the file is empty")
    report = pb.PostureReport()
    try:
        report.ParseFromString(body)
    except DecodeError as exc:
        raise CorruptReport("the report cannot be decoded") from exc
    if not report.report_id:
        raise CorruptReport("the file holds no report id")
    return report


def _unframe(data: bytes) -> bytes:
    if len(data) < _HEADER.size:
        raise CorruptReport("the file is shorter than its header")
    _, length, digest = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    if len(body) != length:
        raise CorruptReport(f"the file holds {len(body)} bytes of report, its header says {length}")
    if hashlib.sha256(body).digest() != digest:
        raise CorruptReport("the report does not match its checksum")
    return body
