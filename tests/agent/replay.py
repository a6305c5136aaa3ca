"""A replaying Host for probe tests: recorded command outputs and file contents in, no OS.

This is what a diagnostic-bundle replay will do later, in miniature: every answer was
recorded on a real machine (tests/fixtures/linux) or is stated in the test itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devposture.agent.host import (
    OK_ONLY,
    CommandFailedError,
    CommandNotFoundError,
    CommandResult,
    FileStat,
    NetInterface,
    PlatformInfo,
    ProcessInfo,
    SourceMissingError,
    WalkResult,
)
from devposture.agent.probes.commands import is_declared
from devposture.v1 import devposture_pb2 as pb

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "linux"


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text(encoding="utf-8")


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def recorded(stem: str) -> tuple[int, bytes, bytes]:
    """(returncode, stdout, stderr) of a command recorded by record.sh."""
    rc = int((FIXTURES / f"{stem}.rc").read_text().strip())
    return rc, (FIXTURES / f"{stem}.out").read_bytes(), (FIXTURES / f"{stem}.err").read_bytes()


def ok(stdout: str | bytes) -> tuple[int, bytes, bytes]:
    return 0, stdout.encode() if isinstance(stdout, str) else stdout, b""


@dataclass
class ReplayHost:
    os_family: pb.OsFamily.ValueType = pb.OS_FAMILY_LINUX
    tools: dict[str, str] = field(default_factory=dict)  # name -> path
    commands: dict[tuple[str, ...], tuple[int, bytes, bytes]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)
    mtimes: dict[str, float] = field(default_factory=dict)
    real_paths: dict[str, str] = field(default_factory=dict)  # where a link leads, as recorded
    procs: list[ProcessInfo] | None = field(default_factory=list)
    interfaces: list[NetInterface] = field(default_factory=list)
    homes: list[str] = field(default_factory=list)
    clock: datetime = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def with_tool(self, name: str) -> ReplayHost:
        self.tools[name] = f"/usr/bin/{name}"
        return self

    def run_cached(
        self, argv: Sequence[str], timeout: float, depends_on: Sequence[str]
    ) -> CommandResult:
        return self.run(argv, timeout)

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        key = tuple(argv)
        # As the agent's live host: a probe runs only what agent/probes/commands.py declares.
        if not is_declared(argv):
            raise AssertionError(f"{key} is not declared in agent/probes/commands.py")
        self.calls.append(key)
        if argv[0] not in self.tools:
            raise CommandNotFoundError(f"{argv[0]} is not installed")
        if key not in self.commands:
            raise AssertionError(f"no recording for {key}")
        rc, out, err = self.commands[key]
        if rc not in ok_codes:
            raise CommandFailedError(f"{argv[0]} exited with status {rc}", rc, out, err)
        return CommandResult(key, rc, out, err)

    def which(self, name: str) -> str | None:
        return self.tools.get(name)

    def read_bytes(self, path: str, limit: int) -> bytes:
        if path not in self.files:
            raise SourceMissingError(f"{path} does not exist")
        return self.files[path][:limit]

    def read_tail(self, path: str, limit: int) -> bytes:
        if path not in self.files:
            raise SourceMissingError(f"{path} does not exist")
        return self.files[path][-limit:] if limit > 0 else b""

    def read_sample(self, path: str, limit: int, offset: int = 0) -> bytes:
        if path not in self.files:
            raise SourceMissingError(f"{path} does not exist")
        return self.files[path][offset : offset + limit]

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs or path in self.mtimes

    def real_path(self, path: str) -> str:
        if path in self.real_paths:
            return self.real_paths[path]
        if not self.exists(path):
            raise SourceMissingError(f"{path} does not exist")
        return path

    def list_dir(self, path: str) -> list[str]:
        if path not in self.dirs:
            raise SourceMissingError(f"{path} does not exist")
        return sorted(self.dirs[path])

    def stat(self, path: str) -> FileStat:
        if not self.exists(path):
            raise SourceMissingError(f"{path} does not exist")
        size = len(self.files.get(path, b""))
        return FileStat(size=size, mtime=self.mtimes.get(path, 0.0), is_dir=path in self.dirs)

    def walk_files(self, path: str, max_files: int) -> WalkResult:
        raise SourceMissingError(f"{path} is not a folder")

    def processes(self) -> list[ProcessInfo]:
        if self.procs is None:
            raise SourceMissingError("process list unavailable")
        return list(self.procs)

    def net_interfaces(self) -> list[NetInterface]:
        return list(self.interfaces)

    def host_info(self) -> PlatformInfo:
        return PlatformInfo("replayed", "Linux", "6.1.0-18-amd64", "#1 SMP", "x86_64")

    def home_dirs(self) -> list[str]:
        return list(self.homes)

    def now(self) -> datetime:
        return self.clock
