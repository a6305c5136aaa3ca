"""Real collector processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devposture.collector.config import load
from devposture.collector.store import Store
from tests import warm_commands
from tests.databases import init_arguments
from tests.e2e.fleet import CollectorServer, serving

BIN = Path(sys.executable).parent
COLLECTOR = str(BIN / "devposture-collector")
AGENT = str(BIN / "devposture-agent")


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`argv` run to its end. An enrolled agent's collection starts with the command cache an
    agent that ran before on this machine holds (`tests/warm_commands.py`)."""
    warm_commands.seed_for(argv)
    return subprocess.run(
        argv, capture_output=True, text=True, input=stdin, timeout=120, check=False
    )


def open_store(data: Path) -> Store:
    """A read-only connection of the test's own to the database a data folder's
    collector.toml names (its SQLite file, or the PostgreSQL schema `init` was given): it
    reads what the collector committed, and never prepares the schema under a live one."""
    return Store.open_reader(load(data).database)


@dataclass
class CollectorProcess:
    data: Path
    enroll_port: int
    report_port: int
    fingerprint: str
    admin_port: int = 0
    # What the collector wrote to stdout and stderr (a file: a pipe nobody reads could fill
    # and stop the collector).
    log: Path | None = None

    def token(self) -> str:
        done = run(COLLECTOR, "token", "create", "--data", str(self.data))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@contextlib.contextmanager
def serving_collector(
    tmp_path: Path, prepare: Callable[[Path], None] | None = None
) -> Iterator[CollectorProcess]:
    """`init` a data folder, let `prepare` edit it (a policy read at start, not raced against
    a reload), then `serve` it on free ports until the block ends."""
    data, ready = tmp_path / "collector", tmp_path / "ready.json"
    assert run(COLLECTOR, "init", "--data", str(data), *init_arguments()).returncode == 0
    if prepare is not None:
        prepare(data)
    fingerprint = run(COLLECTOR, "ca", "fingerprint", "--data", str(data)).stdout.strip()
    log = tmp_path / "collector.log"
    log_file = log.open("wb")
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
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert server.poll() is None, f"collector did not start: {log.read_text()}"
            assert time.monotonic() < deadline, "collector did not start within 60 s"
            time.sleep(0.05)
        ports = json.loads(ready.read_text())
        yield CollectorProcess(
            data, ports["enroll_port"], ports["report_port"], fingerprint, ports["admin_port"],
            log,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        log_file.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorServer]:
    """A real collector (tests/e2e/fleet.py), serving until the test ends."""
    with serving(tmp_path) as server:
        yield server


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[CollectorProcess]:
    with serving_collector(tmp_path) as collector:
        yield collector


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
