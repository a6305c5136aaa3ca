"""An employee without administrator rights sees their computer's status: the service publishes
what `status` shows where every local user can read it (agent.public_status), and `status`
run as a real unprivileged user (`nobody`, through setpriv) against a root-owned 0700 state
folder reads that copy and shows the very lines root reads from the private state.

Real parts: a real collector over mutual TLS judges the reports, the agent's own delivery
(what the service's rounds and `once` run) keeps the verdicts and writes the copy, and the
commands are real processes under a real other user.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

import devposture
from devposture.agent.deliver import collect, deliver, open_outbox
from devposture.agent.host import LiveHost
from devposture.agent.probes.commands import is_declared
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.public_status import (
    MAX_BYTES,
    PUBLIC_FILE,
    PublicStatusError,
    Shown,
    decode,
    encode,
    of_state,
    publish,
    read_published,
)
from devposture.agent.state import AGENT_FILE, AgentState, Enrollment
from devposture.agent.status import EXIT_FAILING, EXIT_NOT_JUDGED
from devposture.policy.cli_messages import said
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import LiveCollector, enroll_agent, installed_tool, make_report
from tests.packaging.test_systemd_units import NotifySocket

NOBODY = 65534
WAIT = 120.0  # seconds; only ends a hung test: every step waits for an exit or a message
FIELDS = {"format", "enrolled", "time_zone", "judged", "refused", "delivery"}


@dataclass
class Computer:
    """An enrolled agent as the packages lay it out: a root-owned 0700 state folder, the public
    folder beside it, and an agent.toml everyone may read, under a folder every user can
    reach (pytest's own temporary folders are 0700: nobody could)."""

    root: Path
    state: AgentState
    enrollment: Enrollment
    config: Path

    @property
    def public(self) -> Path:
        assert self.state.public_dir is not None
        return self.state.public_dir

    def argv(self, *command: str) -> list[str]:
        return [sys.executable, "-m", "devposture.agent", *command,
                "--config", str(self.config), "--state", str(self.state.directory),
                "--public-folder", str(self.public)]  # fmt: skip

    def run(self, *command: str, user: int | None = None, lang: str = "zh_CN.UTF-8",
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """A command as root, or as `user` (its uid and group, no other group)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
        env |= {"LANG": lang, "PYTHONDONTWRITEBYTECODE": "1"}
        prefix = []
        if user is not None:
            prefix = [installed_tool("setpriv"), f"--reuid={user}", f"--regid={user}",
                      "--clear-groups"]  # fmt: skip
            env["HOME"] = "/nonexistent"
        return subprocess.run([*prefix, *self.argv(*command)], capture_output=True, text=True,
                              env=env, timeout=WAIT, check=False)  # fmt: skip

    def send(self, report: pb.PostureReport) -> None:
        """Put `report` in the outbox and deliver it, as a service round does."""
        outbox = open_outbox(self.state)
        outbox.put(report, stamp_delivery=True)
        deliver(self.state, self.enrollment, outbox)


@pytest.fixture
def computer(live_collector: LiveCollector) -> Iterator[Computer]:
    if os.geteuid() != 0:
        pytest.skip("running a command as another user needs root")
    if (closed := _closed_to_others(Path(sys.executable), Path(devposture.__file__))) is not None:
        pytest.skip(f"user nobody cannot reach this Python or checkout: {closed} is closed to"
                    " other users (a clone under a 0700 folder); clone where every user may"
                    " read to run these")  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="dp-status-"))
    try:
        root.chmod(0o755)
        agent = enroll_agent(live_collector, root / "state")
        state = AgentState(agent.state.directory, public_dir=root / "public")
        config = root / "agent.toml"
        config.write_text("# nothing: the defaults\n")
        config.chmod(0o644)
        yield Computer(root, state, agent.enrollment, config)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _closed_to_others(*paths: Path) -> Path | None:
    """The first folder on the way to `paths` that other users cannot enter, if any: there
    `nobody` could not start this Python nor import the package, and every command failed."""
    for path in paths:
        for folder in reversed(path.parents):
            if not folder.stat().st_mode & stat.S_IXOTH:
                return folder
    return None


def _failing_firewall(computer: Computer) -> None:
    began = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    computer.send(make_report(computer.enrollment.device_id, began, firewall_enabled=False))


def test_a_user_without_rights_reads_what_root_reads(computer: Computer) -> None:
    _failing_firewall(computer)
    assert stat.S_IMODE(computer.state.directory.stat().st_mode) == 0o700
    for lang in ("zh_CN.UTF-8", "en_US.UTF-8"):
        as_root = computer.run("status", lang=lang)
        as_nobody = computer.run("status", user=NOBODY, lang=lang)
        assert as_root.returncode == EXIT_FAILING, as_root.stderr
        assert (as_nobody.returncode, as_nobody.stderr) == (EXIT_FAILING, ""), as_nobody.stderr
        assert as_nobody.stdout == as_root.stdout
    assert "宽限期至" in computer.run("status", user=NOBODY).stdout
    assert "root" not in as_nobody.stdout + as_nobody.stderr
    # The private state stays out of reach: only the copy was read.
    refused = computer.run("collect", "--json", user=NOBODY, lang="en_US.UTF-8")
    assert refused.returncode == 1 and "Permission denied" in refused.stderr


def test_the_copy_holds_what_status_shows_and_nothing_secret(computer: Computer) -> None:
    _failing_firewall(computer)
    # The configuration the collector handed out, with the company's networks and a key of
    # this test's: the next round is judged under the same version, so it stays.
    config = computer.state.load_config()
    assert config is not None and config.time_zone == "Asia/Shanghai"
    hash_key = bytes(range(32))
    config.trusted_networks[:] = ["总部办公网"]
    config.public_network_patterns[:] = ["Starbucks*", *config.public_network_patterns]
    config.network_hash_key = hash_key
    computer.state.save_config(config)
    _failing_firewall(computer)
    assert computer.state.load_config() == config
    path = computer.public / PUBLIC_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(computer.public.stat().st_mode) == 0o755
    text = path.read_text(encoding="utf-8")
    assert set(json.loads(text)) == FIELDS
    secrets = [
        hash_key.hex(), base64.b64encode(hash_key).decode(), "总部办公网",
        *config.public_network_patterns, computer.enrollment.device_id, "PRIVATE KEY",
        "CERTIFICATE", computer.enrollment.ca_fingerprint.split(":")[-1],
    ]  # fmt: skip
    assert [s for s in secrets if s in text] == []
    shown = decode(path.read_bytes())
    assert shown.time_zone == "Asia/Shanghai" and shown.enrolled
    assert shown.judged is not None
    assert {v.check_id: v.state for v in shown.judged.verdicts}["firewall"] == "FAIL"


def test_the_copy_follows_the_private_state(computer: Computer, live_collector: LiveCollector,
                                            ) -> None:  # fmt: skip
    _failing_firewall(computer)
    path = computer.public / PUBLIC_FILE
    before = path.read_bytes()
    # A report collected into the outbox (the collector unreachable for it yet): one waits.
    collect(computer.state, computer.enrollment, LiveHost(declared=is_declared), ProbeConfig(),
            pb.COLLECTION_TRIGGER_MANUAL, outbox=open_outbox(computer.state))  # fmt: skip
    waiting = decode(path.read_bytes()).delivery
    assert waiting is not None and waiting.pending_reports == 1
    # The firewall fixed: the next verdicts, and nothing waiting.
    computer.send(make_report(computer.enrollment.device_id))
    after = decode(path.read_bytes())
    assert after.judged is not None and after.delivery is not None
    assert {v.check_id: v.state for v in after.judged.verdicts}["firewall"] == "PASS"
    assert after.delivery.pending_reports == 0 and path.read_bytes() != before
    # IT revokes the device: the refusal is published, and read as root reads it.
    store = live_collector.store()
    try:
        device = computer.enrollment.device_id
        now = dt.datetime.now(dt.UTC)
        assert store.identity.set_device_status(device, "revoked", now, "laptop stolen")
    finally:
        store.close()
    computer.send(make_report(computer.enrollment.device_id))
    assert decode(path.read_bytes()).refusal is not None
    as_root, as_nobody = computer.run("status"), computer.run("status", user=NOBODY)
    assert as_nobody.stdout == as_root.stdout and "吊销" in as_nobody.stdout
    assert as_nobody.returncode == as_root.returncode == EXIT_NOT_JUDGED
    # The refusal names this computer by its name, as IT's lists show it, not by the device
    # id the copy never holds: the collector's sentence carried it into the copy.
    assert device not in path.read_text(encoding="utf-8")
    assert device not in as_root.stdout and f"设备 {socket.gethostname()} " in as_root.stdout


def _wait_for_status(notify: NotifySocket, start: str) -> None:
    """Until the service says a STATUS= line starting with `start`."""
    while not any(line.startswith(f"STATUS={start}")
                  for line in notify.sock.recv(4096).decode("utf-8").split("\n")):  # fmt: skip
        pass


def test_the_service_writes_the_copy_when_it_starts(computer: Computer) -> None:
    """After a reboot /run is empty: the service makes the folder (0755 under systemd's
    UMask=0077) and writes the copy before it says it is ready; its first round (a report of
    this computer, judged) is published too."""
    _failing_firewall(computer)
    shutil.rmtree(computer.public)
    notify = NotifySocket()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    service = subprocess.Popen(computer.argv("run"), env={**env, "NOTIFY_SOCKET": notify.name},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               umask=0o077)  # fmt: skip
    try:
        notify.wait_for("READY=1")
        assert stat.S_IMODE(computer.public.stat().st_mode) == 0o755
        assert stat.S_IMODE((computer.public / PUBLIC_FILE).stat().st_mode) == 0o644
        # The start-up round delivered and was answered: nothing changes until the next.
        _wait_for_status(notify, f"enrolled as {computer.enrollment.device_id}, next collection")
        seen, expected = computer.run("status", user=NOBODY), computer.run("status")
        assert (seen.stdout, seen.returncode) == (expected.stdout, expected.returncode)
        assert "公司服务器于" in seen.stdout, seen.stderr
    finally:
        service.send_signal(signal.SIGTERM)
        _, errors = service.communicate(timeout=WAIT)
        notify.sock.close()
    assert service.returncode == 0, errors


def test_a_local_check_without_rights_says_what_it_cannot_do(computer: Computer) -> None:
    _failing_firewall(computer)
    done = computer.run("status", "--local", user=NOBODY, lang="en_US.UTF-8")
    assert done.returncode != 1 and done.stderr == "", done.stderr
    assert "a local check, not yet judged" in done.stdout
    assert "Checked without administrator rights" in done.stdout
    zh = computer.run("status", "--local", user=NOBODY)
    assert zh.returncode != 1 and zh.stderr == "", zh.stderr


def test_without_the_copy_the_user_is_told_what_to_do(computer: Computer) -> None:
    _failing_firewall(computer)
    (computer.public / PUBLIC_FILE).unlink()
    done = computer.run("status", user=NOBODY, lang="en_US.UTF-8")
    assert done.returncode == 1 and done.stdout == ""
    assert str(computer.public / PUBLIC_FILE) in done.stderr
    assert "service is running" in done.stderr and "status --local" in done.stderr
    assert "as root" not in done.stderr and "Traceback" not in done.stderr


# -- the file itself ---------------------------------------------------------------------------


def _every_field(verdict: pb.CheckVerdict) -> pb.CheckVerdict:
    """`verdict` with each of its fields set, whatever fields CheckVerdict has grown."""
    for field in verdict.DESCRIPTOR.fields:
        if field.message_type is not None:
            getattr(verdict, field.name).CopyFrom(Timestamp(seconds=1_764_900_000, nanos=5000))
        else:
            setattr(verdict, field.name, f"{field.name}：中文 and English")
    return verdict


def test_every_field_of_a_verdict_and_what_status_shows_survive_the_copy() -> None:
    ack = pb.ReportAck(stored_at=Timestamp(seconds=1_764_900_000))
    _every_field(ack.verdicts.add())
    stats = pb.DeliveryStats(pending_reports=3, dropped_total=2, pending_bytes=99, max_bytes=9)
    stats.oldest_pending_at.FromSeconds(1_764_800_000)
    refusal = (said("device {device} was {status} by IT", device="d", status=said("revoked")),
               1_764_900_000_000_000)  # fmt: skip
    shown = decode(encode(Shown(True, "Asia/Shanghai", ack, refusal, stats)))
    assert shown.judged == ack and shown.time_zone == "Asia/Shanghai" and shown.enrolled
    assert shown.refusal is not None and shown.refusal[1] == refusal[1]
    assert shown.refusal[0].worded("zh") == refusal[0].worded("zh")
    # Of the outbox, only what `status` says: the waiting, their oldest, the lost.
    assert shown.delivery == pb.DeliveryStats(pending_reports=3, dropped_total=2,
                                              oldest_pending_at=stats.oldest_pending_at)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{", "Expecting"), (b'{"format": 2}', "format 2"), (b"\xff", "not UTF-8"),
        (b'{"format": 1, "judged": {"verdicts": [{"state": 3}]}}', "not text"),
        (b"x" * (MAX_BYTES + 1), "bigger than"),
    ],
)  # fmt: skip
def test_a_copy_the_service_did_not_write_is_refused(tmp_path: Path, content: bytes,
                                                     problem: str) -> None:  # fmt: skip
    (tmp_path / PUBLIC_FILE).write_bytes(content)
    with pytest.raises(PublicStatusError, match=problem) as refused:
        read_published(tmp_path)
    assert "status --local" in str(refused.value)


def test_a_fifo_in_place_of_the_copy_does_not_hang_status(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / PUBLIC_FILE)
    with pytest.raises(PublicStatusError, match="not a regular file"):
        read_published(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_public_folder_of_another_user_is_not_written(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture,
                                                       ) -> None:  # fmt: skip
    """Another user could swap what it holds: the service refuses it, and says so."""
    folder = tmp_path / "public"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    publish(AgentState(tmp_path / "state", public_dir=folder))
    assert not (folder / PUBLIC_FILE).exists()
    assert "cannot publish what `status` shows" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="taking another user's rights needs root")
def test_a_state_this_user_may_not_see_is_not_taken_for_no_enrollment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Python 3.14's `Path.is_file` answers False for a file its user may not see, as
    `os.path.isfile` does: `status` must still know the state is there, and read the copy,
    rather than check locally as if the computer were not enrolled."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / AGENT_FILE).write_text("{}")
    monkeypatch.setattr(Path, "is_file", os.path.isfile)
    os.seteuid(NOBODY)
    try:
        with pytest.raises(PermissionError):
            of_state(AgentState(state))
    finally:
        os.seteuid(0)


def test_a_computer_not_enrolled_publishes_so() -> None:
    shown = decode(encode(Shown(False)))
    assert (shown.enrolled, shown.judged, shown.delivery) == (False, None, None)

