"""What a failed gRPC call says, in one place: every caller (enrollment, sending, renewal, the
admin client) turns an RpcError into a status and a message the same way."""

from __future__ import annotations

import json

import grpc

from devposture.policy.cli_messages import ERROR_METADATA, Said


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode | None, str]:
    """The call's status code and details; (None, text) for an error that is not a call's."""
    if isinstance(error, grpc.Call):
        return error.code(), error.details() or ""
    return None, str(error)


def worded_trailer(call: object, key: str = ERROR_METADATA) -> Said | None:
    """The sentence a call's trailing metadata `key` carries worded (`Said.data`, JSON): a
    refusal (`ERROR_METADATA`) or a result's message; None when it carries none (an older
    collector) or not a call's."""
    trailing = call.trailing_metadata() if isinstance(call, grpc.Call) else None
    pairs: tuple[tuple[str, str | bytes], ...] = tuple(trailing or ())
    for name, value in pairs:
        if name == key and isinstance(value, str):
            try:
                return Said.of_data(json.loads(value))
            except ValueError:
                return None
    return None


def worded_detail(error: grpc.RpcError) -> Said | None:
    """The collector's refusal as it sent it worded (`ERROR_METADATA`); None from an older
    collector, or for anything that is not such a refusal."""
    return worded_trailer(error)


def detail_of(error: grpc.RpcError) -> Said:
    """The call's details for a person: worded when the collector sent them so, else its
    text as it is."""
    return worded_detail(error) or Said(status_of(error)[1], as_is=True)


def describe(error: grpc.RpcError) -> str:
    """"CODE: details", for logs and for the reason a report stays in the outbox."""
    code, detail = status_of(error)
    return f"{code.name if code else 'error'}: {detail}"


def parse_description(text: str) -> tuple[grpc.StatusCode | None, str]:
    """`describe`'s text back into its code and details: a drain that stopped keeps only the
    text (it is also what the outbox records), and the CLI's advice depends on the code."""
    name, sep, detail = text.partition(": ")
    code = grpc.StatusCode.__members__.get(name) if sep else None
    return (code, detail) if code is not None else (None, text)


# Pushback the collector may attach a retry hint to.
_PUSHBACK = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
RETRY_AFTER_KEY = "retry-after-ms"


def retry_hint(error: grpc.RpcError) -> tuple[bool, float | None]:
    """Whether the collector asked us to back off (a `retry-after-ms` trailing metadata on
    RESOURCE_EXHAUSTED or UNAVAILABLE), and for how many seconds when the hint is a number.
    A hint also tells that the collector itself answered: a proxy or a dead port does not."""
    if not isinstance(error, grpc.Call) or error.code() not in _PUSHBACK:
        return False, None
    for key, value in error.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            try:
                millis = int(text)
            except ValueError:
                return True, None
            return True, max(0, millis) / 1000.0
    return False, None
