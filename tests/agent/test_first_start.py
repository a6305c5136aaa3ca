"""The service's first start, step by step, with the time given as data: which enrollment file is
used and which refused, what is tried when, what is logged once, and that the file is deleted
after a success only. Enrolling itself is replaced by a recorder here; tests/e2e/
test_enrollment_value.py runs the real thing against a real collector."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devposture.agent.backoff import Backoff
from devposture.agent.enroll import EnrollError, TryLater, Unreachable
from devposture.agent.first_start import (
    FileRefused,
    FirstStart,
    PlanError,
    plan,
    read_secret_file,
)
from devposture.agent.service_manager import ServiceManager
from devposture.agent.state import AgentState, Enrollment
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import BEIJING, EnrollmentValue
from devposture.sd_notify import Notifier
from devposture.v1 import devposture_pb2 as pb

PIN = "sha256:" + "ab" * 32
TOKEN = "dpt_0123456789abcdef_" + "s" * 43
FIRST = CollectorAddress("collector.corp.example", 7443)
SECOND = CollectorAddress("10.20.0.5", 7443)


def _value(*, token: str = TOKEN, expires: dt.datetime | None = None) -> str:
    return EnrollmentValue(
        (FIRST, SECOND), PIN, token,
        expires or dt.datetime(2099, 1, 1, 20, 0, tzinfo=BEIJING), 50,
    ).encode()  # fmt: skip


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- the file --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_file_is_read(tmp_path: Path, mode: int) -> None:
    secret = read_secret_file(_write(tmp_path / "enroll.token", _value(), mode))
    assert secret is not None and secret.text == _value()


def test_no_file_is_not_an_error(tmp_path: Path) -> None:
    assert read_secret_file(tmp_path / "enroll.token") is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_file_others_can_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "enroll.token", _value(), mode)
    with pytest.raises(FileRefused) as refused:
        read_secret_file(path)
    text = str(refused.value)
    assert f"(mode {mode:04o})" in text and f"chmod 600 {path}" in text
    assert TOKEN not in text and "dpe1." not in text


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "enroll.token", _value())
    os.chown(path, 65534, 65534)
    with pytest.raises(FileRefused, match=f"not to root or the agent's account.*chown root {path}"):
        read_secret_file(path)


def test_a_link_and_a_folder_are_refused(tmp_path: Path) -> None:
    target = _write(tmp_path / "elsewhere", _value())
    link = tmp_path / "enroll.token"
    link.symlink_to(target)
    with pytest.raises(FileRefused, match="is a symbolic link"):
        read_secret_file(link)
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    with pytest.raises(FileRefused, match="not a regular file"):
        read_secret_file(folder)


# -- what it holds ---------------------------------------------------------------------------


def test_a_value_names_its_collector_and_configured_addresses_go_first() -> None:
    found = plan(_value(), "F", (), None)
    assert found.addresses == (FIRST, SECOND) and found.ca_fingerprint == PIN
    assert found.token == TOKEN
    office = CollectorAddress("collector.office", 7443)
    assert plan(_value(), "F", (office, SECOND), PIN).addresses == (office, SECOND, FIRST)


def test_a_value_for_another_ca_than_configured_is_refused() -> None:
    with pytest.raises(PlanError, match="is for the collector whose CA is"):
        plan(_value(), "F", (), "sha256:" + "cd" * 32)


def test_a_bare_token_needs_the_collector_and_its_ca() -> None:
    assert plan(TOKEN + "\n", "F", (FIRST,), PIN).token == TOKEN
    with pytest.raises(PlanError) as refused:
        plan(TOKEN, "F", (), None)
    text = str(refused.value)
    assert "bare token" in text and "[collector] addresses" in text and "ca_fingerprint" in text
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "neither an enrollment value"), ("hello", "neither an enrollment value"),
     (_value()[:-12], "damaged"), (f"{TOKEN} {TOKEN}", "neither an enrollment value")],
)  # fmt: skip
def test_anything_else_is_refused_without_echoing_it(text: str, says: str) -> None:
    with pytest.raises(PlanError, match=says) as refused:
        plan(text, "F", (FIRST,), PIN)
    assert "s" * 43 not in str(refused.value)  # the secret
    assert _value()[5:30] not in str(refused.value)  # any of the value


# -- the first start -------------------------------------------------------------------------


@dataclass
class Collector:
    """Stands in for enroll_first: answers with the outcomes given, in order."""

    outcomes: list[Exception | None]
    calls: list[tuple[tuple[CollectorAddress, ...], str, str]] = field(default_factory=list)

    def __call__(
        self, state: AgentState, addresses: Sequence[CollectorAddress], token: str, pin: str,
        host: pb.HostInfo,
    ) -> Enrollment:  # fmt: skip
        self.calls.append((tuple(addresses), token, pin))
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return Enrollment("dev-1", addresses[0].host, addresses[0].port, 7444, pin)


@dataclass
class Clock:
    """The waits the first start asks for, answered at once; `edits` change the world at a
    given wait (replace the file, stop the service)."""

    stop: threading.Event
    edits: dict[int, object] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        edit = self.edits.get(len(self.waits))
        if callable(edit):
            edit()
        if len(self.waits) > 50:
            self.stop.set()  # a loop that never ends fails the test instead of hanging it
        return self.stop.is_set()


def _first_start(
    tmp_path: Path, collector: Collector, clock: Clock, **kwargs: object
) -> FirstStart:
    return FirstStart(
        AgentState(tmp_path / "state"), tmp_path / "enroll.token", (), None,
        ServiceManager(Notifier({})), clock.stop, pb.HostInfo, check_seconds=60.0,
        enroll=collector, backoff=Backoff(random=lambda: 1.0), wait=clock,
        **kwargs,
    )  # fmt: skip


def test_it_enrolls_and_deletes_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "enroll.token", _value())
    collector, clock = Collector([None]), Clock(threading.Event())
    enrollment = _first_start(tmp_path, collector, clock).run()
    assert enrollment is not None and enrollment.device_id == "dev-1"
    assert collector.calls == [((FIRST, SECOND), TOKEN, PIN)]
    assert not path.exists() and clock.waits == []


def test_while_the_collector_cannot_be_reached_it_backs_off_and_keeps_the_file(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "enroll.token", _value())
    hint = TryLater("the collector asks to come back later", retry_after=120.0)
    collector = Collector([Unreachable("down"), Unreachable("down"), hint, None])
    clock = Clock(threading.Event(), {3: lambda: checks.append(path.exists())})
    checks: list[bool] = []
    assert _first_start(tmp_path, collector, clock).run() is not None
    # 5 s, then 10 s (the backoff's steps, jitter at its top), then the collector's hint.
    assert clock.waits == [5.0, 10.0, 120.0]
    assert checks == [True] and not path.exists() and len(collector.calls) == 4


def test_a_damaged_value_is_logged_once_and_a_new_file_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "enroll.token", _value()[:-10])
    collector = Collector([None])
    clock = Clock(threading.Event(), {4: lambda: _write(path, _value())})
    with caplog.at_level(logging.DEBUG, logger="devposture.agent.first_start"):
        assert _first_start(tmp_path, collector, clock).run() is not None
    damaged = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert len(damaged) == 1 and damaged[0].levelno == logging.ERROR
    assert clock.waits == [60.0] * 4  # looked every minute, enrolled once it was replaced
    assert len(collector.calls) == 1 and not path.exists()
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_a_token_the_collector_refuses_is_not_tried_again_until_the_file_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expired = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    path = _write(tmp_path / "enroll.token", _value(expires=expired))
    refused = EnrollError("the collector refused the token: token 0123456789abcdef has expired")
    collector = Collector([refused, None])
    fresh = "dpt_fedcba9876543210_" + "t" * 43
    clock = Clock(threading.Event(), {3: lambda: _write(path, _value(token=fresh))})
    with caplog.at_level(logging.INFO, logger="devposture.agent.first_start"):
        assert _first_start(tmp_path, collector, clock).run() is not None
    assert [c[1] for c in collector.calls] == [TOKEN, fresh]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and "has expired" in logged[0]
    assert "(the value expired 2020-01-01 08:00 (UTC+08:00))" in logged[0]
    assert clock.waits == [60.0] * 3 and path.exists() is False


def test_a_refused_file_is_used_once_it_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "enroll.token", _value(), 0o644)
    collector = Collector([None])
    clock = Clock(threading.Event(), {3: lambda: path.chmod(0o600)})
    with caplog.at_level(logging.INFO, logger="devposture.agent.first_start"):
        assert _first_start(tmp_path, collector, clock).run() is not None
    refusals = [r for r in caplog.records if "can be read or changed by other users" in r.message]
    assert len(refusals) == 1 and clock.waits == [60.0] * 3 and not path.exists()


def test_with_no_file_it_waits_for_one_and_stops_when_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()
    collector, clock = Collector([]), Clock(stop, {5: stop.set})
    with caplog.at_level(logging.INFO, logger="devposture.agent.first_start"):
        assert _first_start(tmp_path, collector, clock).run() is None
    assert clock.waits == [60.0] * 5 and collector.calls == []
    waiting = [r for r in caplog.records if "there is no enrollment file" in r.message]
    assert len(waiting) == 1


def test_a_file_changed_while_enrolling_is_left_for_the_operator(tmp_path: Path) -> None:
    path = _write(tmp_path / "enroll.token", _value())

    class Rewriting(Collector):
        def __call__(self, state, addresses, token, pin, host):  # type: ignore[no-untyped-def]
            _write(path, _value(token="dpt_fedcba9876543210_" + "t" * 43))
            return super().__call__(state, addresses, token, pin, host)

    assert _first_start(tmp_path, Rewriting([None]), Clock(threading.Event())).run()
    assert path.exists()
