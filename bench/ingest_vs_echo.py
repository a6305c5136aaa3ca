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

    .venv/bin/python bench/ingest_vs_echo.py --seconds 10 --clients 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
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

from agent.state import AgentState
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


def measure(
    port: int, states: list[Path], args: argparse.Namespace, batch: int
) -> dict[str, float]:
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
    totals: dict[str, float] = {}
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
            try:
                echo_unary = measure(echo_port, states, args, 0)
                echo_batch = measure(echo_port, states, args, args.batch) if args.batch else None
            finally:
                echo.terminate()
                echo.join()

            collector.start()
            real_unary = measure(collector.report_port, states, args, 0)
            real_batch = (
                measure(collector.report_port, states, args, args.batch) if args.batch else None
            )
            stored = len(collector.stored_ids())
            assert collector.stop() == 0
        finally:
            collector.close()

    seconds = args.seconds
    a = _show("echo Report", echo_unary, seconds, "calls")
    b = _show("collector Report", real_unary, seconds, "calls")
    ratio = b / a if a else 0.0
    print(f"ratio collector/echo (Report): {ratio:.1%}")
    if echo_batch is not None and real_batch is not None:
        c = _show(f"echo ReportBatch x{args.batch}", echo_batch, seconds, "reports")
        d = _show(f"collector ReportBatch x{args.batch}", real_batch, seconds, "reports")
        print(f"ratio collector/echo (ReportBatch): {d / c if c else 0.0:.1%}")
    print(f"reports stored by the collector: {stored}")
    print(f"target: collector >= {TARGET:.0%} of echo -> {'met' if ratio >= TARGET else 'NOT met'}"
          f" ({ratio:.1%}, unary Report)")  # fmt: skip


if __name__ == "__main__":
    main()
