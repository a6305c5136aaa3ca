"""Typed failures of the host layer, each carrying the ProbeErrorCode it becomes.

Probes catch these to report *why* a fact is missing (principle 2: unknown is not pass); the
common probe runner turns an uncaught one into a ProbeError with the same code. Messages name
the tool or the kind of file, never a user's path or any content.
"""

from __future__ import annotations

from collections.abc import Collection

from devposture.agent.host.types import CommandResult
from devposture.v1 import devposture_pb2 as pb


class HostError(Exception):
    """Base class: something the host could not do, with the ProbeErrorCode it becomes."""

    code: pb.ProbeErrorCode.ValueType = pb.PROBE_ERROR_CODE_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CommandNotFoundError(HostError):
    """The tool is not installed or not on the search path: not evidence of absence."""

    code = pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND


class HostPermissionError(HostError):
    """The OS refused: the agent runs without the privilege the source needs."""

    code = pb.PROBE_ERROR_CODE_PERMISSION_DENIED


class CommandTimeoutError(HostError):
    """The tool did not finish within its time budget and was killed."""

    code = pb.PROBE_ERROR_CODE_TIMEOUT


class CommandFailedError(HostError):
    """The tool ran and exited with a code the caller did not accept. The result is kept so a
    probe can read stderr (e.g. to tell "you must be root" from a real failure)."""

    code = pb.PROBE_ERROR_CODE_COMMAND_FAILED

    def __init__(self, message: str, returncode: int, stdout: bytes, stderr: bytes) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class OutputTooLargeError(HostError):
    """The tool printed more than any real output of it (agent/host/output_bound.py) and was
    stopped: what it printed is not read at all, so no part of it passes for the whole."""

    code = pb.PROBE_ERROR_CODE_COMMAND_FAILED


class UndeclaredCommandError(HostError):
    """A command outside the list the agent's host was given to run: refused before any process
    starts (a bug of the probe that asked; its fact says so, as INTERNAL)."""


class SourceMissingError(HostError):
    """A file or folder the probe wanted to read does not exist."""

    code = pb.PROBE_ERROR_CODE_NO_SOURCE


def require_exit(result: CommandResult, ok_codes: Collection[int]) -> CommandResult:
    """Raise CommandFailedError unless the command exited with an accepted code.

    Shared by the live and the replaying host, so a replayed failure reads exactly as the
    recorded one did."""
    if result.returncode in ok_codes:
        return result
    raise CommandFailedError(
        f"{result.argv[0]} exited with status {result.returncode}",
        result.returncode,
        result.stdout,
        result.stderr,
    )
