"""A throwaway Debian root filesystem to install the packages into, and what runs inside it.

The root comes from a cached `debootstrap --variant=minbase` tarball
(installers/linux/make-rootfs.sh), unpacked afresh per test so the cache is never changed.
Inside: /proc mounted, a policy-rc.d that refuses to start services (as in an image build), and
commands run with `chroot`. systemd does not run there, so a unit is started the way systemd
would: its ExecStart= line as its User=, with $NOTIFY_SOCKET pointing at a socket the test
reads (READY=1 is the service's own word that it is up) and the directories it declares.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Generous: nothing here may depend on the machine's speed; these only end a hung test.
COMMAND_TIMEOUT = 300.0
EVENT_TIMEOUT = 180.0


class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket the service writes to."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        path.chmod(0o777)  # a service running as its own user writes to it too
        self.messages: list[str] = []

    def wait_for(self, line: str, process: subprocess.Popen[bytes], timeout: float) -> None:
        """Until the service sends `line` (e.g. READY=1); fails if it exits first."""
        deadline = time.monotonic() + timeout
        while not any(line in m.splitlines() for m in self.messages):
            if process.poll() is not None:
                raise AssertionError(f"the service exited ({process.returncode}) before {line}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {line} within {timeout:g} s; got {self.messages}")
            self._socket.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                self.messages.append(self._socket.recv(4096).decode("utf-8", "replace"))

    def close(self) -> None:
        self._socket.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Unit:
    """What a systemd unit says about starting its service."""

    exec_start: list[str]
    user: str | None
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Unit:
        settings: dict[str, str] = {}
        for raw in text.splitlines():
            line = raw.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), value.strip())  # the first ExecStart=
        command = settings["ExecStart"].lstrip("-@+!:")
        environment = {}
        # What systemd exports for the folders the unit declares.
        for key, variable, parent in (("StateDirectory", "STATE_DIRECTORY", "/var/lib"),
                                      ("ConfigurationDirectory", "CONFIGURATION_DIRECTORY",
                                       "/etc")):  # fmt: skip
            if key in settings:
                environment[variable] = f"{parent}/{settings[key]}"
        if "WatchdogSec" in settings:
            seconds = float(settings["WatchdogSec"].rstrip("s"))
            environment["WATCHDOG_USEC"] = str(int(seconds * 1_000_000))
        return cls(shlex.split(command), settings.get("User"), environment)


@dataclass
class DebianRoot:
    """An unpacked root filesystem with /proc mounted; `close` unmounts and deletes it."""

    path: Path
    logs: Path
    _services: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def unpack(cls, tarball: Path, into: Path) -> DebianRoot:
        into.mkdir(parents=True)
        subprocess.run(["tar", "--numeric-owner", "-C", str(into), "-xf", str(tarball)],
                       check=True, timeout=COMMAND_TIMEOUT)  # fmt: skip
        root = cls(into, into.parent / f"{into.name}-logs")
        root.logs.mkdir()
        policy = into / "usr" / "sbin" / "policy-rc.d"
        policy.write_text("#!/bin/sh\n# tests: never start a service while installing\nexit 101\n")
        policy.chmod(0o755)
        subprocess.run(["mount", "-t", "proc", "proc", str(into / "proc")], check=True)
        return root

    def file(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")

    def _argv(self, argv: tuple[str, ...] | list[str], user: str | None) -> list[str]:
        spec = [f"--userspec={user}:{user}"] if user else []
        return ["chroot", *spec, str(self.path), *argv]

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **(extra or {})}

    def run(self, *argv: str, user: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        done = subprocess.run(
            self._argv(argv, user), capture_output=True, text=True, env=self._env(env),
            timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def start(self, unit: Unit, name: str, notify: NotifySocket) -> subprocess.Popen[bytes]:
        """The unit's ExecStart= as its User=, as systemd would start it (no sandbox)."""
        inside = "/" + notify.path.relative_to(self.path).as_posix()
        env = self._env({**unit.environment, "NOTIFY_SOCKET": inside})
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(self._argv(unit.exec_start, unit.user), env=env,
                                       stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self._services.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 120.0) -> int:
        """SIGTERM, as `systemctl stop` sends it; the exit status."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for process in self._services:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        subprocess.run(["umount", "--lazy", str(self.path / "proc")], check=False)
        if os.path.ismount(self.path / "proc"):
            raise RuntimeError(f"{self.path}/proc is still mounted; not deleting the root")
        shutil.rmtree(self.path, ignore_errors=True)


def set_collector_ports(config: Path, admin: int, metrics: int, web: int) -> None:
    """Edit collector.toml's [admin], [metrics] and [web] ports, as IT would."""
    section, lines = "", []
    for line in config.read_text().splitlines():
        section = line.strip("[]") if line.startswith("[") else section
        port = {"admin": admin, "metrics": metrics, "web": web}.get(section)
        lines.append(f"port = {port}" if port and line.startswith("port =") else line)
    config.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def debian_root(tarball: Path, into: Path) -> Iterator[DebianRoot]:
    root = DebianRoot.unpack(tarball, into)
    try:
        yield root
    finally:
        root.close()
