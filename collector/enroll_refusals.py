"""Why the enrollment port refused a token, as a sentence the agent words in its reader's
language (sent in trailing metadata, `devposture.net.rpc_status.ERROR_METADATA`, as the admin
port sends its refusals).

The store says why in English (`TokenRejected`, `collector/store/identity.py`); that text stays
the status's details, which an agent of an older version shows as it is. The sentences it can
be are declared here as templates (the catalogs' msgids): a refusal that matches one is sent
with its parameters; any other is sent as its text.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from devposture.collector.company_time import shown
from devposture.collector.read_back import read_back
from devposture.policy.cli_messages import Said, said

# The store's refusals, word for word, with a `{name}` where they vary.
_TEMPLATES = (
    said("the enrollment token is not known to this collector: check the token file, or create"
         " a new token with `devposture-collector token create`"),
    said("the enrollment token was revoked: ask IT for a new one"),
    said("the enrollment token expired at {time}: ask IT for a new one"
         " (`devposture-collector token create`)"),
    said("the enrollment token was already used up: ask IT for a new one"
         " (`devposture-collector token create`)"),
    said("this device's key belongs to a device IT {status}: enroll with a new key"
         " (`devposture-agent enroll --force`)"),
)  # fmt: skip
# A device's status inside the sentence above (and the report port's, device_refusals.py), in
# the reader's language.
DEVICE_STATUS = {"revoked": said("revoked"), "retired": said("retired")}


def worded_refusal(text: str, zone: dt.tzinfo | None = None) -> Said:
    """The store's refusal `text` as its template and parameters; as it is when none fits.
    With `zone` (the company's), a time the store gives (in UTC, ISO 8601) is shown in it, as
    every other time the employee and IT read: "2026-12-03 16:00 (UTC+08:00)", not
    "2026-12-03T08:00:00+00:00"."""
    found = read_back(text, _TEMPLATES)
    if found is None:
        return Said(text, as_is=True)
    params = dict(found.params)
    status = params.get("status")
    if isinstance(status, str):
        params["status"] = DEVICE_STATUS.get(status, status)
    moment = params.get("time")
    if zone is not None and isinstance(moment, str):
        with contextlib.suppress(ValueError):  # not a time the store wrote: as it is
            params["time"] = shown(dt.datetime.fromisoformat(moment), zone)
    return Said(found.english, params)
