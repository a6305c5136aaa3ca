"""Delivering digests to real receivers on loopback: a WeCom group robot and a generic webhook
(stdlib HTTP servers) and an SMTP server (aiosmtpd). Exact documents, the markdown size cap,
the HMAC signature, retries with backoff given as data (no sleeping), refusals, the rate limit,
and no Wi-Fi name anywhere even when a verdict's reason names one."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import hmac
import http.server
import itertools
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry

from devposture.collector.alerts import channels
from devposture.collector.alerts.delivery import Backoff, deliver_due
from devposture.collector.alerts.digest import compose
from devposture.collector.alerts.payloads import WECOM_MAX_BYTES
from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.metrics import AlertMetrics
from devposture.collector.store import Store
from devposture.policy import default_policy
from devposture.policy.checks import CheckParameters, check_public_wifi
from devposture.v1 import devposture_pb2 as pb
from tests.collector.alert_fleet import (
    NOW,
    WIFI_NAME,
    device,
    enroll,
    flag_clone,
    report,
    settings,
)
from tests.collector.alert_receivers import http_receiver, smtp_receiver
from tests.databases import fresh_database

POLICY = default_policy()
SECOND = dt.timedelta(seconds=1)
BACKOFF = Backoff(first=dt.timedelta(minutes=1), cap=dt.timedelta(hours=1))
FAILING_SINCE = NOW - dt.timedelta(hours=5)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(fresh_database(tmp_path))
    yield store
    store.close()


def _two_devices(store: Store) -> None:
    """laptop-wang failing its firewall past grace, desk-zhao silent for three days."""
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", FAILING_SINCE, {"firewall": "FAIL"})
    report(store, device(1), "laptop-wang", NOW - SECOND, {"firewall": "FAIL"})
    enroll(store, device(3))
    report(store, device(3), "desk-zhao", NOW - dt.timedelta(days=3), {"firewall": "PASS"})


def _deliver(
    store: Store, s: AlertSettings, at: dt.datetime, metrics: AlertMetrics | None = None,
    backoff: Backoff = BACKOFF,
) -> list[tuple[str, channels.Attempt]]:  # fmt: skip
    found = channels.configured(s)
    return asyncio.run(deliver_due(store, found, at, backoff=backoff, metrics=metrics))


def _counted(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


ZH = "\n".join([
    "**devposture 告警摘要**（北京时间 11月30日 12:00）",
    "新增 2 项 · 再次提醒 0 项 · 已恢复 0 项 · 仍未解决共 2 项",
    "**新增**",
    "- laptop-wang（01cdcdcd） · 6.3.1 防火墙已开启：超过宽限期仍不合规，自 11月30日 07:00 起",
    "- desk-zhao（03cdcdcd）：失联（STALE），最后报告于 11月27日 12:00",
    "**处理建议**",
    "- 不合规：请设备使用人整改（在该电脑上运行 devposture-agent status 可见步骤）；"
    "详情：devposture-collector device show 设备号",
    "- 失联：确认该电脑已开机联网、devposture-agent 服务在运行；不再使用的电脑："
    "devposture-collector device retire 设备号",
])  # fmt: skip
EN = "\n".join([
    "**devposture alert digest** (30 Nov 12:00 Beijing time)",
    "2 new · 0 reminders · 0 resolved · 2 open in all",
    "**New**",
    "- laptop-wang (01cdcdcd) · 6.3.1 Firewall on: failing past grace since 30 Nov 07:00",
    "- desk-zhao (03cdcdcd): STALE, last heard 27 Nov 12:00",
    "**What to do**",
    "- failing: ask the device's user to fix it (devposture-agent status on that computer"
    " shows how); details: devposture-collector device show ID",
    "- STALE: check that the computer is on, online and running the devposture-agent service;"
    " one no longer used: devposture-collector device retire ID",
])  # fmt: skip


def test_the_wecom_robot_receives_one_markdown_digest_chinese_first(
    store: Store, tmp_path: Path
) -> None:
    _two_devices(store)
    with http_receiver() as robot:
        s = settings(tmp_path, wecom=robot.url)
        compose(store, POLICY, s, NOW)
        assert [(c, a.delivered) for c, a in _deliver(store, s, NOW)] == [("wecom", True)]
        (request,) = robot.received
    assert request.path == "/cgi-bin/webhook/send?key=robot-secret-key"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.json() == {"msgtype": "markdown", "markdown": {"content": f"{ZH}\n\n{EN}"}}
    assert store.alerts.deliveries() == [("wecom", "sent", 1, "sent")]
    assert _deliver(store, s, NOW + dt.timedelta(hours=1)) == []  # nothing more to send


def test_a_long_digest_is_cut_to_wecom_s_4096_bytes_with_how_many_more(
    store: Store, tmp_path: Path
) -> None:
    for n in range(200):
        enroll(store, device(n))
        report(store, device(n), f"工作站-财务部-{n:03d}", NOW - dt.timedelta(days=3),
               {"firewall": "PASS"})  # fmt: skip
    with http_receiver() as robot:
        s = settings(tmp_path, wecom=robot.url)
        compose(store, POLICY, s, NOW)
        _deliver(store, s, NOW)
        (request,) = robot.received
    content = request.json()["markdown"]["content"]
    assert WECOM_MAX_BYTES - 120 < len(content.encode()) <= WECOM_MAX_BYTES
    zh, en = content.split("\n\n")
    shown = zh.split("**处理建议**")[0].count("\n- ")
    assert shown == en.split("**What to do**")[0].count("\n- ") and 10 < shown < 200
    assert f"\n… 还有 {200 - shown} 项\n**处理建议**\n" in zh
    assert f"\n… and {200 - shown} more\n**What to do**\n" in en


def test_the_webhook_receives_the_versioned_json_signed_with_hmac_sha256(
    store: Store, tmp_path: Path
) -> None:
    _two_devices(store)
    with http_receiver() as hook:
        s = settings(tmp_path, webhook=hook.url, secret="webhook-signing-secret")
        composed = compose(store, POLICY, s, NOW)
        _deliver(store, s, NOW)
        (request,) = hook.received
    assert composed is not None and request.path == "/hooks/devposture"
    expected = hmac.new(b"webhook-signing-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Devposture-Signature"] == f"sha256={expected}"
    assert request.json() == {
        "schema": "devposture.alert-digest", "version": 1, "digest_id": composed.digest_id,
        "composed_at": "2026-11-30T04:00:00Z", "time_zone": "Asia/Shanghai",
        "counts": {"new": 2, "reminder": 0, "waived": 0, "resolved": 0, "open": 2, "more": 0},
        "items": [
            {"status": "new", "kind": "failing", "device_id": device(1),
             "hostname": "laptop-wang", "check": "firewall", "check_title_zh": "防火墙已开启",
             "check_title_en": "Firewall on", "clause": "6.3.1",
             "since": "2026-11-29T23:00:00Z"},
            {"status": "new", "kind": "stale", "device_id": device(3), "hostname": "desk-zhao",
             "since": "2026-11-27T04:00:00Z"},
        ],
        "text_zh": ZH.replace("**", ""), "text_en": EN.replace("**", ""),
    }  # fmt: skip


def test_http_500_is_retried_after_the_backoff_then_delivered(store: Store, tmp_path: Path) -> None:
    _two_devices(store)
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    with http_receiver([(500, {}), (503, {})]) as hook:
        s = settings(tmp_path, webhook=hook.url)
        compose(store, POLICY, s, NOW)
        (first,) = _deliver(store, s, NOW, metrics)
        assert (first[1].retry, first[1].problem) == (True, "HTTP 500")
        assert _deliver(store, s, NOW + 59 * SECOND, metrics) == []  # not due yet
        (second,) = _deliver(store, s, NOW + 60 * SECOND, metrics)  # 1 min after the first
        assert second[1].problem == "HTTP 503"
        assert _deliver(store, s, NOW + 60 * SECOND + 119 * SECOND, metrics) == []  # 2 min
        (third,) = _deliver(store, s, NOW + 180 * SECOND, metrics)
        assert third[1].delivered
        assert len(hook.received) == 3
        assert hook.received[0].body == hook.received[2].body  # the same digest each time
    assert store.alerts.deliveries() == [("webhook", "sent", 3, "sent")]
    assert _counted(registry, "devposture_alert_failures_total", channel="webhook",
                    outcome="retried") == 2  # fmt: skip
    assert _counted(registry, "devposture_alerts_sent_total", channel="webhook") == 1


def test_wecom_s_rate_limit_errcode_45009_is_retried(store: Store, tmp_path: Path) -> None:
    _two_devices(store)
    busy = {"errcode": 45009, "errmsg": "api freq out of limit"}
    with http_receiver([(200, busy)]) as robot:
        s = settings(tmp_path, wecom=robot.url)
        compose(store, POLICY, s, NOW)
        (first,) = _deliver(store, s, NOW)
        assert first[1].retry and first[1].problem == "WeCom errcode 45009 (rate limit)"
        (second,) = _deliver(store, s, NOW + 60 * SECOND)
        assert second[1].delivered and len(robot.received) == 2


def test_a_refusal_is_not_retried_is_counted_and_the_log_holds_no_secret(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _two_devices(store)
    registry = CollectorRegistry()
    with http_receiver([(404, {})]) as robot:
        s = settings(tmp_path, wecom=robot.url)
        compose(store, POLICY, s, NOW)
        with caplog.at_level(logging.INFO):
            (attempt,) = _deliver(store, s, NOW, AlertMetrics(registry))
        assert _deliver(store, s, NOW + dt.timedelta(hours=2)) == []
        assert len(robot.received) == 1
    assert (attempt[1].retry, attempt[1].problem) == (False, "HTTP 404")
    assert store.alerts.deliveries() == [("wecom", "failed", 1, "HTTP 404")]
    assert _counted(registry, "devposture_alert_failures_total", channel="wecom",
                    outcome="refused") == 1  # fmt: skip
    assert "refused the digest (HTTP 404), not retried" in caplog.text
    assert "拒收" in caplog.text and "wecom_webhook_file" in caplog.text
    assert "robot-secret-key" not in caplog.text


def test_a_receiver_away_is_retried_with_a_capped_backoff_and_given_up_after_a_day(
    store: Store, tmp_path: Path
) -> None:
    _two_devices(store)
    with http_receiver() as gone:
        url = gone.url  # closed when the block ends: connections are refused from then on
    s = settings(tmp_path, webhook=url)
    compose(store, POLICY, s, NOW)
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    tried_at = []
    at = NOW
    while store.alerts.deliveries()[0][1] == "pending":
        assert len(_deliver(store, s, at, metrics)) == 1
        tried_at.append(at)
        if store.alerts.deliveries()[0][1] == "pending":
            at = _next_due(store)
    gaps = [later - earlier for earlier, later in itertools.pairwise(tried_at)]
    assert gaps[:4] == [dt.timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(gaps) == dt.timedelta(hours=1)  # the cap
    assert tried_at[-2] < NOW + dt.timedelta(days=1) <= tried_at[-1]
    ((channel, state, attempts, outcome),) = store.alerts.deliveries()
    assert (channel, state, attempts) == ("webhook", "failed", len(tried_at))
    assert outcome.startswith("no answer (ConnectionRefusedError")
    assert _counted(registry, "devposture_alert_failures_total", channel="webhook",
                    outcome="given_up") == 1  # fmt: skip


def _next_due(store: Store) -> dt.datetime:
    (next_us,) = store._db.execute(
        "SELECT next_us FROM alert_outbox WHERE state = 'pending'"
    ).fetchone()
    return dt.datetime.fromtimestamp(next_us / 1e6, dt.UTC)


def test_a_channel_s_messages_a_minute_are_limited(store: Store, tmp_path: Path) -> None:
    """A channel taking one message a minute (WeCom's robot takes 20) is not tried again
    within the minute, even when the backoff says it is due."""
    _two_devices(store)
    with http_receiver([(500, {})]) as robot:
        s = settings(tmp_path, wecom=robot.url)
        compose(store, POLICY, s, NOW)
        wecom = dataclasses.replace(channels.configured(s)["wecom"], per_minute=1)  # type: ignore[type-var]
        quick = Backoff(first=10 * SECOND)

        def deliver(at: dt.datetime) -> list[tuple[str, channels.Attempt]]:
            return asyncio.run(deliver_due(store, {"wecom": wecom}, at, backoff=quick))

        assert len(deliver(NOW)) == 1
        assert deliver(NOW + 10 * SECOND) == []  # due, but the minute's one was sent
        assert [a.delivered for _, a in deliver(NOW + 60 * SECOND)] == [True]


def _public_wifi_failure(store: Store) -> str:
    """laptop-wang on public Wi-Fi without VPN, judged by the real check: its reason names
    the network, as does the report's body. The reason, for the test to check."""
    report_pb = pb.PostureReport(device_id=device(1), report_id="wifi-1")
    report_pb.wifi.has_wifi_interface = True
    started = Timestamp()
    started.FromDatetime(NOW - dt.timedelta(hours=1))
    report_pb.wifi.sessions.add(
        network_id=WIFI_NAME, classification=pb.NETWORK_CLASS_PUBLIC,
        classification_reasons=[f"name matches {WIFI_NAME}"], started_at=started,
    )  # fmt: skip
    verdict = check_public_wifi(report_pb, NOW, CheckParameters())
    assert verdict.state.value == "FAIL" and WIFI_NAME in verdict.reason
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - dt.timedelta(minutes=5),
           {"public-wifi": "FAIL"}, body=report_pb.SerializeToString(),
           reason=verdict.reason)  # fmt: skip
    return verdict.reason


