"""What `status` shows, published where every user of this computer can read it.

The state folder is the service's own (0700, root; on Windows SYSTEM's and the
Administrators'): it holds the device's key. But employees are standard users (UOS, Deepin
and Kylin give no sudo without developer mode; macOS standard accounts; Windows standard
users), and `status` is how they learn what to fix: as the service's copy, it told them to
run it as root. So the service publishes, beside its private state, a copy of exactly what
`status` shows, and nothing more: the collector's last verdicts (titles, states, reasons,
remedies, grace deadlines), its refusal of this device if any, the company's time zone and
the outbox's counts. No key, certificate, network hash key, Wi-Fi rule or device id (a
refusal names the computer by its hostname); docs/threat-model.md says what a shared
computer's other users learn from it. Mature agents do the same: Fleet's orbit, running as
root, writes what Fleet Desktop reads as the person at the computer (its token, Nudge's
settings) 0644 in a 0755 folder.

The service writes it at every start (after a reboot, /run is empty; after an upgrade the
format may be new) and whenever what it holds may have changed: a report put in the outbox, a
drain's answers (agent.deliver). Each write is atomic (`write_atomic`): a reader sees the old
copy or the new one. `status` reads it when the private state is not readable by its user;
root reads the private state, as before. A copy that cannot be written is logged and the
round goes on: it is never worth a report.

The file is JSON a person can read (`cat` it to see what it exposes): a verdict's fields by
their proto names, times in RFC 3339, so that a field added to CheckVerdict travels with no
change here (a kind of field this module cannot write fails its test).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.outbox import Outbox
from devposture.agent.state import (
    AGENT_FILE,
    AgentState,
    refusal_data,
    refusal_of,
    write_atomic,
)
from devposture.policy.cli_messages import Said, Worded, said
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

PUBLIC_FILE = "status.json"
# Raised when what the file means changes; a reader refuses a format it does not know.
FORMAT = 1
# Far more than six verdicts with their remedies take; a bigger file is not the service's.
MAX_BYTES = 1 << 20
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
# What `status` shows of the outbox (agent.status.render_delivery).
_DELIVERY_COUNTS = ("pending_reports", "dropped_total")


class PublicStatusError(Worded):
    """The public copy cannot be read or is not one the service wrote; the message names it
    and what to do (worded in the reader's language)."""


@dataclass(frozen=True)
class Shown:
    """Everything `status` shows besides a local check. `judged` holds the collector's last
    verdicts and when it stored the report they judge (None before the first); `refusal` the
    collector's words when it refuses this device, and when (microseconds); `delivery` what
    waits in the outbox (None when not enrolled)."""

    enrolled: bool
    time_zone: str = ""
    judged: pb.ReportAck | None = None
    refusal: tuple[Said, int] | None = None
    delivery: pb.DeliveryStats | None = None


def of_state(state: AgentState) -> Shown:
    """What `status` shows, from the private state. PermissionError when this user may not
    read it (the service's own folder, and `status` run by someone else): asked of agent.json
    itself, since `Path.is_file` may answer False for a file it may not see (Python 3.14)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # not enrolled: below
        (state.directory / AGENT_FILE).stat()
    if not state.is_enrolled():
        return Shown(False, state.company_time_zone())
    ack = state.load_verdicts()
    judged = None
    if ack is not None:
        judged = pb.ReportAck(stored_at=ack.stored_at, verdicts=ack.verdicts)
    stats = Outbox(state.outbox_dir).stats()
    refusal = state.load_refusal()
    if refusal is not None:
        reason, at_us = refusal
        refusal = _by_name(reason, state.load().device_id, socket.gethostname()), at_us
    return Shown(True, state.company_time_zone(), judged, refusal, stats)


def _by_name(reason: Said, device_id: str, hostname: str) -> Said:
    """The collector's refusal (`device {device} was revoked by IT …`) naming this computer by
    its name, as IT's lists show it, instead of its device id, which the copy every user reads
    never holds (docs/threat-model.md, row 41): it carried the id in. Root's `status` reads the
    same words, so that the two stay line for line alike."""
    if reason.as_is:
        return Said(reason.english.replace(device_id, hostname), as_is=True)
    named = reason.swapping(lambda value: hostname if value == device_id else None)
    if named.plain is None or named is reason:  # a list of names: no sentence of the collector's
        return named
    return dataclasses.replace(named, plain=named.plain.replace(device_id, hostname))


# -- the file -----------------------------------------------------------------------------------


def _data_of(message: Message) -> dict[str, Any]:
    """A message's fields by their proto names: texts as they are, times in RFC 3339. Any
    other kind of field raises TypeError (the test of every verdict field finds it)."""
    data: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            raise TypeError(f"{field.full_name}: a repeated field has no public form yet")
        if field.message_type is not None and field.message_type.full_name == _TIMESTAMP:
            data[field.name] = value.ToJsonString()
        elif field.type == field.TYPE_STRING:
            data[field.name] = value
        else:
            raise TypeError(f"{field.full_name}: this kind of field has no public form yet")
    return data


def _fill(message: Message, data: object) -> None:
    """Set `message`'s fields from `_data_of`'s; a name this agent does not know (written by
    a newer one) is left out. ValueError on anything else."""
    if not isinstance(data, dict):
        raise ValueError(f"{message.DESCRIPTOR.name} is not an object")
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in data.items():
        field = fields.get(name)
        if field is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{message.DESCRIPTOR.name}.{name} is not text")
        if field.message_type is not None and field.message_type.full_name == _TIMESTAMP:
            getattr(message, name).FromJsonString(value)
        else:
            setattr(message, name, value)


def encode(shown: Shown) -> bytes:
    """The public file's bytes: what `status` needs, and only that."""
    judged = None
    if shown.judged is not None:
        judged = {
            "stored_at": shown.judged.stored_at.ToJsonString(),
            "verdicts": [_data_of(v) for v in shown.judged.verdicts],
        }
    delivery: dict[str, int | str] | None = None
    if shown.delivery is not None:
        delivery = {name: int(getattr(shown.delivery, name)) for name in _DELIVERY_COUNTS}
        if shown.delivery.HasField("oldest_pending_at"):
            delivery["oldest_pending_at"] = shown.delivery.oldest_pending_at.ToJsonString()
    data = {
        "format": FORMAT,
        "enrolled": shown.enrolled,
        "time_zone": shown.time_zone,
        "judged": judged,
        "refused": None if shown.refusal is None else refusal_data(*shown.refusal),
        "delivery": delivery,
    }
    return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def decode(data: bytes) -> Shown:
    """Read `encode`'s bytes back; ValueError naming what is wrong."""
    try:
        kept = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8 text") from exc
    if not isinstance(kept, dict):
        raise ValueError("not a JSON object")
    if kept.get("format") != FORMAT:
        raise ValueError(f"format {kept.get('format')!r}, not {FORMAT}")
    judged = None
    if kept.get("judged") is not None:
        raw = kept["judged"]
        judged = pb.ReportAck()
        if not isinstance(raw, dict) or not isinstance(raw.get("verdicts"), list):
            raise ValueError("judged holds no list of verdicts")
        _fill(judged, {"stored_at": raw.get("stored_at")})
        for item in raw["verdicts"]:
            _fill(judged.verdicts.add(), item)
    refusal = None
    if kept.get("refused") is not None:
        refusal = refusal_of(kept["refused"])
        if refusal is None:
            raise ValueError("refused is damaged")
    return Shown(bool(kept.get("enrolled")), str(kept.get("time_zone") or ""), judged, refusal,
                 _delivery(kept.get("delivery")))  # fmt: skip


def _delivery(raw: object) -> pb.DeliveryStats | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("delivery is not an object")
    stats = pb.DeliveryStats()
    for name in _DELIVERY_COUNTS:
        value = raw.get(name, 0)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"delivery.{name} is not a count")
        setattr(stats, name, value)
    if raw.get("oldest_pending_at") is not None:
        _fill(stats, {"oldest_pending_at": raw["oldest_pending_at"]})
    return stats


