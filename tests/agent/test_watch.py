"""Watchers: a network change and a new backup are noticed quickly, and cheaply."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from devposture.agent.collect import build_report
from devposture.agent.host import NetInterface
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.sessions import SessionLog
from devposture.agent.watch import BackupWatcher, NetworkWatcher, network_signature
from devposture.policy.checks import State, evaluate
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_text, ok, recorded
from tests.agent.windows.replay_windows import WindowsReplayHost
from tests.agent.windows.replay_windows import output as windows_output

PROMISED_SECONDS = 10.0
ETHERNET = NetInterface("eno1", True, 1500, ("up",), ("192.168.1.20",))
WIFI_DOWN = NetInterface("wlo1", False, 1500, (), ())
WIFI_UP = NetInterface("wlo1", True, 1500, ("up",), ("10.20.30.40",))


class ChangingHost(ReplayHost):
    """A replayed laptop whose network changes when the test says so; the clock is real."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _laptop() -> ChangingHost:
    host = ChangingHost()
    host.with_tool("nmcli")
    host.dirs["/sys/class/net"] = ["eno1", "lo", "wlo1"]
    host.dirs["/sys/class/net/wlo1/wireless"] = []
    host.interfaces = [ETHERNET, WIFI_DOWN]
    host.procs = []
    return host


def _join_recorded_network(host: ChangingHost) -> None:
    """Recorded outputs of a laptop associated with a network (tests/fixtures/linux/nmcli)."""
    host.commands[("nmcli", "-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device")] = ok(
        fixture_text("nmcli/nmcli-device-wifi-connected.out")
    )
    host.commands[
        ("nmcli", "-t", "-f", "IN-USE,SSID,BSSID,CHAN,SIGNAL,SECURITY",
         "device", "wifi", "list", "--rescan", "no")
    ] = ok(fixture_text("nmcli/nmcli-wifi-list-in-use-mesh.out"))  # fmt: skip
    # NetworkManager's connectivity check reached the Internet: no captive portal.
    host.commands[cmd.NMCLI_CONNECTIVITY] = recorded("nmcli/nmcli-device-connectivity-full-netns")
    host.interfaces = [ETHERNET, WIFI_UP]


def test_network_change_is_reported_within_the_promised_time(tmp_path: Path) -> None:
    host = _laptop()
    # The company lists this network name as public (a hotel's, say): no VPN, so it fails.
    config = ProbeConfig(public_network_patterns=("HomeNet",))
    log = SessionLog(tmp_path / "wifi-sessions.json")
    reports: list[pb.PostureReport] = []
    done = threading.Event()

    def collect() -> None:
        report = build_report(host, config)
        log.apply(report)
        reports.append(report)
        done.set()

    watcher = NetworkWatcher(host, collect, interval=0.5)
    watcher.start()
    try:
        time.sleep(1.2)  # settled on Ethernet: no change, no collection
        assert reports == []
        changed_at = time.monotonic()
        _join_recorded_network(host)
        assert done.wait(PROMISED_SECONDS)
        noticed = time.monotonic() - changed_at
    finally:
        watcher.stop()
    print(f"network change reported after {noticed:.2f} s")
    assert noticed < PROMISED_SECONDS
    (report,) = reports
    (session,) = report.wifi.sessions
    assert session.network_id == "HomeNet"
    assert session.classification == pb.NETWORK_CLASS_PUBLIC
    assert not session.vpn_up and not session.HasField("ended_at")
    verdict = dict((c.check_id, v) for c, v in evaluate(report, datetime.now(UTC)))["public-wifi"]
    assert (
        verdict.state is State.FAIL
        and "HomeNet" in render(verdict.reason, "en", UTC)
        and "without VPN" in render(verdict.reason, "en", UTC)
    )


def test_no_change_means_no_collection_and_errors_do_not_stop_the_watcher() -> None:
    host = _laptop()
    calls: list[int] = []

    def failing_collection() -> None:
        calls.append(1)
        raise RuntimeError("probe crashed")

    watcher = NetworkWatcher(host, failing_collection, interval=0.1)
    watcher.start()
    time.sleep(0.5)
    assert calls == []
    host.interfaces = [ETHERNET]
    time.sleep(0.5)
    host.interfaces = [ETHERNET, WIFI_UP]
    time.sleep(0.5)
    watcher.stop()
    assert len(calls) == 2  # the failing callback did not kill the thread


def _wait(event: threading.Event, seconds: float) -> float | None:
    start = time.monotonic()
    return time.monotonic() - start if event.wait(seconds) else None


def test_a_new_backup_file_is_noticed(tmp_path: Path) -> None:
    folder = tmp_path / "WeChat Files" / "wxid_a" / "Backup"
    folder.mkdir(parents=True)
    fired = threading.Event()
    watcher = BackupWatcher([str(tmp_path / "WeChat Files")], fired.set, settle=0.3)
    watcher.start()
    try:
        time.sleep(0.2)
        (folder / "backup-2026-11-24.bak").write_bytes(b"\x00" * 100)
        took = _wait(fired, 60)
    finally:
        watcher.stop()
    assert took is not None and took < 60
    print(f"new backup noticed after {took:.2f} s")


