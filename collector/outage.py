"""A call that meets the database failing is answered UNAVAILABLE, with a retry hint.

Why: a shared PostgreSQL goes away in ordinary ways (a failover, a restart for an upgrade, an
operator or a pooler closing connections), and a SQLite file can fail to be read (an I/O
error). The paths that expect it (storing reports, enrollment on a full disk) answer for
themselves; anything else that reached the database (admission, renewal, an admin command)
used to let the error escape, and gRPC answered UNKNOWN with the exception's class, after
logging a traceback per call. A client cannot tell UNKNOWN from a bug, so it may give up; the
outage is transient, and UNAVAILABLE is what gRPC's clients (ours and any other) retry.

A log line names the method and the error's class, never its text (it may quote the server's
address or the statement's values): the first refusal, then one line every ten seconds with
the count since, however many calls an outage refuses.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc

from devposture.collector import log_every
from devposture.collector.store import database_errors

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

# The retry hint: spread over one to two seconds, so that callers refused together do not
# all come back at once.
RETRY_MS = 1000
# Not "nothing was changed": a write whose connection died at its COMMIT may have been done,
# and a caller asking again finds out (a report sent again is told "already stored").
REASON = (
    "the collector cannot use its database right now: retry later"
    " (采集器数据库暂时不可用，请稍后重试)"
)


# At most one line this often per method, through an outage.
LOG_EVERY_SECONDS = log_every.LOG_EVERY_SECONDS


class _Refusals:
    """One method's refusals through an outage: one line at most every LOG_EVERY_SECONDS,
    with the count of calls refused since the line before (collector/log_every.py)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._every = log_every.LogEvery(lambda: LOG_EVERY_SECONDS)

    def count(self, exc: BaseException) -> None:
        since = self._every.due()
        if since is not None:
            log.error("%s: the database failed (%s): answered UNAVAILABLE%s", self.method,
                      type(exc).__name__, since)  # fmt: skip


async def refuse(context: Context, refusals: _Refusals, exc: BaseException) -> NoReturn:
    """Count (and now and then log) the failure and end the call UNAVAILABLE with a hint."""
    refusals.count(exc)
    hint = int(RETRY_MS * (1 + random.random()))  # noqa: S311 (jitter, not a secret)
    await context.abort(grpc.StatusCode.UNAVAILABLE, REASON,
                        trailing_metadata=(("retry-after-ms", str(hint)),))  # fmt: skip
    raise AssertionError("abort returns only by raising")  # pragma: no cover


def guarded(method: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` (a servicer's unary or server-streaming method) answering UNAVAILABLE when
    a database error escapes it. `method` names it in the log."""
    refusals = _Refusals(method)
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def streaming(request: object, context: Context) -> AsyncIterator[Any]:
            try:
                async for item in handler(request, context):
                    yield item
            except database_errors() as exc:
                await refuse(context, refusals, exc)

        return streaming

    @functools.wraps(handler)
    async def unary(request: object, context: Context) -> object:
        try:
            return await handler(request, context)
        except database_errors() as exc:
            await refuse(context, refusals, exc)

    return unary
