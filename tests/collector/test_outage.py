"""A database error escaping a service method is answered UNAVAILABLE (collector/outage.py),
on a real gRPC server, for a unary method and a server-streaming one.

The errors are the engines' own classes (sqlite3's, psycopg's), raised by the servicer as the
store raises them; tests/e2e/test_database_faults.py has PostgreSQL really drop the
connections under a running collector.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Callable

import grpc
import psycopg
import pytest

from devposture.collector import outage
from devposture.collector.raw_rpc import add_raw_servicer
from devposture.v1 import admin_pb2 as admin_pb

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

SECRET = "/srv/devposture/secret-path host=db.internal password=hunter2"


class FailingAdmin:
    """Run fails with `error`; Export sends one chunk, then fails with it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def Run(self, request: object, context: object) -> admin_pb.AdminResult:
        raise self.error

    async def Export(self, request: object, context: object) -> AsyncIterator[admin_pb.ExportChunk]:
        yield admin_pb.ExportChunk(records_done=1, records_total=2)
        raise self.error


async def _calls(
    error: BaseException, runs: int = 1, before_last: Callable[[], None] = lambda: None,
) -> list[tuple[grpc.StatusCode, str, dict[str, str], int]]:  # fmt: skip
    """(code, details, trailing metadata, chunks received) of Run (`runs` times, calling
    `before_last` before the last) and of Export."""
    server = grpc.aio.server()
    add_raw_servicer(FailingAdmin(error), admin_pb.DESCRIPTOR.services_by_name["Admin"], server,
                     guard=outage.guarded)  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    found = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = admin_pb.AdminCommand().SerializeToString()
            run: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/devposture.v1.Admin/Run"
            )
            for number in range(runs):
                if number == runs - 1:
                    before_last()
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await run(request)
                found.append((failed.value.code(), failed.value.details() or "",
                              dict(failed.value.trailing_metadata() or ()), 0))  # fmt: skip
            export: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                "/devposture.v1.Admin/Export"
            )
            stream = export(request)
            chunks = 0
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for _ in stream:
                    chunks += 1
            found.append((failed.value.code(), failed.value.details() or "",
                          dict(failed.value.trailing_metadata() or ()), chunks))  # fmt: skip
    finally:
        await server.stop(None)
    return found


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError(f"disk I/O error in {SECRET}"),
        psycopg.OperationalError(f"connection to {SECRET} failed"),
        psycopg.errors.AdminShutdown(f"terminating connection {SECRET}"),
    ],
    ids=["sqlite", "psycopg", "admin-shutdown"],
)
def test_a_database_error_is_answered_unavailable_with_a_hint_and_one_log_line(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        found = asyncio.run(_calls(error))
    for (code, details, trailing, _), method in zip(found, ("Run", "Export"), strict=True):
        assert code is grpc.StatusCode.UNAVAILABLE, (method, code, details)
        assert details == outage.REASON
        assert "secret" not in details and type(error).__name__ not in details
        hint = int(trailing["retry-after-ms"])
        assert outage.RETRY_MS <= hint <= 2 * outage.RETRY_MS
    assert found[1][3] == 1, "the chunk sent before the failure is received"
    lines = [r for r in caplog.records if r.name == outage.__name__]
    assert [r.getMessage() for r in lines] == [
        f"/devposture.v1.Admin/{method}: the database failed ({type(error).__name__}):"
        " answered UNAVAILABLE"
        for method in ("Run", "Export")
    ]
    assert all(r.exc_info is None for r in lines)
    assert not any("secret" in r.getMessage() for r in caplog.records)


def test_any_other_error_is_not_taken_for_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        found = asyncio.run(_calls(KeyError("a bug")))
    assert [code for code, *_ in found] == [grpc.StatusCode.UNKNOWN] * 2
    assert not [r for r in caplog.records if r.name == outage.__name__]


def test_an_outage_is_logged_once_a_while_with_the_count_of_calls_refused_since(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outage, "LOG_EVERY_SECONDS", math.inf)  # every call within the while

    def a_while_later() -> None:
        monkeypatch.setattr(outage, "LOG_EVERY_SECONDS", 0.0)

    with caplog.at_level(logging.DEBUG):
        found = asyncio.run(_calls(sqlite3.OperationalError("disk I/O error"), runs=4,
                                   before_last=a_while_later))  # fmt: skip
    assert [code for code, *_ in found] == [grpc.StatusCode.UNAVAILABLE] * 5
    assert [r.getMessage() for r in caplog.records if r.name == outage.__name__] == [
        "/devposture.v1.Admin/Run: the database failed (OperationalError): answered UNAVAILABLE",
        "/devposture.v1.Admin/Run: the database failed (OperationalError): answered UNAVAILABLE"
        " (2 more since the last line)",
        "/devposture.v1.Admin/Export: the database failed (OperationalError): answered"
        " UNAVAILABLE",
    ]
