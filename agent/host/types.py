"""Plain data that crosses the host boundary.

Every value a `Host` returns is one of these frozen dataclasses, built only from str, int,
float, bool, bytes, tuples and lists of them. That is deliberate: a later recording host writes
them into a diagnostic bundle as JSON and a replaying host reads them back, so nothing here may
hold a live object (a file handle, a psutil.Process, a datetime with a local zone).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CommandResult:
    """What one command printed and how it exited. Output stays bytes: decoding is the
    parser's job, because the right codec depends on the tool and the locale."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class FileStat:
    """The few attributes of a file the probes use; mtime is seconds since the Unix epoch."""

    size: int
    mtime: float
    is_dir: bool


@dataclass(frozen=True)
class FileEntry:
    """One regular file found by a bounded walk; `path` is relative to the walk's root."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class WalkResult:
    """Files under a folder, at most the cap asked for. `truncated` says the cap was hit, so a
    caller can say its counts are lower bounds instead of pretending they are complete."""

    files: tuple[FileEntry, ...]
    truncated: bool


@dataclass(frozen=True)
class ProcessInfo:
    """A running process by name only: command lines may carry paths or secrets."""

    pid: int
    name: str
    # Basename of the executable, "" when the OS would not say (another user's process).
    exe_name: str = ""


@dataclass(frozen=True)
class NetInterface:
    """A network interface as psutil sees it. `flags` are psutil's lower-case flag names
    ("up", "running", "pointopoint", ...), empty where the platform does not report them."""

    name: str
    is_up: bool
    mtu: int = 0
    flags: tuple[str, ...] = ()
    addresses: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PlatformInfo:
    """What the running kernel and Python say about the machine (platform.uname())."""

    hostname: str
    system: str  # "Linux", "Windows", "Darwin"
    release: str  # kernel release on Linux, product version (14.4.1) on macOS, "10"/"11" on Windows
    version: str
    machine: str  # "x86_64", "arm64", "AMD64"
    # The codec console tools print in: Windows' OEM code page ("cp936" on Chinese Windows,
    # "cp437" on US English), "utf-8" elsewhere. Parsers of cmd.exe tools (netsh, reg,
    # manage-bde) decode with it; PowerShell and WMIC output may instead be UTF-16 LE.
    console_encoding: str = "utf-8"