def test_a_backup_folder_that_does_not_exist_yet_is_noticed_when_made(tmp_path: Path) -> None:
    documents = tmp_path / "Documents"
    documents.mkdir()
    fired = threading.Event()
    watcher = BackupWatcher([str(documents / "WeChat Files")], fired.set, settle=0.3)
    assert watcher.watched == [str(documents)]
    watcher.start()
    try:
        time.sleep(0.2)
        (documents / "WeChat Files").mkdir()
        assert fired.wait(10)
    finally:
        watcher.stop()


def test_reading_backups_does_not_trigger(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    fired = threading.Event()
    watcher = BackupWatcher([str(tmp_path)], fired.set, settle=0.2)
    watcher.start()
    try:
        time.sleep(0.2)
        (tmp_path / "f").read_bytes()
        assert not fired.wait(1.0)
    finally:
        watcher.stop()


class ChangingWindowsHost(WindowsReplayHost):
    """A replayed Windows laptop whose network changes when the test says so; real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def test_open_network_without_vpn_is_reported_within_the_promised_time(tmp_path: Path) -> None:
    # Recorded outputs of two real Windows machines (tests/fixtures/windows/README.md): an
    # `ipconfig /all` whose TAP VPN adapters are disconnected, and a French Windows 11 joined
    # to an open network ("Authentification : Ouvrir", "Chiffrement : Aucun").
    host = ChangingWindowsHost()
    host.record(
        ["ipconfig", "/all"], windows_output("ipconfig/all-en-win7-tap-disconnected-mojibake.txt")
    )
    host.interfaces = [ETHERNET, WIFI_DOWN]
    host.procs = []
    log = SessionLog(tmp_path / "wifi-sessions.json")
    reports: list[pb.PostureReport] = []
    done = threading.Event()

    def collect() -> None:
        report = build_report(host, ProbeConfig())
        log.apply(report)
        reports.append(report)
        done.set()

    watcher = NetworkWatcher(host, collect, interval=0.5)
    watcher.start()
    try:
        time.sleep(1.2)
        changed_at = time.monotonic()
        host.record(
            ["netsh", "wlan", "show", "interfaces"],
            windows_output("netsh_wlan/interfaces-fr-win11-ax201-open.txt"),
        )
        host.interfaces = [ETHERNET, WIFI_UP]
        assert done.wait(PROMISED_SECONDS)
        noticed = time.monotonic() - changed_at
    finally:
        watcher.stop()
    print(f"open network reported after {noticed:.2f} s")
    assert noticed < PROMISED_SECONDS
    (report,) = reports
    assert report.host.os_family == pb.OS_FAMILY_WINDOWS
    assert report.HasField("vpn") and not report.vpn.active
    (session,) = report.wifi.sessions
    assert session.security == pb.WIFI_SECURITY_OPEN
    assert session.classification == pb.NETWORK_CLASS_PUBLIC
    assert session.network_id == "SSID-1"  # public networks keep their name
    assert not session.vpn_up and not session.HasField("ended_at")
    verdict = {c.check_id: v for c, v in evaluate(report, datetime.now(UTC))}["public-wifi"]
    assert (
        verdict.state is State.FAIL
        and "SSID-1" in render(verdict.reason, "en", UTC)
        and "without VPN" in render(verdict.reason, "en", UTC)
    )


def test_containers_starting_and_stopping_are_not_network_changes() -> None:
    """Docker makes a bridge and one veth end per container (and a br-<id> per user network);
    a laptop starting containers collected back to back, each report kept longest. A VPN's
    interface and the Wi-Fi's address still count."""
    host = _laptop()
    host.interfaces = [ETHERNET, WIFI_UP]
    before = network_signature(host)
    host.interfaces = [
        ETHERNET, WIFI_UP,
        NetInterface("docker0", True, 1500, ("up",), ("172.17.0.1",)),
        NetInterface("br-3f2a9c1d7e6b", True, 1500, ("up",), ("172.18.0.1",)),
        NetInterface("veth5d1c2e0", True, 1500, ("up",), ()),
        NetInterface("virbr0", False, 1500, (), ("192.168.122.1",)),
        NetInterface("vEthernet (WSL)", True, 1500, ("up",), ("172.29.64.1",)),
    ]  # fmt: skip
    assert network_signature(host) == before
    host.interfaces = [ETHERNET, WIFI_UP, NetInterface("tun0", True, 1500, ("up",), ("10.8.0.6",))]
    assert network_signature(host) != before
    host.interfaces = [ETHERNET, NetInterface("wlo1", True, 1500, ("up",), ("10.20.30.41",))]
    assert network_signature(host) != before
