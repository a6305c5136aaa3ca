"""A replaying Windows host: recorded outputs of real Windows machines in, no Windows needed.

Extends tests/agent/replay.py's ReplayHost with what a Windows machine adds: the Windows OS
family, the console code page (cp936 for the Chinese machine, so GBK bytes decode as they do
there), and commands that time out. Every stdout is a file under tests/fixtures/windows (see
its README); a command that fails without a recorded output is marked as such where it is set.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devposture.agent.host import OK_ONLY, CommandResult, CommandTimeoutError, PlatformInfo
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "windows"


def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def output(relative: str, returncode: int = 0) -> tuple[int, bytes, bytes]:
    """(returncode, stdout, stderr) replaying a recorded stdout."""
    return returncode, fixture(relative), b""


EN_US_CULTURE = "culture/datetimeformat-en-us-msdocs.txt"
PACIFIC = "timezone/get-timezone-pacific-msdocs.txt"
CHINA = "timezone/get-timezone-china.txt"


def one_run(*relatives: str) -> tuple[int, bytes, bytes]:
    """The stdout of one PowerShell run that prints several objects (the Defender probe prints
    the culture's DateTimeFormat, Get-TimeZone, then Get-MpComputerStatus): the recordings in
    order, a blank line between them as PowerShell's list format separates objects. Each part
    is a real recording; no public source has all of them from one machine, so the callers say
    which were put together."""
    parts = [fixture(relative).strip(b"\r\n") for relative in relatives]
    return 0, b"\n\n".join(parts) + b"\n", b""


@dataclass
class WindowsReplayHost(ReplayHost):
    os_family: pb.OsFamily.ValueType = pb.OS_FAMILY_WINDOWS
    console_encoding: str = "cp437"
    timeouts: set[tuple[str, ...]] = field(default_factory=set)

    def record(self, argv: Sequence[str], recorded: tuple[int, bytes, bytes]) -> None:
        self.tools.setdefault(argv[0], f"C:/Windows/System32/{argv[0]}.exe")
        self.commands[tuple(argv)] = recorded

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        if tuple(argv) in self.timeouts:
            self.calls.append(tuple(argv))
            raise CommandTimeoutError(f"{argv[0]} did not finish within {timeout:g} s")
        return super().run(argv, timeout, ok_codes)

    def host_info(self) -> PlatformInfo:
        return PlatformInfo(
            "replayed-windows", "Windows", "10", "10.0.22631", "AMD64", self.console_encoding
        )
