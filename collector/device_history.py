"""A device's identity as `device show` and `device list` give it to a person: its status, its
history of identity changes and a suspected clone's detail, in the reader's language.

The store keeps the history as English text (`device_events`: an action and a detail, written
once, append-only and chained into the audit evidence, which holds that text byte for byte;
`devices.clone_detail` beside it), so its words cannot be stored otherwise. The shapes the
store writes are declared here as templates (the catalogs' msgids) and each text is read back
into its template and parameters (`read_back`). Each cell is a `Told`: its `str` is the text
as it always was, which JSON and CSV carry and scripts read, and a person's table words it in
their language (`admin.worded_cells`), on the collector machine and over the admin port alike.
What fits no template (a later version's wording, a line typed into the database) is shown as
it is; IT's own reason for a revocation stays in the words IT typed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from devposture.collector.company_time import shown
from devposture.collector.enroll_refusals import DEVICE_STATUS
from devposture.collector.read_back import read_back
from devposture.policy.cli_messages import Said, Told, said, told

# A device's status, alone or inside a sentence ("already revoked"), in the reader's language.
STATUS_WORDS = {"active": said("active"), **DEVICE_STATUS}
# The OS families as their makers write them (in every language); the store, JSON, CSV and the
# filters keep the lower-case codes ("linux", "macos").
OS_NAMES = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}

# `IdentityRecords._flag_clone`'s detail.
_CLONE = (
    said("a certificate of generation {presented} was presented after generation {newest} was"
         " in use: the agent's state folder is probably running on a second computer"),
)  # fmt: skip
# "{action}: {detail}" of each event the store writes (`IdentityRecords._event`). A template
# that extends another goes first: a parameter matches as little as it can.
_EVENTS = (
    said("enrolled: token {token}, certificate generation {generation}, group {group}"),
    said("enrolled: token {token}, certificate generation {generation}"),
    said("renewed: certificate generation {generation}"),
    said("reestablished: certificate generation {generation}"),
    said("revoked: {reason}"),
    said("retired: {reason}"),
    said("clone suspected: {clone}"),
    said("group: group set to {group} (was {before})"),
    said("group: group set to {group}"),
    said("group: group {before} cleared"),
)


def device_status(status: str, since: str | None) -> Told:
    """e.g. "revoked since 2026-12-03T16:38:00+08:00" (`since`: the row's stamp, in the
    company's time zone), "active": that text is what JSON and CSV keep, byte for byte. A
    person's table words the time as every sentence does, "2026-12-03 16:38 (UTC+08:00)"
    ("已吊销（自 2026-12-03 16:38（UTC+08:00）起）"), not an ISO time inside the words."""
    word = STATUS_WORDS.get(status) or Said(status, as_is=True)
    if since is None:
        return Told(word)
    kept = told("{status} since {at}", status=word, at=since)
    try:
        at = dt.datetime.fromisoformat(since)
    except ValueError:
        return kept  # not a stamp this collector wrote: as it is
    if at.tzinfo is None:
        return kept
    # The stamp's own offset is the company's at that moment (`stamp`).
    return Told.keeping(kept, said("{status} since {at}", status=word, at=shown(at, at.tzinfo)))


def os_cell(family: str) -> str:
    """A device's OS family as a table's cell: its `str` the code ("linux"), which JSON and CSV
    keep; a person's table shows "Linux". As it is for a family this version does not know."""
    name = OS_NAMES.get(family)
    return family if name is None else Told.keeping(family, Said(name, as_is=True))


def _clone(detail: str) -> Said:
    return read_back(detail, _CLONE) or Said(detail, as_is=True)


def clone_detail(detail: str) -> Told | str:
    """Why a clone is suspected, worded; '' when none is."""
    return Told(_clone(detail)) if detail else ""


def _event(at: dt.datetime, action: str, detail: str, zone: dt.tzinfo) -> Said:
    text = f"{action}: {detail}"
    found = read_back(text, _EVENTS) or Said(text, as_is=True)
    clone = found.params.get("clone")
    if isinstance(clone, str):  # the clone's detail is a sentence of its own
        found = Said(found.english, {**found.params, "clone": _clone(clone)})
    return said("{at}  {event}", at=shown(at, zone), event=found)


def _joined(lines: Sequence[Said]) -> Said:
    """The lines one below the other, as one sentence. Joined by halves: a device renewed
    every week for years has hundreds of events, and a sentence nested one line deeper each
    (`cli_messages.lines`) would be worded, and sent as JSON, past Python's recursion limit."""
    if len(lines) == 1:
        return lines[0]
    half = len(lines) // 2
    return said("{above}\n{indent}{line}", above=_joined(lines[:half]), indent="",
                line=_joined(lines[half:]))  # fmt: skip


def history(events: Sequence[tuple[str, str, dt.datetime, str]], zone: dt.tzinfo) -> Told | str:
    """`store.identity.device_events` of one device, a line each with its time in `zone`;
    '' when there are none."""
    if not events:
        return ""
    return Told(_joined([_event(at, action, detail, zone) for _, action, at, detail in events]))
