"""Waivers as `waiver list` gives them to a person: their status, and their log (`--log`), in
the reader's language and the company's time zone.

The store writes each change of a waiver once, in English, and chains it into the audit
evidence, which holds that text byte for byte (`Waivers.add_waiver`: "device …, check …, owner
…, expires 2026-12-31T16:00:00+00:00: reason"; a revocation's detail is the reason IT typed).
JSON and CSV keep that text and the action's code ("add", "revoke") as they are; a person's
table reads the text back into its sentence (`read_back`) and words it, the expiry shown as
every other time IT reads ("2027-01-01 00:00 (UTC+08:00)", not the UTC it is stored in).
What fits no template (another version's wording) is shown as it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from devposture.collector.company_time import shown
from devposture.collector.read_back import read_back
from devposture.collector.render import code_cell
from devposture.policy.cli_messages import Said, Told, said

# A waiver's status and a log entry's action, each a code in JSON and CSV. A waiver revoked
# or expired reads as the dashboard says it ("已撤销", "已到期"), not as a revoked token or
# an expired certificate does.
STATUS = {"active": said("in force"), "revoked": said("revoked early"),
          "expired": said("ran to its end date")}  # fmt: skip
ACTIONS = {"add": said("added"), "revoke": said("revoked early")}
# What `Waivers.add_waiver` writes as an added waiver's detail.
_ADDED = (said("device {device_id}, check {check}, owner {owner}, expires {expires}: {reason}"),)


def status_cell(status: str) -> str:
    return code_cell(status, STATUS)


def action_cell(action: str) -> str:
    return code_cell(action, ACTIONS)


def detail_cell(action: str, detail: str, zone: dt.tzinfo) -> str:
    """A log entry's detail: its `str` the stored text; for a person, an added waiver's
    sentence with its expiry in `zone`. A revocation's reason stays in the words IT typed."""
    found = read_back(detail, _ADDED) if action == "add" else None
    if found is None:
        return detail
    params = dict(found.params)
    with contextlib.suppress(ValueError):  # not a time the store wrote: as it is
        moment = dt.datetime.fromisoformat(str(params["expires"]))
        if moment.tzinfo is not None:
            params["expires"] = shown(moment, zone)
    return Told.keeping(detail, Said(found.english, params))
