"""Running Windows tools for the probes (declared in `agent/probes/commands.py`) through
`ctx.host.run`, their output decoded.

Every tool's bytes go through `decode_output` with the machine's console code page (cp936 on
Chinese Windows), because cmd.exe tools print in that code page and PowerShell may print
UTF-16. A tool that exits non-zero because Windows refused it (manage-bde without elevation
prints "ERROR: An attempt to access a required resource was denied.", Chinese Windows
"拒绝访问。" for ERROR_ACCESS_DENIED) becomes a HostPermissionError with that reason, so the
report says PERMISSION_DENIED instead of a generic failure: IT fixes the two differently.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from devposture.agent.host import OK_ONLY, CommandFailedError, HostError, HostPermissionError
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes.outcome import ProbeContext

_DENIALS = (
    "An attempt to access a required resource was denied",
    "Access is denied",
    "拒绝访问",
)
_MAX_REASON = 160


class _AnyExit(Collection[int]):
    """Every exit code: for tools whose exit status says nothing the output does not."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, int)

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


ANY_EXIT: Collection[int] = _AnyExit()


def console_encoding(ctx: ProbeContext) -> str:
    try:
        return ctx.host.host_info().console_encoding
    except (HostError, OSError):
        return "utf-8"


def denial_reason(text: str) -> str:
    """The line in which Windows says it refused, or "" when it did not."""
    for line in text.split("\n"):
        if any(marker in line for marker in _DENIALS):
            return line.strip()[:_MAX_REASON]
    return ""


def run_text(ctx: ProbeContext, argv: Sequence[str], ok_codes: Collection[int] = OK_ONLY) -> str:
    """stdout of `argv`, decoded. Raises the host's errors; a refusal by Windows is raised as
    HostPermissionError naming the tool and the reason it printed."""
    encoding = console_encoding(ctx)
    try:
        result = ctx.host.run(argv, ctx.config.command_timeout, ok_codes)
    except CommandFailedError as exc:
        printed = decode_output(exc.stdout, encoding) + "\n" + decode_output(exc.stderr, encoding)
        reason = denial_reason(printed)
        if reason:
            raise HostPermissionError(f"{argv[0]} was refused by Windows: {reason}") from exc
        raise
    return decode_output(result.stdout, encoding)
