"""Sending the outbox's due messages: each attempt recorded in the database, a failure worth
retrying tried again after a backoff that doubles up to a cap, a message given up after a
day (or at once when refused), each failure logged without a secret and counted.

The sending itself (seconds, at worst the attempt's deadline, `deadline.Limits`) runs off the
store's thread (`io`), the reads and writes on it (`db`): a receiver that hangs never holds up
ingest. Each channel is sent to beside the others, so that a slow receiver holds only its
own; a channel's messages go one after the other, and once an attempt failed (and is to be
retried) the channel's others wait for the next round: the receiver is away, busy or slow,
and each would cost as much. Times are given, never read from a clock here, so tests drive
retries without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from devposture.collector.alerts.channels import Attempt, Channel
from devposture.collector.metrics import AlertMetrics
from devposture.collector.store import Store
from devposture.collector.store.alerts import FAILED, PENDING, SENT, Delivery

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long a message taken to be sent is not sent by another collector: far longer than an
# attempt takes (30 s in all, `deadline.ATTEMPT_SECONDS`), so that a collector whose lease
# lapsed while a slow receiver held it up is not doubled by the next holder; after a crash
# mid-send, or a stop that did not wait for the attempt (task.keep_alerting), the message is
# due again this long after.
CLAIM_HOLD = dt.timedelta(minutes=15)


class Run(Protocol):
    """Where work runs: the store's thread (`service.in_db`), a thread of its own
    (`asyncio.to_thread`), or here (`inline`)."""

    def __call__(self, work: Callable[[], T], /) -> Awaitable[T]: ...


async def inline(work: Callable[[], T]) -> T:
    """Run `work` here and now (tests; a caller already off the event loop)."""
    return work()


async def on_own_thread(work: Callable[[], T]) -> T:
    """Run `work` on a daemon thread of its own. An attempt a stopping collector no longer
    waits for (task.keep_alerting) runs on to its deadline without holding the process's exit,
    as one in asyncio.to_thread's pool would: `asyncio.run` waits for that pool's threads."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = work()
        except Exception as exc:
            _settle(loop, future, partial(future.set_exception, exc))
        else:
            _settle(loop, future, partial(future.set_result, result))

    threading.Thread(target=run, name="alert-attempt", daemon=True).start()
    return await future


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], settle: Callable[[], None]
) -> None:  # fmt: skip
    """`settle` the future on its loop, unless nobody waits any more (cancelled, loop gone)."""

    def unless_cancelled() -> None:
        if not future.done():
            settle()

    with contextlib.suppress(RuntimeError):  # the loop is closed: the collector has stopped
        loop.call_soon_threadsafe(unless_cancelled)


@dataclass(frozen=True)
class Backoff:
    """When to try a failed message again: `first` after the first failure, doubling, at
    most `cap` apart; given up `give_up` after it was queued."""

    first: dt.timedelta = dt.timedelta(minutes=1)
    cap: dt.timedelta = dt.timedelta(hours=1)
    give_up: dt.timedelta = dt.timedelta(days=1)

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime:
        """After the `attempts`-th failed attempt (1 for the first)."""
        return now + min(self.first * (1 << min(attempts - 1, 30)), self.cap)


async def deliver_due(
    store: Store, channels: dict[str, Channel], now: dt.datetime, *, backoff: Backoff,
    metrics: AlertMetrics | None = None, db: Run = inline, io: Run = inline,
) -> list[tuple[str, Attempt]]:  # fmt: skip
    """Try every due message once, each channel beside the others, a channel's messages in
    order until one fails to be retried; what each attempt gave, by channel."""
    queues: dict[str, list[Delivery]] = {}
    for d in await db(lambda: store.alerts.due(now)):
        if d.channel in channels:  # one no longer set here: whoever has it set sends it
            queues.setdefault(d.channel, []).append(d)
    each = [
        _deliver_channel(store, channels[name], due, now, backoff=backoff, metrics=metrics,
                         db=db, io=io)
        for name, due in queues.items()
    ]  # fmt: skip
    sent = await asyncio.gather(*each)
    return [attempt for one in sent for attempt in one]


