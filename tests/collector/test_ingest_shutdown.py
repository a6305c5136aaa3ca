"""Pushback and shutdown over real mutual TLS: a collector that is stopping or behind answers
UNAVAILABLE with a retry hint, and stopping under load never acknowledges a report it did not
store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from devposture.agent.transport import open_channel
from devposture.collector.service import PUSH_BACK_MS
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import (
    EnrolledAgent,
    LiveCollector,
    enroll_agent,
    make_report,
)


def _hint(exc: grpc.RpcError) -> int:
    assert isinstance(exc, grpc.Call)
    hints = [int(v) for k, v in exc.trailing_metadata() or () if k == "retry-after-ms"]
    assert len(hints) == 1, exc.trailing_metadata()
    return hints[0]


def _refused(agent: EnrolledAgent) -> list[grpc.RpcError]:
    refusals = []
    with open_channel(agent.state, agent.enrollment) as channel:
        stub = pb_grpc.CollectorStub(channel)
        report = make_report(agent.enrollment.device_id)
        for call in (
            lambda: stub.Report(pb.ReportRequest(report=report), timeout=10),
            lambda: stub.ReportBatch(pb.ReportBatchRequest(reports=[report]), timeout=10),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            refusals.append(refused.value)
    return refusals


def test_a_collector_shutting_down_pushes_back_with_a_spread_retry_hint(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    live_collector.service.begin_shutdown()
    for refusal in _refused(agent):
        assert refusal.code() is grpc.StatusCode.UNAVAILABLE
        assert "restarting" in (refusal.details() or "")
        assert PUSH_BACK_MS <= _hint(refusal) <= 2 * PUSH_BACK_MS
    store = live_collector.store()
    try:
        assert store.reports.report_ids() == []
    finally:
        store.close()


def test_a_collector_too_far_behind_pushes_back(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    live_collector.service.committer.max_waiting = 0
    for refusal in _refused(agent):
        assert refusal.code() is grpc.StatusCode.UNAVAILABLE
        assert "busy" in (refusal.details() or "")
        assert _hint(refusal) >= PUSH_BACK_MS


def test_stopping_under_load_never_acknowledges_what_it_did_not_store(
    generous_collector: LiveCollector, tmp_path: Path
) -> None:
    agent = enroll_agent(generous_collector, tmp_path / "agent")
    reports = [make_report(agent.enrollment.device_id) for _ in range(400)]
    acknowledged: list[str] = []
    failures: set[grpc.StatusCode] = set()
    with open_channel(agent.state, agent.enrollment) as channel:
        stub = pb_grpc.CollectorStub(channel)
        calls = [stub.Report.future(pb.ReportRequest(report=r), timeout=30) for r in reports]
        # Stop while the calls are arriving and being committed.
        asyncio.run_coroutine_threadsafe(
            generous_collector._running.stop(5), generous_collector._loop
        ).result(30)
        for call in calls:
            try:
                acknowledged.append(call.result().report_id)
            except grpc.RpcError as exc:
                failures.add(exc.code())
    store = generous_collector.store()
    try:
        stored = store.reports.report_ids()
    finally:
        store.close()
    assert len(stored) == len(set(stored))
    assert set(acknowledged) <= set(stored)
    assert failures <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, failures
