"""What a failed gRPC call says, in one place: every caller (enrollment, sending, renewal, the
admin client) turns an RpcError into a status and a message the same way."""

from __future__ import annotations

import grpc


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode | None, str]:
    """The call's status code and details; (None, text) for an error that is not a call's."""
    if isinstance(error, grpc.Call):
        return error.code(), error.details() or ""
    return None, str(error)


def describe(error: grpc.RpcError) -> str:
    """"CODE: details", for logs and for the reason a report stays in the outbox."""
    code, detail = status_of(error)
    return f"{code.name if code else 'error'}: {detail}"
