"""The systemd units the packages install (installers/linux/systemd/), checked with systemd's own
tools and against the programs they start.

Where the tests run there is no systemd as PID 1 (a CI container), so nothing here starts a
unit. What can be checked without it is:

* `systemd-analyze security --offline=true` rates each unit at most 3.0 ("OK"): the number
  the issue asks for, read from systemd's own table;
* `systemd-analyze verify` accepts each unit without a single warning (systemd ignores an
  unknown or misspelt key with a warning, so a silent typo would drop a protection). verify
  also insists that every program a unit starts exists and is executable, and a unit's
  dependencies (sysinit.target ...) are found: it runs with --root on a small tree holding
  this machine's own system units, the unit under test in etc/systemd/system, and an
  executable stand-in at each program's path, /opt/devposture-*/bin/... included, which only
  the package installs;
* the command line each unit starts is one the current CLI accepts, with the folders the
  code uses by default (so the unit cannot drift from the CLI), and the unit's stop timeout
  covers what the code may take to stop;
* that command line, run as a service manager would run it (the console script from this
  environment in place of the package's program, the data folder in a temporary folder),
  says READY=1 on the notify socket, and STOPPING=1 and a clean exit on SIGTERM.

That the hardening lets the probes work (capabilities, read-only /run, the system-call filter,
MemoryDenyWriteExecute) was checked under a real systemd 252 in a Debian 12 container; see
installers/README.md.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from devposture.agent import cli as agent_cli
from devposture.agent.probes.runner import PROBE_DEADLINE_SECONDS
from devposture.agent.public_status import PUBLIC_FILE
from devposture.agent.settings import config_folder, default_enrollment_file
from devposture.agent.state import platform_public_dir, platform_state_dir
from devposture.collector import cli as collector_cli
from devposture.collector import server
from devposture.collector.admin import service as admin_service
from devposture.collector.config import MAX_DRAIN_SECONDS

UNITS = Path(__file__).resolve().parents[2] / "installers" / "linux" / "systemd"
AGENT_UNIT = UNITS / "devposture-agent.service"
COLLECTOR_UNIT = UNITS / "devposture-collector.service"
MAX_EXPOSURE = 3.0
BIN = Path(sys.executable).parent
WAIT = 60.0  # seconds; only bounds a failure: every step waits for a message or an exit
# Where Debian's systemd package keeps the system's units (/lib is /usr/lib on merged /usr).
SYSTEM_UNITS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze is not installed here (Debian's systemd package; .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def settings(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, in order, whatever its section."""
    found: dict[str, list[str]] = {}
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def setting(unit: Path, key: str) -> str:
    values = settings(unit).get(key, [])
    assert len(values) == 1, f"{unit.name}: expected one {key}=, found {values}"
    return values[0]


def command(value: str) -> list[str]:
    """An Exec*= line's argv, without its prefixes ("+", "-", "@", "!", ":")."""
    argv = shlex.split(value)
    argv[0] = argv[0].lstrip("+-@!:")
    return argv


def microseconds(span: str) -> int:
    """A systemd time span ("90s", "2min"), as systemd itself reads it."""
    done = subprocess.run(
        [_systemd_analyze(), "timespan", span], capture_output=True, text=True, check=True
    )
    found = re.search(r"μs:\s*(\d+)", done.stdout)
    assert found, done.stdout
    return int(found[1])


# --- systemd's own verdicts ---------------------------------------------------------------


@pytest.mark.parametrize("unit", [AGENT_UNIT, COLLECTOR_UNIT], ids=lambda u: u.name)
def test_exposure_is_at_most_3(unit: Path) -> None:
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?) (\w+)", done.stdout)
    assert found, f"no overall exposure in:\n{done.stdout}\n{done.stderr}"
    assert found[1] == unit.name
    exposure = float(found[2])
    print(f"{unit.name}: exposure {exposure} {found[3]}")  # the figure, with pytest -s
    assert exposure <= MAX_EXPOSURE, done.stdout


