"""Faults in the agent's durable delivery, as a laptop meets them: two agent processes on one
state folder (the service and a manual `devposture-agent once`), a clock that ran days ahead
and was set right, a state folder the kernel made read-only, a power cut (SIGKILL) at each
step of keeping, sending and forgetting a report. Real files, real processes and signals, a
real collector over mutual TLS; time is given as data."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from devposture.agent.cert_dates import read_validity
from devposture.agent.deliver import AgentWork
from devposture.agent.host.live import LiveHost
from devposture.agent.outbox import Outbox
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.renewal import Outcome, ensure_fresh_certificate
from devposture.agent.state import (
    TEMP_GRACE_SECONDS,
    AgentState,
    Enrollment,
    StateError,
    write_atomic,
)
from devposture.agent.transport import OUTBOX_STUCK, drain
from devposture.collector.pki import Authority, cert_pem
from devposture.v1 import devposture_pb2 as pb
from tests import warm_commands
from tests.agent.test_transport import _stored
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, make_report
from tests.e2e.conftest import AGENT
from tests.e2e.fleet import run
from tests.full_disk import fill, tmpfs
from tests.tcp_cut import CuttableRelay

ROOT = Path(__file__).resolve().parents[2]

# --- two processes writing one state file ----------------------------------------------------

# A second agent process writing `path` with write_atomic, paused once its bytes are written
# (at the fsync), until told to go on: what the service does while `once` writes the same file.
_PAUSED_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from devposture.agent.state import write_atomic

    real_fsync = os.fsync
    paused = []

    def fsync(fd):
        if not paused:
            paused.append(True)
            print("written", flush=True)
            sys.stdin.readline()
        real_fsync(fd)

    os.fsync = fsync
    write_atomic(Path(sys.argv[1]), sys.argv[2].encode(), 0o600)
    print("done", flush=True)
    """
)


def test_two_processes_writing_the_same_state_file_both_succeed(tmp_path: Path) -> None:
    # The service and `once` both drain: each saves the configuration (agent-config.pb) and
    # the verdicts (last-verdicts.pb) the collector handed out. Both wrote through the same
    # temporary (.agent-config.pb.tmp): the second truncated the first's bytes and renamed
    # them, and the first's rename then failed ("No such file or directory:
    # .agent-config.pb.tmp"), a traceback in the service's log or "unexpected
    # FileNotFoundError" from `once`, its round lost.
    path = tmp_path / "agent-config.pb"
    other = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_WRITER, str(path), "the service's version"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT,
    )  # fmt: skip
    try:
        assert other.stdout is not None and other.stdin is not None
        assert other.stdout.readline() == "written\n", other.communicate()
        write_atomic(path, b"once's version", 0o600)
        assert path.read_bytes() == b"once's version"
        other.stdin.write("go on\n")
        other.stdin.flush()
        out, err = other.communicate(timeout=60)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0, err
    assert out == "done\n"
    assert path.read_bytes() == b"the service's version"  # the last rename wins, whole
    assert [p.name for p in tmp_path.iterdir()] == ["agent-config.pb"]  # no temporary left


def test_a_state_temporary_left_by_a_crash_is_removed_when_the_state_is_loaded(
    agent: EnrolledAgent,
) -> None:
    # With a temporary of its own per write, a crash mid-write leaves one behind: the next
    # start removes those older than the grace, never one a running process may be writing.
    directory = agent.state.directory
    old = directory / ".agent-config.pb.0123456789abcdef.tmp"
    fresh = directory / ".last-verdicts.pb.fedcba9876543210.tmp"
    someone_elses = directory / ".payroll.xlsx.tmp"  # IT may have chosen a shared folder
    for leftover in (old, fresh, someone_elses):
        leftover.write_bytes(b"half")
    long_ago = time.time() - TEMP_GRACE_SECONDS - 5
    for leftover in (old, someone_elses):
        os.utime(leftover, (long_ago, long_ago))
    AgentState(directory).load()
    assert not old.exists()
    assert fresh.exists() and someone_elses.exists()


# --- the clock -------------------------------------------------------------------------------


