"""`devposture-agent run` under systemd's notify protocol, as a real process talking to a real
datagram socket (what systemd binds for a `Type=notify` service): READY=1 with a STATUS once its
loop runs, WATCHDOG=1 at half of WATCHDOG_USEC from its own waits, and STOPPING=1 on SIGTERM.
Both while it waits for its enrollment and once enrolled."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests import warm_commands
from tests.e2e.conftest import AGENT, CollectorProcess, enrolled_state

WAIT = 60.0  # only bounds a failure: every step below waits for a message


@contextlib.contextmanager
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(WAIT)
        yield path, sock


def _messages(sock: socket.socket) -> Iterator[list[str]]:
    """Each datagram the agent sends, as its lines."""
    while True:
        yield sock.recv(4096).decode("utf-8").split("\n")


def _run_agent(argv: list[str], notify: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTIFY_SOCKET": notify, "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    warm_commands.seed_for([AGENT, "run", *argv])
    with log.open("wb") as sink:
        return subprocess.Popen(
            [AGENT, "run", *argv], env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def _follow(
    sock: socket.socket, agent: subprocess.Popen[bytes], log: Path, also: str = ""
) -> list[str]:
    """READY=1, then two WATCHDOG=1 (and a line starting with `also`), then (after SIGTERM)
    STOPPING=1; every message seen."""
    seen: list[str] = []
    messages = _messages(sock)
    # The one SIGTERM: a second, sent while the agent's interpreter shuts down (its handlers
    # gone), would kill it (exit -15) after a clean stop.
    stopped = False
    try:
        while "READY=1" not in seen:
            seen += next(messages)
        pings = 0
        while pings < 2 or not any(line.startswith(also) for line in seen):
            message = next(messages)
            seen += message
            pings += message.count("WATCHDOG=1")
        agent.send_signal(signal.SIGTERM)
        stopped = True
        while "STOPPING=1" not in seen:
            seen += next(messages)
    except TimeoutError:
        raise AssertionError(
            f"no message within {WAIT:g} s; seen {seen}\n{log.read_text()}"
        ) from None
    finally:
        if not stopped and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
        try:
            code = agent.wait(60)
        finally:
            if agent.poll() is None:  # it did not stop: fail, leaving nothing behind
                agent.kill()
                agent.wait(60)
    assert code == 0, log.read_text()
    return seen


def test_waiting_for_enrollment_it_is_ready_and_fed(tmp_path: Path) -> None:
    state, enroll_file = tmp_path / "state", tmp_path / "enroll.token"
    with notify_socket(tmp_path) as (path, sock):
        agent = _run_agent(
            ["--state", str(state), "--enrollment-file", str(enroll_file)], path,
            tmp_path / "agent.log",
        )  # fmt: skip
        seen = _follow(sock, agent, tmp_path / "agent.log")
    ready = seen.index("READY=1")
    assert seen[ready + 1] == "STATUS=waiting for enrollment"
    assert f"STATUS=waiting for enrollment: no file at {enroll_file}" in seen
    assert seen.index("STOPPING=1") > ready


def test_enrolled_it_says_who_it_is_and_when_it_collects(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    state = enrolled_state(collector_process, tmp_path)
    device = (state / "agent.json").read_text().split('"device_id": "')[1].split('"')[0]
    with notify_socket(tmp_path) as (path, sock):
        agent = _run_agent(
            ["--state", str(state), "--interval", "3600"], path, tmp_path / "agent.log"
        )
        next_round = f"STATUS=enrolled as {device}, next collection in "
        seen = _follow(sock, agent, tmp_path / "agent.log", also=next_round)
        # After the start-up round was acknowledged (and the one under the policy handed
        # out): what systemctl status shows until the next round.
        statuses = [line for line in seen if line.startswith("STATUS=")]
    ready = seen.index("READY=1")
    assert seen[ready + 1] == f"STATUS=enrolled as {device}, starting"
    assert f"STATUS=enrolled as {device}, collecting (start_up)" in statuses
    assert f"{next_round}60 min" in statuses
    assert seen.index("STOPPING=1") > ready
