"""Why the report port refuses a device itself, as a sentence the agent words in its reader's
language.

A device revoked or retired by IT, one not enrolled here, a copied identity: the call is
refused with PERMISSION_DENIED, and the employee reads why in `devposture-agent status` and
`once`. The status's details keep the English (an older agent shows it as it is); the same
sentence goes worded in the trailing metadata (`devposture.net.rpc_status.ERROR_METADATA`), as
the enrollment port's refusals do, so that a Chinese reader does not find an English clause in
the middle of a Chinese sentence.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.enroll_refusals import DEVICE_STATUS
from devposture.collector.store.identity import Admission, Verdict
from devposture.policy.cli_messages import Said, said


def device_refusal(device_id: str, admission: Admission, zone: dt.tzinfo) -> Said | None:
    """What a refused device is told, or None when the call may go on. A date is the day in
    the company's time zone (`zone`), as IT's pages show it."""
    if admission.verdict is Verdict.ALLOWED:
        return None
    if admission.verdict is Verdict.UNKNOWN_DEVICE:
        return said("device {device} is not enrolled with this collector: enroll it again",
                    device=device_id)  # fmt: skip
    if admission.verdict is Verdict.REVOKED:
        status = DEVICE_STATUS.get(admission.status) or Said(admission.status, as_is=True)
        if admission.status_at is None:
            return said("device {device} was {status} by IT: it can no longer report. Ask IT;"
                        " a new enrollment needs a new token and a new key (enroll --force)",
                        device=device_id, status=status)  # fmt: skip
        day = f"{admission.status_at.astimezone(zone):%Y-%m-%d}"
        return said("device {device} was {status} by IT on {day}: it can no longer report. Ask"
                    " IT; a new enrollment needs a new token and a new key (enroll --force)",
                    device=device_id, status=status, day=day)  # fmt: skip
    if admission.verdict is Verdict.CLONE:
        return said("device {device}'s identity is in use on another computer (a certificate of"
                    " generation {generation} after generation {newest}): IT has been alerted."
                    " Re-enroll this computer with its own state folder",
                    device=device_id, generation=admission.generation,
                    newest=admission.newest_generation)  # fmt: skip
    return said("this certificate of device {device} is not in the collector's records: enroll"
                " this computer again (enroll --force)", device=device_id)  # fmt: skip
