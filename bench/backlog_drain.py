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

    .venv/bin/python bench/backlog_drain.py --agents 50 --backlog 168
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
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.e2e.fleet

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
    figures = {"calls": 0.0, "failures": 0.0, "reports": 0.0, "done_after": 0.0}
    while True:
        result = drain(state, enrollment, outbox)
        figures["calls"] += result.calls
        figures["reports"] += result.delivered
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


def fill(agents: list[SimAgent], backlog: int) -> int:
    """Each outbox gets `backlog` hourly reports, the last one now; the bound is checked after
    every put. Returns the largest outbox seen, in bytes."""
    end = utcnow()
    largest = 0
    for agent in agents:
        for hour in range(backlog):
            at = end - dt.timedelta(hours=backlog - 1 - hour)
            agent.put(agent.report(at, updates_pending=40 + (hour // 8) % 5))
            held = agent.pending_bytes()
            assert held <= agent.outbox.max_bytes, f"{agent.name}: outbox past its bound"
            largest = max(largest, held)
    return largest


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
    args = parser.parse_args()
    max_bytes = args.outbox_kb * 1024
    print(f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; {args.agents} agents x"
          f" {args.backlog} reports, outbox bound {args.outbox_kb} KB,"
          f" agents in {args.procs} process(es),"
          f" collector {'in this process' if args.in_process else 'as a process'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="devposture-bench-") as tmp:
        root = Path(tmp)
        server = CollectorServer.create(root)
        in_process: InProcessCollector | None = None
        try:
            server.start()
            agents = enroll_fleet(server, root / "agents", args.agents, max_bytes=max_bytes)
            assert server.stop() == 0  # the outage
            largest = fill(agents, args.backlog)
            waiting = sum(a.pending_count() for a in agents)
            made = sum(len(a.made) for a in agents)

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
            time.sleep(2.0)  # the workers have imported everything and wait for the go

            if args.in_process:
                in_process = InProcessCollector(server)
            else:
                server.start()
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
            figures = in_process.figures() if in_process is not None else None
            if in_process is not None:
                in_process.stop()
                in_process = None
            else:
                assert server.stop() == 0
            stored = len(set(server.stored_ids()))
            left = sum(a.pending_count() for a in agents)
        finally:
            if in_process is not None:
                in_process.stop()
            server.close()

    assert not errors, errors
    last = max(r["done_after"] for r in results)
    calls = int(sum(r["calls"] for r in results))
    failures = int(sum(r["failures"] for r in results))
    print(f"agents {args.agents}, reports made {made}, waiting after the outage {waiting}"
          f" (largest outbox {largest / 1024:.0f} KB of {args.outbox_kb} KB)")  # fmt: skip
    print(f"drained in {last:.2f} s (all workers done after {seconds:.2f} s):"
          f" {waiting / last:.0f} reports/s, {calls} calls, {failures} retries")  # fmt: skip
    print(f"stored {stored} distinct reports; left in outboxes {left}")
    unreachable = "not reachable from a collector process (run with --in-process)"
    print(f"collector commit figures: {figures or unreachable}")
    print(f"outbox bound held: {'yes' if largest <= max_bytes else 'NO'}")


if __name__ == "__main__":
    main()
