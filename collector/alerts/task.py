"""The alerts' periodic work in `serve`: every collector notes its own problems; the one
holding the alerts lease composes the digest when one is due and sends what the outbox holds.

Everything touching the database runs on the store's thread (`service.in_db`), the sending on
a thread of its own; a failure is logged and tried again at the next round: it never stops the
collector or ingest. A collector that dies holding the lease gives it up when it expires and
another carries on from the database.

A round is bounded: each attempt has its deadline (`deadline.Limits`, 30 s in all), channels
are sent to side by side, and a channel stops for the round at its first failure to retry
(`delivery`). A collector told to stop starts no new round and lets the one under way end
within its drain (`[server] drain_seconds`, `RunningServer.drained`), not after it: an attempt
still under way then is left to end by itself, unrecorded, and its message, claimed, is sent
again once the claim lapses (`delivery.CLAIM_HOLD`).

A round whose writes the database refuses records nothing, so no alert about it could be sent
the usual way: each collector tells it itself, without a record (`unrecorded`), and tells it
resolved in the first round whose writes go through, before that round's digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING

from devposture.collector.alerts import channels, collector_health, digest
from devposture.collector.alerts.deadline import DEFAULT_LIMITS, Limits
from devposture.collector.alerts.delivery import CLAIM_HOLD, Backoff, deliver_due, on_own_thread
from devposture.collector.alerts.unrecorded import Unrecorded
from devposture.collector.config import CollectorConfig
from devposture.collector.metrics import AlertMetrics
from devposture.collector.policy.in_force import collector_name
from devposture.collector.refused_writes import RefusedWrites, refusal_of

if TYPE_CHECKING:
    from devposture.collector.server import RunningServer

log = logging.getLogger(__name__)

ROUND_SECONDS = 30.0
LEASE = "alerts"
# The lease outlives a few rounds, so a holder renewing it each round keeps it.
LEASE_HOLD = dt.timedelta(minutes=3)
BACKOFF = Backoff()


async def alert_round(
    running: RunningServer, config: CollectorConfig, metrics: AlertMetrics | None = None,
    *, backoff: Backoff = BACKOFF, now: dt.datetime | None = None,
    urgent: Unrecorded | None = None, limits: Limits = DEFAULT_LIMITS,
) -> bool:  # fmt: skip
    """One round at `now` (the service's clock by default), each attempt within `limits`;
    whether this collector held the lease and did the work. Once this collector's problems
    are written, `urgent` hears that writes go through."""
    settings, service, store = config.alerts, running.service, running.store
    now = service.now() if now is None else now
    found = await asyncio.to_thread(
        collector_health.problems, config, now, settings.certificate_warning_days,
        settings.disk_warning_percent,
    )  # fmt: skip
    me = collector_health.reporter(config)
    await service.in_db(lambda: store.alerts.keep_problems(me, found, now))
    # The policy's zone, as the collector holds it now: an alert's times are written in it.
    found_channels = channels.configured(settings, service.policy.time_zone, limits)
    if urgent is not None:
        await urgent.wrote(now, found_channels)
    holder = collector_name()
    if not await service.in_db(
        lambda: store.coordination.take_lease(LEASE, holder, now, LEASE_HOLD)
    ):
        return False
    composed = await service.in_db(lambda: digest.compose(store, service.policy, settings, now))
    if composed is not None:
        await service.in_db(lambda: store.alerts.prune(now))
    await deliver_due(
        store, found_channels, now, backoff=backoff, metrics=metrics,
        db=service.in_db, io=on_own_thread,
    )  # fmt: skip
    return True


async def keep_alerting(
    running: RunningServer, config: CollectorConfig, stop: asyncio.Event,
    every: float = ROUND_SECONDS, *, enabled: bool = True, refused: RefusedWrites | None = None,
    urgent: Unrecorded | None = None, limits: Limits = DEFAULT_LIMITS,
) -> None:  # fmt: skip
    """Alert rounds every `every` seconds until `stop`, each attempt within `limits`; nothing
    when no channel is set (or not `enabled`: a worker of `serve --workers` other than the
    first). A round whose writes the database refuses (a full disk, a read-only server) is
    said once in the log (`refused`), not at every round, and told IT without a record
    (`urgent`); what it owes (problems, digests, deliveries) is done at a later round. The
    round under way when the collector stops is waited for until its drain is over, no
    longer."""
    if not enabled or not config.alerts.channels:
        return
    metrics = AlertMetrics(running.service.metrics.registry)
    log.info("alerts: digests every %d min to %s", config.alerts.digest_minutes,
             ", ".join(config.alerts.channels))  # fmt: skip
    refused = refused or RefusedWrites(
        "alerting (noting this collector's problems, composing and sending digests)"
    )
    hours = config.alerts.repeat_hours
    urgent = urgent or Unrecorded(
        socket.gethostname(), repeat_seconds=lambda: hours * 3600.0, io=on_own_thread,
        metrics=metrics,
    )  # fmt: skip

    async def one_round() -> None:
        try:
            await alert_round(running, config, metrics, urgent=urgent, limits=limits)
            refused.wrote()
        except Exception as exc:  # the next round tries again; ingest goes on
            if not refused.failed(exc):
                log.error("alerts: this round failed and is tried again in %d s: %s",
                          round(every), exc)  # fmt: skip
            why = refusal_of(exc)
            if why is not None:  # nothing can be recorded: told without a record
                found = channels.configured(
                    config.alerts, running.service.policy.time_zone, limits
                )
                await urgent.refused(why, running.service.now(), found)

    while not stop.is_set():
        await _until_drained(one_round(), running.drained)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def _until_drained(work: Coroutine[object, object, None], drained: asyncio.Event) -> None:
    """`work` to its end, or until the collector's drain is over: then it is cancelled, and an
    attempt of it under way (on a thread of its own) ends by its deadline, unrecorded."""
    task = asyncio.ensure_future(work)
    over = asyncio.ensure_future(drained.wait())
    try:
        await asyncio.wait({task, over}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the alert task itself cancelled: its round with it
        task.cancel()
        raise
    finally:
        over.cancel()
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.warning(
        "alerts: the collector stopped before this round's sending ended; a message being"
        " sent is sent again in %d min, once its claim lapses", CLAIM_HOLD.seconds // 60,
    )  # fmt: skip
