"""Admin access over a real collector (grpc.aio, real TLS, either database engine): roles, the
audit log, and the separation of the admin port from the agent ports."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from devposture.agent.transport import open_channel, send_report
from devposture.collector import server as collector_server
from devposture.collector.admin.commands import Actor, Denied, Runner
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, VIEWER, new_credential
from devposture.collector.datadir import initialize
from devposture.collector.store import Store, database_errors
from devposture.collector.store.admin import AuditEntry
from devposture.net.pinning import fingerprint as pin_of
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import admin_pb2_grpc as admin_grpc
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, make_report
from tests.databases import collector_database, raw

DEADLINE = 20.0


@dataclass
class AdminCollector:
    live: LiveCollector
    admin_port: int

    def store(self) -> Store:
        return self.live.store()

    def credential(self, name: str, role: str) -> str:
        return self.live.credential(name, role)

    def audit(self) -> list[AuditEntry]:
        store = self.store()
        try:
            return store.admin.audit_entries()
        finally:
            store.close()

    def channel(self, port: int | None = None) -> grpc.Channel:
        ca = self.live.config.ca_cert.read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        return grpc.secure_channel(f"127.0.0.1:{port or self.admin_port}", credentials)

    def run(
        self,
        credential: str | None,
        *command: str,
        port: int | None = None,
        **arguments: str,
    ) -> admin_pb.AdminResult:
        metadata = () if credential is None else (("authorization", f"Bearer {credential}"),)
        with self.channel(port) as channel:
            result: admin_pb.AdminResult = admin_grpc.AdminStub(channel).Run(
                admin_pb.AdminCommand(command=list(command), arguments=arguments),
                timeout=DEADLINE,
                metadata=metadata,
            )
        return result

    def run_with(
        self, credential: str, command: tuple[str, ...], arguments: dict[str, str]
    ) -> admin_pb.AdminResult:
        """`run` with the arguments as a mapping (any names, `port` among them)."""
        with self.channel() as channel:
            result: admin_pb.AdminResult = admin_grpc.AdminStub(channel).Run(
                admin_pb.AdminCommand(command=list(command), arguments=arguments),
                timeout=DEADLINE, metadata=(("authorization", f"Bearer {credential}"),),
            )  # fmt: skip
        return result


@contextlib.contextmanager
def admin_collector(directory: Path) -> Iterator[AdminCollector]:
    """A collector in a new data folder, serving its admin port too (on a free port)."""
    config, ca_cert = initialize(directory, "127.0.0.1", database=collector_database())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-admin", daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(
        collector_server.start(config, 0, 0, "127.0.0.1", admin_port=0), loop
    ).result(30)
    try:
        assert running.admin_port is not None
        live = LiveCollector(
            config, pin_of(ca_cert), running.enroll_port, running.report_port, loop, running
        )
        yield AdminCollector(live, running.admin_port)
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0.5, drain=0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[AdminCollector]:
    with admin_collector(tmp_path / "collector") as running:
        yield running


@pytest.fixture
def device(collector: AdminCollector, tmp_path: Path) -> EnrolledAgent:
    return enroll_agent(collector.live, tmp_path / "agent", hostname="laptop-1")


def _code(call: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    error = call.value
    assert isinstance(error, grpc.Call)
    return error.code()


def _status(collector: AdminCollector, device_id: str) -> str:
    store = collector.store()
    try:
        return next(d.status for d in store.identity.devices() if d.device_id == device_id)
    finally:
        store.close()


def test_a_viewer_reads_reports_and_devices(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    viewer = collector.credential("Wang Fang (audit)", VIEWER)
    fleet = collector.run(viewer, "report", "fleet")
    rows = json.loads(fleet.rows_json)
    assert list(fleet.columns)[:3] == ["clause", "check", "devices"]
    assert rows and all(row["devices"] == 1 for row in rows)
    listing = collector.run(viewer, "device", "list")
    devices = json.loads(listing.rows_json)
    assert [d["device"] for d in devices] == [device.enrollment.device_id]
    assert devices[0]["status"] == "active" and devices[0]["hostname"] == "laptop-1"
    entries = collector.audit()
    assert [(e.command, e.outcome, e.actor, e.role) for e in entries] == [
        ("report fleet", "ok", "Wang Fang (audit)", VIEWER),
        ("device list", "ok", "Wang Fang (audit)", VIEWER),
    ]
    assert all(e.credential_id == viewer.split("_")[1] for e in entries)
    assert all(e.peer.startswith("ipv4:127.0.0.1:") for e in entries)


def test_a_viewer_is_denied_changes_and_the_denial_is_audited(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    viewer = collector.credential("Wang Fang (audit)", VIEWER)
    device_id = device.enrollment.device_id
    with pytest.raises(grpc.RpcError) as revoke:
        collector.run(viewer, "device", "revoke", device_id=device_id, reason="lost")
    assert _code(revoke) == grpc.StatusCode.PERMISSION_DENIED
    assert "needs the admin role" in str(revoke.value)
    expires = (utcnow() + dt.timedelta(days=7)).isoformat()
    with pytest.raises(grpc.RpcError) as waiver:
        collector.run(viewer, "waiver", "add", device=device_id, check="chat-backup",
                      owner="Li Wei", reason="rollout", expires=expires)  # fmt: skip
    assert _code(waiver) == grpc.StatusCode.PERMISSION_DENIED
    assert _status(collector, device_id) == "active"
    store = collector.store()
    try:
        assert store.waivers.recorded() == []
    finally:
        store.close()
    denied = [(e.command, e.outcome, e.actor) for e in collector.audit()]
    assert denied == [
        ("device revoke", "denied", "Wang Fang (audit)"),
        ("waiver add", "denied", "Wang Fang (audit)"),
    ]
    assert json.loads(collector.audit()[0].arguments) == {"device_id": device_id, "reason": "lost"}


def test_an_admin_revokes_a_device_and_its_next_call_is_refused(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    admin = collector.credential("Li Wei (IT)", ADMIN)
    device_id = device.enrollment.device_id
    with open_channel(device.state, device.enrollment) as channel:
        send_report(channel, make_report(device_id))
    done = collector.run(admin, "device", "revoke", device_id=device_id, reason="laptop stolen")
    assert f"device {device_id}" in done.message and "refused" in done.message
    assert _status(collector, device_id) == "revoked"
    shown = json.loads(collector.run(admin, "device", "show", device_id=device_id).rows_json)
    assert "revoked: laptop stolen" in shown[0]["events"]
    with open_channel(device.state, device.enrollment) as channel, pytest.raises(grpc.RpcError):
        send_report(channel, make_report(device_id))
    entry = collector.audit()[0]
    assert (entry.command, entry.outcome, entry.actor) == ("device revoke", "ok", "Li Wei (IT)")
    assert "laptop stolen" in entry.message


def test_unknown_revoked_and_missing_credentials_are_unauthenticated(
    collector: AdminCollector,
) -> None:
    admin = collector.credential("Li Wei (IT)", ADMIN)
    assert collector.run(admin, "token", "list").columns
    forged = admin[:-4] + ("AAAA" if not admin.endswith("AAAA") else "BBBB")
    stranger = str(new_credential())
    for credential in (forged, stranger, None, "letmein"):
        with pytest.raises(grpc.RpcError) as call:
            collector.run(credential, "token", "list")
        assert _code(call) == grpc.StatusCode.UNAUTHENTICATED
    store = collector.store()
    try:
        assert store.admin.revoke_credential(admin.split("_")[1], utcnow())
    finally:
        store.close()
    with pytest.raises(grpc.RpcError) as revoked:
        collector.run(admin, "token", "list")
    assert _code(revoked) == grpc.StatusCode.UNAUTHENTICATED
    assert "unknown to this collector or was revoked" in str(revoked.value)
    outcomes = [(e.actor, e.outcome) for e in collector.audit()]
    assert outcomes == [("Li Wei (IT)", "ok")] + [("unauthenticated", "denied")] * 5


def test_the_agent_ports_do_not_serve_admin(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    admin = collector.credential("Li Wei (IT)", ADMIN)
    with pytest.raises(grpc.RpcError) as enroll_port:
        collector.run(admin, "report", "fleet", port=collector.live.enroll_port)
    assert _code(enroll_port) == grpc.StatusCode.UNIMPLEMENTED
    # The report port asks for a device certificate: present a real one.
    with open_channel(device.state, device.enrollment) as channel:
        with pytest.raises(grpc.RpcError) as report_port:
            admin_grpc.AdminStub(channel).Run(
                admin_pb.AdminCommand(command=["report", "fleet"]), timeout=DEADLINE,
                metadata=(("authorization", f"Bearer {admin}"),),
            )  # fmt: skip
        assert _code(report_port) == grpc.StatusCode.UNIMPLEMENTED
        send_report(channel, make_report(device.enrollment.device_id))  # the port itself works
    assert collector.audit() == []


def test_the_admin_port_does_not_serve_agents(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    with collector.channel() as channel:
        stub = pb_grpc.CollectorStub(channel)
        with pytest.raises(grpc.RpcError) as report:
            stub.Report(
                pb.ReportRequest(report=make_report(device.enrollment.device_id)),
                timeout=DEADLINE,
            )
        assert _code(report) == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as enroll:
            stub.Enroll(pb.EnrollRequest(token=collector.live.token()), timeout=DEADLINE)
        assert _code(enroll) == grpc.StatusCode.UNIMPLEMENTED


def test_bad_arguments_and_unknown_commands_are_refused_and_audited(
    collector: AdminCollector,
) -> None:
    admin = collector.credential("Li Wei (IT)", ADMIN)
    with pytest.raises(grpc.RpcError) as bad:
        collector.run(admin, "token", "create", uses="many")
    assert _code(bad) == grpc.StatusCode.INVALID_ARGUMENT
    assert "--uses must be a whole number" in str(bad.value)
    with pytest.raises(grpc.RpcError) as typo:
        collector.run(admin, "token", "create", usses="2")
    assert _code(typo) == grpc.StatusCode.INVALID_ARGUMENT and "does not take usses" in str(
        typo.value
    )
    with pytest.raises(grpc.RpcError) as unknown:
        collector.run(admin, "device", "delete", device_id="x")
    assert _code(unknown) == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as missing:
        collector.run(admin, "device", "revoke", device_id="nope", reason="x")
    assert _code(missing) == grpc.StatusCode.NOT_FOUND
    assert [e.outcome for e in collector.audit()] == ["error"] * 4


@pytest.mark.parametrize(
    ("command", "arguments", "words"),
    [
        (("token", "create"), {"ttl": "inf"}, "--ttl must be a number"),
        (("token", "create"), {"ttl": "nan"}, "--ttl must be a number"),
        (("token", "create"), {"ttl": "1e12"}, "--ttl must be at most 8784"),
        (("report", "fleet"), {"as_of": "0001-01-01"}, "outside the dates devposture keeps"),
        (("waiver", "add"), {"device": "x", "check": "firewall", "owner": "a", "reason": "b",
                             "expires": "9999-12-31"}, "outside the dates devposture keeps"),
        (("device", "show"), {"device_id": "ab\x00"}, "must not hold a NUL character"),
        (("token", "revoke"), {"token_id": "a\x00"}, "must not hold a NUL character"),
    ],
)  # fmt: skip
def test_values_past_any_use_are_invalid_arguments_on_either_engine(
    collector: AdminCollector, command: tuple[str, ...], arguments: dict[str, str], words: str
) -> None:
    # What a client in another language sent: each was an UNKNOWN (an overflow) or, for a
    # NUL on PostgreSQL, UNAVAILABLE ("the database failed", retried for ever).
    admin = collector.credential("Li Wei (IT)", ADMIN)
    with pytest.raises(grpc.RpcError) as refused:
        collector.run_with(admin, command, arguments)
    assert _code(refused) == grpc.StatusCode.INVALID_ARGUMENT
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("command", "arguments", "code", "words"),
    [
        (("device", "show"), {"device_id": "x" * 100_000}, grpc.StatusCode.NOT_FOUND,
         "see the ids in `devposture-collector device list`"),
        (("device", "list"), {"设备" * 30_000: "1"}, grpc.StatusCode.INVALID_ARGUMENT,
         "(it takes: group)"),
        (("token", "create"), {"uses": "9" * 50_000}, grpc.StatusCode.INVALID_ARGUMENT,
         "--uses must be"),
    ],
)  # fmt: skip
def test_a_refusal_quoting_a_long_argument_reaches_the_caller_cut_short(
    collector: AdminCollector, command: tuple[str, ...], arguments: dict[str, str],
    code: grpc.StatusCode, words: str,
) -> None:  # fmt: skip
    # Found by a grpc-js client: the refusal quoted the whole argument, and a status past the
    # trailers' 8 KiB never arrived (grpcio: RESOURCE_EXHAUSTED "received metadata size
    # exceeds hard limit"; grpc-js waited for its deadline, the connection stalled meanwhile).
    admin = collector.credential("Li Wei (IT)", ADMIN)
    with pytest.raises(grpc.RpcError) as refused:
        collector.run_with(admin, command, arguments)
    assert _code(refused) == code
    error = refused.value
    assert isinstance(error, grpc.Call)
    details = error.details() or ""
    assert words in details and "…" in details and len(details.encode()) <= 1500
    assert collector.run(admin, "device", "list").columns  # the port goes on serving


def test_credentials_are_managed_only_on_the_collector_machine(
    collector: AdminCollector,
) -> None:
    admin = collector.credential("Li Wei (IT)", ADMIN)
    with pytest.raises(grpc.RpcError) as call:
        collector.run(admin, "admin", "add", name="mallory", role=ADMIN)
    assert _code(call) == grpc.StatusCode.PERMISSION_DENIED
    store = collector.store()
    try:
        assert [c.name for c in store.admin.credentials()] == ["Li Wei (IT)"]
    finally:
        store.close()
    assert [(e.command, e.outcome) for e in collector.audit()] == [("admin add", "denied")]


def test_the_audit_log_refuses_update_and_delete(collector: AdminCollector) -> None:
    viewer = collector.credential("Wang Fang (audit)", VIEWER)
    collector.run(viewer, "report", "fleet")
    connection = raw(collector.live.config.database)
    try:
        with pytest.raises(database_errors(), match="append-only"):
            connection.execute("UPDATE audit_log SET outcome = 'denied'")
        with pytest.raises(database_errors(), match="append-only"):
            connection.execute("DELETE FROM audit_log")
    finally:
        connection.close()
    assert [e.outcome for e in collector.audit()] == ["ok"]


def test_no_secret_reaches_the_audit_log(collector: AdminCollector) -> None:
    admin = collector.credential("Li Wei (IT)", ADMIN)
    token = collector.run(admin, "token", "create", uses="2").message
    assert token.startswith("dpt_")
    # A careless paste of secrets into an argument is redacted too.
    with pytest.raises(grpc.RpcError):
        collector.run(admin, "waiver", "revoke", waiver_id="w-1", reason=f"{admin} {token}")
    with pytest.raises(grpc.RpcError):
        collector.run(admin + "x", "token", "list")
    connection = raw(collector.live.config.database)
    try:
        dump = "\n".join(
            str(row) for row in connection.execute("SELECT * FROM audit_log").fetchall()
        )
    finally:
        connection.close()
    assert len(collector.audit()) == 3
    for secret in (admin[len("dpa_0123456789abcdef_") :], token[len("dpt_0123456789abcdef_") :]):
        assert len(secret) == 43 and secret not in dump
    assert admin.split("_")[1] in dump  # the credential id is kept: who did it
    assert "<redacted secret>" in dump


def test_the_local_runner_checks_roles_too(collector: AdminCollector) -> None:
    """The CLI on the collector machine and the service share the runner and its checks."""
    store = collector.store()
    try:
        runner = Runner(store, collector.live.config)
        reader = Actor("Wang Fang (audit)", VIEWER, "0123456789abcdef")
        assert runner.run(["token", "list"], {}, reader, peer="local", remote=False).columns
        with pytest.raises(Denied):
            runner.run(["token", "create"], {}, reader, peer="local", remote=False)
        assert store.identity.tokens() == []
        entries = store.admin.audit_entries()
    finally:
        store.close()
    assert [(e.command, e.outcome) for e in entries] == [
        ("token list", "ok"),
        ("token create", "denied"),
    ]


def test_the_remote_cli_refuses_a_wrong_collector_before_sending_the_credential(
    collector: AdminCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credential_file = tmp_path / "credential"
    credential_file.write_text(collector.credential("Li Wei (IT)", VIEWER) + "\n")
    credential_file.chmod(0o600)
    where = ["--collector", f"127.0.0.1:{collector.admin_port}",
             "--credential-file", str(credential_file)]  # fmt: skip
    wrong = collector_cli(["device", "list", *where, "--ca-fingerprint", "sha256:" + "ab" * 32])
    assert wrong == 1
    assert "did not present the CA with fingerprint" in capsys.readouterr().err
    assert collector.audit() == []
    right = collector_cli(
        ["device", "list", *where, "--ca-fingerprint", collector.live.ca_fingerprint,
         "--format", "json"]
    )  # fmt: skip
    assert right == 0
    assert json.loads(capsys.readouterr().out) == []
    assert [e.command for e in collector.audit()] == ["device list"]


def test_device_list_flags_suspected_copies(
    collector: AdminCollector, device: EnrolledAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    device_id, now = device.enrollment.device_id, utcnow()
    store = collector.store()
    try:
        (first,) = store._db.execute(
            "SELECT serial FROM device_certificates WHERE device_id = ?", (device_id,)
        ).fetchone()
        store.identity.record_renewal(device_id, "renewed-serial", now + dt.timedelta(days=14), now,
                             action="renewed")  # fmt: skip
        store.identity.admit(device_id, "renewed-serial", now)
        store.identity.admit(device_id, first, now)  # the older certificate again: a copy
    finally:
        store.close()
    data = str(collector.live.config.data_dir)
    assert collector_cli(["device", "list", "--data", data]) == 0
    table = capsys.readouterr()
    assert "1 device suspected of being cloned" in table.err
    assert "CLONE_SUSPECTED" in table.out
    assert collector_cli(["device", "show", device_id, "--data", data]) == 0
    shown = capsys.readouterr().out
    assert "clone suspected" in shown and "second computer" in shown
    assert [e.actor.startswith("local:") for e in collector.audit()] == [True, True]
