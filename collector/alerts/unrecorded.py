"""Telling IT that the database refuses writes, without recording it: the one alert that
cannot wait in the outbox.

Why: every alert is recorded and claimed in the database before it is sent, so that several
collectors on one database send it once. When the database refuses writes (the disk holding
SQLite full, the PostgreSQL server's disk full, a standby or a read-only role) nothing can be
recorded, so the alert about it was never sent: IT heard only if the disk warning had come
before the disk filled, which a burst of logs or a backup does in minutes.

So the alert task hands each refused round here (`refused`), and each round whose writes went
through (`wrote`). This process remembers, in memory, what it told on each channel:

- a problem is told once (NEW) on each channel, at most once an hour per problem
  (NEW_AT_MOST_EVERY_SECONDS: a disk freed and filled again by turns is not told at every
  turn), and again (REMINDER) after `repeat_hours` while it lasts, as the digests remind;
- once writes go through, each problem told is told RESOLVED, once; one never told (the
  channel was down all along) is not;
- a send that fails is logged (once, then hourly with the count) and tried again at the next
  round, with the same `notice_id`; it never raises into the task;
- the channels are told side by side: one slow receiver (an attempt has up to 30 s,
  `deadline.Limits`) does not hold the others.

Several collectors on one PostgreSQL each meet the refusal and each tell it: nothing shared
can say which one should, when the database itself is what refuses. Like Alertmanager's
clusters (prometheus.io/docs/alerting/latest/high_availability: "fail open", a duplicate
rather than a missed alert), a duplicate is taken over silence; each names its host, so IT
tells them apart. A restart forgets what was told: a problem still there is told again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from devposture.collector.alerts.channels import Attempt, Channel
from devposture.collector.alerts.delivery import Run
from devposture.collector.alerts.digest import NEW, REMINDER, RESOLVED
from devposture.collector.alerts.urgent import Urgent
from devposture.collector.log_every import LogEvery
from devposture.collector.metrics import AlertMetrics
from devposture.collector.refused_writes import SAY_AGAIN_SECONDS, Refusal

log = logging.getLogger(__name__)

# A problem is told NEW at most this often on a channel (per collector process).
NEW_AT_MOST_EVERY_SECONDS = 3600.0


@dataclass
class _Episode:
    """A refusal as this process met it: since when, and the id its alerts are made from."""

    refusal: Refusal
    since: dt.datetime
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class _Told:
    """A problem told NEW on one channel, not yet told RESOLVED."""

    episode: _Episode
    at: float  # the clock when it was last told (NEW or REMINDER)
    reminders: int = 0


class Unrecorded:
    """This process's urgent alerts: `collector` names it (its host); `repeat_seconds` is
    read at each round (the settings' repeat_hours); `clock` measures the bounds (a test
    gives time as data); `io` runs a send off the event loop; `metrics` counts what was
    delivered and what failed (the metrics endpoint: the one trace of an alert that has no
    record in the database)."""

    def __init__(
        self, collector: str, *, repeat_seconds: Callable[[], float],
        clock: Callable[[], float] = time.monotonic, io: Run = asyncio.to_thread,
        metrics: AlertMetrics | None = None,
    ) -> None:  # fmt: skip
        self.collector = collector
        self._repeat, self._clock, self._io = repeat_seconds, clock, io
        self._metrics = metrics
        self._now: _Episode | None = None  # the refusal going on, as last met
        self._open: dict[str, dict[str, _Told]] = {}  # channel -> problem code -> told
        self._last_new: dict[tuple[str, str], float] = {}  # (channel, code) -> clock
        self._failing: dict[str, LogEvery] = {}

    async def refused(self, why: Refusal, now: dt.datetime, found: dict[str, Channel]) -> None:
        """A round whose writes were refused by `why` at `now`: tell it where it is owed."""
        if self._now is None or self._now.refusal != why:
            self._now = _Episode(why, now)
        episode, clock = self._now, self._clock()
        await asyncio.gather(*(self._refused_on(name, channel, episode, clock, now)
                               for name, channel in found.items()))  # fmt: skip

    async def _refused_on(
        self, name: str, channel: Channel, episode: _Episode, clock: float, now: dt.datetime
    ) -> None:  # fmt: skip
        why = episode.refusal
        told = self._open.setdefault(name, {}).get(why.code)
        if told is not None:
            if clock - told.at < self._repeat():
                return
            n = Urgent(f"{told.episode.key}.{REMINDER}.{told.reminders + 1}", REMINDER,
                       self.collector, why, told.episode.since, now)  # fmt: skip
            if await self._send(channel, n):
                told.at, told.reminders = clock, told.reminders + 1
            return
        last = self._last_new.get((name, why.code))
        if last is not None and clock - last < NEW_AT_MOST_EVERY_SECONDS:
            return
        n = Urgent(f"{episode.key}.{NEW}", NEW, self.collector, why, episode.since, now)
        if await self._send(channel, n):
            self._open[name][why.code] = _Told(episode, clock)
            self._last_new[(name, why.code)] = clock

    async def wrote(self, now: dt.datetime, found: dict[str, Channel]) -> None:
        """A round whose writes went through at `now`: each problem told is told resolved."""
        self._now = None
        await asyncio.gather(*(self._resolved_on(name, channel, now)
                               for name, channel in found.items()))  # fmt: skip

    async def _resolved_on(self, name: str, channel: Channel, now: dt.datetime) -> None:
        told = self._open.get(name, {})
        for code, item in list(told.items()):
            e = item.episode
            n = Urgent(f"{e.key}.{RESOLVED}", RESOLVED, self.collector, e.refusal, e.since,
                       now)  # fmt: skip
            if await self._send(channel, n):
                del told[code]

    async def _send(self, channel: Channel, n: Urgent) -> bool:
        """Whether `channel` took `n`; a failure logged once, then hourly with the count."""
        attempt = await self._io(partial(_attempt, channel, n))
        if self._metrics is not None:
            if attempt.delivered:
                self._metrics.urgent_sent.labels(channel.name, n.status).inc()
            else:
                self._metrics.urgent_failures.labels(channel.name).inc()
        if attempt.delivered:
            self._failing.pop(channel.name, None)
            log.info("alerts: urgent alert (%s: %s) sent to %s", n.status, n.refusal.code,
                     channel.name)  # fmt: skip
            return True
        every = self._failing.setdefault(
            channel.name, LogEvery(lambda: SAY_AGAIN_SECONDS, self._clock)
        )
        since = every.due()
        if since is not None:
            fix = f": {channel.fix}" if not attempt.retry else ""
            log.warning(
                "alerts: could not send the urgent alert to %s (%s); tried again at the next"
                " round%s%s", channel.name, attempt.problem, fix, since,
            )  # fmt: skip
        return False


def _attempt(channel: Channel, n: Urgent) -> Attempt:
    """The channel's attempt; a fault of ours is one more failure, told by its type only (its
    text might hold a URL with its secret)."""
    try:
        return channel.send_urgent(n)
    except Exception as exc:
        return Attempt(delivered=False, retry=True, problem=f"unexpected {type(exc).__name__}")