def test_email_carries_both_languages_and_no_wi_fi_name_on_any_channel(
    store: Store, tmp_path: Path
) -> None:
    _public_wifi_failure(store)
    enroll(store, device(4))
    report(store, device(4), "pc-4", NOW - SECOND, {"firewall": "PASS"})
    flag_clone(store, device(4), NOW - dt.timedelta(minutes=30))
    with smtp_receiver() as smtp, http_receiver() as robot, http_receiver() as hook:
        s = settings(tmp_path, wecom=robot.url, webhook=hook.url, smtp_port=smtp.port)
        compose(store, POLICY, s, NOW)
        outcomes = _deliver(store, s, NOW)
        assert sorted((c, a.delivered) for c, a in outcomes) == [
            ("email", True), ("webhook", True), ("wecom", True),
        ]  # fmt: skip
        (message,) = smtp.messages
        assert smtp.envelopes == [("devposture@example.com", ["it-team@example.com"])]
        sent = [robot.received[0].body.decode(), hook.received[0].body.decode()]
    assert message["Subject"] == (
        "[devposture] 告警摘要：新增 2 项，仍未解决 2 项 / Alert digest: 2 new, 2 open"
    )
    assert message["From"] == "devposture@example.com"
    assert message["To"] == "it-team@example.com"
    body = message.get_content()
    zh, en = body.split("\n\n----\n\n")
    wifi_zh = "laptop-wang（01cdcdcd） · 6.3.2 在公共无线网络上使用 VPN：超过宽限期仍不合规"
    assert f"{wifi_zh}，自 11月30日 11:55 起" in zh
    assert "pc-4（04cdcdcd）：疑似克隆（其状态文件夹在另一台电脑上运行），11月30日 11:30 发现" in zh
    assert (
        "laptop-wang (01cdcdcd) · 6.3.2 VPN on public Wi-Fi: failing past grace since 30 Nov 11:55"
        in en
    )
    assert "pc-4 (04cdcdcd): suspected clone" in en
    for text in (body, message["Subject"], *sent):
        assert WIFI_NAME not in text and "CMCC" not in text


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_is_refused_not_followed_with_the_digest_lost(
    store: Store, tmp_path: Path, status: int
) -> None:
    # urllib followed it as a GET without the body and counted the digest sent; and carried
    # the signature header to wherever Location pointed.
    _two_devices(store)
    with http_receiver([(status, {"location": "/elsewhere"})]) as hook:
        s = settings(tmp_path, webhook=hook.url, secret="s3cret")
        compose(store, POLICY, s, NOW)
        ((channel, attempt),) = _deliver(store, s, NOW)
        assert [r.path for r in hook.received] == ["/hooks/devposture"]  # nothing followed
    assert channel == "webhook" and not attempt.delivered and not attempt.retry
    assert attempt.problem == f"HTTP {status}"


