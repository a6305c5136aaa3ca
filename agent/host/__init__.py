"""The host layer: the only code in the agent that touches the operating system.

`Host` is the interface probes use; `LiveHost` is the real computer. A recording host and a
replaying host (diagnostic bundles) will implement the same Protocol.
"""

from devposture.agent.host.errors import (
    CommandFailedError,
    CommandNotFoundError,
    CommandTimeoutError,
    HostError,
    HostPermissionError,
    OutputTooLargeError,
    SourceMissingError,
    UndeclaredCommandError,
)
from devposture.agent.host.live import LiveHost
from devposture.agent.host.paths import display_path, printable
from devposture.agent.host.protocol import OK_ONLY, Host
from devposture.agent.host.types import (
    CommandResult,
    FileEntry,
    FileStat,
    NetInterface,
    PlatformInfo,
    ProcessInfo,
    WalkResult,
)

__all__ = [
    "OK_ONLY",
    "CommandFailedError",
    "CommandNotFoundError",
    "CommandResult",
    "CommandTimeoutError",
    "FileEntry",
    "FileStat",
    "Host",
    "HostError",
    "HostPermissionError",
    "LiveHost",
    "NetInterface",
    "OutputTooLargeError",
    "PlatformInfo",
    "ProcessInfo",
    "SourceMissingError",
    "UndeclaredCommandError",
    "WalkResult",
    "display_path",
    "printable",
]