# -- the service writes it ------------------------------------------------------------------------


def ensure_public_dir(folder: Path) -> None:
    """Make `folder` (and its missing parents) and, on Linux and macOS, make sure it is the
    service's own and readable by all, writable by it alone (0755, whatever the umask:
    systemd's UMask=0077). A folder of another user is refused (PermissionError): what it
    holds could be swapped by that user. On Windows its ACL is setup's
    (`install_commands.public_folder`)."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    if sys.platform == "win32":
        return
    st = folder.stat()
    if st.st_uid != os.geteuid():
        raise PermissionError(f"{folder} belongs to user {st.st_uid}, not to the agent's account")
    if stat.S_IMODE(st.st_mode) != 0o755:
        folder.chmod(0o755)


def publish(state: AgentState) -> None:
    """Write what `status` shows to the public folder (`state.public_dir`; None: nowhere).
    A failure is logged and goes no further: the copy is never worth a round."""
    folder = state.public_dir
    if folder is None:
        return
    try:
        shown = of_state(state)
        ensure_public_dir(folder)
        write_atomic(folder / PUBLIC_FILE, encode(shown), 0o644)
    except OSError as exc:
        log.warning(
            "cannot publish what `status` shows in %s (%s): users without administrator"
            " rights read the previous copy, or none", folder, exc.strerror or exc,
        )  # fmt: skip
    except Exception:
        log.exception("cannot publish what `status` shows in %s", folder)


# -- `status` reads it ----------------------------------------------------------------------------


def read_published(folder: Path) -> Shown:
    """The copy the service published in `folder`; PublicStatusError saying what to do when
    there is none, it cannot be read, or it is not one the service wrote."""
    path = folder / PUBLIC_FILE
    try:
        # Non-blocking: a FIFO put in its place must not hang `status`.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise PublicStatusError(
            "this computer's compliance status cannot be shown: the agent's state folder is its"
            " service's own, and the copy the service publishes for every user, {path}, cannot"
            " be read ({problem}). Check that the agent's service is running (it writes the"
            " copy when it starts), or check this computer now with `devposture-agent status"
            " --local`",
            path=path, problem=exc,
        ) from exc
    problem: Said | None = None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            problem = said("not a regular file")
        else:
            data = handle.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                problem = said("bigger than {size} bytes", size=MAX_BYTES)
    if problem is None:
        try:
            return decode(data)
        except ValueError as exc:
            problem = Said(str(exc), as_is=True)  # what is wrong inside: technical, as it is
    raise PublicStatusError(
        "{path} is not a status the agent's service wrote ({problem}): the service writes it"
        " again when it starts and after each report. Check this computer now with"
        " `devposture-agent status --local`",
        path=path, problem=problem,
    )
