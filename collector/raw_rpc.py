"""Requests reach the services as raw bytes; each service decodes them after admission.

Why: registered the generated way (`add_*Servicer_to_server` gives gRPC each message's
FromString), a body that is not a valid message never reaches the service. gRPC answers
UNKNOWN with the exception's class and text, logs a traceback, and the call escapes
everything the service does for every call: the per-device rate limit, the enrollment
throttle, the refusal counters, the admin audit log. Registered here instead, each method of
the servicer (the generated servicer's names, found from the service descriptor) receives a
`RawRequest`: the bytes and the message type they should hold. The service admits the call
first, then decodes it, so a call that cannot be decoded is limited, throttled, counted,
logged once and audited like any other, and refused with INVALID_ARGUMENT saying what is
wrong (collector/wire_reason.py).

It costs what gRPC's decoding cost: one FromString per call, on the same event loop.
Health checking and reflection are grpc's own servicers, given their requests decoded the
same way (collector/health.py); reflection describes the services from the same descriptors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeAlias, TypeVar, Union, cast

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from devposture.collector.wire_reason import undecodable_reason

M = TypeVar("M", bound=Message)


class Undecodable(ValueError):
    """The request's bytes are not a valid message of its type. str() is the sentence for
    the caller: the type's full name and what is wrong, never a Python class name."""


class RawRequest(Generic[M]):
    """One call's request body, decoded on demand, once (then only the message is kept)."""

    __slots__ = ("_message", "_refusal", "data", "kind")

    def __init__(self, kind: type[M], data: bytes) -> None:
        self.kind = kind
        self.data = data
        self._message: M | None = None
        self._refusal: str | None = None

    def decode(self) -> M:
        """The message; raises Undecodable when the bytes are not one."""
        if self._message is not None:
            return self._message
        if self._refusal is None:
            try:
                self._message = self.kind.FromString(self.data)
                self.data = b""  # the message is what the call keeps (up to a few MB a batch)
                return self._message
            except DecodeError:
                # upb's descriptor, typed apart by the stubs, has the same fields.
                descriptor = cast(Descriptor, self.kind.DESCRIPTOR)
                self._refusal = (
                    f"the request is not a valid {descriptor.full_name}:"
                    f" {undecodable_reason(descriptor, self.data)}"
                )
        raise Undecodable(self._refusal)

    def decodable(self) -> M | None:
        """The message, or None when the bytes are not one (without raising)."""
        try:
            return self.decode()
        except Undecodable:
            return None


# What a servicer method receives: a RawRequest when served by `add_raw_servicer`, the
# message itself when called otherwise (registered the generated way, or in-process). The
# union keeps the generated servicer's method signatures valid.
Request: TypeAlias = Union[M, RawRequest[M]]  # noqa: UP007 (a generic alias needs Union)


def message_of(request: Request[M]) -> M:
    """The request's message, decoding a raw one (raises Undecodable)."""
    return request.decode() if isinstance(request, RawRequest) else request


Guard = Callable[[str, Callable[..., Any]], Callable[..., Any]]


def add_raw_servicer(
    servicer: object, service: ServiceDescriptor, server: grpc.aio.Server, *,
    guard: Guard | None = None,
) -> None:  # fmt: skip
    """Serve `service` with `servicer`'s methods of the same names, as the generated
    `add_*Servicer_to_server` does, except that each method receives a RawRequest.
    `guard(full method name, method)`, when given, wraps each method (collector/outage.py:
    a database failure answered UNAVAILABLE)."""
    handlers: dict[str, grpc.RpcMethodHandler[RawRequest[Message], Message]] = {}
    for method in service.methods:
        if method.client_streaming:
            raise TypeError(
                f"{method.full_name} takes a stream: only unary requests are served raw"
            )
        request: type[Message] = message_factory.GetMessageClass(method.input_type)
        response: type[Message] = message_factory.GetMessageClass(method.output_type)
        # A server-streaming method (the admin port's Export) takes one request like the others.
        handler = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        serve = getattr(servicer, method.name)
        if guard is not None:
            serve = guard(f"/{service.full_name}/{method.name}", serve)
        handlers[method.name] = handler(
            serve,
            # Cannot fail: wrapping the bytes is all gRPC does before the service runs.
            request_deserializer=functools.partial(RawRequest, request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)
