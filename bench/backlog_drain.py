"""Benchmark: how long a fleet's backlog takes to drain after a collector outage.

`--agents` simulated agents (real agent code: AgentState, Outbox, transport.drain; see
tests/e2e/fleet.py) enroll with a real `devposture-collector serve` process in a temporary
folder. The collector goes down; each agent's outbox fills with `--backlog` hourly reports
(168: a week), checking after every report that the outbox stays within its bound
(`--outbox-kb`, default the agent's). The collector comes back, and the clock runs from
the moment the agents start draining (in `--procs` processes, one thread per agent, retrying
on the collector's retry hint or after a short backoff) until every outbox is empty.

With `--in-process` the collector runs inside this process instead (same server code,
started with collector.server.start) so that its group-commit figures can be printed; the
agents then always run in separate processes.

`--postgresql URL` runs the collector on a new database of that PostgreSQL server (a schema of
a database made for the run and dropped at its end, as the tests' PostgreSQL leg does). The
collector's CPU during the drain is printed per report (with the PostgreSQL backends serving
it, apart), and what the measured rate means for a larger fleet (`--extrapolate`).

At scale (thousands of agents), `--fast-fill` writes the outboxes without their fsyncs (the
fill is not what is measured, and a million fsyncs take an hour on a VM disk) and
`--check-every N` checks the outbox bound every N reports instead of after each one.
Afterwards, every report made is stored exactly once (report ids and bodies), none is left
in an outbox, and each agent's acknowledgements cover what it made: "without loss or
duplicates".

    .venv/bin/python bench/backlog_drain.py --agents 50 --backlog 168
    .venv/bin/python bench/backlog_drain.py --agents 1000 --backlog 100 --fast-fill \
        --check-every 100 --procs 4 [--postgresql postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.e2e.fleet


import tests.databases
from bench.process_cpu import cpu_seconds, database_backends, with_children
from devposture.agent.outbox import DEFAULT_MAX_BYTES, Outbox
from devposture.agent.state import AgentState
from devposture.agent.transport import drain
from devposture.collector import server as collector_server
from devposture.collector.config import load
from tests.e2e.fleet import CollectorServer, SimAgent, enroll_fleet, utcnow


@dataclass(frozen=True)
class Share:
    states: list[Path]
    max_bytes: int


def _drain_one(state_dir: Path, max_bytes: int, started: float) -> dict[str, float]:
    state = AgentState(state_dir)
    enrollment = state.load()
    outbox = Outbox(state.outbox_dir, max_bytes)
    rng = random.Random(str(state_dir))
    figures = {"calls": 0.0, "failures": 0.0, "reports": 0.0, "done_after": 0.0,
               "duplicates": 0.0}  # fmt: skip
    while True:
        result = drain(state, enrollment, outbox)
        figures["calls"] += result.calls
        figures["reports"] += result.delivered
        figures["duplicates"] += len(result.duplicates)
        if result.set_aside:
            raise AssertionError(f"reports set aside: {result.set_aside[:3]}")
        if result.stopped_by is None and not outbox.pending():
            figures["done_after"] = time.monotonic() - started
            return figures
        figures["failures"] += 1
        time.sleep(result.retry_after if result.retry_after is not None else rng.uniform(0.05, 0.3))


def drain_share(share: Share, go: EventType, out: Connection) -> None:
    """A worker process: wait for the go, drain every agent of the share, one thread each."""
    results: list[dict[str, float]] = []
    errors: list[str] = []
    go.wait()
    started = time.monotonic()

    def one(state_dir: Path) -> None:
        try:
            results.append(_drain_one(state_dir, share.max_bytes, started))
        except BaseException as exc:
            errors.append(f"{state_dir.name}: {exc!r}")

    threads = [threading.Thread(target=one, args=(s,)) for s in share.states]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send((results, errors))


def fill(agents: list[SimAgent], backlog: int, check_every: int = 1) -> int:
    """Each outbox gets `backlog` hourly reports, the last one now; the bound is checked after
    every `check_every` puts and after the last. Returns the largest outbox seen, in bytes."""
    end = utcnow()
    largest = 0
    for agent in agents:
        for hour in range(backlog):
            at = end - dt.timedelta(hours=backlog - 1 - hour)
            agent.put(agent.report(at, updates_pending=40 + (hour // 8) % 5))
            if (hour + 1) % check_every and hour + 1 < backlog:
                continue
            held = agent.pending_bytes()
            assert held <= agent.outbox.max_bytes, f"{agent.name}: outbox past its bound"
            largest = max(largest, held)
    return largest


@dataclass(frozen=True)
class FillShare:
    agents: list[tuple[str, Path]]  # name, state folder
    backlog: int
    max_bytes: int
    check_every: int
    fast: bool


def fill_share(share: FillShare, out: Connection) -> None:
    """A fill process: the same fill, for its share of the agents; sends back the largest
    outbox seen and the ids each agent made."""
    agents = []
    for name, folder in share.agents:
        state = AgentState(folder)
        agents.append(
            SimAgent(name, state, state.load(), Outbox(state.outbox_dir, share.max_bytes))
        )
    with without_fsync() if share.fast else nullcontext():
        largest = fill(agents, share.backlog, share.check_every)
    out.send((largest, [a.made for a in agents]))


def fill_in_processes(agents: list[SimAgent], args: argparse.Namespace, max_bytes: int) -> int:
    """`fill` in `--procs` processes, each over its share of the agents (the outbox code scans
    its folder at every report: at thousands of agents the fill takes longer than the drain)."""
    spawn = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for i in range(args.procs):
        share = agents[i :: args.procs]
        receive, send = spawn.Pipe(duplex=False)
        work = FillShare([(a.name, a.state.directory) for a in share], args.backlog, max_bytes,
                         args.check_every, args.fast_fill)  # fmt: skip
        process = spawn.Process(target=fill_share, args=(work, send))
        process.start()
        pipes.append((receive, share))
        processes.append(process)
    largest = 0
    for (receive, share), process in zip(pipes, processes, strict=True):
        most, made = receive.recv()
        largest = max(largest, most)
        for agent, ids in zip(share, made, strict=True):
            agent.made.extend(ids)
        process.join()
    return largest


@contextmanager
def without_fsync() -> Iterator[None]:
    """os.fsync as a no-op in this process, for filling outboxes at scale (`--fast-fill`):
    the same files, written by the agent's own outbox code, only not forced to the disk."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


