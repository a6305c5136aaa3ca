"""Benchmark: the collector's ingest against a bare gRPC echo server on the same machine.

Target (issue 6): the collector ingests at least 70 % of what a bare grpc.aio echo server
manages with the same TLS and the same load. Both servers are one process each, serve
mutual TLS with the collector's own certificates (server certificate, CA, client certificates
of enrolled devices), and get the same requests from the same clients:

* (a) echo: `Report` answers a ReportAck with the report id; `ReportBatch` one per report.
  Nothing is validated, judged or stored.
* (b) the real `devposture-collector serve`: validation, identity (admission per call),
  policy evaluation, group commit with synchronous=FULL (by its report writer, a child
  process whose CPU counts as the collector's), then the acknowledgement. Rate limits are
  raised so that they never speak (collector.toml [limits]). Each device's client sends back
  the digest of the verdicts it was given (`verdicts_held`), as the agent does, so the
  verdicts ride again only when they change.

The load: `--clients` client processes, each with `--inflight` calls in flight at all times
over one channel per device (`--devices` enrolled devices shared among the clients, each
call in flight taking the next of them in turn), every call a fresh realistic PostureReport
(about 2 KB, a new report id). Before the first phase every device reports once (its
certificate's first use is written once in its life: not what a steady fleet costs). Each
phase warms up for
a second, then counts the calls completed in the next `--seconds`. With `--batch N` (default
64) it also measures ReportBatch throughput in reports/s (`--batch-inflight` batches in
flight per client); `--batch 0` skips that.

The machine is shared (other jobs, the clients themselves), so each phase also prints the CPU
time the server process and the client processes spent per call within the counted window:
they move less than calls/s when something else runs alongside. `--rounds N` alternates echo
and collector phases N times (both servers up) and prints the median of the N ratios, each
taken from two adjacent phases, so a change of load between phases weighs less, and the
medians of the server CPU per report.

`--postgresql URL` runs the collector on a new database of that PostgreSQL server (a schema
of a database made for the run, dropped at the end, as the tests' PostgreSQL leg does); the
CPU of the PostgreSQL backends serving the collector's connections is then counted too,
apart ("database") and in the collector's total. `--fill-devices N` first stores N more
devices with a report and verdicts each (synthetic, through the store), so that the indexes
are those of a fleet of that size while the load comes from `--devices` enrolled agents;
`--no-unary` measures ReportBatch only.

    .venv/bin/python bench/ingest_vs_echo.py --seconds 10 --clients 2
    .venv/bin/python bench/ingest_vs_echo.py --no-unary --devices 1000 --fill-devices 99000 \
        --batch 64 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.e2e.fleet

import tests.databases
from bench.process_cpu import cpu_seconds, database_backends, with_children
from devposture.agent.state import AgentState
from devposture.collector.intake import record_of
from devposture.collector.store import CheckResult, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.target import DatabaseTarget
from devposture.policy import default_policy
from devposture.policy.checks import CheckParameters, evaluate, utc
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.e2e.fleet import CollectorServer, enroll_fleet, posture_report, utcnow

WARM_UP_SECONDS = 1.0
TARGET = 0.70
# Target for ReportBatch: server CPU per report, the database's included.
BATCH_TARGET_US = 120.0


# -- the echo server (a child process) ----------------------------------------------------


class Echo(pb_grpc.CollectorServicer):
    """Answers reports without looking at them; nothing else."""

    async def _unimplemented(self, context: grpc.aio.ServicerContext[object, object]) -> NoReturn:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "an echo server")
        raise AssertionError("abort raises")

    async def Enroll(
        self, request: pb.EnrollRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.EnrollResponse:
        await self._unimplemented(context)

    async def Renew(
        self, request: pb.RenewRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.RenewResponse:
        await self._unimplemented(context)

    async def Reestablish(
        self, request: pb.ReestablishRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.RenewResponse:
        await self._unimplemented(context)

    async def Report(
        self, request: pb.ReportRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ReportAck:
        ack = pb.ReportAck(report_id=request.report.report_id)
        ack.stored_at.GetCurrentTime()
        return ack

    async def ReportBatch(
        self, request: pb.ReportBatchRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ReportBatchResponse:
        now = Timestamp()
        now.GetCurrentTime()
        return pb.ReportBatchResponse(
            acks=[pb.ReportAck(report_id=r.report_id, stored_at=now) for r in request.reports]
        )


async def _serve_echo(data: Path, ready: Connection) -> None:
    credentials = grpc.ssl_server_credentials(
        [((data / "tls" / "server.key").read_bytes(), (data / "tls" / "server.crt").read_bytes())],
        root_certificates=(data / "ca" / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 1 << 20)])
    pb_grpc.add_CollectorServicer_to_server(Echo(), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    ready.send(port)
    await server.wait_for_termination()


def echo_server(data: Path, ready: Connection) -> None:
    asyncio.run(_serve_echo(data, ready))


# -- the clients (child processes) --------------------------------------------------------


@dataclass(frozen=True)
class Load:
    port: int
    states: list[Path]
    batch: int  # 0: unary Report calls
    inflight: int
    start_at: float  # time.time() when counting starts
    seconds: float


def _channel(state: AgentState, port: int) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=state.ca_path.read_bytes(),
        private_key=state.key_path.read_bytes(),
        certificate_chain=state.cert_path.read_bytes(),
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


def _fresh(template: pb.PostureReport) -> pb.PostureReport:
    report = pb.PostureReport()
    report.CopyFrom(template)
    report.report_id = str(uuid.uuid4())
    report.collected_at.GetCurrentTime()
    return report


async def _load(load: Load) -> dict[str, float]:
    states = [AgentState(s) for s in load.states]
    channels = [_channel(s, load.port) for s in states]
    stubs = [pb_grpc.CollectorStub(c) for c in channels]
    templates = [posture_report(s.load().device_id, utcnow()) for s in states]
    # Each device's digest of the verdicts it holds, sent back as an agent does (the echo
    # sends none, so it is never told anything).
    held = [b""] * len(stubs)
    end_at = load.start_at + load.seconds
    counts = {"calls": 0.0, "reports": 0.0, "errors": 0.0}
    codes: dict[str, float] = {}

    async def caller(index: int) -> None:
        # Call after call, each caller takes the next of its devices: every device of the
        # share sends, in turn (a fleet, not the same few devices over and over).
        which = index % len(stubs)
        while time.time() < end_at:
            device = which
            stub, template = stubs[device], templates[device]
            which = (which + load.inflight) % len(stubs)
            try:
                if load.batch:
                    batch = [_fresh(template) for _ in range(load.batch)]
                    response = await stub.ReportBatch(
                        pb.ReportBatchRequest(reports=batch, verdicts_held=held[device]),
                        timeout=60,
                    )
                    done = len(response.acks)
                    if response.acks and response.acks[-1].verdicts_digest:
                        held[device] = response.acks[-1].verdicts_digest
                else:
                    request = pb.ReportRequest(report=_fresh(template), verdicts_held=held[device])
                    ack = await stub.Report(request, timeout=30)
                    done = 1
                    if ack.verdicts_digest:
                        held[device] = ack.verdicts_digest
            except grpc.RpcError as exc:
                if load.start_at <= time.time() <= end_at:
                    counts["errors"] += 1
                    code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "?"
                    codes[code] = codes.get(code, 0) + 1
                await asyncio.sleep(0.01)
                continue
            if load.start_at <= time.time() <= end_at:  # completed within the window
                counts["calls"] += 1
                counts["reports"] += done

    await asyncio.gather(*(caller(i) for i in range(load.inflight)))
    for channel in channels:
        await channel.close()
    return {**counts, **{f"code:{k}": v for k, v in codes.items()}}


def client(load: Load, out: Connection) -> None:
    out.send(asyncio.run(_load(load)))


async def _first_reports(port: int, states: list[Path]) -> None:
    semaphore = asyncio.Semaphore(32)

    async def one(state: AgentState) -> None:
        async with semaphore, _channel(state, port) as channel:
            report = posture_report(state.load().device_id, utcnow())
            await pb_grpc.CollectorStub(channel).Report(pb.ReportRequest(report=report), timeout=60)

    await asyncio.gather(*(one(AgentState(s)) for s in states))


def first_reports(port: int, states: list[Path]) -> None:
    """One report from each device before anything is measured: a certificate's first use is
    written (and admissions learned) once in its life, not on every call of a steady fleet."""
    asyncio.run(_first_reports(port, states))


# -- the phases ---------------------------------------------------------------------------


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def measure(
    port: int,
    states: list[Path],
    args: argparse.Namespace,
    batch: int,
    server_pid: int,
    database_pids: list[int] | None = None,
) -> dict[str, float]:
    """Run one phase; the totals include the CPU seconds the server (`server_cpu`), the
    database backends serving it (`database_cpu`) and the clients (`client_cpu`) spent
    within the counted window."""
    database_pids = database_pids or []
    spawn = multiprocessing.get_context("spawn")
    shares = [states[i :: args.clients] for i in range(args.clients)]
    start_at = time.time() + 2.0 + WARM_UP_SECONDS  # time for the clients to start up
    pipes, processes = [], []
    for share in shares:
        receive, send = spawn.Pipe(duplex=False)
        inflight = args.batch_inflight if batch else args.inflight
        load = Load(port, share, batch, inflight, start_at, args.seconds)
        process = spawn.Process(target=client, args=(load, send))
        process.start()
        pipes.append(receive)
        processes.append(process)
    clients = [p.pid for p in processes if p.pid is not None]
    _sleep_until(start_at)
    server_pids = with_children(server_pid)  # the collector's report writer is its child
    children = [p for p in server_pids if p != server_pid]
    server_before, clients_before = cpu_seconds(server_pids), cpu_seconds(clients)
    database_before, children_before = cpu_seconds(database_pids), cpu_seconds(children)
    _sleep_until(start_at + args.seconds)
    server_cpu = cpu_seconds(server_pids) - server_before
    children_cpu = cpu_seconds(children) - children_before
    client_cpu = cpu_seconds(clients) - clients_before
    database_cpu = cpu_seconds(database_pids) - database_before
    totals: dict[str, float] = {
        "server_cpu": server_cpu, "client_cpu": client_cpu, "database_cpu": database_cpu,
        "children_cpu": children_cpu,  # the report writer's share of server_cpu
    }  # fmt: skip
    for receive, process in zip(pipes, processes, strict=True):
        for key, value in receive.recv().items():
            totals[key] = totals.get(key, 0.0) + value
        process.join()
    return totals


def _show(label: str, totals: dict[str, float], seconds: float, unit: str) -> float:
    rate = totals["reports" if unit == "reports" else "calls"] / seconds
    codes = {k[5:]: int(v) for k, v in totals.items() if k.startswith("code:")}
    errors = f", {int(totals['errors'])} errors {codes}" if totals["errors"] else ""
    print(f"{label:28} {rate:9.1f} {unit}/s  ({int(totals['calls'])} calls{errors})")
    done = totals["reports" if unit == "reports" else "calls"]
    if done:
        per = unit[:-1]
        database = (f" (+ database {totals['database_cpu'] / done * 1e6:.0f} us)"
                    if totals.get("database_cpu") else "")  # fmt: skip
        children = (f" (its report writer {totals['children_cpu'] / done * 1e6:.0f} us)"
                    if totals.get("children_cpu") else "")  # fmt: skip
        print(f"{'':28} CPU per {per}: server {totals['server_cpu'] / done * 1e6:6.0f} us"
              f"{children}{database},"
              f" clients {totals['client_cpu'] / done * 1e6:6.0f} us")  # fmt: skip
    return rate


def server_us(totals: dict[str, float], unit: str) -> float:
    """Server CPU per call or report in microseconds, its database backends included."""
    done = totals[unit]
    return (totals["server_cpu"] + totals.get("database_cpu", 0.0)) / done * 1e6 if done else 0.0


def fill_devices(target: DatabaseTarget, count: int) -> None:
    """Store `count` more devices, each with one report (a laptop's, judged by the default
    policy) and its verdicts, as ingest stores them, 500 to a transaction."""
    policy = default_policy()
    params = CheckParameters.from_values({c.check_id: c.parameters for c in policy.checks})
    check_ids = frozenset(c.check_id for c in policy.checks)
    now = utcnow()
    template = posture_report("fill", now)
    store = Store.open(target)
    try:
        for start in range(0, count, 500):
            ids = [f"fill-{i:07d}" for i in range(start, min(count, start + 500))]
            with store._db.transaction() as cursor:
                for device_id in ids:
                    cursor.execute(
                        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial,"
                        " cert_not_after_us) VALUES (?, ?, 'fill', ?, ?)",
                        (device_id, to_us(now), device_id, to_us(now)),
                    )
            group = []
            for device_id in ids:
                report = pb.PostureReport()
                report.CopyFrom(template)
                report.device_id, report.report_id = device_id, str(uuid.uuid4())
                results = [CheckResult(c.check_id, v.state.value, v.reason)
                           for c, v in evaluate(report, utc(report.collected_at), params,
                                                check_ids)]  # fmt: skip
                group.append((record_of(report, device_id, now, None), results))
            store.reports.store_reports(group)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--inflight", type=int, default=32, help="calls in flight per client")
    parser.add_argument("--devices", type=int, default=32, help="enrolled devices")
    parser.add_argument("--batch", type=int, default=64, help="reports per ReportBatch (0: skip)")
    parser.add_argument("--batch-inflight", type=int, default=4,
                        help="ReportBatch calls in flight per client")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1,
                        help="echo and collector phases, alternated (median ratio)")  # fmt: skip
    parser.add_argument("--no-unary", action="store_true", help="ReportBatch phases only")
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        default="",
        help="run the collector on a new database of this PostgreSQL server",
    )
    parser.add_argument(
        "--fill-devices",
        type=int,
        default=0,
        metavar="N",
        help="store N more devices (a report each) before measuring",
    )
    args = parser.parse_args()
    if args.postgresql:  # CollectorServer.create's `init` asks tests.databases where
        tests.databases.SERVER = args.postgresql
    print(f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, grpcio {grpc.__version__};"
          f" {args.clients} client process(es) x {args.inflight} calls in flight,"
          f" {args.devices} devices, {args.seconds:g} s per phase;"
          f" collector on {'PostgreSQL' if args.postgresql else 'SQLite'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="devposture-bench-") as tmp:
        root = Path(tmp)
        collector = CollectorServer.create(root)
        try:
            collector.start()
            agents = enroll_fleet(collector, root / "agents", args.devices)
            states = [a.state.directory for a in agents]
            assert collector.stop() == 0
            if args.fill_devices:
                started = time.monotonic()
                fill_devices(collector.database, args.fill_devices)
                print(f"{args.fill_devices} devices stored in {time.monotonic() - started:.0f} s")

            spawn = multiprocessing.get_context("spawn")
            receive, send = spawn.Pipe(duplex=False)
            echo = spawn.Process(target=echo_server, args=(collector.data, send), daemon=True)
            echo.start()
            echo_port: Any = receive.recv()
            assert echo.pid is not None
            rounds: list[Round] = []
            try:
                collector.start()
                assert collector.process is not None
                pid = collector.process.pid
                first = spawn.Process(target=first_reports, args=(collector.report_port, states))
                first.start()
                first.join()
                for _ in range(args.rounds):  # echo then collector, side by side in time
                    echo_unary = real_unary = echo_batch = real_batch = None
                    if not args.no_unary:
                        echo_unary = measure(echo_port, states, args, 0, echo.pid)
                        backends = database_backends(pid, collector.database)
                        real_unary = measure(collector.report_port, states, args, 0, pid,
                                             backends)  # fmt: skip
                    if args.batch:
                        echo_batch = measure(echo_port, states, args, args.batch, echo.pid)
                        backends = database_backends(pid, collector.database)
                        real_batch = measure(collector.report_port, states, args, args.batch,
                                             pid, backends)  # fmt: skip
                    rounds.append(Round(echo_unary, real_unary, echo_batch, real_batch))
            finally:
                echo.terminate()
                echo.join()
            stored = len(collector.stored_ids())
            assert collector.stop() == 0
        finally:
            collector.close()

    summaries = [_show_round(r, args) for r in rounds]
    print(f"reports stored by the collector: {stored}")
    if not args.no_unary:
        ratios = [s[0] for s in summaries]
        ratio = statistics.median(ratios)
        echo_us = statistics.median(
            server_us(r.echo_unary, "calls") for r in rounds if r.echo_unary
        )
        real_us = statistics.median(
            server_us(r.real_unary, "calls") for r in rounds if r.real_unary
        )
        print(
            f"Report, {len(rounds)} round(s): ratio collector/echo per round"
            f" {', '.join(f'{x:.1%}' for x in ratios)}; median {ratio:.1%};"
            f" server CPU per report (median) echo {echo_us:.0f} us, collector {real_us:.0f} us"
        )
        print(f"target: collector >= {TARGET:.0%} of echo (Report) ->"
              f" {'met' if ratio >= TARGET else 'NOT met'} ({ratio:.1%})")  # fmt: skip
    if args.batch:
        per_report = statistics.median(s[1] for s in summaries)
        print(f"ReportBatch x{args.batch}, {len(rounds)} round(s): collector server CPU per report"
              f" (median) {per_report:.0f} us")  # fmt: skip
        print(
            f"target: ReportBatch server CPU per report <= {BATCH_TARGET_US:.0f} us ->"
            f" {'met' if per_report <= BATCH_TARGET_US else 'NOT met'} ({per_report:.0f} us)"
        )


@dataclass(frozen=True)
class Round:
    echo_unary: dict[str, float] | None
    real_unary: dict[str, float] | None
    echo_batch: dict[str, float] | None
    real_batch: dict[str, float] | None


def _show_round(r: Round, args: argparse.Namespace) -> tuple[float, float]:
    """Print one round's figures; returns its unary ratio and the collector's server CPU per
    report in ReportBatch (database included)."""
    seconds = args.seconds
    ratio = 0.0
    if r.echo_unary is not None and r.real_unary is not None:
        a = _show("echo Report", r.echo_unary, seconds, "calls")
        b = _show("collector Report", r.real_unary, seconds, "calls")
        ratio = b / a if a else 0.0
        print(f"ratio collector/echo (Report): {ratio:.1%}")
    batch_us = 0.0
    if r.echo_batch is not None and r.real_batch is not None:
        c = _show(f"echo ReportBatch x{args.batch}", r.echo_batch, seconds, "reports")
        d = _show(f"collector ReportBatch x{args.batch}", r.real_batch, seconds, "reports")
        print(f"ratio collector/echo (ReportBatch): {d / c if c else 0.0:.1%}")
        batch_us = server_us(r.real_batch, "reports")
    return ratio, batch_us


if __name__ == "__main__":
    main()
