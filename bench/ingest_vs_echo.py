"""Benchmark: the collector's ingest against a bare gRPC echo server on the same machine.

Target (issue 6): the collector ingests at least 70 % of what a bare grpc.aio echo server
manages with the same TLS and the same load. Both servers are one process each, serve
mutual TLS with the collector's own certificates (server certificate, CA, client certificates
of enrolled devices), and get the same requests from the same clients:

* (a) echo: `Report` answers a ReportAck with the report id; `ReportBatch` one per report.
  Nothing is validated, judged or stored.
* (b) the real `devposture-collector serve`: validation, identity (admission per call),
  policy evaluation, group commit with synchronous=FULL, then the acknowledgement. Rate
  limits are raised so that they never speak (collector.toml [limits]).

The load: `--clients` client processes, each with `--inflight` calls in flight at all times
over one channel per device (`--devices` enrolled devices shared among the clients), every
call a fresh realistic PostureReport (about 2 KB, a new report id). Each phase warms up for
a second, then counts the calls completed in the next `--seconds`. With `--batch N` (default
64) it also measures ReportBatch throughput in reports/s (`--batch-inflight` batches in
flight per client); `--batch 0` skips that.

The machine is shared (other jobs, the clients themselves), so each phase also prints the CPU
time the server process and the client processes spent per call within the counted window:
unlike calls/s, those figures hardly move when something else runs alongside. `--rounds N`
alternates echo and collector phases N times (both servers up) and prints the median of the
N ratios, each taken from two adjacent phases, so a change of load between phases weighs less.

    .venv/bin/python bench/ingest_vs_echo.py --seconds 10 --clients 2
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
import psutil
from google.protobuf.timestamp_pb2 import Timestamp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.e2e.fleet

from devposture.agent.state import AgentState
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.e2e.fleet import CollectorServer, enroll_fleet, posture_report, utcnow

WARM_UP_SECONDS = 1.0
TARGET = 0.70


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
    end_at = load.start_at + load.seconds
    counts = {"calls": 0.0, "reports": 0.0, "errors": 0.0}
    codes: dict[str, float] = {}

    async def caller(index: int) -> None:
        which = index % len(stubs)
        stub, template = stubs[which], templates[which]
        while time.time() < end_at:
            try:
                if load.batch:
                    batch = [_fresh(template) for _ in range(load.batch)]
                    response = await stub.ReportBatch(
                        pb.ReportBatchRequest(reports=batch), timeout=60
                    )
                    done = len(response.acks)
                else:
                    await stub.Report(pb.ReportRequest(report=_fresh(template)), timeout=30)
                    done = 1
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


# -- the phases ---------------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def measure(
    port: int, states: list[Path], args: argparse.Namespace, batch: int, server_pid: int
) -> dict[str, float]:
    """Run one phase; the totals include the CPU seconds the server (`server_cpu`) and the
    clients (`client_cpu`) spent within the counted window."""
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
    server_before, clients_before = _cpu_seconds([server_pid]), _cpu_seconds(clients)
    _sleep_until(start_at + args.seconds)
    server_cpu = _cpu_seconds([server_pid]) - server_before
    client_cpu = _cpu_seconds(clients) - clients_before
    totals: dict[str, float] = {"server_cpu": server_cpu, "client_cpu": client_cpu}
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
        print(f"{'':28} CPU per {per}: server {totals['server_cpu'] / done * 1e6:6.0f} us,"
              f" clients {totals['client_cpu'] / done * 1e6:6.0f} us")  # fmt: skip
    return rate


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
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, grpcio {grpc.__version__};"
          f" {args.clients} client process(es) x {args.inflight} calls in flight,"
          f" {args.devices} devices, {args.seconds:g} s per phase")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="devposture-bench-") as tmp:
        root = Path(tmp)
        collector = CollectorServer.create(root)
        try:
            collector.start()
            agents = enroll_fleet(collector, root / "agents", args.devices)
            states = [a.state.directory for a in agents]
            assert collector.stop() == 0

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
                for _ in range(args.rounds):  # echo then collector, side by side in time
                    echo_unary = measure(echo_port, states, args, 0, echo.pid)
                    real_unary = measure(collector.report_port, states, args, 0,
                                         collector.process.pid)  # fmt: skip
                    echo_batch = real_batch = None
                    if args.batch:
                        echo_batch = measure(echo_port, states, args, args.batch, echo.pid)
                        real_batch = measure(collector.report_port, states, args, args.batch,
                                             collector.process.pid)  # fmt: skip
                    rounds.append(Round(echo_unary, real_unary, echo_batch, real_batch))
            finally:
                echo.terminate()
                echo.join()
            stored = len(collector.stored_ids())
            assert collector.stop() == 0
        finally:
            collector.close()

    ratios = [_show_round(r, args) for r in rounds]
    ratio = statistics.median(ratios)
    if len(rounds) > 1:
        print(f"rounds {len(rounds)}: ratio collector/echo (Report) per round"
              f" {', '.join(f'{r:.1%}' for r in ratios)}; median {ratio:.1%}")  # fmt: skip
    print(f"reports stored by the collector: {stored}")
    print(f"target: collector >= {TARGET:.0%} of echo -> {'met' if ratio >= TARGET else 'NOT met'}"
          f" ({ratio:.1%}, unary Report)")  # fmt: skip


@dataclass(frozen=True)
class Round:
    echo_unary: dict[str, float]
    real_unary: dict[str, float]
    echo_batch: dict[str, float] | None
    real_batch: dict[str, float] | None


def _show_round(r: Round, args: argparse.Namespace) -> float:
    """Print one round's figures; returns its unary ratio."""
    seconds = args.seconds
    a = _show("echo Report", r.echo_unary, seconds, "calls")
    b = _show("collector Report", r.real_unary, seconds, "calls")
    ratio = b / a if a else 0.0
    print(f"ratio collector/echo (Report): {ratio:.1%}")
    if r.echo_batch is not None and r.real_batch is not None:
        c = _show(f"echo ReportBatch x{args.batch}", r.echo_batch, seconds, "reports")
        d = _show(f"collector ReportBatch x{args.batch}", r.real_batch, seconds, "reports")
        print(f"ratio collector/echo (ReportBatch): {d / c if c else 0.0:.1%}")
    return ratio


if __name__ == "__main__":
    main()
