"""ReportBatch over real mutual TLS: each report is acknowledged or rejected on its own, the
batch costs one call of the device's rate, and the configuration rides once."""

from __future__ import annotations

import grpc
import pytest

from devposture.agent.transport import open_channel
from devposture.collector.service import MAX_BATCH
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, make_report


def _batch(agent: EnrolledAgent, request: pb.ReportBatchRequest) -> pb.ReportBatchResponse:
    with open_channel(agent.state, agent.enrollment) as channel:
        response: pb.ReportBatchResponse = pb_grpc.CollectorStub(channel).ReportBatch(
            request, timeout=30
        )
    return response


def test_a_batch_is_stored_and_each_report_acknowledged(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    reports = [make_report(agent.enrollment.device_id) for _ in range(MAX_BATCH)]
    response = _batch(agent, pb.ReportBatchRequest(reports=reports))
    assert [a.report_id for a in response.acks] == [r.report_id for r in reports]
    assert not response.rejections
    store = live_collector.store()
    try:
        assert sorted(store.reports.report_ids()) == sorted(r.report_id for r in reports)
    finally:
        store.close()
    # The configuration once for the batch, verdicts only on the newest report's ack.
    assert response.HasField("config") and response.config.version
    assert not any(a.HasField("config") for a in response.acks)
    newest = max(reports, key=lambda r: (r.collected_at.seconds, r.collected_at.nanos))
    with_verdicts = [a.report_id for a in response.acks if a.verdicts]
    assert with_verdicts == [newest.report_id]


def test_bad_reports_are_rejected_one_by_one_and_the_rest_stored(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    good = make_report(agent.enrollment.device_id)
    invalid = make_report(agent.enrollment.device_id)
    invalid.report_id = "not-a-uuid"
    foreign = make_report("someone-else")
    again = pb.PostureReport()
    again.CopyFrom(good)
    response = _batch(agent, pb.ReportBatchRequest(reports=[good, invalid, foreign, again]))
    assert [(a.report_id, a.duplicate) for a in response.acks] == [
        (good.report_id, False), (good.report_id, True)
    ]  # fmt: skip
    codes = {r.report_id: grpc.StatusCode.__members__[_name(r.code)] for r in response.rejections}
    assert codes == {
        "not-a-uuid": grpc.StatusCode.INVALID_ARGUMENT,
        foreign.report_id: grpc.StatusCode.PERMISSION_DENIED,
    }
    assert all(r.message for r in response.rejections)
    store = live_collector.store()
    try:
        assert store.reports.report_ids() == [good.report_id]
    finally:
        store.close()


def _name(code: int) -> str:
    return next(s.name for s in grpc.StatusCode if s.value[0] == code)


def test_a_batch_over_the_limit_is_refused_whole(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    reports = [make_report(agent.enrollment.device_id) for _ in range(MAX_BATCH + 1)]
    with pytest.raises(grpc.RpcError) as refused:
        _batch(agent, pb.ReportBatchRequest(reports=reports))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_BATCH) in (refused.value.details() or "")
    store = live_collector.store()
    try:
        assert store.reports.report_ids() == []
    finally:
        store.close()


def test_the_configuration_is_left_out_when_the_agent_has_it(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    first = _batch(agent, pb.ReportBatchRequest(reports=[make_report(agent.enrollment.device_id)]))
    second = _batch(
        agent,
        pb.ReportBatchRequest(
            reports=[make_report(agent.enrollment.device_id)],
            config_version=first.config.version,
        ),
    )
    assert not second.HasField("config")
