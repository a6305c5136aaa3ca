"""Wi-Fi sessions carried across observations: opened, VPN noted, closed, kept until delivered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from devposture.agent.sessions import Session, SessionLog, delivered, merge
from devposture.agent.state import AgentState
from devposture.v1 import devposture_pb2 as pb

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def seen(network_id: str = "Airport-Free", security: int = pb.WIFI_SECURITY_OPEN) -> pb.WifiSession:
    return pb.WifiSession(
        network_id=network_id,
        security=security,  # type: ignore[arg-type]
        classification=pb.NETWORK_CLASS_PUBLIC,
        interface="wlan0",
    )


def test_a_session_opens_notes_the_vpn_and_closes() -> None:
    log = merge([], T0, [seen()], vpn_active=False)
    assert [(s.started_at, s.ended_at, s.vpn_up_at) for s in log] == [(T0.isoformat(), None, None)]
    log = merge(log, T0 + timedelta(seconds=30), [seen()], vpn_active=True)
    assert log[0].vpn_up_at == (T0 + timedelta(seconds=30)).isoformat()
    log = merge(log, T0 + timedelta(minutes=5), [seen()], vpn_active=False)
    assert log[0].vpn_up_at == (T0 + timedelta(seconds=30)).isoformat()  # first time kept
    log = merge(log, T0 + timedelta(minutes=9), [], vpn_active=False)
    assert log[0].ended_at == (T0 + timedelta(minutes=9)).isoformat()
    proto = log[0].to_proto()
    assert proto.vpn_up and proto.HasField("ended_at") and proto.network_id == "Airport-Free"


def test_switching_networks_closes_one_and_opens_the_next() -> None:
    log = merge([], T0, [seen("A")], vpn_active=False)
    log = merge(log, T0 + timedelta(minutes=1), [seen("B")], vpn_active=False)
    assert [(s.network_id, s.ended_at is not None) for s in log] == [("A", True), ("B", False)]


def test_delivery_drops_only_closed_sessions_the_report_carried() -> None:
    log = merge([], T0, [seen("A")], vpn_active=False)
    log = merge(log, T0 + timedelta(minutes=1), [seen("B")], vpn_active=False)
    log = merge(log, T0 + timedelta(minutes=2), [seen("C")], vpn_active=False)
    remaining = delivered(log, up_to=T0 + timedelta(minutes=1))
    assert [s.network_id for s in remaining] == ["B", "C"]  # B closed later than that report
    assert [s.network_id for s in delivered(log, T0 + timedelta(minutes=2))] == ["C"]


def _report(at: datetime, network: str | None, vpn: bool = False) -> pb.PostureReport:
    report = pb.PostureReport()
    report.collected_at.FromDatetime(at)
    report.wifi.has_wifi_interface = True
    report.vpn.active = vpn
    if network:
        report.wifi.sessions.append(seen(network))
        report.wifi.sessions[0].started_at.FromDatetime(at)
    return report


def test_log_persists_across_runs_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "wifi-sessions.json"
    first = _report(T0, "Airport-Free")
    SessionLog(path).apply(first)
    second = _report(T0 + timedelta(minutes=3), None)
    SessionLog(path).apply(second)  # a new process: reads what the first wrote
    (session,) = second.wifi.sessions
    assert session.started_at.ToDatetime(tzinfo=UTC) == T0
    assert session.ended_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=3)
    assert not session.vpn_up
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    SessionLog(path).acknowledged(second)
    assert SessionLog(path).load() == []


def test_preview_does_not_change_the_log(tmp_path: Path) -> None:
    path = tmp_path / "wifi-sessions.json"
    SessionLog(path).apply(_report(T0, "A"), save=False)
    assert not path.exists()


def test_unreadable_wifi_leaves_the_log_alone(tmp_path: Path) -> None:
    path = tmp_path / "wifi-sessions.json"
    SessionLog(path).apply(_report(T0, "A"))
    failed = pb.PostureReport()
    failed.collected_at.FromDatetime(T0 + timedelta(minutes=1))
    SessionLog(path).apply(failed)
    assert [s.ended_at for s in SessionLog(path).load()] == [None]


def test_a_damaged_log_is_set_aside_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "wifi-sessions.json"
    path.write_text("[{broken")
    assert SessionLog(path).load() == []
    assert (tmp_path / "wifi-sessions.damaged").exists()


def test_the_log_is_bounded() -> None:
    log: list[Session] = []
    for minute in range(600):
        log = merge(log, T0 + timedelta(minutes=minute), [seen(f"N{minute}")], vpn_active=False)
    assert len(log) == 500
    assert log[-1].network_id == "N599" and log[-1].ended_at is None


def test_each_device_has_its_own_private_network_key(tmp_path: Path) -> None:
    first = AgentState(tmp_path / "a").network_hash_key()
    assert len(first) == 32
    assert AgentState(tmp_path / "a").network_hash_key() == first  # kept
    assert AgentState(tmp_path / "b").network_hash_key() != first
    assert oct((tmp_path / "a" / "network-hash.key").stat().st_mode & 0o777) == "0o600"
