"""`LiveHost`: the real computer, through subprocess, the file system and psutil.

Commands run with a list argv (never a shell), no stdin, LC_ALL=C and no LANGUAGE so that tools
print the untranslated output the parsers were written against, and a hard timeout after which
the whole process group is killed (a tool that forks a helper cannot hold the agent hostage).
What a tool prints is read up to a bound per stream (agent/host/output_bound.py): past it, the
tool is killed the same way and its fact reads unknown (OutputTooLargeError).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

try:  # POSIX only: user accounts for home_dirs(); absent on Windows.
    import pwd
except ImportError:  # pragma: no cover - Windows
    pwd = None  # type: ignore[assignment]

from devposture.agent.host.command_cache import CommandCache, stamp_of
from devposture.agent.host.errors import (
    CommandNotFoundError,
    CommandTimeoutError,
    HostError,
    HostPermissionError,
    OutputTooLargeError,
    SourceMissingError,
    UndeclaredCommandError,
    require_exit,
)
from devposture.agent.host.output_bound import (
    OutputDeadline,
    TooMuchOutput,
    read_output,
    shown_size,
)
from devposture.agent.host.paths import display_path
from devposture.agent.host.protocol import OK_ONLY
from devposture.agent.host.types import (
    CommandResult,
    FileEntry,
    FileStat,
    NetInterface,
    PlatformInfo,
    ProcessInfo,
    WalkResult,
)
from devposture.v1 import devposture_pb2 as pb

logger = logging.getLogger(__name__)

# Administration tools live in sbin, which a service's or a user's PATH often lacks; the
# firewall and disk tools (nft, iptables, ufw) are there on every distribution we target.
_EXTRA_POSIX_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")
# Regular users start at 1000 on Linux and 500 on macOS; 65534 is "nobody".
_FIRST_HUMAN_UID = {"darwin": 500}.get(sys.platform, 1000)
_NOBODY_UID = 65534
_NO_LOGIN_SHELLS = ("nologin", "false")


def _os_family() -> pb.OsFamily.ValueType:
    if sys.platform.startswith("linux"):
        return pb.OS_FAMILY_LINUX
    if sys.platform == "win32":
        return pb.OS_FAMILY_WINDOWS
    if sys.platform == "darwin":
        return pb.OS_FAMILY_MACOS
    return pb.OS_FAMILY_UNSPECIFIED


def _console_encoding() -> str:
    """The OEM code page cmd.exe tools write in on Windows; UTF-8 elsewhere."""
    if sys.platform != "win32":
        return "utf-8"
    import ctypes  # noqa: PLC0415 - Windows only

    return f"cp{ctypes.windll.kernel32.GetOEMCP()}"  # type: ignore[attr-defined,unused-ignore]


# What Windows says of a loop of links (or of too many on the way): ERROR_CANT_RESOLVE_FILENAME.
_CANT_RESOLVE_FILENAME = 1921


class LiveHost:
    """The computer the agent runs on."""

    def __init__(
        self, cache: CommandCache | None = None,
        declared: Callable[[Sequence[str]], bool] | None = None,
    ) -> None:  # fmt: skip
        """`declared`: which commands this host may run (the agent gives the probes' list,
        `agent/probes/commands.py`); anything else is refused before a process starts. None
        runs any command (a test of the host itself)."""
        self._family = _os_family()
        self._homes: list[str] | None = None
        self._cache = cache if cache is not None else CommandCache(None)
        self._declared = declared

    @property
    def os_family(self) -> pb.OsFamily.ValueType:
        return self._family

    # --- commands ------------------------------------------------------------------------

    def _search_path(self) -> str:
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if os.name == "posix":
            parts += [p for p in _EXTRA_POSIX_PATH if p not in parts]
        return os.pathsep.join(p for p in parts if p)

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self._search_path())

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = self._search_path()
        if os.name == "posix":
            env["LC_ALL"] = "C"
            env["LANG"] = "C"
            # Python tools (ufw, firewall-cmd) translate by LANGUAGE before LC_ALL (Python's
            # gettext.find), and Ubuntu's Chinese installs give every service LANGUAGE=zh_CN:zh.
            env.pop("LANGUAGE", None)
        return env

    def run_cached(
        self, argv: Sequence[str], timeout: float, depends_on: Sequence[str]
    ) -> CommandResult:
        stamp = stamp_of(depends_on)
        cached = self._cache.lookup(argv, stamp)
        if cached is not None:
            return cached
        result = self.run(argv, timeout)
        self._cache.store(argv, stamp, result)
        return result

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        if not argv:
            raise ValueError("empty argv")
        tool = argv[0]
        if self._declared is not None and not self._declared(argv):
            raise UndeclaredCommandError(
                f"{tool}: this command is not in the agent's declared list; it was not run"
            )
        resolved = self.which(tool)
        if resolved is None:
            raise CommandNotFoundError(f"{tool} is not installed (not found on the search path)")
        try:
            proc = subprocess.Popen(
                [resolved, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env(),
                start_new_session=os.name == "posix",
            )
        except FileNotFoundError as exc:
            raise CommandNotFoundError(f"{tool} could not be started: not found") from exc
        except PermissionError as exc:
            raise HostPermissionError(f"{tool} could not be started: permission denied") from exc
        deadline = time.monotonic() + timeout
        try:
            stdout, stderr = read_output(proc, deadline)
            proc.wait(max(0.0, deadline - time.monotonic()))
        except (OutputDeadline, subprocess.TimeoutExpired) as exc:
            self._end(proc)
            raise CommandTimeoutError(f"{tool} did not finish within {timeout:g} s") from exc
        except TooMuchOutput as exc:
            self._end(proc)
            raise OutputTooLargeError(
                f"{tool} printed more than {shown_size(exc.most)}: far more than any real"
                " output of it, so it was stopped and what it printed was not read"
            ) from exc
        except BaseException:  # never leave the tool running (a KeyboardInterrupt, a bug)
            self._end(proc)
            raise
        return require_exit(CommandResult(tuple(argv), proc.returncode, stdout, stderr), ok_codes)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        """Kill the tool (its whole process group on POSIX) and reap it. Its pipes are closed
        by what read them (output_bound), so a helper that left the group cannot hold the
        agent."""
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait()

    # --- files ---------------------------------------------------------------------------

    def _shown(self, path: str) -> str:
        return display_path(path, self.home_dirs())

    def _file_error(self, exc: OSError, path: str, what: str) -> HostError:
        shown = self._shown(path)
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return SourceMissingError(f"{shown} does not exist")
        if isinstance(exc, PermissionError):
            return HostPermissionError(f"permission denied {what} {shown}")
        if exc.errno == errno.ELOOP or getattr(exc, "winerror", None) == _CANT_RESOLVE_FILENAME:
            return HostError(f"{shown} is a loop of symbolic links")
        return HostError(f"{what} {shown} failed: {exc.strerror or type(exc).__name__}")

    def read_bytes(self, path: str, limit: int) -> bytes:
        try:
            with Path(path).open("rb") as handle:
                return handle.read(max(0, limit))
        except IsADirectoryError as exc:
            raise SourceMissingError(f"{self._shown(path)} is a folder, not a file") from exc
        except OSError as exc:
            raise self._file_error(exc, path, "reading") from exc

    def read_tail(self, path: str, limit: int) -> bytes:
        try:
            with Path(path).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - max(0, limit)))
                return handle.read(max(0, limit))
        except IsADirectoryError as exc:
            raise SourceMissingError(f"{self._shown(path)} is a folder, not a file") from exc
        except OSError as exc:
            raise self._file_error(exc, path, "reading") from exc

    def read_sample(self, path: str, limit: int, offset: int = 0) -> bytes:
        try:
            with Path(path).open("rb") as handle:
                handle.seek(max(0, offset))
                return handle.read(max(0, limit))
        except IsADirectoryError as exc:
            raise SourceMissingError(f"{self._shown(path)} is a folder, not a file") from exc
        except OSError as exc:
            raise self._file_error(exc, path, "reading") from exc

    def exists(self, path: str) -> bool:
        try:
            return Path(path).exists()
        except OSError:
            return False

    def real_path(self, path: str) -> str:
        # strict: a link whose target is gone, or a loop, raises instead of coming back as a
        # path that merely looks resolved. On Windows, Python 3.8+ resolves junctions too.
        try:
            return os.path.realpath(path, strict=True)
        except OSError as exc:
            raise self._file_error(exc, path, "resolving") from exc

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(path))
        except OSError as exc:
            raise self._file_error(exc, path, "listing") from exc

    def stat(self, path: str) -> FileStat:
        try:
            st = Path(path).stat()
        except OSError as exc:
            raise self._file_error(exc, path, "inspecting") from exc
        return FileStat(size=st.st_size, mtime=st.st_mtime, is_dir=Path(path).is_dir())

    def walk_files(self, path: str, max_files: int) -> WalkResult:
        root = Path(path)
        if not root.is_dir():
            raise SourceMissingError(f"{self._shown(path)} is not a folder")
        files: list[FileEntry] = []
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                logger.debug("skipping an unreadable folder during a bounded walk")
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        rel = Path(entry.path).relative_to(root).as_posix()
                        files.append(FileEntry(rel, st.st_size, st.st_mtime))
                        if len(files) >= max_files:
                            return WalkResult(tuple(files), truncated=True)
                except OSError:
                    continue
        return WalkResult(tuple(files), truncated=False)

    # --- processes and network -----------------------------------------------------------

    def processes(self) -> list[ProcessInfo]:
        found: list[ProcessInfo] = []
        for proc in psutil.process_iter(["pid", "name", "exe"], ad_value=None):
            info = proc.info
            name = info.get("name") or ""
            exe = info.get("exe") or ""
            exe_name = exe.replace("\\", "/").rsplit("/", 1)[-1] if exe else ""
            found.append(ProcessInfo(pid=int(info["pid"]), name=name, exe_name=exe_name))
        return found

    def net_interfaces(self) -> list[NetInterface]:
        stats = psutil.net_if_stats()
        addrs = psutil.net_if_addrs()
        families = {socket.AF_INET, socket.AF_INET6}
        interfaces: list[NetInterface] = []
        for name in sorted(set(stats) | set(addrs)):
            st = stats.get(name)
            flags = tuple(f for f in getattr(st, "flags", "").split(",") if f) if st else ()
            addresses = tuple(a.address for a in addrs.get(name, []) if a.family in families)
            interfaces.append(
                NetInterface(
                    name=name,
                    is_up=bool(st.isup) if st else False,
                    mtu=int(st.mtu) if st else 0,
                    flags=flags,
                    addresses=addresses,
                )
            )
        return interfaces

    # --- identity and time ---------------------------------------------------------------

    def host_info(self) -> PlatformInfo:
        uname = platform.uname()
        # On a Mac the kernel release (Darwin 23.4.0) is not what people call the version:
        # platform.mac_ver() reads the product version (14.4.1) from SystemVersion.plist.
        release = (
            (platform.mac_ver()[0] or uname.release) if sys.platform == "darwin" else uname.release
        )
        return PlatformInfo(
            hostname=socket.gethostname(),
            system=uname.system,
            release=release,
            version=uname.version,
            machine=uname.machine,
            console_encoding=_console_encoding(),
        )

    def home_dirs(self) -> list[str]:
        if self._homes is None:
            self._homes = self._find_homes()
        return list(self._homes)

    def _find_homes(self) -> list[str]:
        homes: set[str] = set()
        with contextlib.suppress(RuntimeError):
            homes.add(str(Path.home()))
        if pwd is not None:
            for entry in pwd.getpwall():
                human = entry.pw_uid == 0 or _FIRST_HUMAN_UID <= entry.pw_uid < _NOBODY_UID
                if not human or entry.pw_shell.rsplit("/", 1)[-1] in _NO_LOGIN_SHELLS:
                    continue
                if Path(entry.pw_dir).is_dir():
                    homes.add(entry.pw_dir)
        else:
            users = Path(os.environ.get("SYSTEMDRIVE", "C:") + "\\") / "Users"
            skip = {"public", "default", "default user", "all users"}
            with contextlib.suppress(OSError):
                homes.update(
                    str(p) for p in users.iterdir() if p.is_dir() and p.name.lower() not in skip
                )
        return sorted(h for h in homes if h and h != "/")

    def now(self) -> datetime:
        return datetime.now(UTC)
