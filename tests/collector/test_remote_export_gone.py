"""A remote `audit export` whose caller has gone stops, and exports run one at a time.

A real collector process (`serve`, either engine) with its workers forced for every period
(runs of one entry), and real command lines as the auditor's computer (`audit export
--collector …`). The collector holds its export once its first run came back from a worker,
and says so on its standard output with the workers' process ids: that is the moment the test
sends the client its Ctrl-C (or kills it, or lets its deadline pass). Until the export's
caller is seen gone, it holds there (an event, never a sleep), so the export cannot end on its
own before; a collector that never notices goes on to write the bundle, which the test sees.

Then: no worker process is left, the collector's temporary folder is gone, the audit log says
the export was cancelled, and the collector serves the next export. A second export asked
while one runs is refused, RESOURCE_EXHAUSTED, naming who runs it and what to do; one asked
while an export whose caller has gone is ending waits for it, then runs (`admin/one_export`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
import pytest

from devposture.collector.clock import utcnow
from devposture.collector.config import load
from devposture.collector.credentials import AUDITOR, new_credential
from devposture.collector.datadir import EXPORT_FOLDER_PREFIX, initialize
from devposture.collector.evidence import batches, export, stopping
from devposture.collector.store import Store
from devposture.collector.store.admin import AuditEntry
from devposture.net.pinning import fingerprint as pin_of
from devposture.policy import default_policy
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import admin_pb2_grpc as admin_grpc
from tests.databases import collector_database
from tests.leftovers import kill_left_running
from tests.waiting import wait_until

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")
# How long a line the test waits for may take: only a hung collector reaches it.
HUNG = 120.0

# `serve`, with every period's rows checked by two workers in runs of one entry. Its first
# export stops once a run came back from a worker and prints "held" with the workers' ids,
# then goes on: "gone" once the service has told it its caller went away (printing "gone"),
# "told" once the test writes a line, "gone-told" after both. Once the file named after the
# mode exists (`Collector.no_hold`), no export holds: an export whose caller went before any
# run came back (a deadline passed early) never reached the hold, and the next export, whose
# caller never goes, must not take it.
_DRIVER = """
import json, os, sys
from devposture.collector.cli import main
from devposture.collector.evidence import batches, check_pool

check_pool.workers_for = lambda entries: 2
batches.MOST_READ = 1
mode, no_hold = sys.argv[1], sys.argv[2]
answer = check_pool.Workers._answer
held = []

def answer_here(self, number, kind):
    value = answer(self, number, kind)
    if kind == "done" and not held and not os.path.exists(no_hold):
        held.append(True)
        print("held " + json.dumps([p.pid for p, _ in self._workers]), flush=True)
        stop = getattr(self, "_stop", None)
        if mode.startswith("gone") and stop is not None:
            stop.wait()
            print("gone", flush=True)
        if mode.endswith("told"):
            sys.stdin.readline()
    return value