def test_an_email_says_when_it_was_composed_and_keeps_its_chinese_7_bit(
    store: Store, tmp_path: Path
) -> None:
    _two_devices(store)
    with smtp_receiver() as smtp:
        s = settings(tmp_path, smtp_port=smtp.port)
        compose(store, POLICY, s, NOW)
        _deliver(store, s, NOW)
        (message,) = smtp.messages
    # RFC 5322's Date, in Beijing time; base64, which a relay without 8BITMIME passes intact.
    assert message["Date"] == "Mon, 30 Nov 2026 12:00:00 +0800"
    assert message["Content-Transfer-Encoding"] == "base64"
    assert "仍未解决" in message.get_content()


def test_a_receiver_whose_certificate_does_not_verify_is_refused_not_retried(
    store: Store, tmp_path: Path
) -> None:
    # A setting to fix (the URL's name, the receiver's CA), not an outage: retried for a day
    # as "no answer", it misled IT.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))  # fmt: skip
    (tmp_path / "r.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "r.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "r.crt", tmp_path / "r.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _two_devices(store)
        s = settings(tmp_path, webhook=f"https://127.0.0.1:{server.server_address[1]}")
        compose(store, POLICY, s, NOW)
        ((_, attempt),) = _deliver(store, s, NOW)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not attempt.delivered and not attempt.retry
    assert attempt.problem.startswith("the receiver's TLS certificate does not verify")


def test_smtp_4xx_is_retried_and_5xx_refused(store: Store, tmp_path: Path) -> None:
    _two_devices(store)
    with smtp_receiver(["451 4.3.0 try again later", "250 OK"]) as smtp:
        s = settings(tmp_path, smtp_port=smtp.port)
        compose(store, POLICY, s, NOW)
        (first,) = _deliver(store, s, NOW)
        assert (first[1].retry, first[1].problem) == (True, "SMTP 451")
        (second,) = _deliver(store, s, NOW + 60 * SECOND)
        assert second[1].delivered and len(smtp.messages) == 1
    enroll(store, device(5))
    report(store, device(5), "pc-5", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    with smtp_receiver(["550 5.7.1 relaying denied"]) as smtp:
        s = settings(tmp_path, smtp_port=smtp.port)
        compose(store, POLICY, s, NOW + dt.timedelta(minutes=15))
        (refused,) = _deliver(store, s, NOW + dt.timedelta(minutes=15))
        assert (refused[1].retry, refused[1].problem) == (False, "SMTP 550")
    assert [row[1] for row in store.alerts.deliveries()] == ["sent", "failed"]


def test_a_secret_file_that_cannot_be_read_is_retried_naming_the_setting(
    store: Store, tmp_path: Path
) -> None:
    _two_devices(store)
    s = AlertSettings(wecom_webhook_file=tmp_path / "missing.url")
    compose(store, POLICY, s, NOW)
    ((_, attempt),) = _deliver(store, s, NOW)
    assert attempt.retry
    assert attempt.problem == "cannot read [alerts] wecom_webhook_file (No such file or directory)"
    assert json.dumps(store.alerts.deliveries()).count("missing.url") == 0


def test_the_digest_is_written_in_the_policy_s_time_zone(store: Store, tmp_path: Path) -> None:
    """A company in Berlin reads Berlin time (winter: UTC+1), named in the heading and in the
    webhook's `time_zone`."""
    _two_devices(store)
    with http_receiver() as hook:
        s = settings(tmp_path, webhook=hook.url)
        compose(store, POLICY, s, NOW)
        found = channels.configured(s, "Europe/Berlin")
        asyncio.run(deliver_due(store, found, NOW, backoff=BACKOFF))
        (request,) = hook.received
    sent = request.json()
    assert sent["time_zone"] == "Europe/Berlin"
    heading_zh, heading_en = sent["text_zh"].splitlines()[0], sent["text_en"].splitlines()[0]
    assert heading_zh == "devposture 告警摘要（Europe/Berlin 时间 11月30日 05:00）"
    assert heading_en == "devposture alert digest (30 Nov 05:00 Europe/Berlin time)"
    assert "since 30 Nov 00:00" in sent["text_en"] and "自 11月30日 00:00 起" in sent["text_zh"]


def test_one_reminder_is_counted_in_the_singular() -> None:
    """The English heading said "1 reminders"."""
    from devposture.collector.alerts.render import texts  # noqa: PLC0415
    from devposture.collector.store.alerts import Delivery, Detail  # noqa: PLC0415

    item: Detail = {"kind": "stale", "status": "reminder", "hostname": "desk-zhao",
            "since": (NOW - dt.timedelta(days=3)).isoformat()}  # fmt: skip
    delivery = Delivery("d1", "wecom", "g1", [item], 0, 1, NOW, NOW, 0)
    zh, en = texts(delivery, bold=False)
    assert "1 new" not in en and "0 new · 1 reminder · 0 resolved · 1 open in all" in en
    assert "再次提醒 1 项" in zh