async def _deliver_channel(
    store: Store, channel: Channel, due: list[Delivery], now: dt.datetime, *,
    backoff: Backoff, metrics: AlertMetrics | None, db: Run, io: Run,
) -> list[tuple[str, Attempt]]:  # fmt: skip
    """`due`, the messages of `channel`, one after the other; after an attempt to retry, the
    rest wait for the next round."""
    done: list[tuple[str, Attempt]] = []
    for d in due:
        if channel.per_minute is not None:
            since = now - dt.timedelta(minutes=1)
            tried = await db(partial(store.alerts.attempted_since, d.channel, since))
            if tried >= channel.per_minute:
                break
        if not await db(partial(store.alerts.claim, d, now, CLAIM_HOLD)):
            continue  # another collector is sending it, or has
        attempt = await io(partial(_send, channel, d))
        # Told before it is recorded: a stop that cancels this task at the record's await
        # (the record committed or not) still leaves the attempt in the log and the metrics.
        _tell(channel, d, attempt, now, backoff=backoff, metrics=metrics)
        await db(partial(_record, store, d, attempt, now, backoff))
        done.append((d.channel, attempt))
        if not attempt.delivered and attempt.retry:
            break
    return done


def _send(channel: Channel, d: Delivery) -> Attempt:
    """The channel's attempt; a fault of ours is one more failure to retry, told by its type
    only (its text might hold a URL with its secret)."""
    try:
        return channel.send(d)
    except Exception as exc:
        return Attempt(delivered=False, retry=True, problem=f"unexpected {type(exc).__name__}")


def _record(store: Store, d: Delivery, a: Attempt, now: dt.datetime, backoff: Backoff) -> None:
    if a.delivered:
        store.alerts.record_attempt(d.delivery_id, now, SENT, "sent", claimed=True)
    elif a.retry and now - d.created < backoff.give_up:
        later = backoff.next_attempt(d.attempts + 1, now)
        store.alerts.record_attempt(d.delivery_id, now, PENDING, a.problem, later, claimed=True)
    else:
        store.alerts.record_attempt(d.delivery_id, now, FAILED, a.problem, claimed=True)


def _tell(
    channel: Channel, d: Delivery, a: Attempt, now: dt.datetime, *, backoff: Backoff,
    metrics: AlertMetrics | None,
) -> None:  # fmt: skip
    """Log and count an attempt's outcome."""
    if a.delivered:
        if metrics is not None:
            metrics.sent.labels(channel.name).inc()
        log.info("alerts: digest sent to %s (%d item(s))", channel.name, len(d.items))
        return
    if a.retry and now - d.created < backoff.give_up:
        if metrics is not None:
            metrics.failures.labels(channel.name, "retried").inc()
        log.warning(
            "alerts: could not send the digest to %s (%s); trying again in %d s (attempt %d)",
            channel.name, a.problem,
            (backoff.next_attempt(d.attempts + 1, now) - now).total_seconds(), d.attempts + 1,
        )  # fmt: skip
        return
    outcome = "refused" if not a.retry else "given_up"
    if metrics is not None:
        metrics.failures.labels(channel.name, outcome).inc()
    if a.retry:
        log.error(
            "告警：摘要 %d 次未能发送到 %s（%s），已放弃：请检查接收方及网络。"
            " alerts: gave up sending the digest to %s after %d attempts (%s): check that the"
            " receiver is up and reachable from the collector",
            d.attempts + 1, channel.name, a.problem, channel.name, d.attempts + 1, a.problem,
        )  # fmt: skip
    else:
        log.error(
            "告警：%s 拒收了摘要（%s），不再重试：请检查设置。alerts: %s refused the digest (%s),"
            " not retried: %s",
            channel.name, a.problem, channel.name, a.problem, channel.fix,
        )  # fmt: skip
