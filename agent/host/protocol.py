"""The one interface through which probes see the operating system.

Probes never import subprocess, os, pathlib or psutil; they ask a `Host`. That keeps probes
testable with a replaying host built from recorded outputs, and lets a later issue add a
recording host (diagnostic bundle) without touching any probe. Every method takes and returns
plain data (see `agent.host.types`) so a recording is a JSON document.

Failures are raised as `agent.host.errors.HostError` subclasses, never as bare OSError.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from devposture.agent.host.types import (
    CommandResult,
    FileStat,
    NetInterface,
    PlatformInfo,
    ProcessInfo,
    WalkResult,
)
from devposture.v1 import devposture_pb2 as pb

# Exit codes a caller accepts when it does not say otherwise.
OK_ONLY: frozenset[int] = frozenset({0})


class Host(Protocol):
    """A computer, live or replayed. Probes dispatch on `os_family`,
    so a bundle recorded on Windows replays through the Windows probes on any machine."""

    @property
    def os_family(self) -> pb.OsFamily.ValueType: ...

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        """Run a tool (list argv, no shell). Raises CommandNotFoundError, HostPermissionError,
        CommandTimeoutError, or CommandFailedError when the exit code is not in `ok_codes`."""
        ...

    def run_cached(
        self, argv: Sequence[str], timeout: float, depends_on: Sequence[str]
    ) -> CommandResult:
        """Like `run` (exit code 0 only), for a costly command whose output depends only on
        the files `depends_on`: a host may answer from a cache while they are unchanged."""
        ...

    def which(self, name: str) -> str | None:
        """Where the tool lives, or None when it is not installed."""
        ...

    def read_bytes(self, path: str, limit: int) -> bytes:
        """At most `limit` bytes from the start of a file: never a whole chat database."""
        ...

    def read_tail(self, path: str, limit: int) -> bytes:
        """At most the last `limit` bytes of a file: the newest end of a log that grows at
        its end (freshclam's UpdateLogFile). The first line may come cut."""
        ...

    def read_sample(self, path: str, limit: int, offset: int = 0) -> bytes:
        """At most `limit` bytes of a user's file (a chat backup) from `offset`, only to tell
        its format (a header; a 7z archive's end header). Like `read_bytes`, but marked: a
        recording host redacts any readable text in it."""
        ...

    def exists(self, path: str) -> bool: ...

    def real_path(self, path: str) -> str:
        """Where `path` really is: absolute, with every symbolic link, Windows junction and
        ".." on the way resolved (os.path.realpath), in the OS's own spelling. A volume is
        judged by this, not by how a path is spelled. Raises SourceMissingError for a link
        whose target is gone, HostPermissionError, or HostError (a loop of links)."""
        ...

    def list_dir(self, path: str) -> list[str]:
        """Names (not paths) in a folder, sorted."""
        ...

    def stat(self, path: str) -> FileStat: ...

    def walk_files(self, path: str, max_files: int) -> WalkResult:
        """Regular files under a folder, depth first, stopping after `max_files`. Symbolic
        links are not followed, so a link to "/" cannot make the walk endless."""
        ...

    def processes(self) -> list[ProcessInfo]: ...

    def net_interfaces(self) -> list[NetInterface]: ...

    def host_info(self) -> PlatformInfo: ...

    def home_dirs(self) -> list[str]:
        """Home folders of the people who use this computer (not service accounts)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
