"""What a failed gRPC call says, in one place: every caller (enrollment, sending, renewal, the
admin client) turns an RpcError into a status and a message the same way."""

from __future__ import annotations

import json
from dataclasses import replace

import grpc

from devposture.policy.cli_messages import ERROR_METADATA, Said, said


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


# What the common codes mean to a person who is not reading English. gRPC's own status text
# (its details: "failed to connect to all addresses; …", a server's message) has no catalog
# entry and stays beside, as the code's name does: IT searches for them.
_MEANINGS = {
    grpc.StatusCode.UNAVAILABLE: said("the collector cannot be reached"),
    grpc.StatusCode.DEADLINE_EXCEEDED: said("the collector did not answer in time"),
    grpc.StatusCode.UNAUTHENTICATED: said("the collector did not accept this computer's"
                                          " certificate"),
    grpc.StatusCode.PERMISSION_DENIED: said("the collector refused this computer"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: said("the collector is busy: it asks to try later"),
}


def described(error: grpc.RpcError) -> Said:
    """`describe` for a person: to an English reader exactly its "CODE: details" (the text
    logs and scripts have always had); to another, the collector's refusal in their words when
    it sent it worded (`ERROR_METADATA`: what to do, in Chinese), else the common code's
    meaning in their words first, the code and the details as gRPC gave them beside it."""
    text = describe(error)
    code = status_of(error)[0]
    worded = worded_detail(error)
    if worded is not None and code is not None:
        return replace(said("{status}: {detail}", status=code.name, detail=worded), plain=text)
    meaning = None if code is None else _MEANINGS.get(code)
    if meaning is None:
        return Said(text, as_is=True)
    return replace(said("{meaning} ({status})", meaning=meaning, status=text), plain=text)


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
