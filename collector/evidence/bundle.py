"""The audit bundle's layout, shared by the exporter and the verifier (docs/audit-evidence.md).

A bundle is one zip file:

* `manifest.json`  what the bundle claims: period, collector, chain range and head, counts,
                   and the SHA-256 of every other member;
* `manifest.sig`   Ed25519 signature (base64) over the manifest's bytes, by the collector;
* `chain.jsonl`    the chain entries written in the period, in sequence order;
* `index.jsonl`    (seq, kind, key, hash) of each of them: names a removed entry;
* `opening.jsonl`  earlier entries that say how things stood when the period began (each
                   device's last state per check, waivers still running);
* `reports.jsonl`  the body of each report entry (base64 protobuf), and of each report of a
                   report group on one line (format 4), but for bodies pruned
                   under the retention policy (`audit facts` prints a body's facts as JSON;
                   formats 1 and 2 held them on each line, which made a quarter's export
                   spend most of its time converting bodies no one reads);
* `pruned.jsonl`   the chain's prune entries that emptied bodies of the period (format 3);
* `context.json`   the policy's clauses and checks, and device hostnames, for the HTML;
* `report.html`    the printable report (Chinese and English), made from the members above.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pybase64
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from devposture.collector.evidence.chain import Entry
from devposture.v1 import devposture_pb2 as pb

# Format 2 adds `chain.prev_seq` (the sequence number of the entry `prev_hash` names), so
# that a bundle with no entries still says where it links into the chain. Format 1
# bundles still verify: their `prev_seq` is `first_seq - 1`, or unknown when empty.
# Format 3 adds `pruned.jsonl` and the manifest's `pruned`: the retention prunings that
# emptied report bodies of the period, so that a pruned body is told from a deleted one. Its
# report lines no longer carry the body's facts as JSON (`audit facts` shows them).
# Format 4 adds report groups (kind `reports`, store/sealing.py): one chain entry for the
# reports stored together, their bodies on one line of `reports.jsonl` (`group_bodies_jsonl`).
FORMAT = "devposture-audit-bundle/4"
# Format 5 (docs/audit-evidence.md, "Format 5"): report groups of kind `report_facts`, their
# lines shipping fact sets and parts (`fact_groups.py`). Written where a period holds such
# groups.
FACTS_FORMAT = "devposture-audit-bundle/5"
FORMATS = ("devposture-audit-bundle/1", "devposture-audit-bundle/2",
           "devposture-audit-bundle/3", FORMAT, FACTS_FORMAT)  # fmt: skip
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHAIN = "chain.jsonl"
INDEX = "index.jsonl"
OPENING = "opening.jsonl"
REPORTS = "reports.jsonl"
CONTEXT = "context.json"
HTML = "report.html"
PRUNED = "pruned.jsonl"
MEMBERS = (CHAIN, INDEX, OPENING, REPORTS, CONTEXT, HTML, PRUNED)
# JSON text of a string as `jsonl` writes it (UTF-8 kept, not escaped).
_TEXT = json.JSONEncoder(ensure_ascii=False)


def line_parser(member: str) -> Callable[[bytes | bytearray], Any]:
    """What parses a line of `member` (ValueError when it is not JSON): orjson, three times the
    standard library's speed on chain and index lines, but for the report bodies' lines, long
    base64 strings that the standard library's scanner reads faster (25 against 28 us for a
    group's line, measured on a quarter's bundle)."""
    return json.loads if member == REPORTS else orjson.loads


def body_of(text: str) -> bytes:
    """A base64 body of `reports.jsonl`; binascii.Error (a ValueError) when it is not strict
    base64. Decoded by pybase64 (SIMD: 0.6 us a body where base64.b64decode(validate=True)
    took 3.6, and a quarter holds a million bodies), which refuses what the standard library
    refuses and excess padding too (none that the exporter writes)."""
    return pybase64.b64decode(text, validate=True)


def text_of(body: bytes) -> str:
    """A body in base64, as `reports.jsonl` holds it: by pybase64 (SIMD, 0.4 us a body
    against the standard library's 2). A large period's bodies are encoded in the export's
    worker processes (check_pool), alone on their thread; where the export's own process
    encoded them, pybase64 letting the GIL go for each body beside the thread that deflates
    (member_runs) had cost a second more of system time a daily quarter."""
    return pybase64.b64encode(body).decode("ascii")


def entry_line(entry: Entry) -> dict[str, Any]:
    return {
        "seq": entry.seq, "kind": entry.kind, "at_us": entry.at_us, "key": entry.key,
        # The exact bytes that were hashed, as text (canonical JSON is UTF-8).
        "payload": entry.payload.decode("utf-8"),
        "prev_hash": entry.prev_hash.hex(), "hash": entry.hash.hex(),
    }  # fmt: skip


def entry_jsonl(entry: Entry) -> bytes:
    """`jsonl(entry_line(entry))`, byte for byte, written out directly: it is every line of
    a quarter's chain (a million of them), where building and sorting a dict per line showed.
    The payload, a group's 24 KB in a fleet's hour, is escaped by orjson (33 µs where the
    standard library took 45: the same bytes for any text, UTF-8 kept as `_TEXT` keeps it)."""
    return b"".join((
        f'{{"at_us": {entry.at_us}, "hash": "{entry.hash.hex()}",'
        f' "key": {_TEXT.encode(entry.key)}, "kind": {_TEXT.encode(entry.kind)},'
        ' "payload": '.encode(),
        orjson.dumps(entry.payload.decode("utf-8")),
        f', "prev_hash": "{entry.prev_hash.hex()}", "seq": {entry.seq}}}\n'.encode(),
    ))  # fmt: skip


def index_line(entry: Entry) -> list[object]:
    return [entry.seq, entry.kind, entry.key, entry.hash.hex()]


def index_jsonl(entry: Entry) -> bytes:
    """`jsonl(index_line(entry))`, byte for byte, written out directly (as `entry_jsonl`)."""
    return (f"[{entry.seq}, {_TEXT.encode(entry.kind)}, {_TEXT.encode(entry.key)},"
            f' "{entry.hash.hex()}"]\n').encode()  # fmt: skip


class Malformed(Exception):
    """A line of a member cannot be read at all."""


def parse_entry(line: dict[str, Any]) -> Entry:
    try:
        return Entry(
            int(line["seq"]), str(line["kind"]), int(line["at_us"]), str(line["key"]),
            str(line["payload"]).encode("utf-8"), bytes.fromhex(line["prev_hash"]),
            bytes.fromhex(line["hash"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise Malformed(f"not a chain entry ({type(exc).__name__}: {exc})") from None


def parse_report(line: object) -> tuple[int, str, bytes]:
    """(seq, report id, body) of a `reports.jsonl` line; Malformed when it is not one."""
    try:
        if not isinstance(line, dict):
            raise TypeError("not a JSON object")
        body = body_of(line["body_base64"])
        return int(line["seq"]), str(line["report_id"]), body
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise Malformed(f"not a report body ({type(exc).__name__}: {exc})") from None


def facts_of(body: bytes) -> dict[str, Any] | None:
    """A report body as JSON (proto field names), or None when it is not a PostureReport."""
    message = pb.PostureReport()
    try:
        message.ParseFromString(body)
    except DecodeError:
        return None
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def report_line(seq: int, report_id: str, body: bytes) -> dict[str, Any]:
    return {"seq": seq, "report_id": report_id,
            "body_base64": text_of(body)}  # fmt: skip


def report_jsonl(seq: int, report_id: str, body: bytes) -> bytes:
    """`jsonl(report_line(…))`, byte for byte, written out directly (as `entry_jsonl`)."""
    return (f'{{"body_base64": "{text_of(body)}",'
            f' "report_id": {_TEXT.encode(report_id)}, "seq": {seq}}}\n').encode()  # fmt: skip


def group_bodies_jsonl(seq: int, bodies: list[tuple[str, bytes]]) -> bytes:
    """The bodies of a report group's reports, on one line (format 4): `reports` lists
    [report id, base64 body] in the group's order, those pruned left out. Made as bytes (the
    id escaped by orjson, as `entry_jsonl`'s payload; the base64 never decoded to text): a
    quarter's export writes a million (1.17 -> 0.91 us a body)."""
    items = b",".join([b'[%s, "%s"]' % (orjson.dumps(report_id), pybase64.b64encode(body))
                       for report_id, body in bodies])  # fmt: skip
    return b'{"reports": [%s], "seq": %d}\n' % (items, seq)


def parse_group_bodies(line: object) -> tuple[int, list[tuple[str, bytes]]]:
    """(seq, [(report id, body)]) of a report group's line of `reports.jsonl`; Malformed when
    it is not one."""
    try:
        if not isinstance(line, dict) or not isinstance(line["reports"], list):
            raise TypeError("not a JSON object with a list of reports")
        bodies = [(str(item[0]), body_of(item[1])) for item in line["reports"]]
        return int(line["seq"]), bodies
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise Malformed(f"not a report group's bodies ({type(exc).__name__}: {exc})") from None


def pruned_claim(prunes: list[Entry], bodies: int) -> dict[str, Any]:
    """What the manifest says was pruned: how many of the period's report bodies, by which
    prunings (each a chain entry in `pruned.jsonl`)."""
    return {"bodies": bodies, "prunes": [
        {"seq": e.seq, **{k: e.record()[k] for k in ("at_us", "before_us", "retention_days")}}
        for e in prunes
    ]}  # fmt: skip


def jsonl(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
