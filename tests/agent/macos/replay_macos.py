"""A replaying Mac for probe tests: the shared ReplayHost, reporting macOS, fed from
tests/fixtures/macos (real recordings; see that folder's README for each one's source)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devposture.agent.host import OK_ONLY, CommandResult, CommandTimeoutError, PlatformInfo
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "macos"
SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"


def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def out(relative: str) -> tuple[int, bytes, bytes]:
    """A recording of a tool that printed the fixture on stdout and exited 0."""
    return 0, fixture(relative), b""


@dataclass
class MacReplayHost(ReplayHost):
    os_family: pb.OsFamily.ValueType = pb.OS_FAMILY_MACOS
    # Commands that hang until the host kills them (what LiveHost reports as a timeout).
    hangs: set[tuple[str, ...]] = field(default_factory=set)
    # What LiveHost reports as the release on a Mac: the product version from
    # SystemVersion.plist (platform.mac_ver), not the Darwin kernel's (24.5.0 is macOS 15.5).
    product_version: str = "15.5"

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        if tuple(argv) in self.hangs and argv[0] in self.tools:
            self.calls.append(tuple(argv))
            raise CommandTimeoutError(f"{argv[0]} did not finish within {timeout:.0f} s")
        return super().run(argv, timeout, ok_codes)

    def host_info(self) -> PlatformInfo:
        return PlatformInfo(
            "replayed-mac", "Darwin", self.product_version, "Darwin Kernel", "arm64"
        )
