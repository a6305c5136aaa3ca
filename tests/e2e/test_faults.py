"""Faults with real processes, killed with real signals (DESIGN principle 5: at-least-once
delivery, exactly-once storage).

* the collector SIGKILLed in the middle of a load: every report an agent holds an
  acknowledgement for is in the database, once; after a restart everything arrives, once;
* the agent SIGKILLed between collecting and sending: the report is sent after restart;
* a week offline (simulated time, a full outbox): the bound holds after every report, what
  the outbox kept arrives, every network change arrives, and the drop count is right;
* the collector restarted (SIGTERM, then SIGKILL) under many agents: the backlog drains with
  no error other than "unavailable", and no report set aside.

The collector is always a `devposture-collector serve` process on fixed ports (so that it
can come back where the agents expect it); the agents are real agent code (tests/e2e/fleet.py)
or `devposture-agent` processes.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from devposture.agent.outbox import Outbox
from devposture.agent.outbox_file import SUFFIX
from devposture.v1 import devposture_pb2 as pb
from tests import warm_commands
from tests.e2e.fleet import (
    AGENT,
    CollectorServer,
    FleetRun,
    SimAgent,
    closed_session,
    enroll_agent,
    enroll_fleet,
    run,
    utcnow,
)


def _assert_stored_once(server: CollectorServer, agents: list[SimAgent]) -> None:
    """Every report the agents made is stored, exactly once, with its own content."""
    made = [i for a in agents for i in a.made]
    assert len(made) == len(set(made)), "the test made a report id twice"
    rows = Counter(server.stored_ids())
    twice = [i for i, n in rows.items() if n > 1]
    assert not twice, f"stored more than once: {twice[:5]}"
    missing = set(made) - set(rows)
    assert not missing, f"{len(missing)} report(s) never stored, e.g. {sorted(missing)[:3]}"
    assert set(rows) == set(made), "reports stored that no agent made"
    owner = {i: a.device_id for a in agents for i in a.made}
    moments: Counter[tuple[str, int, int]] = Counter()
    for report_id, device_id, body in server.stored_reports():
        assert body.report_id == report_id and device_id == owner[report_id] == body.device_id
        moments[(device_id, body.collected_at.seconds, body.collected_at.nanos)] += 1
    assert all(n == 1 for n in moments.values()), "the same observation stored twice"
    log = server.output()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
    for agent in agents:
        assert agent.set_aside() == [], f"{agent.name} set reports aside"
        assert agent.outbox.rejected_count() == 0
        assert agent.pending_count() == 0


# -- 1 -------------------------------------------------------------------------------------


def test_collector_killed_mid_load_loses_no_acknowledged_report(
    collector: CollectorServer, tmp_path: Path
) -> None:
    agents = enroll_fleet(collector, tmp_path / "agents", 20)
    for agent in agents:
        agent.put_backlog(30)
    fleet = FleetRun(agents, produce_every=0.05).start()
    try:
        fleet.wait_delivered(100, timeout=60)
        collector.kill()
        fleet.pause()  # every drain in flight has returned: no acknowledgement still coming
        in_outboxes = fleet.pending()
        held = {i for a in agents for i in a.acknowledged()}
        stored = Counter(collector.stored_ids())
        assert in_outboxes > 0, "the load was over before the kill: the test proves nothing"
        assert len(held) >= 100
        lost = held - set(stored)
        assert not lost, f"{len(lost)} acknowledged report(s) are not in the database: {lost}"
        assert max(stored.values()) == 1
        assert set(stored) <= {i for a in agents for i in a.made}

        collector.start()
        fleet.resume()
        time.sleep(1.0)  # a second of production and draining against the new process
        fleet.stop_producing()
        assert fleet.wait(60), "the agents did not drain their outboxes"
    finally:
        fleet.close()
    assert not fleet.errors, fleet.errors
    _assert_stored_once(collector, agents)
    # "Already stored" is only ever the answer for a report committed before the kill whose
    # acknowledgement the kill swallowed.
    duplicates = {i for a in agents for i in a.duplicates()}
    assert duplicates <= set(stored) - held
    assert collector.stop() == 0


# -- 2 -------------------------------------------------------------------------------------


def _outbox_reports(state: Path) -> list[Path]:
    return sorted((state / "outbox").glob(f"*{SUFFIX}"))


def test_agent_killed_between_collecting_and_sending_sends_after_restart(
    collector: CollectorServer, tmp_path: Path
) -> None:
    token, state = tmp_path / "token", tmp_path / "laptop"
    token.write_text(collector.token())
    enrolled = run(
        AGENT, "enroll", "--collector", f"127.0.0.1:{collector.enroll_port}",
        "--token-file", str(token), "--ca-fingerprint", collector.fingerprint,
        "--state", str(state),
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr

    # The collector freezes: connections are accepted by the kernel and never answered, so
    # the agent is stuck after collecting, with its report on disk and unsent.
    collector.pause()
    warm_commands.seed(state)
    agent = subprocess.Popen(
        [AGENT, "once", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _outbox_reports(state):
            assert agent.poll() is None, agent.communicate()[0]
            assert time.monotonic() < deadline, "the agent never wrote its report"
            time.sleep(0.01)
        time.sleep(0.2)  # it is now sending (waiting on the frozen collector)
        assert agent.poll() is None, "the agent finished against a frozen collector"
        agent.send_signal(signal.SIGKILL)
        agent.wait(30)
    finally:
        if agent.poll() is None:
            agent.kill()
        collector.resume()
    assert agent.returncode == -signal.SIGKILL
    (waiting,) = _outbox_reports(state)
    first = waiting.stem.split("-", 3)[3]  # <time>-<kind>-<digest>-<report id>
    assert collector.stored_ids() == []

    again = run(AGENT, "once", "--state", str(state))
    assert again.returncode == 0, again.stderr
    acknowledged = re.search(r"Report (\S+) acknowledged by the collector", again.stdout)
    assert acknowledged is not None, again.stdout
    assert "(and 1 queued earlier)" in again.stdout
    assert sorted(collector.stored_ids()) == sorted([first, acknowledged[1]])
    assert first != acknowledged[1]
    assert _outbox_reports(state) == []
    assert not (state / "outbox" / "rejected").exists() or not any(
        (state / "outbox" / "rejected").iterdir()
    )
    assert collector.stop() == 0


# -- 3 -------------------------------------------------------------------------------------

WEEK_HOURS = 7 * 24
# Hours (into the week) at which the laptop joined, and left, a café's open Wi-Fi.
CAFE_VISITS = (9, 33, 58, 80, 105, 129, 150)
ROOM_FOR = 40  # reports the outbox's bound holds


def _outbox_bytes(outbox: Outbox) -> int:
    return sum(p.stat().st_size for p in outbox.directory.glob(f"*{SUFFIX}"))


def test_a_week_offline_delivers_what_the_bound_kept_and_counts_the_rest(
    collector: CollectorServer, tmp_path: Path
) -> None:
    agent = enroll_agent(collector, tmp_path / "laptop", "laptop", collector.token())
    assert collector.stop() == 0  # the laptop goes offline for a week

    start = utcnow() - dt.timedelta(days=7, minutes=30)
    sample = agent.report(start)
    bound = ROOM_FOR * (sample.ByteSize() + 120)
    agent.outbox = Outbox(agent.outbox.directory, bound)
    closed: list[pb.WifiSession] = []  # carried by every report until one is acknowledged
    network_changes: list[str] = []
    puts = 0
    for hour in range(WEEK_HOURS):
        at = start + dt.timedelta(hours=hour)
        # Three pending-update counts a day: runs of identical hourly snapshots in between.
        pending = 40 + (hour // 8) % 5
        reports = [agent.report(at, updates_pending=pending, sessions=list(closed))]
        if hour in CAFE_VISITS:
            left = at + dt.timedelta(minutes=25)
            closed.append(closed_session(f"Cafe-{hour}-Free", at - dt.timedelta(minutes=50),
                                         left, vpn_after=dt.timedelta(minutes=3)))  # fmt: skip
            change = agent.report(left, trigger=pb.COLLECTION_TRIGGER_NETWORK_CHANGE,
                                  updates_pending=pending, sessions=list(closed))  # fmt: skip
            network_changes.append(change.report_id)
            reports.append(change)
        for report in reports:
            agent.put(report)
            puts += 1
            held = _outbox_bytes(agent.outbox)
            assert held <= bound, f"outbox holds {held} bytes, its bound is {bound}"
            assert agent.outbox.stats().pending_bytes <= bound
            assert agent.outbox.pending()[-1].report.report_id == report.report_id
    kept = [p.report.report_id for p in agent.outbox.pending()]
    stats = agent.outbox.stats()
    print(f"{puts} reports put, {len(kept)} kept within {bound} bytes,"
          f" {stats.coalesced_total} coalesced, {stats.dropped_total} dropped")  # fmt: skip
    assert puts == WEEK_HOURS + len(CAFE_VISITS) == len(agent.made)
    assert 0.6 * ROOM_FOR <= len(kept) <= ROOM_FOR * 1.2
    assert stats.coalesced_total > 0 and stats.dropped_total > 0, stats
    assert stats.coalesced_total + stats.dropped_total == puts - len(kept)
    assert set(network_changes) <= set(kept), "a network change was evicted"

    collector.start()
    sent = run(AGENT, "once", "--state", str(agent.state.directory))
    assert sent.returncode == 0, sent.stderr
    now_id = re.search(r"Report (\S+) acknowledged", sent.stdout)
    assert now_id is not None, sent.stdout
    assert f"(and {len(kept)} queued earlier)" in sent.stdout
    stored = Counter(collector.stored_ids())
    assert set(stored) == {*kept, now_id[1]}
    assert max(stored.values()) == 1
    assert set(network_changes) <= set(stored)
    assert agent.pending_count() == 0

    newest = collector.newest_report(agent.device_id)
    assert newest.report_id == now_id[1]
    delivery = newest.delivery
    assert delivery.dropped_total + delivery.coalesced_total == puts - len(kept)
    assert (delivery.dropped_total, delivery.coalesced_total) == (
        stats.dropped_total, stats.coalesced_total,
    )  # fmt: skip
    assert delivery.pending_reports == len(kept)
    figures = collector.device_outbox_figures(agent.device_id)
    assert figures["dropped_total"] == delivery.dropped_total
    assert figures["coalesced_total"] == delivery.coalesced_total
    assert figures["pending"] == len(kept)
    assert collector.stop() == 0


# -- 4 -------------------------------------------------------------------------------------

# What an agent may see while its collector restarts: the port closed, the connection cut, or
# the collector pushing back while it shuts down. Anything else (INVALID_ARGUMENT,
# PERMISSION_DENIED, a partial answer ...) would be a bug.
RESTART_FAILURE = re.compile(r"^UNAVAILABLE: ")
# While a grpc.aio server shuts down, a call that reached it but had not started yet is reset
# by gRPC itself, and the agent sees CANCELLED (no retry hint; the report stays).
SHUTDOWN_RESET = "CANCELLED: CANCELLED"


def _restart_failure(failure: str, at: float, stopping: tuple[float, float]) -> bool:
    if RESTART_FAILURE.match(failure):
        return True
    return failure == SHUTDOWN_RESET and stopping[0] <= at <= stopping[1] + 1.0


def test_collector_restarts_under_many_agents_and_the_backlog_drains(
    collector: CollectorServer, tmp_path: Path
) -> None:
    agents = enroll_fleet(collector, tmp_path / "agents", 50)
    for agent in agents:
        agent.put_backlog(20)
    total = sum(len(a.made) for a in agents)
    fleet = FleetRun(agents, produce_every=0.2).start()
    try:
        fleet.wait_delivered(total // 5, timeout=60)
        t0 = time.monotonic()
        assert collector.stop() == 0, "a graceful stop must exit 0"
        t1 = time.monotonic()  # the window in which a shutdown may cancel calls
        assert fleet.pending() > 0, "the backlog had drained before the restart"
        time.sleep(0.5)  # the agents find the port closed
        collector.start()

        fleet.wait_delivered(fleet.made() * 3 // 5, timeout=60)
        collector.kill()
        assert fleet.pending() > 0, "the backlog had drained before the kill"
        time.sleep(0.5)
        collector.start()
        time.sleep(0.5)
        fleet.stop_producing()
        assert fleet.wait(60), "the agents did not drain their outboxes"
    finally:
        fleet.close()
    assert not fleet.errors, fleet.errors
    seen = list(zip(fleet.failure_times, fleet.failures, strict=True))
    print(Counter(f.split(";")[0][:60] for _, f in seen))
    odd = sorted({f for t, f in seen if not _restart_failure(f, t, stopping=(t0, t1))})
    assert not odd, f"failures other than UNAVAILABLE: {odd}"
    assert fleet.failures, "no agent ever saw the collector gone: the test proves nothing"
    _assert_stored_once(collector, agents)
    assert collector.stop() == 0
