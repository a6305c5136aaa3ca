"""An independent client in another language: grpc-js under Node.js (tests/interop/client.js).

Every other client the tests use is Python's grpcio, which shares gRPC's C core with the
collector: a fault in how the collector speaks HTTP/2, TLS (ALPN, the client certificate) or
the contract could hide between two ends of the same library. grpc-js has its own HTTP/2 and
TLS, and it reads the contract from protos/ with @grpc/proto-loader, as a team writing its
own tool would. It sends a whole realistic report (every fact an agent collects), and the
stored body must be that report, field for field; refusals must come with the right status;
the administration port answers it by its credential and role.

Node.js and the two packages (tests/interop/package.json, pinned by its lock file) are
installed by .ci/run (the packages into its cache, named by DEVPOSTURE_NODE_MODULES). The test
is skipped without them on a developer machine, and fails in CI (CI set) instead, so that it
cannot silently stop running.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.collector.store import Store
from devposture.v1 import devposture_pb2 as pb
from tests.e2e.fleet import COLLECTOR, CollectorServer, SimAgent, enroll_fleet, run

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "interop" / "client.js"
NODE_MODULES = Path(
    os.environ.get("DEVPOSTURE_NODE_MODULES") or ROOT / "tests" / "interop" / "node_modules"
)


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_MODULES / "@grpc" / "grpc-js").is_dir():
        why = (f"needs node and tests/interop's packages in {NODE_MODULES}"
               " (cd tests/interop && npm ci)")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorServer, SimAgent]]:
    root = tmp_path_factory.mktemp("interop")
    collector = CollectorServer.create(root)
    collector.start()
    try:
        (agent,) = enroll_fleet(collector, root / "agents", 1)
        yield collector, agent
    finally:
        collector.close()


def _plain(message: Message) -> dict[str, Any]:
    """A message as protobuf.js takes it (proto field names, enum names, timestamps as
    seconds and nanos, bytes in base64): what a JavaScript program would build."""
    plain: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            plain[field.name] = [_value(field, v) for v in value]
        else:
            plain[field.name] = _value(field, value)
    return plain


def _value(field: Any, value: Any) -> Any:
    if isinstance(value, Timestamp):
        return {"seconds": str(value.seconds), "nanos": value.nanos}
    if isinstance(value, Message):
        return _plain(value)
    if field.type == field.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if field.type in (field.TYPE_INT64, field.TYPE_UINT64, field.TYPE_SINT64,
                      field.TYPE_FIXED64, field.TYPE_SFIXED64):  # fmt: skip
        return str(value)
    return value


def _call(node: str, collector: CollectorServer, agent: SimAgent | None, call: str,
          argument: dict[str, Any], *, port: int | None = None,
          credential: str = "", compression: str = "") -> dict[str, Any]:  # fmt: skip
    """One call by the Node.js client: its answer, or its status (code, name, details).
    `compression` ("gzip"): the request is sent compressed."""
    state = agent.state if agent is not None else None
    ca = (state.ca_path if state is not None else collector.data / "ca" / "ca.crt")
    cert, key = ((str(state.cert_path), str(state.key_path)) if state is not None
                 else ("", ""))  # fmt: skip
    done = subprocess.run(
        [node, str(CLIENT), str(ROOT / "protos"), f"localhost:{port or collector.report_port}",
         str(ca), cert, key, call, json.dumps(argument)],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES),
             "DEVPOSTURE_ADMIN_CREDENTIAL": credential,
             "DEVPOSTURE_GRPC_COMPRESSION": compression},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _stored(collector: CollectorServer, report_id: str) -> pb.PostureReport:
    """The report's body as the collector keeps it (put together from its fact parts)."""
    reader = Store.open_reader(collector.database)
    try:
        body = reader.reports.report_body(report_id)
    finally:
        reader.close()
    assert body is not None, f"report {report_id} is not stored"
    return pb.PostureReport.FromString(body)


def test_a_report_from_grpc_js_is_stored_field_for_field_and_judged(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    report = agent.report()
    assert report.HasField("antivirus") and report.HasField("wifi") and report.chat_backups.backups
    plain = _plain(report)
    answer = _call(node, collector, agent, "Report",
                   {"report": plain, "sent_at": plain["collected_at"]})  # fmt: skip
    assert answer.get("ok"), answer
    assert answer["report_id"] == report.report_id and not answer.get("duplicate")
    assert {v["check_id"] for v in answer["verdicts"]} == {
        "antivirus", "firewall", "os-updates", "public-wifi", "chat-backup", "chat-app-updates"}
    assert _stored(collector, report.report_id) == report  # every fact as the agent made it
    again = _call(node, collector, agent, "Report", {"report": _plain(report)})
    assert again.get("ok") and again["duplicate"] is True  # idempotent on report_id


def test_a_batch_from_grpc_js_is_acknowledged_report_by_report(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    reports = [agent.report(), agent.report()]
    answer = _call(node, collector, agent, "ReportBatch",
                   {"reports": [_plain(r) for r in reports]})  # fmt: skip
    assert answer.get("ok"), answer
    assert [a["report_id"] for a in answer["acks"]] == [r.report_id for r in reports]
    assert all(_stored(collector, r.report_id) == r for r in reports)


def test_a_gzip_compressed_report_and_batch_from_grpc_js_are_stored(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    report = agent.report()
    answer = _call(node, collector, agent, "Report", {"report": _plain(report)},
                   compression="gzip")  # fmt: skip
    assert answer.get("ok") and answer["report_id"] == report.report_id, answer
    batch = [agent.report(), agent.report()]
    answer = _call(node, collector, agent, "ReportBatch",
                   {"reports": [_plain(r) for r in batch]}, compression="gzip")  # fmt: skip
    assert [a["report_id"] for a in answer["acks"]] == [r.report_id for r in batch], answer
    assert all(_stored(collector, r.report_id) == r for r in [report, *batch])


def test_refusals_reach_grpc_js_with_their_status_and_reason(
    node: str, served: tuple[CollectorServer, SimAgent]
) -> None:
    collector, agent = served
    bad_id = _plain(agent.report()) | {"report_id": "not-a-uuid"}
    refused = _call(node, collector, agent, "Report", {"report": bad_id})
    assert refused["name"] == "INVALID_ARGUMENT", refused
    assert "report_id" in refused["details"] and "not-a-uuid" in refused["details"]
    other = _plain(agent.report()) | {"device_id": "someone-else"}
    refused = _call(node, collector, agent, "Report", {"report": other})
    assert refused["name"] == "PERMISSION_DENIED", refused
    refused = _call(node, collector, agent, "Report", {})
    assert refused["name"] == "INVALID_ARGUMENT" and "no report" in refused["details"], refused
    # The report port takes no call without a device's certificate.
    refused = _call(node, collector, None, "Report", {"report": _plain(agent.report())})
    assert refused["name"] in ("UNAVAILABLE", "UNAUTHENTICATED"), refused


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
