"""The standard hooks of a real `devposture-collector serve` process: its Prometheus endpoint
scraped by a plain HTTP client after a real agent reported, gRPC health from a plain grpcio
client on the enrollment port, and JSON log lines on stderr without the token's secret."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import init_arguments
from tests.e2e.conftest import AGENT, COLLECTOR, run


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_real_collector_is_scraped_probed_and_logs_json(tmp_path: Path) -> None:
    data, ready, errors = tmp_path / "collector", tmp_path / "ready.json", tmp_path / "stderr"
    assert run(COLLECTOR, "init", "--data", str(data), *init_arguments()).returncode == 0
    fingerprint = run(COLLECTOR, "ca", "fingerprint", "--data", str(data)).stdout.strip()
    token = run(COLLECTOR, "token", "create", "--data", str(data)).stdout.strip()
    with errors.open("wb") as stderr:
        server = subprocess.Popen(
            [COLLECTOR, "serve", "--data", str(data), "--enroll-port", "0", "--report-port", "0",
             "--admin-port", "0", "--metrics-port", "0", "--web-port", "0", "--log-format", "json",
             "--drain-seconds", "0", "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                assert server.poll() is None and time.monotonic() < deadline, "no collector"
                time.sleep(0.05)
            ports = json.loads(ready.read_text())
            assert isinstance(ports["metrics_port"], int) and ports["metrics_port"] > 0

            token_file = tmp_path / "token"
            token_file.write_text(token)
            state = tmp_path / "agent"
            enrolled = run(
                AGENT, "enroll", "--collector", f"127.0.0.1:{ports['enroll_port']}",
                "--token-file", str(token_file), "--ca-fingerprint", fingerprint,
                "--state", str(state),
            )  # fmt: skip
            assert enrolled.returncode == 0, enrolled.stderr
            once = run(AGENT, "once", "--state", str(state))
            assert once.returncode == 0, once.stderr

            samples = _samples(ports["metrics_port"])
            stored = (("outcome", "stored"), ("rpc", "Report"))
            batched = (("outcome", "stored"), ("rpc", "ReportBatch"))
            received = "devposture_reports_received_total"
            assert samples[(received, stored)] + samples[(received, batched)] >= 1
            assert samples[("devposture_devices_by_status", (("status", "active"),))] == 1
            assert samples[("devposture_group_commit_reports_total", ())] >= 1

            ca = (data / "ca" / "ca.crt").read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            with grpc.secure_channel(f"127.0.0.1:{ports['enroll_port']}", credentials) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=10
                )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            # A caller without a client certificate at the report port (anyone may try, as
            # often as they like): gRPC's own line for each failed handshake went to stderr
            # as plain text, between the JSON lines.
            with grpc.secure_channel(f"127.0.0.1:{ports['report_port']}", credentials) as bare:
                for _ in range(3):
                    try:
                        health_pb2_grpc.HealthStub(bare).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=5)  # fmt: skip
                    except grpc.RpcError as refused:
                        assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused
                    else:
                        raise AssertionError("the report port answered without a certificate")
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(20) == 0
    lines = [json.loads(line) for line in errors.read_text().splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    assert any(m.startswith("metrics served on http://127.0.0.1:") for m in messages)
    assert any(m.startswith("enrolled device ") for m in messages)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert token.split("_", 2)[2] not in errors.read_text()