class InProcessCollector:
    """The collector's server in a thread of this process, for its commit figures."""

    def __init__(self, server: CollectorServer) -> None:
        self.config = load(server.data)
        self.ports = server.enroll_port, server.report_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = collector_server.start(self.config, *self.ports, "127.0.0.1")
        self.running = asyncio.run_coroutine_threadsafe(start, self.loop).result(30)

    def figures(self) -> str:
        f = self.running.service.committer.figures
        average = f.reports / f.commits if f.commits else 0.0
        return (f"commits {f.commits}, reports {f.reports}, average group {average:.1f},"
                f" largest group {f.largest_group}, failed commits {f.failures}")  # fmt: skip

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(5, drain=0), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=168, help="reports per agent (hourly)")
    parser.add_argument("--procs", type=int, default=2, help="agent processes")
    parser.add_argument("--outbox-kb", type=int, default=DEFAULT_MAX_BYTES // 1024)
    parser.add_argument(
        "--in-process", action="store_true",
        help="run the collector in this process and print its commit figures",
    )  # fmt: skip
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        default="",
        help="run the collector on a new database of this PostgreSQL server",
    )
    parser.add_argument(
        "--fast-fill", action="store_true", help="fill the outboxes without fsync (at scale)"
    )
    parser.add_argument(
        "--check-every",
        type=int,
        default=1,
        metavar="N",
        help="check the outbox bound every N reports of the fill",
    )
    parser.add_argument("--extrapolate", default="10000x100", metavar="AGENTSxREPORTS",
                        help="the fleet the measured rate is extrapolated to")  # fmt: skip
    args = parser.parse_args()
    if args.postgresql:  # CollectorServer.create's `init` asks tests.databases where
        tests.databases.SERVER = args.postgresql
    max_bytes = args.outbox_kb * 1024
    print(f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; {args.agents} agents x"
          f" {args.backlog} reports, outbox bound {args.outbox_kb} KB,"
          f" agents in {args.procs} process(es),"
          f" collector {'in this process' if args.in_process else 'as a process'}"
          f" on {'PostgreSQL' if args.postgresql else 'SQLite'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="devposture-bench-") as tmp:
        root = Path(tmp)
        server = CollectorServer.create(root)
        in_process: InProcessCollector | None = None
        try:
            server.start()
            began = time.monotonic()
            agents = enroll_fleet(server, root / "agents", args.agents, max_bytes=max_bytes)
            print(f"enrolled {args.agents} agents in {time.monotonic() - began:.0f} s")
            assert server.stop() == 0  # the outage
            began = time.monotonic()
            largest = fill_in_processes(agents, args, max_bytes)
            waiting_ids = {
                p.report.report_id
                for a in agents
                for p in Outbox(a.state.outbox_dir, max_bytes).pending()
            }
            waiting = len(waiting_ids)
            made = sum(len(a.made) for a in agents)
            print(f"filled the outboxes in {time.monotonic() - began:.0f} s")

            spawn = multiprocessing.get_context("spawn")
            go = spawn.Event()
            workers, pipes = [], []
            for i in range(args.procs):
                receive, send = spawn.Pipe(duplex=False)
                share = Share([a.state.directory for a in agents[i :: args.procs]], max_bytes)
                worker = spawn.Process(target=drain_share, args=(share, go, send))
                worker.start()
                workers.append(worker)
                pipes.append(receive)
            time.sleep(2.0 + args.agents / 1000)  # the workers wait for the go, imports done

            if args.in_process:
                in_process = InProcessCollector(server)
                pid = os.getpid()
            else:
                server.start()
                assert server.process is not None
                pid = server.process.pid
            backends = {b: cpu_seconds([b]) for b in database_backends(pid, server.database)}
            collector_pids = with_children(pid)  # with its report writer
            cpu_before = cpu_seconds(collector_pids)
            started = time.monotonic()
            go.set()
            results: list[dict[str, float]] = []
            errors: list[str] = []
            for receive, worker in zip(pipes, workers, strict=True):
                got, failed = receive.recv()
                results.extend(got)
                errors.extend(failed)
                worker.join()
            seconds = time.monotonic() - started
            collector_cpu = cpu_seconds(collector_pids) - cpu_before
            database_cpu = sum(cpu_seconds([b]) - backends.get(b, 0.0)
                               for b in database_backends(pid, server.database))  # fmt: skip
            figures = in_process.figures() if in_process is not None else None
            if in_process is not None:
                in_process.stop()
                in_process = None
            else:
                assert server.stop() == 0
            stored_ids = server.stored_ids()
            left = sum(a.pending_count() for a in agents)
        finally:
            if in_process is not None:
                in_process.stop()
            server.close()

    assert not errors, errors
    stored = set(stored_ids)
    lost = len(waiting_ids - stored)
    twice = len(stored_ids) - len(stored)
    last = max(r["done_after"] for r in results)
    calls = int(sum(r["calls"] for r in results))
    failures = int(sum(r["failures"] for r in results))
    acked_twice = int(sum(r["duplicates"] for r in results))
    rate = waiting / last
    print(f"agents {args.agents}, reports made {made}, waiting after the outage {waiting}"
          f" (largest outbox {largest / 1024:.0f} KB of {args.outbox_kb} KB)")  # fmt: skip
    print(f"drained in {last:.2f} s (all workers done after {seconds:.2f} s):"
          f" {rate:.0f} reports/s, {calls} calls, {failures} retries")  # fmt: skip
    print(f"stored {len(stored)} distinct reports ({twice} stored twice); waiting reports not"
          f" stored {lost}; left in outboxes {left}; acknowledged as duplicates (sent again"
          f" after a lost answer) {acked_twice}")  # fmt: skip
    per_report = (collector_cpu + database_cpu) / waiting * 1e6
    database = f" + PostgreSQL {database_cpu / waiting * 1e6:.0f} us" if database_cpu else ""
    where = " (this whole process)" if args.in_process else ""
    print(f"collector CPU during the drain: {collector_cpu:.1f} s{where},"
          f" {collector_cpu / waiting * 1e6:.0f} us per report{database}")  # fmt: skip
    unreachable = "not reachable from a collector process (run with --in-process)"
    print(f"collector commit figures: {figures or unreachable}")
    print(f"outbox bound held: {'yes' if largest <= max_bytes else 'NO'}")
    print(f"without loss or duplicates: {'yes' if not (lost or twice or left) else 'NO'}")
    fleet_agents, fleet_reports = (int(n) for n in args.extrapolate.split("x"))
    total = fleet_agents * fleet_reports
    print(f"extrapolated: {fleet_agents} agents x {fleet_reports} reports = {total} reports at"
          f" {rate:.0f} reports/s: {total / rate:.0f} s on this machine; in 120 s they need"
          f" {total / 120:.0f} reports/s, {total * per_report / 1e6 / 120:.1f} cores of collector"
          f" CPU at {per_report:.0f} us per report (agents, and on one worker the event loop's"
          f" own share, not included)")  # fmt: skip


if __name__ == "__main__":
    main()
