"""What the whole report may hold, so that the collector never refuses it for its size.

The collector refuses a whole report (INVALID_ARGUMENT, collector/validation.py) when a
repeated field holds more items than its limit or a text more characters than its limit, and
the agent then retries it forever: the device goes dark. Each probe keeps its own facts'
lists within their limits, keeping what decides its clause first (`keep`, used by them); this
module bounds what no single probe owns, once the report is built (agent/collect.py):

* the report's errors: every probe adds its own, and a computer can make one probe add many.
  At most `MAX_ERRORS` are sent, chosen in this order (each group in the order the probes
  wrote them, which is kept): the first error of each fact and the first saying why a whole
  fact is missing (what the checks read to say UNKNOWN rather than FAIL), then the first of
  each other source, then the rest (a repeat of one of those among them). How many were left
  out is said in one error of its own (source `SOURCE`, no fact: no check reads it);
* every text the agent copied from the machine (a path, a tool's message, a product's name):
  one longer than the collector takes is cut in its middle ("…"), keeping its start and its end
  (a path's last folders, a message's cause), rather than losing the report. The limits are
  the collector's (`CHARS`, `DEFAULT_CHARS`), written here because the agent never imports the
  collector; tests/agent/test_report_room.py holds them to the collector's own table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from devposture.agent.probes.outcome import error
from devposture.v1 import devposture_pb2 as pb

MAX_ERRORS = 64
SOURCE = "errors"
DEFAULT_CHARS = 1024
CHARS: dict[str, int] = {
    "devposture.v1.PostureReport.report_id": 36,
    "devposture.v1.PostureReport.agent_version": 64,
    "devposture.v1.HostInfo.hostname": 255,
    "devposture.v1.ProbeError.message": 4096,
    "devposture.v1.ChatBackup.location": 4096,
    "devposture.v1.ChatBackup.encryption_evidence": 4096,
}
CUT = "…"

T = TypeVar("T")


def keep(items: Sequence[T], rank: Callable[[T], object], most: int) -> tuple[list[T], int]:
    """At most `most` of `items`: the lowest ranks first (ties by their place), returned in
    their own order, and how many were left out."""
    if len(items) <= most:
        return list(items), 0
    ranked = sorted(range(len(items)), key=lambda i: (rank(items[i]), i))
    chosen = sorted(ranked[:most])
    return [items[i] for i in chosen], len(items) - len(chosen)


def fit(report: pb.PostureReport) -> None:
    """Bound the report's errors and cut every text past its limit, in place."""
    fit_errors(report)
    cut_texts(report)


def fit_errors(report: pb.PostureReport) -> None:
    """At most MAX_ERRORS errors, the last one saying how many were left out."""
    errors = list(report.errors)
    if len(errors) <= MAX_ERRORS:
        return
    tiers: dict[int, int] = {}
    facts: set[int] = set()
    sources: set[tuple[int, str]] = set()
    for index, one in enumerate(errors):
        first = (one.fact, one.source) not in sources
        if one.fact not in facts or (first and not one.source):
            tiers[index] = 0
        else:
            tiers[index] = 1 if first else 2
        facts.add(one.fact)
        sources.add((one.fact, one.source))
    order = list(range(len(errors)))
    chosen, left_out = keep(order, tiers.__getitem__, MAX_ERRORS - 1)
    del report.errors[:]
    report.errors.extend(errors[i] for i in chosen)
    message = (
        f"{left_out} of {len(errors)} errors left out of the report (the collector takes"
        f" {MAX_ERRORS}): the first of each fact and of each source are kept"
    )
    report.errors.append(
        error(pb.FACT_UNSPECIFIED, pb.PROBE_ERROR_CODE_UNSPECIFIED, message, SOURCE)
    )


def cut(text: str, most: int) -> str:
    """`text`, or its start and end around CUT when it is longer than `most`."""
    if len(text) <= most:
        return text
    head = (most - len(CUT)) // 2
    tail = most - len(CUT) - head
    return text[:head] + CUT + text[len(text) - tail :]


def cut_texts(message: Message) -> None:
    """Cut, in place, every text of `message` and the messages it holds past its limit."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else (value,):
                cut_texts(item)
        elif field.type == FieldDescriptor.TYPE_STRING:
            most = CHARS.get(field.full_name, DEFAULT_CHARS)
            if field.is_repeated:
                if any(len(text) > most for text in value):
                    value[:] = [cut(text, most) for text in value]
            elif len(value) > most:
                setattr(message, field.name, cut(value, most))
