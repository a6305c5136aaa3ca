"""A full disk under the collector's data folder (issue 14, item 3), on a real tmpfs.

* The store: a write the full disk refuses (at COMMIT, or already in a statement when SQLite
  spills pages) raises StorageFull, is rolled back whole, and the connection writes the same
  reports once space is back: stored, not "duplicate", the evidence chain unbroken.
* A real `devposture-collector serve` with its data folder on a small tmpfs and real agent code
  (enrollment, outbox, transport): once a filler file has taken the last byte, every agent is
  told UNAVAILABLE with a retry hint and keeps its report; the collector says so in one log
  line; admin commands, local and over the admin port, say the disk is full. Once the filler
  is deleted the next reports are accepted, without a restart, and every report acknowledged
  before or after is stored exactly once.

Mounting needs root (tests/full_disk.py): skipped on a developer machine that is not root,
failed in CI.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import re
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from devposture.agent.enroll import EnrollError
from devposture.agent.outbox_file import SUFFIX
from devposture.agent.renewal_exchange import exchange
from devposture.collector.store import CheckResult, ReportRecord, Store, StoreOutcome
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.store.engine import SqliteDatabase
from devposture.collector.store.identity import DeviceRecord
from devposture.collector.tokens import new_token
from devposture.net.rpc_status import retry_hint
from tests.e2e.conftest import AGENT
from tests.e2e.fleet import COLLECTOR, CollectorServer, SimAgent, enroll_agent, run, utcnow
from tests.full_disk import fill, tmpfs
from tests.waiting import wait_until

# SQLite's full-disk path: a full file system under the data folder is what refuses SQLite's
# writes; a PostgreSQL server's disk is not the data folder's.
pytestmark = pytest.mark.sqlite_only

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
FULL_LINE = "the disk holding the data folder is full"
BACK_LINE = "the disk has room again"
PRESENCE = (
    "counting the collectors serving on the database (each one's share of the per-device rate"
    " limit)"
)
PRESENCE_WAITS = (
    f"WARNING devposture.collector.refused_writes: {PRESENCE} waits: the disk holding the"
    " collector's SQLite database is full; free space on that disk, and it resumes by itself"
    " (no restart)"
)
PRESENCE_RESUMED = f"INFO devposture.collector.refused_writes: {PRESENCE} resumed: "


# --- the store ------------------------------------------------------------------------------


def _item(device_id: str) -> tuple[ReportRecord, list[CheckResult]]:
    body = os.urandom(16_000)  # incompressible, several pages each
    record = ReportRecord(
        str(uuid.uuid4()), device_id, NOW, NOW, "1", body, "h", "linux", "Debian", "12"
    )
    return record, [CheckResult("firewall", "PASS", "on")]


def _chain_is_whole(store: Store) -> bool:
    head = store.evidence.chain_head()
    assert head is not None
    entries = store.evidence.chain_entries(1, head.seq)
    links = itertools.pairwise(entries)
    return (
        [e.seq for e in entries] == list(range(1, head.seq + 1))
        and all(e.recomputed() == e.hash for e in entries)
        and all(later.prev_hash == earlier.hash for earlier, later in links)
    )


@pytest.mark.parametrize(
    "cache_pages", [None, 2], ids=["refused-at-commit", "refused-in-a-statement"]
)
def test_the_store_keeps_nothing_of_a_refused_write_and_writes_once_space_is_back(
    tmp_path: Path, cache_pages: int | None
) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        store = Store.open(disk / "devposture.db")
        try:
            if cache_pages is not None:  # pages spill to the log in the middle of a statement
                store._db.execute(f"PRAGMA cache_size = {cache_pages}")
            token = new_token()
            store.identity.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
            store.identity.enroll(token, NOW, DeviceRecord("d1", "01", NOW + dt.timedelta(days=90)))
            before = [_item("d1") for _ in range(3)]
            assert store.reports.store_reports(before) == [StoreOutcome.STORED] * 3
            filler = fill(disk)
            group = [_item("d1") for _ in range(20)]
            with pytest.raises(StorageFull) as refused:
                store.reports.store_reports(group)
            assert refused.value.advice == (
                f"the disk holding {disk} is full: free space, then try again"
            )
            assert str(disk) not in str(refused.value)  # what an unmapped call would show
            assert isinstance(store._db, SqliteDatabase)
            assert not store._db.connection.in_transaction
            assert sorted(store.reports.report_ids()) == sorted(r.report_id for r, _ in before)
            # Other writes are refused the same way, and leave the connection usable.
            with pytest.raises(StorageFull):
                store.identity.add_token(new_token(), NOW, NOW + dt.timedelta(hours=1), uses=1)
            filler.unlink()
            # Nothing of the refused group was kept: each report is new, not a duplicate.
            assert store.reports.store_reports(group) == [StoreOutcome.STORED] * 20
            assert len(store.reports.report_ids()) == 23
            assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert _chain_is_whole(store)
        finally:
            store.close()


# --- a real collector and real agents --------------------------------------------------------


def _pushed_back(agent: SimAgent) -> float:
    """Put a new report in the agent's outbox and send: the collector must push back. The
    retry hint, in seconds."""
    agent.put(agent.report())
    result = agent.drain()
    assert result.stopped_by is not None, "a report was taken on a full disk"
    assert result.stopped_by.startswith("UNAVAILABLE: "), result.stopped_by
    assert "disk is full" in result.stopped_by and "your reports are kept" in result.stopped_by
    assert result.acknowledged == [] and result.duplicates == []
    assert result.retry_after is not None
    return result.retry_after


def _admin(server: CollectorServer, *command: str, remote: tuple[str, Path] | None = None) -> (
    subprocess.CompletedProcess[str]
):  # fmt: skip
    where = ["--data", str(server.data)]
    if remote is not None:
        fingerprint, credential = remote
        where = ["--collector", f"127.0.0.1:{server.admin_port}", "--ca-fingerprint",
                 fingerprint, "--credential-file", str(credential)]  # fmt: skip
    return run(COLLECTOR, *command, *where)


def test_a_full_disk_pushes_agents_back_and_storing_resumes_when_space_is_back(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "collector", "6m") as data:
        server = CollectorServer.create(tmp_path)  # the data folder is the tmpfs; the log not
        assert server.data == data
        server.start()
        try:
            token = server.token(5)  # four now, one more while the disk is full
            agents = [enroll_agent(server, tmp_path / "agents" / f"sim-{i}", f"sim-{i}", token)
                      for i in range(3)]  # fmt: skip
            for agent in agents:
                agent.put_backlog(2)
                assert agent.drain().stopped_by is None
            # Enrolled, never reported: its first call writes its admission, not a report.
            newcomer = enroll_agent(server, tmp_path / "agents" / "new", "new", token)
            everyone = [*agents, newcomer]
            added = run(COLLECTOR, "admin", "add", "IT", "--role", "admin",
                        "--data", str(server.data))  # fmt: skip
            assert added.returncode == 0, added.stderr
            credential = tmp_path / "credential"
            credential.write_text(added.stdout.strip())
            credential.chmod(0o600)
            remote = (server.fingerprint, credential)

            filler = fill(data)
            hints = [_pushed_back(agent) for agent in everyone]
            hints += [_pushed_back(agent) for agent in everyone]  # and again: one log line
            assert all(5.0 <= hint <= 10.0 for hint in hints), hints
            assert all(agent.pending_count() == 2 for agent in everyone), "reports not kept"
            wait_until(lambda: FULL_LINE in server.output(), "the full-disk log line")

            # Enrolling, renewing and reestablishing write too: pushed back the same way, and
            # nothing is used up (the token's use, the proof's time).
            late = tmp_path / "agents" / "late"
            with pytest.raises(EnrollError) as not_now:
                enroll_agent(server, late, "late", token)
            assert (
                "asks to come back later: the collector cannot enroll now (its disk is full)"
                in str(not_now.value)
            )
            assert "nothing was used up" in str(not_now.value)
            for expired in (False, True):
                with pytest.raises(grpc.RpcError) as pushed:
                    exchange(agents[0].state, agents[0].enrollment, utcnow(), expired=expired)
                assert isinstance(pushed.value, grpc.Call)
                assert pushed.value.code() == grpc.StatusCode.UNAVAILABLE, pushed.value
                assert "its disk is full" in (pushed.value.details() or "")
                assert retry_hint(pushed.value)[0]

            full = f"the disk holding {server.data} is full: free space, then try again"
            for command in (("token", "create"), ("report", "fleet")):
                local = _admin(server, *command)
                assert local.returncode == 1
                assert local.stderr == f"devposture-collector: error: {full}\n"
                over_port = _admin(server, *command, remote=remote)
                assert over_port.returncode == 1
                assert f"{full} (RESOURCE_EXHAUSTED)" in over_port.stderr, over_port.stderr
                assert "permission" not in (local.stderr + over_port.stderr).lower()

            filler.unlink()
            for agent in everyone:  # the hint is advice: sending at once is allowed
                result = agent.drain()
                assert result.stopped_by is None, result.stopped_by
                assert len(result.acknowledged) == 2
                assert agent.pending_count() == 0
            wait_until(lambda: BACK_LINE in server.output(), "the recovery log line")
            assert enroll_agent(server, late, "late", token).device_id
            for expired in (False, True):
                exchange(agents[0].state, agents[0].enrollment, utcnow(), expired=expired)
            assert _admin(server, "token", "create").returncode == 0
            assert _admin(server, "report", "fleet", remote=remote).returncode == 0

            log = server.output()
            assert log.count(FULL_LINE) == 1 and log.count(BACK_LINE) == 1, log[-4000:]
            assert len(re.findall(r" ERROR ", log)) == 1, log[-4000:]
            assert "Traceback" not in log and "Unexpected" not in log, log[-4000:]
            stored = Counter(server.stored_ids())
            made = [i for agent in everyone for i in agent.made]
            assert len(made) == 3 * 2 + 2 * 4  # the backlogs, then two rounds while full
            assert all(stored[i] == 1 for i in made), "a report is missing or stored twice"
            assert set(stored) == set(made)
            acknowledged = {i for agent in everyone for i in agent.acknowledged()}
            assert acknowledged == set(made)
            assert all(not list(agent.outbox.directory.glob(f"*{SUFFIX}")) for agent in everyone)
            assert server.stop() == 0
        finally:
            server.close()


# --- the agent's state folder ---------------------------------------------------------------


@contextlib.contextmanager
def full_state_disk(
    tmp_path: Path, backlog: int = 2, before: Callable[[SimAgent], object] = lambda agent: None
) -> Iterator[SimAgent]:
    """An agent enrolled with a real collector, `backlog` reports waiting, its state folder
    on a tmpfs then filled to the last byte (`before` runs just before); freed again after."""
    server = CollectorServer.create(tmp_path / "c")
    server.start()
    try:
        with tmpfs(tmp_path / "state", "2m") as disk:
            agent = enroll_agent(server, disk / "agent", "laptop", server.token(1))
            agent.put_backlog(backlog)
            before(agent)
            filler = fill(disk)
            try:
                yield agent
            finally:
                filler.unlink()
    finally:
        server.stop()


def test_a_full_state_disk_sends_what_waits_and_says_so(tmp_path: Path) -> None:
    # The round stopped at the first write it could not make (the Wi-Fi session log) with a
    # traceback, before sending: the waiting reports, whose acknowledgement frees their space,
    # stayed, and the disk stayed full. Now what waits is sent and the folder is named.
    from devposture.agent.deliver import collect_and_deliver  # noqa: PLC0415
    from devposture.agent.host.live import LiveHost  # noqa: PLC0415
    from devposture.agent.probes.config import ProbeConfig  # noqa: PLC0415
    from devposture.agent.state import StateError  # noqa: PLC0415

    with full_state_disk(tmp_path) as agent:
        assert len(agent.outbox.pending()) == 2
        with pytest.raises(StateError) as full:
            collect_and_deliver(agent.state, agent.enrollment, LiveHost(), ProbeConfig())
        assert "the disk holding the state folder" in str(full.value)
        assert str(agent.state.directory) in str(full.value)
        assert agent.outbox.pending() == []  # sent, and space freed


def test_a_collector_started_again_on_a_full_disk_serves_and_pushes_agents_back(
    tmp_path: Path,
) -> None:
    # Killed (an OOM kill, a crash, a reboot) while its data disk was full, the collector
    # refused to start: every start wrote its copy of the policy in force again, the same
    # text, and the full disk refused it. Under systemd it failed five times and stayed
    # failed, even once space was freed; the agents met a closed port, with no retry hint.
    # Its background tasks logged an ERROR each round (the presence every 30 s); now each
    # says once what waits and what to do (tests/collector/test_refused_writes.py: each task).
    # The presence's round is 1 s here ([server] presence_seconds), not the default 30 s the
    # test would otherwise wait out before the round that writes again.
    with tmpfs(tmp_path / "collector", "6m") as data:
        server = CollectorServer.create(tmp_path, presence_seconds=1)
        server.start()
        try:
            agent = enroll_agent(server, tmp_path / "agent", "laptop", server.token())
            agent.put_backlog(2)
            assert agent.drain().stopped_by is None
            filler = fill(data)
            server.kill()
            started = len(server.output())
            server.start()  # comes back on the full disk
            assert 5.0 <= _pushed_back(agent) <= 10.0
            assert agent.pending_count() == 1
            wait_until(lambda: PRESENCE_WAITS in server.output(), "the presence said to wait")
            filler.unlink()
            result = agent.drain()
            assert result.stopped_by is None, result.stopped_by
            assert result.acknowledged == agent.made[-1:]
            # Its next round writes, and says so once.
            wait_until(lambda: PRESENCE_RESUMED in server.output(), "the presence resumed")
            lines = server.output()[started:].splitlines()
            waits = [line.split(" waits: ")[0] for line in lines if " waits: " in line]
            assert len(waits) == len(set(waits)), lines  # each task's once
            assert [line for line in lines if " ERROR " in line] == [
                line for line in lines if FULL_LINE in line
            ], lines  # ingest's one line alone
            assert not [line for line in lines if "Traceback" in line], lines
            assert Counter(server.stored_ids()) == Counter(agent.made)
            assert server.stop() == 0
            checked = run(COLLECTOR, "audit", "check", "--data", str(server.data))
            assert checked.returncode == 0, checked.stdout + checked.stderr
        finally:
            server.close()


def test_the_service_s_round_on_a_full_state_disk_names_the_folder(tmp_path: Path) -> None:
    # The service's round met the same full disk as `once` and logged a traceback ending in
    # "No space left on device": neither the folder nor what to do.
    from devposture.agent.deliver import AgentWork  # noqa: PLC0415
    from devposture.agent.host.live import LiveHost  # noqa: PLC0415
    from devposture.agent.probes.config import ProbeConfig  # noqa: PLC0415
    from devposture.agent.state import StateError  # noqa: PLC0415
    from devposture.v1 import devposture_pb2 as pb  # noqa: PLC0415

    with full_state_disk(tmp_path) as agent:
        work = AgentWork(agent.state, agent.enrollment, LiveHost(), ProbeConfig)
        with pytest.raises(StateError) as full:
            work.collect(pb.COLLECTION_TRIGGER_INTERVAL)
        assert "the disk holding the state folder" in str(full.value)
        assert str(agent.state.directory) in str(full.value)
        assert work.send(lambda: False).stopped_by is None  # what waits still goes
        assert agent.outbox.pending() == []


def test_a_first_start_on_a_full_state_disk_names_the_folder(tmp_path: Path) -> None:
    # Before its Wi-Fi hashing key was made (an agent's first collection), a full disk gave
    # `status` and `once` "unexpected OSError ... please report it to IT", and `run` a
    # traceback: now the folder, the problem and what to do.
    def no_key_yet(agent: SimAgent) -> None:
        (agent.state.directory / "network-hash.key").unlink(missing_ok=True)

    with full_state_disk(tmp_path, backlog=0, before=no_key_yet) as agent:
        done = run(AGENT, "status", "--state", str(agent.state.directory))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert (f"the state folder {agent.state.directory} cannot keep this computer's key for"
            " hashing Wi-Fi names") in done.stderr  # fmt: skip
    assert "free space on its disk" in done.stderr
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