check_pool.Workers._answer = answer_here
sys.exit(main(sys.argv[3:]))
"""


@dataclass
class Collector:
    process: subprocess.Popen[str]
    data: Path
    admin_port: int
    fingerprint: str
    credential: Path
    lines: queue.Queue[str]
    log: Path
    serving: list[int]  # what the collector started before any export (`_spawned`)
    no_hold: Path  # made once no export may hold any more (`_DRIVER`)

    def said(self, start: str) -> str:
        """The collector's next line of its own that begins with `start` (others skipped)."""
        while True:
            line = self.lines.get(timeout=HUNG)
            if line.startswith(start):
                return line

    def go_on(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go on\n")
        self.process.stdin.flush()

    def audit(self) -> list[AuditEntry]:
        store = Store.open_reader(load(self.data).database)
        try:
            return [e for e in store.admin.audit_entries() if e.command == "audit export"]
        finally:
            store.close()

    def folders(self) -> list[Path]:
        return list(self.data.glob(EXPORT_FOLDER_PREFIX + "*"))

    def checkers(self) -> list[int]:
        """The export's worker processes still there: the collector's children started by
        multiprocessing, less those it serves with (its report writer)."""
        return sorted(set(_spawned(self.process.pid)) - set(self.serving))

    def client(self, out: Path, *, group: bool = True) -> subprocess.Popen[str]:
        """`audit export` from the auditor's computer, in a session of its own (the group a
        terminal's Ctrl-C reaches), in English."""
        start, end = utcnow() - dt.timedelta(hours=1), utcnow() + dt.timedelta(seconds=1)
        return subprocess.Popen(
            [COLLECTOR, "audit", "export", "--collector", f"127.0.0.1:{self.admin_port}",
             "--ca-fingerprint", self.fingerprint, "--credential-file", str(self.credential),
             "--from", start.isoformat(), "--to", end.isoformat(), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=group, env={**os.environ, "LANGUAGE": "en"},
        )  # fmt: skip


def _spawned(pid: int) -> list[int]:
    """The children of `pid` that multiprocessing spawned (not its resource tracker)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _history(data: Path) -> None:
    """Entries for a period: six admin calls audited, each an entry of the chain."""
    store = Store.open(load(data).database)
    try:
        for _ in range(6):
            store.admin.audit(utcnow(), actor="Li Wei (IT)", credential_id=None, role="admin",
                              command="report fleet", arguments={}, outcome="ok", message="",
                              peer="ipv4:10.0.0.8:50122")  # fmt: skip
    finally:
        store.close()


def _serve(tmp_path: Path, mode: str) -> Iterator[Collector]:
    config, ca_cert = initialize(tmp_path / "collector", "127.0.0.1",
                                 database=collector_database())  # fmt: skip
    toml = config.data_dir / "collector.toml"
    text, found = re.subn(r"(?ms)^(\[web\].*?^enabled = )true$", r"\g<1>false", toml.read_text(),
                          count=1)  # fmt: skip
    assert found == 1
    toml.write_text(text)
    credential = new_credential()
    store = Store.open(config.database)
    try:
        store.admin.add_credential(credential, "Zhao Min (audit)", AUDITOR, utcnow())
    finally:
        store.close()
    _history(config.data_dir)
    secret = tmp_path / "auditor.credential"
    secret.write_text(str(credential))
    secret.chmod(0o600)
    ready, log = tmp_path / "ready.json", tmp_path / "collector.log"
    no_hold = tmp_path / "no-hold"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, mode, str(no_hold), "serve", "--data",
             str(config.data_dir),
             "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
             "--metrics-port", "0", "--drain-seconds", "0", "--ready-file", str(ready)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True,
        )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, "the collector serving")
        assert process.poll() is None, log.read_text()
        port = json.loads(ready.read_text())["admin_port"]
        yield Collector(process, config.data_dir, port, pin_of(ca_cert), secret, lines, log,
                        _spawned(process.pid), no_hold)  # fmt: skip
    finally:
        assert process.stdin is not None
        process.stdin.close()  # a hold on a line the test did not send goes on
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            kill_left_running()


@pytest.fixture
def gone(tmp_path: Path) -> Iterator[Collector]:
    yield from _serve(tmp_path, "gone")


def _ended(collector: Collector) -> None:
    """What an export whose caller went away leaves: nothing. Waits for its audit entry (the
    export's own last step) and its folder gone, then holds the rest."""
    wait_until(lambda: bool(collector.audit()) and not collector.folders(),
               "the stopped export audited and its folder removed", timeout=HUNG)  # fmt: skip
    [entry] = collector.audit()
    assert entry.outcome == "error", entry
    assert entry.message.startswith("cancelled: the caller of this export went away"), entry
    assert collector.checkers() == [], "a worker process was left running"


def _exports_again(collector: Collector, out: Path) -> None:
    """The collector still serves an export (no hold this time) after the one that stopped."""
    collector.no_hold.touch()
    again = collector.client(out)
    _, err = again.communicate(timeout=HUNG)
    assert again.returncode == 0, err
    assert out.stat().st_size > 0
    assert [e.outcome for e in collector.audit()][-1] == "ok"
    assert collector.checkers() == [] and collector.folders() == []


@pytest.mark.parametrize("how", ["ctrl-c", "killed"])
def test_an_export_whose_client_is_gone_stops_its_workers_and_leaves_nothing(
    gone: Collector, tmp_path: Path, how: str
) -> None:
    """Ctrl-C (the client cancels its call) or SIGKILL (its connection drops): the collector
    kept exporting, workers and all, to the end of the period, for nobody."""
    out = tmp_path / "gone.zip"
    client = gone.client(out)
    try:
        workers = json.loads(gone.said("held ").removeprefix("held "))
        assert len(workers) == 2 and sorted(gone.checkers()) == sorted(workers)
        if how == "ctrl-c":
            os.killpg(client.pid, signal.SIGINT)  # what the terminal sends the whole group
        else:
            client.kill()
        _, err = client.communicate(timeout=HUNG)
    finally:
        if client.poll() is None:
            client.kill()
    if how == "ctrl-c":  # the client's own part (e2ecc89)
        assert client.returncode == 130, err
        assert err == "devposture-collector: error: interrupted (Ctrl-C)\n", err
        assert not list(tmp_path.glob("gone.zip*")), "the client left its partial file"
    _ended(gone)
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).ppid() != gone.process.pid
               for pid in workers)  # fmt: skip
    _exports_again(gone, tmp_path / "again.zip")


@pytest.mark.parametrize("deadline", [5.0, 0.2])
def test_an_export_whose_deadline_passed_stops_and_leaves_nothing(
    gone: Collector, tmp_path: Path, deadline: float
) -> None:
    """A caller's deadline that passes mid-export ends the call for the caller; the export
    must end with it. Wherever the deadline falls (at the export's hold, or before it reached
    it: 0.2 s, as a busy machine's 5 s did), the export that ran is audited as cancelled and
    leaves nothing, and the next export runs."""
    ca = (gone.data / "ca" / "ca.crt").read_bytes()
    start, end = utcnow() - dt.timedelta(hours=1), utcnow() + dt.timedelta(seconds=1)
    request = admin_pb.AdminCommand(command=["audit", "export"], arguments={
        "from": start.isoformat(), "to": end.isoformat()})  # fmt: skip
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    with grpc.secure_channel(f"127.0.0.1:{gone.admin_port}", credentials) as channel:
        stream = admin_grpc.AdminStub(channel).Export(
            request, timeout=deadline,
            metadata=(("authorization", f"Bearer {gone.credential.read_text()}"),),
        )  # fmt: skip
        with pytest.raises(grpc.RpcError) as call:
            for _ in stream:
                pass
    assert call.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Its folder is made as the call begins: gone once the export has ended.
    wait_until(lambda: not gone.folders(), "the export's folder removed", timeout=HUNG)
    entries = gone.audit()
    assert [e.outcome for e in entries] in ([], ["error"]), entries
    assert all(e.message.startswith("cancelled:") for e in entries), entries
    assert gone.checkers() == []
    _exports_again(gone, tmp_path / "again.zip")


@pytest.fixture
def told(tmp_path: Path) -> Iterator[Collector]:
    yield from _serve(tmp_path, "told")


def test_a_second_export_while_one_runs_is_refused_naming_it_and_the_fix(
    told: Collector, tmp_path: Path
) -> None:
    """One export at a time: a second caller is answered at once, RESOURCE_EXHAUSTED, with
    who runs the first and what to do, and writes nothing; once the first has ended, the
    same command exports."""
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    running = told.client(first)
    try:
        told.said("held ")
        refused = told.client(second)
        _, err = refused.communicate(timeout=HUNG)
        assert refused.returncode == 1, err
        assert "another audit export is running on this collector" in err, err
        assert "asked by Zhao Min (audit) at " in err and "RESOURCE_EXHAUSTED" in err, err
        assert "Run yours again once it has ended" in err, err
        assert not list(tmp_path.glob("second.zip*"))
        told.go_on()
        _, err = running.communicate(timeout=HUNG)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0, err
    entries = told.audit()
    assert [e.outcome for e in entries] == ["error", "ok"], entries
    assert entries[0].message.startswith("another audit export is running on this collector")
    _exports_again(told, second)


@pytest.fixture
def gone_told(tmp_path: Path) -> Iterator[Collector]:
    yield from _serve(tmp_path, "gone-told")


def test_an_export_asked_while_a_cancelled_one_ends_waits_for_it_then_runs(
    gone_told: Collector, tmp_path: Path
) -> None:
    """The auditor who pressed Ctrl-C and typed the command again is not refused because
    their own cancelled export is still ending: the new one waits for it, then runs."""
    collector = gone_told
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    cancelled = collector.client(first)
    try:
        workers = json.loads(collector.said("held ").removeprefix("held "))
        os.killpg(cancelled.pid, signal.SIGINT)
        assert cancelled.wait(timeout=HUNG) == 130
        collector.said("gone")  # the export knows, and is held before it ends
        again = collector.client(second)
        wait_until(lambda: "waits for the one whose caller went away" in collector.log.read_text(),
                   "the second export waiting", timeout=HUNG)  # fmt: skip
        assert again.poll() is None, again.communicate()
        collector.go_on()
        _, err = again.communicate(timeout=HUNG)
    finally:
        for client in (cancelled, locals().get("again")):
            if isinstance(client, subprocess.Popen) and client.poll() is None:
                client.kill()
    assert again.returncode == 0, err
    assert second.stat().st_size > 0 and not first.exists()
    assert [e.outcome for e in collector.audit()] == ["error", "ok"]
    assert collector.audit()[0].message.startswith("cancelled:")
    assert not any(pid in collector.checkers() for pid in workers)
    assert collector.folders() == []


def test_an_export_made_in_its_own_process_stops_at_its_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small period is made without workers (`check_pool.InProcess`): told to stop as its
    first run is done, it stops before the next, writing nothing."""
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    _history(config.data_dir)
    monkeypatch.setattr(batches, "MOST_READ", 1)
    stop = stopping.Stop()
    runs: list[int] = []

    def progress(done: int, total: int) -> None:
        runs.append(done)
        stop.set()  # as the admin service does when the call ends

    out = tmp_path / "stopped.zip"
    store = Store.open(config.database)
    try:
        with pytest.raises(stopping.Stopped, match=r"^cancelled: the caller"):
            export.export_bundle(store, default_policy(), config.data_dir,
                                 start=utcnow() - dt.timedelta(hours=1), end=utcnow(), out=out,
                                 progress=progress, stop=stop)  # fmt: skip
    finally:
        store.close()
    assert runs == [1], "it went on past the run it was told on"
    assert list(tmp_path.glob("stopped*")) == []
