"""How a device's clock and outbox look to IT, in words (`device show`, `device list`).

A clock far off does not stop a device's reports (they are read on the collector's clock), but
it is a sign of a misconfigured computer and, past a day, of certificates about to be refused.
Dropped reports mean the device was offline long enough to fill its outbox: those facts are
gone, and an auditor asking about that period should be told.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.store.identity import DeviceInfo

# A skew this large is worth telling IT about (`device show`).
NOTABLE_SKEW = dt.timedelta(minutes=5)


def _span(delta: dt.timedelta) -> str:
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def skew_is_notable(skew: dt.timedelta | None) -> bool:
    return skew is not None and abs(skew) >= NOTABLE_SKEW


def describe_skew(skew: dt.timedelta | None) -> str:
    """e.g. "3 h 5 min behind the collector: set the computer's time automatically"."""
    if skew is None:
        return "not measured (the agent does not say when it sends)"
    if not skew_is_notable(skew):
        return f"in step with the collector (within {_span(skew)})"
    # Skew is collector minus agent: positive means the agent's clock is behind.
    direction = "behind" if skew > dt.timedelta() else "ahead of"
    return (
        f"{_span(skew)} {direction} the collector: set the computer's time automatically"
        " (reports are still read on the collector's clock)"
    )


def describe_outbox(device: DeviceInfo) -> str:
    """e.g. "2 waiting; since install 12 merged, 3 dropped (lost), 0 corrupt"."""
    lost = device.outbox_dropped_total
    text = (
        f"{device.outbox_pending} waiting; since install {device.outbox_coalesced_total} merged"
        f" (same facts as a neighbour), {lost} dropped, {device.outbox_corrupt_total} corrupt"
    )
    if lost:
        text += ": the outbox was full while the device was offline, those reports are lost"
    return text
