"""The agent's logs: JSON lines when agent.toml says so (a real `devposture-agent run`), and any
secret shaped like a token, a credential or an enrollment value replaced before a line is
written, whichever the format."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import signal
import subprocess
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from devposture.log_format import (
    LOG_FILE_BACKUPS,
    LOG_FILE_BYTES,
    JsonFormatter,
    RedactSecrets,
    configure,
    redact,
)
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import BEIJING, EnrollmentValue
from tests.waiting import wait_until

AGENT = str(Path(sys.executable).parent / "devposture-agent")
TOKEN = "dpt_0123456789abcdef_" + "s" * 43
CREDENTIAL = "dpa_0123456789abcdef_" + "c" * 43
VALUE = EnrollmentValue(
    (CollectorAddress("collector.corp.example", 7443),), "sha256:" + "ab" * 32, TOKEN,
    dt.datetime(2026, 12, 9, 20, 0, tzinfo=BEIJING), 50,
).encode()  # fmt: skip


@pytest.mark.parametrize("secret", [TOKEN, CREDENTIAL, VALUE])
def test_every_shape_of_secret_is_redacted(secret: str) -> None:
    assert redact(f"read {secret} from the file") == "read <redacted secret> from the file"


@pytest.mark.parametrize("formatter", [logging.Formatter("%(message)s"), JsonFormatter()])
def test_a_secret_logged_by_mistake_does_not_reach_the_output(
    formatter: logging.Formatter,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.agent.secrets")
    logger.addHandler(handler)
    try:
        logger.error("enrolling with %s", VALUE, extra={"token": TOKEN})
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "<redacted secret>" in written
    assert "s" * 43 not in written and VALUE[5:40] not in written


def test_the_service_logs_json_lines_when_told(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[logging]\nformat = "json"\n')
    log = tmp_path / "agent.log"
    with log.open("wb") as sink:
        agent = subprocess.Popen(
            [AGENT, "run", "--config", str(config), "--state", str(tmp_path / "state"),
             "--enrollment-file", str(tmp_path / "enroll.token")],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(
            lambda: "no enrollment file" in log.read_text() or agent.poll() is not None,
            "the service to log that it waits for the enrollment file",
        )  # fmt: skip
        assert agent.poll() is None, log.read_text()
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            assert agent.wait(60) == 0
        finally:
            if agent.poll() is None:  # it did not stop: fail, leaving nothing behind
                agent.kill()
                agent.wait(60)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    (waiting,) = [line for line in lines if "no enrollment file" in line["message"]]
    assert waiting["level"] == "WARNING" and waiting["logger"] == "devposture.agent.first_start"
    assert lines[-1]["message"] == "devposture agent stopped"


def test_the_service_logs_to_its_own_file_when_told_and_commands_do_not(tmp_path: Path) -> None:
    """Where no journal takes a service's output (launchd, Windows), the service writes a
    rotated file of its own ([logging] file); a command run by a person still answers on the
    terminal."""
    config = tmp_path / "agent.toml"
    log_file = tmp_path / "logs" / "agent.log"  # the folder is made as needed
    config.write_text(f'[logging]\nfile = "{log_file}"\n')
    agent = subprocess.Popen(
        [AGENT, "run", "--config", str(config), "--state", str(tmp_path / "state"),
         "--enrollment-file", str(tmp_path / "enroll.token")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: (log_file.exists() and "no enrollment file" in log_file.read_text())
            or agent.poll() is not None,
            "the service to log that it waits for the enrollment file",
        )  # fmt: skip
        assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            out, err = agent.communicate(timeout=60)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(60)
    assert agent.returncode == 0
    assert err == "" and out == ""  # all of it went to the file
    assert log_file.read_text().splitlines()[-1].endswith("devposture agent stopped")
    # A command logs to standard error even so: `config` of a file naming a log file.
    shown = subprocess.run([AGENT, "config", "--config", str(config)], capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert f"[logging] file = {log_file}" in shown.stdout
    assert log_file.read_text().count("devposture agent stopped") == 1


def test_the_log_file_rotates(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("text", file=tmp_path / "agent.log", replace=True, level=logging.INFO)
        (handler,) = root.handlers
        assert isinstance(handler, RotatingFileHandler)
        assert handler.maxBytes == LOG_FILE_BYTES == 10 * 1024 * 1024
        assert handler.backupCount == LOG_FILE_BACKUPS == 5
        handler.maxBytes = 2000  # rotate in this test after a few lines, not 10 MB
        for n in range(400):  # about 35 kB: more than the 6 files hold
            logging.getLogger("test.rotation").info("line %d with %s", n, TOKEN)
        handler.close()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["agent.log", *(f"agent.log.{n}" for n in range(1, 6))]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    assert all("s" * 43 not in p.read_text() for p in tmp_path.iterdir())  # redacted
