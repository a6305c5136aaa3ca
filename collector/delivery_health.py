"""How a device's clock and outbox look to IT, in words (`device show`, `device list`).

A clock far off does not stop a device's reports (they are read on the collector's clock), but
it is a sign of a misconfigured computer and, past a day, of certificates about to be refused.
Dropped reports mean the device was offline long enough to fill its outbox: those facts are
gone, and an auditor asking about that period should be told.

Each text is a `Told`: its `str` is the English that JSON and CSV carry (what scripts read), and
a person's table words it in their language (`admin.worded_cells`), on the collector machine
and over the admin port alike.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.store.identity import DeviceInfo
from devposture.policy.cli_messages import Said, Told, said, told

# A skew this large is worth telling IT about (`device show`).
NOTABLE_SKEW = dt.timedelta(minutes=5)


def _span(delta: dt.timedelta) -> Said:
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return said("{days} d {hours} h", days=days, hours=hours)
    if hours:
        return said("{hours} h {minutes} min", hours=hours, minutes=minutes)
    if minutes:
        return said("{minutes} min {seconds} s", minutes=minutes, seconds=seconds)
    return said("{seconds} s", seconds=seconds)


def skew_is_notable(skew: dt.timedelta | None) -> bool:
    return skew is not None and abs(skew) >= NOTABLE_SKEW


def clock_off(skew: dt.timedelta) -> Told:
    """e.g. "3 h 5 min behind the collector" (`device list`'s clock_off)."""
    # Skew is collector minus agent: positive means the agent's clock is behind.
    if skew > dt.timedelta():
        return told("{span} behind the collector", span=_span(skew))
    return told("{span} ahead of the collector", span=_span(skew))


def describe_skew(skew: dt.timedelta | None) -> Told:
    """e.g. "3 h 5 min behind the collector: set the computer's time automatically"."""
    if skew is None:
        return told("not measured (the agent does not say when it sends)")
    if not skew_is_notable(skew):
        return told("in step with the collector (within {span})", span=_span(skew))
    return told(
        "{off}: set the computer's time automatically (reports are still read on the"
        " collector's clock)",
        off=clock_off(skew),
    )


def describe_outbox(device: DeviceInfo) -> Told:
    """e.g. "2 waiting; since install 12 merged (same facts as a neighbour), 3 dropped, 0
    corrupt: the outbox was full while the device was offline, those reports are lost"."""
    counts = said(
        "{waiting} waiting; since install {merged} merged (same facts as a neighbour),"
        " {dropped} dropped, {corrupt} corrupt",
        waiting=device.outbox_pending, merged=device.outbox_coalesced_total,
        dropped=device.outbox_dropped_total, corrupt=device.outbox_corrupt_total,
    )  # fmt: skip
    if not device.outbox_dropped_total:
        return Told(counts)
    return told(
        "{counts}: the outbox was full while the device was offline, those reports are lost",
        counts=counts,
    )
