"""An independent client in another language: grpc-js under Node.js (tests/interop/client.js).

Every other client the tests use is Python's grpcio, which shares gRPC's C core with the
collector: a fault in how the collector speaks HTTP/2, TLS (ALPN, the client certificate) or
the contract could hide between two ends of the same library. grpc-js has its own HTTP/2 and
TLS, and it reads the contract from protos/ with @grpc/proto-loader, as a team writing its
own tool would. It sends a whole realistic report (every fact an agent collects), and the
stored body must be that report, field for field; refusals must come with the right status;
the administration port answers it by its credential and role.

Enrollment, renewal and reestablishment by the same client, its key and requests made by the
openssl CLI, are in test_interop_node_enroll.py; running it is tests/e2e/interop_node.py
(skipped without Node.js and the packages on a developer machine, failed in CI).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.fleet import COLLECTOR, CollectorServer, SimAgent, enroll_fleet, run, serving
from tests.e2e.interop_node import Node, node_fixture, plain, stored  # noqa: F401


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorServer, SimAgent]]:
    root = tmp_path_factory.mktemp("interop")
    with serving(root) as collector:
        (agent,) = enroll_fleet(collector, root / "agents", 1)
        yield collector, agent


NEEDS_CERTIFICATE = ("this call needs the device's client certificate: send it to the report"
                     " port over mutual TLS")  # fmt: skip


def _call(node: str, collector: CollectorServer, agent: SimAgent | None, call: str,
          argument: dict[str, Any], *, port: int | None = None,
          credential: str = "", compression: str = "") -> dict[str, Any]:  # fmt: skip
    """One call by the Node.js client as `agent` (None: without a client certificate): its
    answer, or its status (code, name, details). `compression` ("gzip"): the request is sent
    compressed."""
    return _client(node, collector, agent, port).call(
        call, argument, DEVPOSTURE_ADMIN_CREDENTIAL=credential,
        DEVPOSTURE_GRPC_COMPRESSION=compression,
    )  # fmt: skip


def _client(node: str, collector: CollectorServer, agent: SimAgent | None,
            port: int | None = None) -> Node:  # fmt: skip
    state = agent.state if agent is not None else None
    if state is None:
        return Node(node, f"localhost:{port or collector.report_port}",
                    collector.data / "ca" / "ca.crt")  # fmt: skip
    return Node(node, f"localhost:{port or collector.report_port}", state.ca_path,
                state.cert_path, state.key_path)  # fmt: skip


def test_a_report_from_grpc_js_is_stored_field_for_field_and_judged(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    report = agent.report()
    assert report.HasField("antivirus") and report.HasField("wifi") and report.chat_backups.backups
    sent = plain(report)
    answer = _call(node, collector, agent, "Report",
                   {"report": sent, "sent_at": sent["collected_at"]})  # fmt: skip
    assert answer.get("ok"), answer
    assert answer["report_id"] == report.report_id and not answer.get("duplicate")
    assert {v["check_id"] for v in answer["verdicts"]} == {
        "antivirus", "firewall", "os-updates", "public-wifi", "chat-backup", "chat-app-updates"}
    assert stored(collector, report.report_id) == report  # every fact as the agent made it
    again = _call(node, collector, agent, "Report", {"report": plain(report)})
    assert again.get("ok") and again["duplicate"] is True  # idempotent on report_id


def test_a_batch_from_grpc_js_is_acknowledged_report_by_report(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    reports = [agent.report(), agent.report()]
    answer = _call(node, collector, agent, "ReportBatch",
                   {"reports": [plain(r) for r in reports]})  # fmt: skip
    assert answer.get("ok"), answer
    assert [a["report_id"] for a in answer["acks"]] == [r.report_id for r in reports]
    assert all(stored(collector, r.report_id) == r for r in reports)


def test_a_gzip_compressed_report_and_batch_from_grpc_js_are_stored(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    report = agent.report()
    answer = _call(node, collector, agent, "Report", {"report": plain(report)},
                   compression="gzip")  # fmt: skip
    assert answer.get("ok") and answer["report_id"] == report.report_id, answer
    batch = [agent.report(), agent.report()]
    answer = _call(node, collector, agent, "ReportBatch",
                   {"reports": [plain(r) for r in batch]}, compression="gzip")  # fmt: skip
    assert [a["report_id"] for a in answer["acks"]] == [r.report_id for r in batch], answer
    assert all(stored(collector, r.report_id) == r for r in [report, *batch])


def test_refusals_reach_grpc_js_with_their_status_and_reason(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    bad_id = plain(agent.report()) | {"report_id": "not-a-uuid"}
    refused = _call(node, collector, agent, "Report", {"report": bad_id})
    assert refused["name"] == "INVALID_ARGUMENT", refused
    assert "report_id" in refused["details"] and "not-a-uuid" in refused["details"]
    other = plain(agent.report()) | {"device_id": "someone-else"}
    refused = _call(node, collector, agent, "Report", {"report": other})
    assert refused["name"] == "PERMISSION_DENIED", refused
    refused = _call(node, collector, agent, "Report", {})
    assert refused["name"] == "INVALID_ARGUMENT" and "no report" in refused["details"], refused


def test_a_call_without_a_certificate_is_cut_off_at_the_report_port_and_told_at_the_other(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    # The report port requires a client certificate in the TLS handshake (docs/threat-model.md,
    # row 8): a caller without one is cut off before any call, so grpc-js can only say that it
    # could not connect (TLS 1.3: "Failed to connect"; TLS 1.2: the socket was closed during
    # the handshake). No gRPC status or reason can travel on a handshake that failed.
    collector, agent = served
    report = {"report": plain(agent.report())}
    for tls in ("TLSv1.3", "TLSv1.2"):
        refused = _client(node, collector, None).call("Report", report, DEVPOSTURE_TLS_MAX=tls)
        assert refused["name"] == "UNAVAILABLE", (tls, refused)
    # The enrollment port lets it in and refuses the call itself, saying what it needs.
    for call in ("Report", "ReportBatch", "Renew"):
        refused = _call(node, collector, None, call, {}, port=collector.enroll_port)
        assert refused["name"] == "UNAUTHENTICATED", (call, refused)
        assert refused["details"] == NEEDS_CERTIFICATE, refused
    assert report["report"]["report_id"] not in collector.stored_ids()


def test_a_report_past_its_deadline_ends_deadline_exceeded_and_is_stored_once_when_sent_again(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    # The client connects, the collector is frozen (SIGSTOP), and the call goes out with a
    # deadline of half a second: it cannot be answered in time, however fast the machine. The
    # collector, thawed, finds the call already cancelled; whatever it did with it, the report
    # sent again is acknowledged and stored once (at-least-once delivery, exactly-once storage).
    collector, agent = served
    report = agent.report()
    late = _client(node, collector, agent).while_frozen(collector, "Report",
                                                        {"report": plain(report)})  # fmt: skip
    assert late["name"] == "DEADLINE_EXCEEDED", late
    again = _call(node, collector, agent, "Report", {"report": plain(report)})
    assert again.get("ok") and again["report_id"] == report.report_id, again
    assert collector.stored_ids().count(report.report_id) == 1
    assert stored(collector, report.report_id) == report
    health = _call(node, collector, None, "Health", {"service": ""}, port=collector.enroll_port)
    assert health == {"ok": True, "status": "SERVING"}


def test_an_oversized_request_from_grpc_js_is_resource_exhausted_and_not_stored(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    # Over [limits] max_report_bytes (1 MiB by default), gRPC refuses the message before the
    # collector reads it (README, "Bad input is refused whole"; threat model, row 14).
    collector, agent = served
    big = plain(agent.report())
    big["host"]["os_name"] = "x" * (1024 * 1024)
    refused = _call(node, collector, agent, "Report", {"report": big})
    assert refused["name"] == "RESOURCE_EXHAUSTED", refused
    assert "Received message larger than max" in refused["details"], refused
    refused = _call(node, collector, agent, "ReportBatch", {"reports": [big]})
    assert refused["name"] == "RESOURCE_EXHAUSTED", refused
    assert big["report_id"] not in collector.stored_ids()
    # The collector goes on taking reports that fit.
    fits = agent.report()
    answer = _call(node, collector, agent, "Report", {"report": plain(fits)})
    assert answer.get("ok") and answer["report_id"] == fits.report_id, answer


def test_health_answers_grpc_js_on_the_enrollment_port(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, _ = served
    answer = _call(node, collector, None, "Health", {"service": ""}, port=collector.enroll_port)
    assert answer == {"ok": True, "status": "SERVING"}


def test_the_administration_port_answers_grpc_js_by_its_credential_and_role(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    added = run(COLLECTOR, "admin", "add", "interop-viewer", "--role", "viewer",
                "--data", str(collector.data))  # fmt: skip
    assert added.returncode == 0, added.stderr
    viewer = added.stdout.strip()

    def admin(command: list[str], credential: str, **arguments: str) -> dict[str, Any]:
        return _call(node, collector, None, "Admin",
                     {"command": command, "arguments": arguments},
                     port=collector.admin_port, credential=credential)  # fmt: skip

    listed = admin(["device", "list"], viewer)
    assert listed.get("ok"), listed
    assert agent.device_id in {row["device"] for row in json.loads(listed["rows_json"])}
    refused = admin(["device", "list"], "dpa_not-a-credential")
    assert refused["name"] == "UNAUTHENTICATED", refused
    refused = admin(["device", "revoke"], viewer, device_id=agent.device_id, reason="interop")
    assert refused["name"] == "PERMISSION_DENIED", refused
    # A refusal quoting a long argument: past the trailers' limit, grpc-js waited out its
    # deadline (DEADLINE_EXCEEDED), every call on its connection stalled meanwhile.
    refused = admin(["device", "show"], viewer, device_id="x" * 100_000)
    assert refused["name"] == "NOT_FOUND", refused
    assert refused["details"].endswith("see the ids in `devposture-collector device list`")
