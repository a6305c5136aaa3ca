"""What a probe hands back, and the vocabulary for saying why a fact is missing.

A probe returns a `FactOutcome`: the fact message (or None) and any ProbeErrors about single
sources ("iptables: permission denied" while nft was read fine). To give up on the whole fact
it raises `ProbeFailure`; host errors and parse errors may also simply propagate, and the
runner turns them into a ProbeError with the matching code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import Message

from devposture.agent.host import CommandFailedError, Host, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.probes.config import ProbeConfig
from devposture.v1 import devposture_pb2 as pb

_PERMISSION_HINTS = (
    "permission denied",
    "operation not permitted",
    "must be root",
    "need to be root",
)
_MAX_DETAIL = 200


@dataclass(frozen=True)
class ProbeContext:
    """Everything a probe may use. `report` holds the facts collected before this one (disk
    encryption before chat backups, VPN before Wi-Fi); probes only read it."""

    host: Host
    config: ProbeConfig
    report: pb.PostureReport


@dataclass
class FactOutcome:
    fact: Message | None = None
    errors: list[pb.ProbeError] = field(default_factory=list)


Probe = Callable[[ProbeContext], FactOutcome]


class ProbeFailure(Exception):
    """The probe gives up on its whole fact, saying why."""

    def __init__(self, code: pb.ProbeErrorCode.ValueType, message: str, source: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.source = source


def error(
    fact: pb.Fact.ValueType, code: pb.ProbeErrorCode.ValueType, message: str, source: str = ""
) -> pb.ProbeError:
    return pb.ProbeError(fact=fact, code=code, message=message, source=source)


def first_line(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text.splitlines()[0][:_MAX_DETAIL] if text else ""


def code_of(exc: HostError | ParseError) -> pb.ProbeErrorCode.ValueType:
    """The ProbeErrorCode for a failure. A tool that exits non-zero because it needs root is
    reported as PERMISSION_DENIED, not as a broken tool: IT fixes the two differently."""
    if isinstance(exc, ParseError):
        return pb.PROBE_ERROR_CODE_PARSE_ERROR
    if isinstance(exc, CommandFailedError):
        stderr = exc.stderr.decode("utf-8", errors="replace").lower()
        if any(hint in stderr for hint in _PERMISSION_HINTS):
            return pb.PROBE_ERROR_CODE_PERMISSION_DENIED
    return exc.code


def describe(exc: HostError | ParseError, with_stderr: bool = True) -> str:
    """A message for IT. stderr's first line helps ("you must be root"); callers turn it off
    for tools whose errors could echo a network name."""
    message = str(exc)
    if with_stderr and isinstance(exc, CommandFailedError):
        detail = first_line(exc.stderr)
        if detail:
            message = f"{message}: {detail}"
    return message


def source_error(
    fact: pb.Fact.ValueType, source: str, exc: HostError | ParseError, with_stderr: bool = True
) -> pb.ProbeError:
    return error(fact, code_of(exc), describe(exc, with_stderr), source)


MessageT = TypeVar("MessageT", bound=Message)
SourceReader = Callable[[ProbeContext, MessageT, list[pb.ProbeError]], bool]


def from_sources(
    ctx: ProbeContext, fact: MessageT, readers: Sequence[SourceReader[MessageT]]
) -> FactOutcome:
    """A fact read from independent sources, in order: each reader fills its part of `fact`
    or adds its own error and returns False; the fact is reported when any source was read."""
    errors: list[pb.ProbeError] = []
    read = [reader(ctx, fact, errors) for reader in readers]
    return FactOutcome(fact if any(read) else None, errors)
