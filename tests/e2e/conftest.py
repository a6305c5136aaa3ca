"""Real collector processes for end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
COLLECTOR = str(BIN / "devposture-collector")
AGENT = str(BIN / "devposture-agent")


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, input=stdin, timeout=120, check=False
    )


@dataclass
class CollectorProcess:
    data: Path
    enroll_port: int
    report_port: int
    fingerprint: str
    admin_port: int = 0

    def token(self) -> str:
        done = run(COLLECTOR, "token", "create", "--data", str(self.data))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[CollectorProcess]:
    data, ready = tmp_path / "collector", tmp_path / "ready.json"
    assert run(COLLECTOR, "init", "--data", str(data)).returncode == 0
    fingerprint = run(COLLECTOR, "ca", "fingerprint", "--data", str(data)).stdout.strip()
    server = subprocess.Popen(
        [
            COLLECTOR,
            "serve",
            "--drain-seconds",
            "0",
            "--data",
            str(data),
            "--enroll-port",
            "0",
            "--report-port",
            "0",
            "--admin-port",
            "0",
            "--metrics-port",
            "0",
            "--web-port",
            "0",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert server.poll() is None and time.monotonic() < deadline, "collector did not start"
            time.sleep(0.05)
        ports = json.loads(ready.read_text())
        yield CollectorProcess(
            data, ports["enroll_port"], ports["report_port"], fingerprint, ports["admin_port"]
        )
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0


def enroll(
    c: CollectorProcess, state: Path, token_file: Path, fingerprint: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(
        AGENT,
        "enroll",
        "--collector",
        f"127.0.0.1:{c.enroll_port}",
        "--token-file",
        str(token_file),
        "--ca-fingerprint",
        fingerprint or c.fingerprint,
        "--state",
        str(state),
    )


def enrolled_state(c: CollectorProcess, tmp_path: Path, name: str = "agent") -> Path:
    """A new agent state folder enrolled with `c` through the real CLI, with a fresh token."""
    token = tmp_path / f"{name}.token"
    token.write_text(c.token())
    state = tmp_path / name
    enrolled = enroll(c, state, token)
    assert enrolled.returncode == 0, enrolled.stderr
    return state
