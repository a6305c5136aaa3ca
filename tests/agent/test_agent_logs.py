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
import time
from pathlib import Path

import pytest

from devposture.log_format import JsonFormatter, RedactSecrets, redact
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import BEIJING, EnrollmentValue

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
        deadline = time.monotonic() + 60
        while "no enrollment file" not in log.read_text():
            assert agent.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
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
