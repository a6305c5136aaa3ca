"""The Windows service control protocol (`agent.windows.service_control`), run here: the states
the agent reports to Windows' service control manager, its answers to each control code, and
the real service loop started, fed and stopped through it, on a replayed Windows computer
(recorded outputs of real machines) against a real collector with mutual TLS.

Only the ctypes glue (`agent.windows.service_host`: three advapi32 calls) needs Windows; it is
type-checked as Windows code here (`make typecheck`), and run by the Windows job of
.github/workflows/native-installers.yml."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devposture.agent import service
from devposture.agent.deliver import AgentWork
from devposture.agent.probes import ProbeConfig
from devposture.agent.service_manager import ServiceManager
from devposture.agent.state import STATE_ENTRIES
from devposture.agent.windows import service_control as sc
from devposture.agent.windows.service_control import ServiceRun, ServiceStatus
from devposture.agent.windows.service_host import NotStartedByWindows, serve
from devposture.collector.store import Store
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows import machines
from tests.conftest import EnrolledAgent, LiveCollector
from tests.waiting import wait_until

AGENT = str(Path(sys.executable).parent / "devposture-agent")
ACCEPTS = sc.ACCEPT_STOP | sc.ACCEPT_SHUTDOWN | sc.ACCEPT_PRESHUTDOWN


class Recorder:
    """Stands in for SetServiceStatus: what the service told the SCM, in order."""

    def __init__(self) -> None:
        self.statuses: list[ServiceStatus] = []
        self.lock = threading.Lock()

    def __call__(self, status: ServiceStatus) -> None:
        with self.lock:
            self.statuses.append(status)

    def states(self) -> list[int]:
        with self.lock:
            return [s.state for s in self.statuses]

    def last(self) -> ServiceStatus:
        with self.lock:
            return self.statuses[-1]


def _until_stopped(manager: ServiceManager, stop: threading.Event) -> int:
    manager.ready("waiting")
    while not manager.wait(stop, 60):
        pass
    return 0


def _start(run: ServiceRun) -> threading.Thread:
    thread = threading.Thread(target=run.run, daemon=True)
    thread.start()
    return thread


def test_start_run_and_stop_as_the_scm_expects() -> None:
    report = Recorder()
    run = ServiceRun(report, _until_stopped)
    thread = _start(run)
    wait_until(lambda: sc.RUNNING in report.states(), "the service to report RUNNING")
    assert run.handle(sc.CONTROL_STOP) == sc.NO_ERROR
    thread.join(30)
    assert not thread.is_alive()
    assert report.states() == [sc.START_PENDING, sc.RUNNING, sc.STOP_PENDING, sc.STOPPED]
    first, running, stopping, stopped = report.statuses
    assert first.checkpoint == 1 and first.wait_hint_ms == sc.WAIT_HINT_MS
    assert first.controls_accepted == 0  # no stop while starting
    assert running.controls_accepted == ACCEPTS and running.wait_hint_ms == 0
    assert stopping.controls_accepted == 0 and stopping.checkpoint == 1
    assert stopped == ServiceStatus(sc.STOPPED)  # exit code 0: not a failure


def test_shutdown_and_preshutdown_stop_it_too() -> None:
    for control in (sc.CONTROL_SHUTDOWN, sc.CONTROL_PRESHUTDOWN):
        report = Recorder()
        run = ServiceRun(report, _until_stopped)
        thread = _start(run)
        wait_until(lambda r=report: sc.RUNNING in r.states(), "RUNNING")  # type: ignore[misc]
        assert run.handle(control) == sc.NO_ERROR
        thread.join(30)
        assert report.last().state == sc.STOPPED


def test_interrogate_repeats_the_state_and_other_controls_are_not_implemented() -> None:
    report = Recorder()
    run = ServiceRun(report, _until_stopped)
    thread = _start(run)
    wait_until(lambda: sc.RUNNING in report.states(), "RUNNING")
    assert run.handle(sc.CONTROL_INTERROGATE) == sc.NO_ERROR
    assert report.statuses[-1] == report.statuses[-2]  # the same RUNNING again
    pause, param_change = 0x2, 0x6
    assert run.handle(pause) == sc.ERROR_CALL_NOT_IMPLEMENTED
    assert run.handle(param_change) == sc.ERROR_CALL_NOT_IMPLEMENTED
    assert run.handle(sc.CONTROL_STOP) == sc.NO_ERROR
    thread.join(30)
    assert report.last().state == sc.STOPPED


def test_a_failing_service_stops_with_an_error_so_windows_restarts_it() -> None:
    def broken(manager: ServiceManager, stop: threading.Event) -> int:
        manager.ready("running")
        raise OSError("the state folder is gone")

    report = Recorder()
    assert ServiceRun(report, broken).run() == 1
    assert report.last() == ServiceStatus(
        sc.STOPPED, win32_exit_code=sc.ERROR_SERVICE_SPECIFIC_ERROR, service_exit_code=1
    )


def test_a_long_stop_counts_checkpoints_from_the_loops_own_waits() -> None:
    """The loop's remaining work before the service stops may take long (a call in flight,
    up to its deadline):
    every ping of the loop's waits is the next checkpoint, within the wait hint, so Windows
    never takes the stop for a hang. Time is given as data (a clock the test moves)."""
    now = [0.0]
    draining, finish = threading.Event(), threading.Event()

    def drains(manager: ServiceManager, stop: threading.Event) -> int:
        manager.ready("running")
        while not manager.wait(stop, 60):
            pass
        draining.set()
        while not finish.is_set():  # the loop's remaining work, pinging as it goes
            manager.beat()
            finish.wait(0.01)
        return 0

    report = Recorder()
    run = ServiceRun(report, drains, clock=lambda: now[0])
    thread = _start(run)
    wait_until(lambda: sc.RUNNING in report.states(), "RUNNING")
    run.handle(sc.CONTROL_STOP)
    wait_until(draining.is_set, "the drain to start")
    for step in range(1, 4):
        now[0] += sc.PING_SECONDS
        wait_until(
            lambda s=step: report.last().checkpoint == 1 + s,  # type: ignore[misc]
            f"checkpoint {1 + step}",
        )  # fmt: skip
        assert report.last().state == sc.STOP_PENDING
        assert report.last().wait_hint_ms == sc.WAIT_HINT_MS
    finish.set()
    thread.join(30)
    assert report.last() == ServiceStatus(sc.STOPPED)
    # Nothing follows STOPPED, even a late control.
    run.handle(sc.CONTROL_INTERROGATE)
    assert report.last() == ServiceStatus(sc.STOPPED)


def test_the_agent_loop_runs_and_drains_under_the_service_protocol(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """The real service loop (`agent.service.run`, what `devposture-agent service` runs after
    enrollment) on a replayed Chinese Windows 11 PC: it reports to the collector, and a STOP
    from Windows ends it cleanly with the report delivered."""
    host = machines.chinese()
    host.clock = dt.datetime.now(dt.UTC)
    work = AgentWork(agent.state, agent.enrollment, host, ProbeConfig)

    def body(manager: ServiceManager, stop: threading.Event) -> int:
        manager.ready(f"enrolled as {agent.enrollment.device_id}")
        service.run(host, ProbeConfig(), work, stop, manager=manager, name="test")
        return 0

    def reports() -> list[pb.PostureReport]:
        store = Store.open_reader(live_collector.config.database)
        try:
            bodies = [store.reports.report_body(i) for i in store.reports.report_ids()]
        finally:
            store.close()
        return [pb.PostureReport.FromString(b) for b in bodies if b is not None]

    report = Recorder()
    run = ServiceRun(report, body)
    thread = _start(run)
    # The first acknowledgement hands the agent the policy's configuration, which it answers
    # with a second collection: STOP once that one is delivered too, or it would rightly stay
    # in the outbox for the next start.
    wait_until(lambda: len(reports()) >= 2, "the first two reports to reach the collector")
    assert run.handle(sc.CONTROL_STOP) == sc.NO_ERROR
    thread.join(60)
    assert not thread.is_alive()
    assert report.states()[:2] == [sc.START_PENDING, sc.RUNNING]
    assert report.states()[-2:] == [sc.STOP_PENDING, sc.STOPPED]
    assert report.last() == ServiceStatus(sc.STOPPED)
    delivered = reports()
    assert delivered[0].host.os_family == pb.OS_FAMILY_WINDOWS
    assert list(agent.state.outbox_dir.glob("*.report")) == []  # nothing left unsent
    # Every file the agent wrote in its state folder is one uninstalling may delete.
    assert {p.name for p in agent.state.directory.iterdir()} <= STATE_ENTRIES


def test_elsewhere_the_service_entry_point_says_what_to_run() -> None:
    done = subprocess.run([AGENT, "service"], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 1
    assert "Windows service's entry point" in done.stderr and "devposture-agent run" in done.stderr
    with pytest.raises(NotStartedByWindows):
        serve("devposture-agent", _until_stopped)