def _verify(unit_text: str, name: str, root: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on `unit_text` installed as `name` in a tree at `root`."""
    units = next((p for p in SYSTEM_UNITS if p.is_dir()), None)
    assert units is not None, f"none of {SYSTEM_UNITS} exists: is systemd installed?"
    shutil.copytree(units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    installed = root / "etc" / "systemd" / "system" / name
    installed.parent.mkdir(parents=True)
    installed.write_text(unit_text, encoding="utf-8")
    for key, values in settings(installed).items():
        if not key.startswith("Exec"):
            continue
        for value in values:
            program = root / command(value)[0].lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\nexit 0\n")  # a stand-in: verify never runs it
            program.chmod(stat.S_IRWXU)
    return subprocess.run(
        [_systemd_analyze(), "verify", f"--root={root}", name],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("unit", [AGENT_UNIT, COLLECTOR_UNIT], ids=lambda u: u.name)
def test_verify_accepts_the_unit_without_a_warning(unit: Path, tmp_path: Path) -> None:
    done = _verify(unit.read_text(encoding="utf-8"), unit.name, tmp_path / "root")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The check above can fail: systemd ignores a misspelt key with a warning only."""
    text = AGENT_UNIT.read_text(encoding="utf-8").replace("NotifyAccess=", "NotifyAcess=")
    done = _verify(text, AGENT_UNIT.name, tmp_path / "root")
    assert "Unknown key 'NotifyAcess'" in done.stdout + done.stderr


# --- the units against the code ----------------------------------------------------------


def test_agent_unit_runs_the_agent_service_with_its_folders() -> None:
    argv = command(setting(AGENT_UNIT, "ExecStart"))
    assert argv[0] == "/opt/devposture-agent/bin/devposture-agent"
    args = agent_cli.build_parser().parse_args(argv[1:])
    assert args.command == "run"
    # The unit gives no --state or --config: the agent's defaults must be the folders
    # systemd makes (and ProtectSystem=strict leaves writable) for it.
    assert Path("/var/lib") / setting(AGENT_UNIT, "StateDirectory") == platform_state_dir("linux")
    # What `status` shows, for every user: a folder everyone may read, that systemd makes at
    # each start (0755 whatever UMask=) and ProtectSystem=strict leaves writable; kept across
    # restarts, gone when the service stops.
    public = Path("/run") / setting(AGENT_UNIT, "RuntimeDirectory")
    assert public == platform_public_dir("linux")
    assert setting(AGENT_UNIT, "RuntimeDirectoryMode") == "0755"
    assert setting(AGENT_UNIT, "RuntimeDirectoryPreserve") == "restart"
    configuration = Path("/etc") / setting(AGENT_UNIT, "ConfigurationDirectory")
    assert configuration == config_folder("linux")
    assert default_enrollment_file("linux").parent == configuration
    assert setting(AGENT_UNIT, "Type") == "notify"
    assert setting(AGENT_UNIT, "NotifyAccess") == "main"


def test_collector_unit_serves_its_state_folder() -> None:
    argv = command(setting(COLLECTOR_UNIT, "ExecStart"))
    assert argv[0] == "/opt/devposture-collector/bin/devposture-collector"
    args = collector_cli.build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert args.data == Path("/var/lib") / setting(COLLECTOR_UNIT, "StateDirectory")
    assert setting(COLLECTOR_UNIT, "User") == setting(COLLECTOR_UNIT, "Group")
    assert setting(COLLECTOR_UNIT, "Type") == "notify"
    assert setting(COLLECTOR_UNIT, "NotifyAccess") == "main"


@pytest.mark.parametrize("unit", [AGENT_UNIT, COLLECTOR_UNIT], ids=lambda u: u.name)
def test_each_command_line_is_one_the_installed_program_accepts(unit: Path) -> None:
    """The unit's program is a console script of this project (the package's program runs
    the same entry point), installed here, and its parser takes the unit's arguments."""
    argv = command(setting(unit, "ExecStart"))
    name = Path(argv[0]).name
    scripts = {e.name: e for e in entry_points(group="console_scripts")}
    assert name in scripts, f"{name} is no console script of this environment"
    assert (BIN / name).is_file()
    # The script starts the launch, which loads the command line (tests/test_command_start.py).
    launch = scripts[name].module
    assert launch.endswith(".launch"), launch
    module = importlib.import_module(launch.removesuffix(".launch") + ".cli")
    module.build_parser().parse_args(argv[1:])  # exits (status 2) on an unknown argument


def test_stop_timeouts_cover_what_stopping_may_take() -> None:
    # The collector drains for up to [server] drain_seconds, then gives calls in flight a
    # grace on the administration port and another on the agent ports.
    longest = (
        MAX_DRAIN_SECONDS + admin_service.SHUTDOWN_GRACE_SECONDS + server.SHUTDOWN_GRACE_SECONDS
    )
    assert microseconds(setting(COLLECTOR_UNIT, "TimeoutStopSec")) > longest * 1_000_000
    # The agent leaves a collection under way (agent/service.py) but finishes its step: one
    # probe may be at its deadline.
    assert microseconds(setting(AGENT_UNIT, "TimeoutStopSec")) > PROBE_DEADLINE_SECONDS * 1e6


# --- the command lines, run ---------------------------------------------------------------


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: an abstract datagram socket."""

    def __init__(self) -> None:
        self.name = f"@devposture-unit-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(WAIT)

    def wait_for(self, field: str) -> list[str]:
        """The next message holding `field` (no watchdog is asked for: the messages are
        few, and none is left unread for long)."""
        while True:
            try:
                lines = self.sock.recv(4096).decode("utf-8").split("\n")
            except TimeoutError:
                pytest.fail(f"no {field} within {WAIT:g} s")
            if field in lines:
                return lines


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    listening = NotifySocket()
    try:
        yield listening
    finally:
        listening.sock.close()


def _service_env(notify: NotifySocket, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    return {**env, "NOTIFY_SOCKET": notify.name, **extra}


def _run_until_sigterm(
    argv: list[str], env: dict[str, str], notify: NotifySocket, log: Path
) -> list[str]:
    """Start `argv` as the service manager would; READY=1's lines; then SIGTERM, STOPPING=1
    and a clean exit."""
    with log.open("wb") as sink:
        service = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        ready = notify.wait_for("READY=1")
        assert service.poll() is None, log.read_text()
        service.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert service.wait(WAIT) == 0, log.read_text()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(WAIT)
    return ready


def test_collector_unit_command_line_serves_and_stops(tmp_path: Path, notify: NotifySocket) -> None:
    argv = command(setting(COLLECTOR_UNIT, "ExecStart"))
    state = str(Path("/var/lib") / setting(COLLECTOR_UNIT, "StateDirectory"))
    data = tmp_path / "devposture-collector"
    init = subprocess.run(
        [str(BIN / "devposture-collector"), "init", "--data", str(data)],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    # Every port 0 (any free one): the unit's line gives none, collector.toml does.
    config = data / "collector.toml"
    text, count = re.subn(r"(?m)^((?:enroll_|report_)?port) = \d+$", r"\1 = 0", config.read_text())
    assert count == 5, text
    config.write_text(text)
    assert argv.count(state) == 1, argv
    argv = [str(BIN / Path(argv[0]).name), *(str(data) if a == state else a for a in argv[1:])]

    ready = _run_until_sigterm(argv, _service_env(notify), notify, tmp_path / "collector.log")
    status = next(line for line in ready if line.startswith("STATUS="))
    port = re.search(r"enrollment port (\d+)", status)
    assert port, status


def test_agent_unit_command_line_starts_and_stops(tmp_path: Path, notify: NotifySocket) -> None:
    argv = command(setting(AGENT_UNIT, "ExecStart"))
    argv = [str(BIN / Path(argv[0]).name), *argv[1:]]
    # The folders the unit leaves to the agent's defaults, here in a temporary folder; no
    # enrollment file yet, so the agent waits for one, as on a PC the package just reached.
    config = tmp_path / "agent.toml"
    config.write_text("")
    env = _service_env(
        notify,
        DEVPOSTURE_AGENT_STATE=str(tmp_path / "state"),
        DEVPOSTURE_AGENT_PUBLIC_FOLDER=str(tmp_path / "public"),
        DEVPOSTURE_AGENT_CONFIG=str(config),
        DEVPOSTURE_AGENT_ENROLLMENT_FILE=str(tmp_path / "enroll.token"),
    )
    _run_until_sigterm(argv, env, notify, tmp_path / "agent.log")
    # Before its READY=1, the copy every user reads says it is not enrolled yet.
    published = json.loads((tmp_path / "public" / PUBLIC_FILE).read_text())
    assert (published["enrolled"], published["judged"]) == (False, None)