def test_a_renewal_retry_time_set_by_a_clock_days_ahead_does_not_hold_renewal_back(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # The laptop booted with its clock 30 days ahead (a wrong RTC): by it the certificate had
    # expired, the agent tried to reestablish, the collector was out of reach, and renewal.json
    # said "next attempt after" 30 days on. Once the clock was set right the agent waited for
    # that date: no renewal, then no reestablishment once the certificate really expired, and
    # its reports stayed in the outbox for a month.
    validity = read_validity(agent.state.cert_path.read_bytes())
    unreachable = Enrollment(**{**agent.enrollment.__dict__, "report_port": 1,
                                "enroll_port": 1})  # fmt: skip
    ahead = validity.not_after + dt.timedelta(days=30)
    assert ensure_fresh_certificate(agent.state, unreachable, ahead).outcome is Outcome.FAILED
    due = validity.not_after - dt.timedelta(hours=1)  # the clock set right, and renewal due
    result = ensure_fresh_certificate(agent.state, agent.enrollment, due)
    assert result.outcome is Outcome.RENEWED, result.detail
    assert not (agent.state.directory / "renewal.json").exists()
    # A retry time within the longest step is still obeyed.
    assert ensure_fresh_certificate(agent.state, unreachable, due, force=True).outcome is (
        Outcome.FAILED
    )
    backing = ensure_fresh_certificate(agent.state, unreachable, due + dt.timedelta(minutes=1))
    assert backing.outcome is Outcome.BACKING_OFF


def test_a_crashed_write_dated_ahead_by_the_clock_is_still_removed(tmp_path: Path) -> None:
    # Written (and left by a crash) while the clock was days ahead, then the clock set back:
    # its time lay in the future, it never looked older than the grace, and it stayed.
    outbox = Outbox(tmp_path)
    ahead = time.time() + 3 * 86400
    leftover = tmp_path / ".00000000001733040000000000-c-0123456789ab-x.report.tmp"
    leftover.write_bytes(b"half a report")
    os.utime(leftover, (ahead, ahead))
    outbox.put(make_report("device-1"))
    assert not leftover.exists()


# --- a read-only state folder ----------------------------------------------------------------


def _two_waiting(collector: LiveCollector, folder: Path) -> tuple[EnrolledAgent, Outbox, list[str]]:
    """An agent in `folder` that has run before (its Wi-Fi hashing key made), with two
    reports waiting in its outbox (their ids)."""
    agent = enroll_agent(collector, folder)
    agent.state.network_hash_key()
    outbox = Outbox(agent.state.outbox_dir)
    waiting = []
    for _ in range(2):
        report = make_report(agent.enrollment.device_id)
        outbox.put(report)
        waiting.append(report.report_id)
    return agent, outbox, waiting


@contextlib.contextmanager
def read_only_state(collector: LiveCollector, tmp_path: Path) -> Iterator[EnrolledAgent]:
    """An agent that has run before (its Wi-Fi hashing key made) with two reports waiting,
    its state folder on a tmpfs the kernel then remounted read-only, as ext4 does after a
    disk error (errors=remount-ro); writable again after."""
    with tmpfs(tmp_path / "disk", "4m") as disk:
        agent, outbox, _ = _two_waiting(collector, disk / "agent")
        # And a file a bad block damaged, which the outbox would set aside.
        (outbox.directory / "00000001733040000000-c-0123456789ab-x.report").write_bytes(b"?")
        _remount(disk, "ro")
        try:
            yield agent
        finally:
            _remount(disk, "rw")


def _remount(disk: Path, how: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{how}", str(disk)], check=True, timeout=60)


def test_once_on_a_read_only_state_folder_sends_what_waits_and_says_so(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    # It said "unexpected OSError: [Errno 30] Read-only file system: '…/.wifi-sessions.json.tmp'
    # (please report it to IT …)" and sent nothing: the reports waiting stayed unsent.
    with read_only_state(live_collector, tmp_path) as agent:
        waiting = [p.report.report_id for p in Outbox(agent.state.outbox_dir).pending()]
        done = run(AGENT, "once", "--state", str(agent.state.directory))
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert f"the state folder {agent.state.directory} is on a read-only" in done.stderr
        assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
        assert sorted(_stored(live_collector)) == sorted(waiting)  # sent all the same
        # Writable again: they leave the outbox, stored once.
        _remount(agent.state.directory.parent, "rw")
        outbox = Outbox(agent.state.outbox_dir)
        result = drain(agent.state, agent.enrollment, outbox)
        assert result.stopped_by is None and sorted(result.duplicates) == sorted(waiting)
        assert outbox.pending() == []
        assert sorted(_stored(live_collector)) == sorted(waiting)


def test_the_service_on_a_read_only_state_folder_says_so_and_resends_nothing_in_a_loop(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    # The service logged a traceback for the collection, and one for the send: the collector
    # acknowledged the batch, removing its first report failed (EROFS) and the exception
    # escaped the drain, which the loop took for a failed delivery; every retry sent the batch
    # again, a traceback each time, without saying what was wrong.
    with read_only_state(live_collector, tmp_path) as agent:
        work = AgentWork(agent.state, agent.enrollment, LiveHost(), ProbeConfig)
        with pytest.raises(StateError) as read_only:
            work.collect(pb.COLLECTION_TRIGGER_INTERVAL)
        assert f"the state folder {agent.state.directory} is on a read-only" in str(read_only.value)
        waiting = [p.report.report_id for p in Outbox(agent.state.outbox_dir).pending()]
        sent = work.send(lambda: False)
        assert sent.stopped_by == OUTBOX_STUCK  # a failed delivery: the loop backs off
        assert sorted(sent.acknowledged) == sorted(waiting)
        assert sorted(_stored(live_collector)) == sorted(waiting)
        assert len(Outbox(agent.state.outbox_dir).pending()) == 2  # kept: not lost


def _once(state: Path, lang: str) -> subprocess.CompletedProcess[str]:
    """`devposture-agent once` as a process, its reader's language set by the locale."""
    env = {**os.environ, "LANG": lang, "LC_ALL": lang, "LANGUAGE": ""}
    warm_commands.seed(state)
    return subprocess.run([AGENT, "once", "--state", str(state)], capture_output=True,
                          text=True, timeout=120, check=False, env=env)  # fmt: skip


def test_once_says_why_it_failed_when_sending_stopped_after_its_report_was_acknowledged(
    live_collector: LiveCollector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk holding the state folder went read-only (a disk error: errors=remount-ro)
    # while the collector's answer was on its way: the collector stored the batch, this round's
    # report among them, and the outbox could not remove any of them. `once` printed "Report …
    # acknowledged by the collector." and exited 1, saying nothing more: an installer or a
    # scheduler proving the agent works read a failure with no reason.
    with tmpfs(tmp_path / "disk", "4m") as disk:
        agent, _, _ = _two_waiting(live_collector, disk / "agent")
        service = live_collector.service
        commit = service._commit
        fail_next: list[bool] = []

        async def commit_then_fail_the_disk(*args: Any, **kwargs: Any) -> Any:
            committed = await commit(*args, **kwargs)
            if fail_next:
                fail_next.clear()
                _remount(disk, "ro")  # stored: the answer is on its way
            return committed

        monkeypatch.setattr(service, "_commit", commit_then_fail_the_disk)
        try:
            fail_next.append(True)
            done = _once(agent.state.directory, "C.UTF-8")
            stuck = [p.report.report_id for p in Outbox(agent.state.outbox_dir).pending()]
            _remount(disk, "rw")
            assert done.returncode == 1, (done.stdout, done.stderr)
            assert len(stuck) == 3 and sorted(_stored(live_collector)) == sorted(stuck)
            newest = max(Outbox(agent.state.outbox_dir).pending(),
                         key=lambda p: p.report.collected_at.ToNanoseconds())  # fmt: skip
            report_id = newest.report.report_id
            assert f"Report {report_id} acknowledged by the collector" in done.stdout
            assert (
                f"sending stopped after report {report_id} was acknowledged: the outbox could"
                " not remove delivered reports. The outbox keeps 3 reports on disk, to be sent"
                " next time (the collector stores each only once)"
            ) in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
            # The same in Chinese: the reader's language, the cause in its words.
            fail_next.append(True)
            zh = _once(agent.state.directory, "zh_CN.UTF-8")
            _remount(disk, "rw")
            assert zh.returncode == 1, (zh.stdout, zh.stderr)
            assert "待发队列无法删除已送达的报告" in zh.stderr, zh.stderr
            ids = [p.report.report_id for p in Outbox(agent.state.outbox_dir).pending()]
            assert len(ids) == 4 and any(i in zh.stdout and i in zh.stderr for i in ids)
            words = zh.stderr
            for i in ids:
                words = words.replace(i, "")
            assert re.search(r"(?<!\d)4(?!\d)", words), zh.stderr  # the reports kept
        finally:
            _remount(disk, "rw")
        # The disk writable again: what stayed goes with the next round, stored once each.
        again = run(AGENT, "once", "--state", str(agent.state.directory))
        assert again.returncode == 0, again.stderr
        assert "and 4 queued earlier" in again.stdout, again.stdout
        assert again.stderr == ""
        assert Outbox(agent.state.outbox_dir).pending() == []
        stored = _stored(live_collector)
        assert len(stored) == len(set(stored)) == 5


# --- a power cut at every step ---------------------------------------------------------------

# One round of an agent process (`once`'s order: put this round's report, then drain), which
# SIGKILLs itself just before its `step`-th call that changes the disk or makes it durable.
_ROUND_CUT_AT_STEP = textwrap.dedent(
    """
    import os, signal, sys, uuid
    from pathlib import Path
    from devposture.agent.outbox import Outbox
    from devposture.agent.state import AgentState
    from devposture.agent.transport import drain
    from tests.conftest import make_report

    state = AgentState(Path(sys.argv[1]))
    enrollment = state.load()
    outbox = Outbox(state.outbox_dir)
    report = make_report(enrollment.device_id)
    report.report_id = sys.argv[3]
    step, calls = int(sys.argv[2]), [0]

    def cut(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call

    for name in ("open", "fsync", "replace", "rename", "unlink", "chmod", "utime"):
        setattr(os, name, cut(getattr(os, name)))
    outbox.put(report, stamp_delivery=True)
    print("kept", flush=True)
    result = drain(state, enrollment, outbox)
    assert result.stopped_by is None, result.stopped_by
    print("steps", calls[0], flush=True)
    """
)


def test_a_power_cut_at_any_step_loses_no_kept_report_and_stores_none_twice(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # SIGKILL before each disk operation of a round in turn: writing the report's temporary,
    # its fsync, the rename, the folder's fsync, the counters, the sending, the removal of
    # each acknowledged report. After each, the next round (another process) must deliver
    # what was kept, every report stored once, and leave nothing behind.
    outbox = Outbox(agent.state.outbox_dir)
    kept: list[str] = []
    maybe: list[str] = []
    step = 0
    while True:
        step += 1
        for _ in range(2):  # a backlog: two reports from earlier rounds
            earlier = make_report(agent.enrollment.device_id)
            outbox.put(earlier)
            kept.append(earlier.report_id)
        this_round = str(uuid.uuid4())
        done = subprocess.run(
            [sys.executable, "-c", _ROUND_CUT_AT_STEP, str(agent.state.directory), str(step),
             this_round],
            check=False, capture_output=True, text=True, cwd=ROOT, timeout=120,
        )  # fmt: skip
        (kept if "kept" in done.stdout else maybe).append(this_round)
        if done.returncode == 0:
            break
        assert done.returncode == -signal.SIGKILL, (step, done.stdout, done.stderr)
        # The next start: everything kept is delivered, and goes.
        result = drain(agent.state, agent.enrollment, outbox)
        assert result.stopped_by is None, (step, result.stopped_by)
        assert outbox.pending() == [], step
        stored = _stored(live_collector)
        assert len(stored) == len(set(stored)), f"stored twice after a cut at step {step}"
        assert set(kept) <= set(stored), f"a kept report lost after a cut at step {step}"
        assert set(stored) <= set(kept) | set(maybe)
    assert step > 10, done.stdout  # every step of the round was cut once
    stored = _stored(live_collector)
    assert len(stored) == len(set(stored)) and set(kept) <= set(stored)
    for aside in ("rejected", "corrupt"):
        assert not (outbox.directory / aside).exists(), aside


# --- the collector answering in part ---------------------------------------------------------


def test_a_report_whose_id_the_collector_cut_short_in_its_refusal_is_set_aside(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # The collector names a refused report by the first 64 characters of its id (an id is
    # not bounded before it is refused). A report with a longer id (written by hand, or by
    # some other program) was answered for under a name the agent did not know: it stayed
    # first in the outbox, and every round ended "the outbox could not remove delivered
    # reports", a failed delivery, for ever.
    outbox = Outbox(agent.state.outbox_dir)
    odd = make_report(agent.enrollment.device_id)
    odd.report_id = "a" * 100
    outbox.put(odd)
    good = make_report(agent.enrollment.device_id)
    outbox.put(good)
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.stopped_by is None, result.stopped_by
    assert result.set_aside == [odd.report_id] and result.acknowledged == [good.report_id]
    assert outbox.pending() == [] and outbox.rejected_count() == 1


# --- a renewal due on a full state disk ------------------------------------------------------


def _give_a_certificate_due_for_renewal(collector: LiveCollector, agent: EnrolledAgent) -> None:
    """A certificate the collector issued 13 days ago, valid one day more: its last third."""
    config = collector.config
    authority = Authority.load(config.ca_key.read_bytes(), config.ca_cert.read_bytes())
    current = x509.load_pem_x509_certificate(agent.state.cert_path.read_bytes())
    now = dt.datetime.now(dt.UTC)
    due = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(authority.cert.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=13))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(authority.key, hashes.SHA256())
    )
    store = collector.store()
    try:
        store.identity.record_renewal(
            agent.enrollment.device_id, format(due.serial_number, "x"), due.not_valid_after_utc,
            now - dt.timedelta(days=13), action="renewed",
        )  # fmt: skip
    finally:
        store.close()
    write_atomic(agent.state.cert_path, cert_pem(due))


def test_a_renewal_due_on_a_full_state_disk_does_not_stop_the_backlog(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    # The renewal went through, then keeping the new certificate met the full disk: the
    # OSError escaped the renewal, the round stopped before sending, and `once` said
    # "unexpected OSError: [Errno 28] No space left on device (please report it to IT …)".
    # For the days the renewal stayed due nothing was sent, and the reports whose
    # acknowledgement would have freed the disk stayed on it.
    with tmpfs(tmp_path / "disk", "2m") as disk:
        agent, outbox, waiting = _two_waiting(live_collector, disk / "agent")
        _give_a_certificate_due_for_renewal(live_collector, agent)
        filler = fill(disk)
        try:
            done = run(AGENT, "once", "--state", str(agent.state.directory))
        finally:
            filler.unlink()
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "the disk holding the state folder" in done.stderr, done.stderr
        assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
        assert sorted(_stored(live_collector)) == sorted(waiting)
        assert outbox.pending() == []
        # The service, in one process: a failed keeping is backed off in memory (each round
        # asked for a new certificate again, one more generation each time).
        now = dt.datetime.now(dt.UTC)
        filler = fill(disk)
        try:
            failed = ensure_fresh_certificate(agent.state, agent.enrollment, now)
            assert failed.outcome is Outcome.FAILED
            assert "cannot be kept in the state folder" in str(failed.detail)
            again = ensure_fresh_certificate(agent.state, agent.enrollment, now)
            assert again.outcome is Outcome.BACKING_OFF
        finally:
            filler.unlink()
        # The old certificate is kept whole, and renewal goes through once there is room.
        later = now + dt.timedelta(hours=7)
        result = ensure_fresh_certificate(agent.state, agent.enrollment, later)
        assert result.outcome is Outcome.RENEWED, result.detail


def test_an_answer_lost_after_the_collector_committed_is_stored_once(
    live_collector: LiveCollector, agent: EnrolledAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection cut (Wi-Fi gone, a NAT timing out) after the collector stored the batch
    # and before its answer reached the agent: the reports stay, are sent again, and the
    # collector acknowledges them as duplicates, each stored once.
    relay = CuttableRelay(("127.0.0.1", live_collector.report_port))
    through = Enrollment(**{**agent.enrollment.__dict__, "report_port": relay.port})
    service = live_collector.service
    store = service._commit
    cuts: list[int] = []

    async def commit_then_cut(*args: Any, **kwargs: Any) -> Any:
        committed = await store(*args, **kwargs)
        if not cuts:
            cuts.append(1)
            relay.cut()  # committed: the answer is never read
        return committed

    monkeypatch.setattr(service, "_commit", commit_then_cut)
    outbox = Outbox(agent.state.outbox_dir)
    reports = [make_report(agent.enrollment.device_id) for _ in range(3)]
    for report in reports:
        outbox.put(report)
    try:
        lost = drain(agent.state, through, outbox)
        assert lost.stopped_by is not None and "UNAVAILABLE" in lost.stopped_by, lost
        assert lost.delivered == 0 and len(outbox.pending()) == 3
        assert sorted(_stored(live_collector)) == sorted(r.report_id for r in reports)
        relay.restore()
        again = drain(agent.state, through, outbox)
    finally:
        relay.close()
    assert again.stopped_by is None and again.acknowledged == []
    assert sorted(again.duplicates) == sorted(r.report_id for r in reports)
    assert outbox.pending() == []
    stored = _stored(live_collector)
    assert sorted(stored) == sorted(r.report_id for r in reports)  # once each
