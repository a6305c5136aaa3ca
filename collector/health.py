"""gRPC health checking and server reflection on the agent ports.

Both are grpc's own implementations (grpcio-health-checking, grpcio-reflection), so any
standard client works: a load balancer's gRPC health probe, `grpc_health_probe`, `grpcurl`.
The server-wide status ("") and the Collector service's are SERVING while the collector
runs and reaches its database (NOT_SERVING while it cannot: collector/server.py's
keep_health), and NOT_SERVING for good from the moment it is told to stop: the collector
then goes on serving for its drain period ([server] drain_seconds, see RunningServer.stop)
before it pushes reports back and closes its ports, so a load balancer polling health takes
it out of rotation before any connection is refused. The enrollment port (TLS without a
client certificate) is the one to probe; the report port asks for a client certificate like
every call there.

Both take their requests as raw bytes (collector/raw_rpc.py), as every other service does:
bytes that are not a valid request are refused with INVALID_ARGUMENT saying what is wrong.
Registered grpc's way, gRPC answered them UNKNOWN and logged a traceback for each call, on a
port anyone may reach without a certificate.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped]
    reflection,
    reflection_pb2,
)

from devposture.collector.raw_rpc import RawRequest, Request, Undecodable, add_raw_servicer
from devposture.v1 import devposture_pb2 as pb

COLLECTOR_SERVICE: str = pb.DESCRIPTOR.services_by_name["Collector"].full_name
HEALTH_SERVICE: str = health.SERVICE_NAME
REFLECTION_SERVICE: str = reflection.SERVICE_NAME
# What health checks answer for: the whole server ("") and the agents' service.
CHECKED = ("", COLLECTOR_SERVICE)


class _HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc's health servicer, with a draining flag that any thread may set: from the moment
    it is set, Check answers NOT_SERVING, even before the event loop has run anything."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = threading.Event()

    async def Check(
        self, request: object, context: grpc.aio.ServicerContext[object, object]
    ) -> object:
        if self.draining.is_set() and getattr(request, "service", None) in CHECKED:
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        answer: object = await super().Check(request, context)
        return answer

    async def List(
        self, request: object, context: grpc.aio.ServicerContext[object, object]
    ) -> object:
        """Every service health answers for, as Check answers for each (grpc's servicer
        leaves the method out: it raised NotImplementedError, logged with a traceback for
        each call, on a port anyone may reach)."""
        draining = self.draining.is_set()
        statuses = {
            service: health_pb2.HealthCheckResponse(
                status=health_pb2.HealthCheckResponse.NOT_SERVING
                if draining and service in CHECKED else status
            )
            for service, status in self._server_status.items()
        }  # fmt: skip
        return health_pb2.HealthListResponse(statuses=statuses)


async def _decoded(
    request: Request[Message], context: grpc.aio.ServicerContext[object, object]
) -> Message:
    """The request's message, or the call refused with INVALID_ARGUMENT naming the problem."""
    try:
        return request.decode() if isinstance(request, RawRequest) else request
    except Undecodable as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("abort raises") from exc  # pragma: no cover


class _RawHealth:
    """grpc's health servicer, given each request decoded (see the module's docstring): every
    method of the Health service (Check, Watch, and List where grpc has it) by its name."""

    def __init__(self, servicer: _HealthServicer) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> Callable[..., Awaitable[object]]:
        method = getattr(self._servicer, name)

        async def decoded_first(
            request: Request[Message], context: grpc.aio.ServicerContext[object, object]
        ) -> object:
            return await method(await _decoded(request, context), context)

        return decoded_first


def _add_reflection(server: grpc.aio.Server, names: tuple[str, ...]) -> None:
    """grpc's reflection servicer, its stream of requests decoded one by one."""
    servicer = reflection.aio.ReflectionServicer(names)

    async def info(
        requests: AsyncIterator[RawRequest[Message]],
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[object]:
        async def decoded() -> AsyncIterator[Message]:
            async for request in requests:
                yield await _decoded(request, context)

        async for answer in servicer.ServerReflectionInfo(decoded(), context):
            yield answer

    handler = grpc.stream_stream_rpc_method_handler(
        info,
        request_deserializer=functools.partial(RawRequest, reflection_pb2.ServerReflectionRequest),
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    handlers = {"ServerReflectionInfo": handler}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_SERVICE, handlers),)
    )
    server.add_registered_method_handlers(REFLECTION_SERVICE, handlers)


class Health:
    """The health service of one collector."""

    def __init__(self) -> None:
        self._servicer = _HealthServicer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._told: asyncio.Task[None] | None = None
        self._reachable = True  # the database, as last told (`database`)

    def add_to(self, server: grpc.aio.Server) -> None:
        """Serve health checks and reflection on every port of `server`."""
        add_raw_servicer(
            _RawHealth(self._servicer), health_pb2.DESCRIPTOR.services_by_name["Health"], server
        )
        _add_reflection(server, (COLLECTOR_SERVICE, HEALTH_SERVICE, REFLECTION_SERVICE))

    async def serving(self) -> None:
        """Everything is up: SERVING (on the event loop that serves the server)."""
        self._loop = asyncio.get_running_loop()
        for service in CHECKED:
            await self._servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def database(self, reachable: bool) -> None:
        """SERVING while the database answers, NOT_SERVING while it does not: a load balancer
        probing health then sends agents to a collector that can store their reports (one
        cut off from a shared PostgreSQL while the others are not). Nothing once draining."""
        if self._servicer.draining.is_set() or reachable == self._reachable:
            return
        self._reachable = reachable
        status = (health_pb2.HealthCheckResponse.SERVING if reachable
                  else health_pb2.HealthCheckResponse.NOT_SERVING)  # fmt: skip
        for service in CHECKED:
            await self._servicer.set(service, status)

    def drain(self) -> None:
        """The drain before shutdown begins: every service NOT_SERVING from now on, for good,
        while the server itself still serves. Safe from any thread, and to call again; Watch
        streams are told on the event loop."""
        if self._servicer.draining.is_set():
            return
        self._servicer.draining.set()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._told = loop.create_task(self._servicer.enter_graceful_shutdown())
        else:
            asyncio.run_coroutine_threadsafe(self._servicer.enter_graceful_shutdown(), loop)
