"""`serve --workers N`: one collector as N processes sharing its agent ports on purpose, on
either engine (the PostgreSQL leg runs it on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from cryptography import x509

from devposture.agent.enroll import enroll
from devposture.agent.state import AgentState
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig, load
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from devposture.collector.tokens import new_token
from devposture.net.address import CollectorAddress
from devposture.net.pinning import fingerprint as pin_of
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import host_info, make_report
from tests.databases import collector_database
from tests.leftovers import kill_left_running, left_running
from tests.waiting import wait_until

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")
CHANNELS = 16


@dataclass(frozen=True)
class Ready:
    """What the parent's ready file says."""

    enroll_port: int
    report_port: int
    workers: list[int]


@pytest.fixture
def folder(tmp_path: Path) -> CollectorConfig:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    path = config.data_dir / "collector.toml"
    text = path.read_text().replace("drain_seconds = 5\n", "drain_seconds = 0\n", 1)
    text, found = re.subn(r"(?ms)^(\[web\].*?^enabled = )true$", r"\g<1>false", text, count=1)
    assert found == 1
    path.write_text(text)
    return load(config.data_dir)


@pytest.fixture
def workers(
    folder: CollectorConfig, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Ready]]:
    ready = tmp_path / "ready.json"
    parent = subprocess.Popen(
        [COLLECTOR, "serve", "--data", str(folder.data_dir), "--workers", "2", "--enroll-port",
         "0", "--report-port", "0", "--admin-port", "0", "--metrics-port", "0",
         "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: ready.exists() or parent.poll() is not None, "the workers serving")
        assert parent.poll() is None, parent.communicate()[1]
        said = json.loads(ready.read_text())
        yield parent, Ready(said["enroll_port"], said["report_port"], said["workers"])
    finally:
        if parent.poll() is None:
            parent.send_signal(signal.SIGTERM)
        try:
            parent.communicate(timeout=60)
        finally:
            kill_left_running()


def _agent(config: CollectorConfig, ports: Ready, directory: Path) -> AgentState:
    store = Store.open(config.database)
    try:
        token = new_token()
        now = utcnow()
        store.identity.add_token(token, now, now + dt.timedelta(hours=1), uses=1)
    finally:
        store.close()
    state = AgentState(directory)
    ca = x509.load_pem_x509_certificate(config.ca_cert.read_bytes())
    enroll(state, CollectorAddress("127.0.0.1", ports.enroll_port), str(token), pin_of(ca),
           host_info("pc-1"))  # fmt: skip
    return state


def _channels(state: AgentState, port: int) -> list[grpc.Channel]:
    """Channels of their own connections each (not gRPC's shared subchannel pool)."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=state.ca_path.read_bytes(), private_key=state.key_path.read_bytes(),
        certificate_chain=state.cert_path.read_bytes(),
    )  # fmt: skip
    return [grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                                options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(CHANNELS)]  # fmt: skip


def _connections(pid: int, port: int) -> int:
    established = psutil.CONN_ESTABLISHED
    return sum(1 for c in psutil.Process(pid).net_connections("tcp")
               if c.laddr and c.laddr.port == port and c.status == established)  # fmt: skip


def test_workers_share_the_agent_ports_and_store_every_report_once(
    folder: CollectorConfig, workers: tuple[subprocess.Popen[str], Ready], tmp_path: Path,
) -> None:
    parent, ports = workers
    pids = ports.workers
    assert len(pids) == 2 and parent.pid not in pids
    assert {p.pid for p in psutil.Process(parent.pid).children()} == set(pids)
    state = _agent(folder, ports, tmp_path / "agent")
    device_id = _device_id(folder)
    channels = _channels(state, ports.report_port)
    sent = []
    try:
        for channel in channels:
            report = make_report(device_id)
            ack = pb_grpc.CollectorStub(channel).Report(pb.ReportRequest(report=report), timeout=30)
            assert ack.report_id == report.report_id and not ack.duplicate
            sent.append(report.report_id)
        # The kernel spread the connections: each worker holds some of them.
        held = [_connections(pid, ports.report_port) for pid in pids]
        assert sum(held) == CHANNELS and all(held), held
    finally:
        for channel in channels:
            channel.close()
    store = Store.open(folder.database)
    try:
        assert sorted(store.reports.report_ids()) == sorted(sent)
        head = store.evidence.chain_head()
        assert head is not None
        entries = store.evidence.chain_entries(1, head.seq)
        assert [e.seq for e in entries] == list(range(1, head.seq + 1))
        assert all(e.recomputed() == e.hash for e in entries)
    finally:
        store.close()
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(60) == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in pids)  # fmt: skip
    # Each worker said what it serves; the second has no administration port ("port None").
    assert parent.stdout is not None
    said = parent.stdout.read()
    assert said.count("devposture collector serving: enrollment on port") == 2, said
    assert "port None" not in said


def _device_id(config: CollectorConfig) -> str:
    store = Store.open(config.database)
    try:
        (device,) = store.identity.devices()
        return device.device_id
    finally:
        store.close()


def test_a_worker_that_dies_is_started_again(
    workers: tuple[subprocess.Popen[str], Ready], tmp_path: Path
) -> None:
    parent, ports = workers
    victim = ports.workers[1]
    psutil.Process(victim).kill()
    def replaced() -> bool:
        children = {p.pid for p in psutil.Process(parent.pid).children()}
        return len(children) == 2 and victim not in children

    wait_until(replaced, "the worker started again")
    replacement = ({p.pid for p in psutil.Process(parent.pid).children()}
                   - set(ports.workers)).pop()  # fmt: skip
    wait_until(lambda: _listening(replacement, ports.report_port), "the new worker listening")
    # The ready file names the live workers (it kept the dead one's process id).
    named = json.loads((tmp_path / "ready.json").read_text())["workers"]
    assert replacement in named and victim not in named, named


def _presences(config: CollectorConfig) -> dict[str, int]:
    """The serving processes' presences on the database: name -> until (microseconds)."""
    store = Store.open_reader(config.database)
    try:
        rows = store._db.execute(
            "SELECT name, until_us FROM leases WHERE name LIKE 'serving/%'"
        ).fetchall()
    finally:
        store.close()
    return {str(name): int(until) for name, until in rows}


def test_a_worker_started_again_takes_up_the_dead_ones_presence(
    workers: tuple[subprocess.Popen[str], Ready], folder: CollectorConfig
) -> None:
    # The dead worker's presence was counted for its three periods (90 s) beside its
    # replacement's: "3 collector processes serve on this database", each keeping a third of
    # a device's rate limit instead of half.
    parent, ports = workers
    wait_until(lambda: len(_presences(folder)) == 2, "both workers present")
    before = _presences(folder)
    victim = ports.workers[1]
    psutil.Process(victim).kill()
    wait_until(lambda: victim not in {p.pid for p in psutil.Process(parent.pid).children()}
               and len(psutil.Process(parent.pid).children()) == 2, "the worker started again")
    # Its replacement's first presence: a new name beside the dead one's, or the dead one's
    # renewed under its name.
    wait_until(lambda: set(_presences(folder)) != set(before)
               or any(_presences(folder)[n] > before[n] for n in before
                      if n.endswith(":worker-1")), "the new worker's presence")  # fmt: skip
    after = _presences(folder)
    assert set(after) == set(before) and len(after) == 2, (before, after)


def test_workers_die_with_a_parent_that_is_killed(
    workers: tuple[subprocess.Popen[str], Ready]
) -> None:
    # SIGKILL of the parent (an OOM kill, `kill -9` of the MainPID): its workers went on
    # serving on the agent ports though the data folder's lock was gone with the parent, and
    # a second collector could start on the folder beside them.
    parent, ports = workers
    alive = [psutil.Process(pid) for pid in ports.workers]
    parent.kill()
    parent.wait(30)
    gone, still = psutil.wait_procs(alive, timeout=30)
    assert not still, [p.pid for p in still]
    assert len(gone) == len(ports.workers)


def test_a_stop_while_a_dead_worker_is_started_again_stops_everything(
    folder: CollectorConfig, tmp_path: Path
) -> None:
    # SIGTERM in the pause before a dead worker is started again (or while it starts): the
    # stop told the workers it knew, the new one was started after and told nothing, and the
    # parent waited for it forever (a service stop ended in SIGKILL, the new worker serving
    # on the agent ports until then).
    ready, log = tmp_path / "ready.json", tmp_path / "serve.log"
    with log.open("wb") as output:
        parent = subprocess.Popen(
            [COLLECTOR, "serve", "--data", str(folder.data_dir), "--workers", "2",
             "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
             "--metrics-port", "0", "--ready-file", str(ready)],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: ready.exists() or parent.poll() is not None, "the workers serving")
        workers = json.loads(ready.read_text())["workers"]
        psutil.Process(workers[1]).kill()
        # The supervisor has seen it die: it pauses RESTART_PAUSE_SECONDS, then starts one.
        wait_until(lambda: b"worker 1 exited with code -9: starting it again" in log.read_bytes(),
                   "the supervisor seeing the worker die")  # fmt: skip
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0, log.read_text(errors="replace")[-3000:]
        assert not (left := processes_left()), [p.cmdline() for p in left]
    finally:
        killed_after(parent)


# `serve --workers 2` in a Python of its own whose subprocess.Popen sends this process
# SIGTERM as it starts worker 1, after the fork and before Popen returns: where a service stop
# lands on a busy machine when worker 1's fork and exec are slow.
STOP_WHILE_WORKER_1_STARTS = """
import os, signal, subprocess, sys
from devposture.collector.cli import main

class StoppedWhileStarting(subprocess.Popen):
    def __init__(self, command, *args, **kwargs):
        super().__init__(command, *args, **kwargs)
        if "--worker" in command and command[command.index("--worker") + 1] == "1":
            os.kill(os.getpid(), signal.SIGTERM)  # handled before this Popen returns

subprocess.Popen = StoppedWhileStarting
sys.exit(main(sys.argv[1:]))
"""


def test_a_stop_while_a_worker_is_being_started_reaches_it(
    folder: CollectorConfig, tmp_path: Path
) -> None:
    # The stop's handler ran inside worker 1's Popen: it told the workers whose process it
    # knew (worker 0), worker 1 was known only after, told nothing, and the parent waited for
    # it forever while it served (the clean-clone CI, a service stop right after the start).
    script, log = tmp_path / "serve.py", tmp_path / "serve.log"
    script.write_text(STOP_WHILE_WORKER_1_STARTS, encoding="utf-8")
    with log.open("wb") as output:
        parent = subprocess.Popen(
            [sys.executable, str(script), "serve", "--data", str(folder.data_dir),
             "--workers", "2", "--enroll-port", "0", "--report-port", "0",
             "--admin-port", "0", "--metrics-port", "0",
             "--ready-file", str(tmp_path / "ready.json")],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        code = parent.wait(120)
        said = log.read_text(errors="replace")
        assert code == 0, said[-3000:]
        assert "stopping before every worker was serving" in said, said[-3000:]
        assert not (tmp_path / "ready.json").exists()
        assert not (left := processes_left()), [p.cmdline() for p in left]
    finally:
        killed_after(parent)


def killed_after(parent: subprocess.Popen[Any]) -> None:
    """What a test of `serve --workers` leaves running, whatever happened: the supervisor,
    then every process of the test's tree (a worker it had not yet reaped)."""
    if parent.poll() is None:
        parent.kill()
        parent.wait(30)
    kill_left_running()


def processes_left() -> list[psutil.Process]:
    """This test's child processes still running (not zombies): a stop of `serve --workers`
    must leave none."""
    return left_running()


def _listening(pid: int, port: int) -> bool:
    return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
               for c in psutil.Process(pid).net_connections("tcp"))  # fmt: skip


def test_workers_must_be_a_sensible_number(folder: CollectorConfig) -> None:
    done = subprocess.run([COLLECTOR, "serve", "--data", str(folder.data_dir), "--workers", "0"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "--workers must be a whole number from 1 to 64 (one per core), not '0'" in done.stderr
