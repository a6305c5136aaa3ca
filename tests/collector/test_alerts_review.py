"""The adversarial review of IT alerts (2026-12-05): what an IT administrator relying on the
digests, and a device whose text an attacker controls, found against real receivers (a local
HTTP server, aiosmtpd) and real databases (a SQLite file, or PostgreSQL on its leg)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devposture.collector.alerts import channels
from devposture.collector.alerts.delivery import Backoff, deliver_due
from devposture.collector.alerts.digest import compose
from devposture.collector.store import DatabaseTarget, Store
from devposture.policy import default_policy
from tests.collector.alert_fleet import NOW, device, enroll, report, settings
from tests.databases import fresh_database

POLICY = default_policy()
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
BACKOFF = Backoff()


@pytest.fixture
def database(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path)


@pytest.fixture
def store(database: DatabaseTarget) -> Iterator[Store]:
    store = Store.open(database)
    yield store
    store.close()


def _stale_device(store: Store, n: int = 1, host: str = "desk-zhao") -> None:
    enroll(store, device(n))
    report(store, device(n), host, NOW - dt.timedelta(days=3), {"firewall": "PASS"})


class _HeldReceiver:
    """A webhook receiver that holds its first request (the sender waits for its answer, as
    on a receiver answering byte by byte) until `release` is set; it answers 200 to all."""

    def __init__(self) -> None:
        self.requests = 0
        self.holding = threading.Event()
        self.release = threading.Event()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    receiver.requests += 1
                    first = receiver.requests == 1
                if first:
                    receiver.holding.set()
                    receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def test_a_message_being_sent_by_one_collector_is_not_sent_again_by_another(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """Collector A's send is held by a slow receiver past the alerts lease (3 min); collector
    B, holding the lease now, finds the same message due and sent it too: the group got the
    digest twice. A message is claimed in the database before it is sent."""
    setup = Store.open(database)
    try:
        _stale_device(setup)
    finally:
        setup.close()
    receiver = _HeldReceiver()
    a, b = Store.open(database), Store.open(database)
    try:
        s = settings(tmp_path, webhook=receiver.url)
        assert compose(a, POLICY, s, NOW) is not None
        found = channels.configured(s)
        outcome: list[list[tuple[str, channels.Attempt]]] = []
        sending = threading.Thread(target=lambda: outcome.append(
            asyncio.run(deliver_due(a, found, NOW, backoff=BACKOFF))))  # fmt: skip
        sending.start()
        assert receiver.holding.wait(30)
        later = NOW + 4 * MINUTE  # A's lease has run out: B holds it and sends what is due
        assert asyncio.run(deliver_due(b, found, later, backoff=BACKOFF)) == []
        receiver.release.set()
        sending.join(60)
        ((channel, attempt),) = outcome[0]
        assert channel == "webhook" and attempt.delivered
        assert receiver.requests == 1
        assert b.alerts.deliveries() == [("webhook", "sent", 1, "sent")]
        assert asyncio.run(deliver_due(b, found, later + MINUTE, backoff=BACKOFF)) == []
    finally:
        receiver.close()
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("smtp_to", r'["it@example.com\r\nBcc: someone@example.net"]',
         r"'it@example.com\r\nBcc: someone@example.net'"),
        ("smtp_to", '["it-team example.com"]', "'it-team example.com'"),
        ("smtp_to", '["it@example.com", "boss@example,com"]', "'boss@example,com'"),
        ("smtp_to", '["it@example.com,boss@example.com"]', "'it@example.com,boss@example.com'"),
        ("smtp_from", r'"devposture@example.com\nX-Priority: 1"',
         r"'devposture@example.com\nX-Priority: 1'"),
        ("smtp_from", '"devposture"', "'devposture'"),
    ],
)  # fmt: skip
def test_an_email_address_that_is_not_one_is_refused_with_its_line_and_fix(
    tmp_path: Path, key: str, value: str, shown: str
) -> None:
    """An address with a line break (a header of its own, were it written) or not one
    address was accepted: each email then failed as 'unexpected ValueError', retried for a
    day and given up, or the server refused the recipient and the digest was lost."""
    from devposture.collector.config import CONFIG_NAME, ConfigError, load  # noqa: PLC0415
    from tests.collector.test_alerts_serve import _folder  # noqa: PLC0415

    data = _folder(tmp_path, {"smtp_host": '"127.0.0.1"', "smtp_port": "2525",
                              "smtp_security": '"none"', "smtp_from": '"a@example.com"',
                              "smtp_to": '["it-team@example.com"]'})  # fmt: skip
    path = data / CONFIG_NAME
    text = path.read_text(encoding="utf-8")
    old = {
        "smtp_to": 'smtp_to = ["it-team@example.com"]',
        "smtp_from": 'smtp_from = "a@example.com"',
    }
    path.write_text(text.replace(old[key], f"{key} = {value}"), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load(data)
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(n for n, t in enumerate(lines, 1) if t.startswith(f"{key} ="))
    assert f":{line}: [alerts] {key} has {shown}, which is not one email address" in str(
        refused.value
    )
    assert "write one address in each text, e.g. `" in str(refused.value)


def test_a_digest_names_the_clause_the_device_s_id_and_what_to_do(
    store: Store, tmp_path: Path
) -> None:
    """IT read "laptop-wang · 防火墙已开启：超过宽限期仍不合规" without the clause of the
    measures it breaks, without which device it is (a hostname is the device's own text: two
    may share one, or one may take another's), and without what to do."""
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - dt.timedelta(hours=5), {"firewall": "FAIL"})
    report(store, device(1), "laptop-wang", NOW - SECOND, {"firewall": "FAIL"})
    _stale_device(store, 3)
    composed = compose(store, POLICY, settings(tmp_path, webhook="http://127.0.0.1:9"), NOW)
    assert composed is not None
    from devposture.collector.alerts.render import texts  # noqa: PLC0415

    (pending,) = store.alerts.due(NOW)
    zh, en = texts(pending, bold=False)
    first = device(1)[:8]
    assert (
        f"- laptop-wang（{first}） · 6.3.1 防火墙已开启：超过宽限期仍不合规，自 11月30日 07:00 起"
        in zh
    )
    assert (
        f"- laptop-wang ({first}) · 6.3.1 Firewall on: failing past grace since 30 Nov 07:00" in en
    )
    assert f"- desk-zhao（{device(3)[:8]}）：失联（STALE），最后报告于 11月27日 12:00" in zh
    assert zh.index("处理建议") > zh.index("desk-zhao") and "devposture-agent status" in zh
    assert "devposture-collector device show" in zh and "device retire" in zh
    assert en.index("What to do") > en.index("desk-zhao") and "devposture-agent status" in en
    (item,) = [i for i in pending.items if i["kind"] == "failing"]
    assert item["clause"] == "6.3.1"  # the webhook's item says it too


def test_five_hundred_devices_with_hostile_names_arrive_cut_within_wecom_s_limit(
    store: Store, tmp_path: Path
) -> None:
    """Found right: 500 failing devices named 4,000 characters of markdown, HTML, control
    characters and direction overrides arrive as one WeCom message within its 4,096 bytes,
    cut with how many more, each name one line without a mark WeCom's markdown obeys; the
    webhook's JSON parses, every item there; a 200 answer with WeCom's errcode 93000 (a
    wrong key) is a failure, tried again (IT may fix the file meanwhile). Found wrong: the
    log said only "WeCom errcode 93000", not that the URL's key is what to check."""
    from tests.collector.alert_receivers import http_receiver  # noqa: PLC0415

    hostile = ("**bold** <font color=\"warning\">红</font> [link](http://x.example) `code`"
               " # h\r\n> quote\x00\x1b[31m\u202egnp.exe\u2028| a | b |\\_x_ ")  # fmt: skip
    for n in range(500):
        enroll(store, device(n))
        name = f"{n:03d}-" + (hostile * 60)[:4000]
        report(store, device(n), name, NOW - dt.timedelta(minutes=30), {"public-wifi": "FAIL"})
    bad_key = {"errcode": 93000, "errmsg": "invalid webhook url"}
    with http_receiver([(200, bad_key)]) as robot, http_receiver() as hook:
        s = settings(tmp_path, wecom=robot.url, webhook=hook.url)
        assert compose(store, POLICY, s, NOW) is not None
        first = dict(asyncio.run(deliver_due(store, channels.configured(s), NOW, backoff=BACKOFF)))
        assert first["webhook"].delivered
        assert not first["wecom"].delivered and first["wecom"].retry
        assert first["wecom"].problem == (
            "WeCom errcode 93000 (the robot's webhook URL is not valid: check the URL in"
            " [alerts] wecom_webhook_file, or whether the robot was removed from the group)"
        )
        again = asyncio.run(deliver_due(store, channels.configured(s), NOW + MINUTE,
                                        backoff=BACKOFF))  # fmt: skip
        assert [(c, a.delivered) for c, a in again] == [("wecom", True)]
        content = robot.received[1].json()["markdown"]["content"]
        document = hook.received[0].json()
    assert len(content.encode()) <= 4096
    zh, en = content.split("\n\n")
    shown = zh.split("**处理建议**")[0].count("\n- ")
    assert shown > 0 and f"… 还有 {500 - shown} 项" in zh and f"… and {500 - shown} more" in en
    for line in content.splitlines():
        assert not any(mark in line for mark in ("<font", "](", "`", "\u202e", "\x1b", "\r"))
    assert len(document["items"]) == 500 and document["counts"]["new"] == 500
    assert all(len(str(i["hostname"])) <= 64 for i in document["items"])


def test_a_device_flapping_every_hour_is_told_once_not_each_hour(
    store: Store, tmp_path: Path
) -> None:
    """A laptop between public Wi-Fi without VPN (grace 0) and the office, failing one hour
    and passing the next, was told 'new' and 'resolved' by turns: a message every hour, 24 a
    day for one device. An item now reads resolved once it has stayed away for
    RESOLVED_AFTER: the flapping one stays open, is told once and reminded after
    repeat_hours; when it stops failing for good, it is told resolved once."""
    from devposture.collector.alerts.digest import RESOLVED_AFTER  # noqa: PLC0415

    s = settings(tmp_path, webhook="http://127.0.0.1:9")
    enroll(store, device(1))
    told: list[tuple[dt.datetime, list[tuple[str, str]]]] = []
    for quarter in range(4 * 29):  # a digest every 15 min for 29 hours
        at = NOW + 15 * quarter * MINUTE
        if quarter % 4 == 0:  # on the hour: FAIL, PASS, FAIL, ...
            state = "FAIL" if quarter // 4 % 2 == 0 else "PASS"
            report(store, device(1), "laptop-flap", at - SECOND, {"public-wifi": state})
        composed = compose(store, POLICY, s, at)
        if composed is not None and composed.items:
            told.append((at, [(str(i["status"]), str(i["kind"])) for i in composed.items]))
    assert told == [
        (NOW, [("new", "failing")]),
        (NOW + dt.timedelta(hours=24), [("reminder", "failing")]),
    ]
    fixed = NOW + dt.timedelta(hours=29)  # failing since hour 28: fixed for good now
    report(store, device(1), "laptop-flap", fixed, {"public-wifi": "PASS"})
    quiet = [compose(store, POLICY, s, fixed + 15 * n * MINUTE) for n in range(1, 8)]
    assert all(c is not None and c.items == [] for c in quiet)  # not yet away for long
    later = compose(store, POLICY, s, fixed + RESOLVED_AFTER + 15 * MINUTE)
    assert later is not None
    assert [(i["status"], i["kind"]) for i in later.items] == [("resolved", "failing")]
    assert "absent_since_us" not in later.items[0]
    assert store.alerts.open_items() == {}


def test_a_failure_waived_after_it_was_told_reads_waived_until_its_end_not_resolved(
    store: Store, tmp_path: Path
) -> None:
    """A waiver granted (`waiver add`) for a failure already told made the next digest tell
    it "已恢复 / Resolved", the device still failing: IT and auditors read it as fixed. It is
    now told waived, with the waiver's last day in Beijing time and its owner, not told again
    while the waiver stands, and told new once the waiver ends with the device still failing.
    A waived failure the device then fixes is resolved as any other, after the hold."""
    from devposture.collector.alerts.digest import RESOLVED_AFTER  # noqa: PLC0415
    from devposture.collector.compliance import Waiver  # noqa: PLC0415
    from tests.collector.alert_receivers import http_receiver  # noqa: PLC0415

    enroll(store, device(1))
    enroll(store, device(2))
    for n, host in ((1, "laptop-wang"), (2, "laptop-li")):
        report(store, device(n), host, NOW - dt.timedelta(hours=5), {"firewall": "FAIL"})
        report(store, device(n), host, NOW - SECOND, {"firewall": "FAIL"})
    # `waiver add --expires 2026-12-31`: until that day ends in Beijing (16:00 UTC).
    until = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)
    granted = NOW + 5 * MINUTE

    def waive(n: int, owner: str) -> None:
        waiver = Waiver(f"w-{n}", device(n), "firewall", owner, "rollout", granted, until)
        store.waivers.add_waiver(waiver, granted)

    def digest(at: dt.datetime) -> list[tuple[str, str]]:
        composed = compose(store, POLICY, s, at)
        assert composed is not None
        asyncio.run(deliver_due(store, channels.configured(s), at, backoff=BACKOFF))
        return [(str(i["status"]), str(i["hostname"])) for i in composed.items]

    with http_receiver() as hook:
        s = settings(tmp_path, webhook=hook.url)
        assert digest(NOW) == [("new", "laptop-li"), ("new", "laptop-wang")]
        waive(1, "张伟")
        waive(2, "Li Na")
        report(store, device(2), "laptop-li", granted, {"firewall": "PASS"})  # fixed, too
        assert digest(NOW + 15 * MINUTE) == [("waived", "laptop-wang")]
        document = hook.received[-1].json()
        assert document["version"] == 1
        assert document["counts"] == {
            "new": 0, "reminder": 0, "waived": 1, "resolved": 0, "open": 1, "more": 0
        }  # fmt: skip
        (item,) = document["items"]
        assert item == {
            "status": "waived", "kind": "failing", "device_id": device(1),
            "hostname": "laptop-wang", "check": "firewall", "check_title_zh": "防火墙已开启",
            "check_title_en": "Firewall on", "clause": "6.3.1",
            "since": "2026-11-29T23:00:00Z", "waived_until": "2026-12-31T16:00:00Z",
            "waiver_owner": "张伟",
        }  # fmt: skip
        zh, en, first = document["text_zh"], document["text_en"], device(1)[:8]
        assert "新增 0 项 · 再次提醒 0 项 · 已豁免 1 项 · 已恢复 0 项 · 仍未解决共 1 项" in zh
        assert "0 new · 0 reminders · 1 waived · 0 resolved · 1 open in all" in en
        assert (
            f"已豁免\n- laptop-wang（{first}） · 6.3.1 防火墙已开启：仍不合规，"
            "已豁免至 12月31日（张伟）" in zh
        )
        assert (
            f"Waived\n- laptop-wang ({first}) · 6.3.1 Firewall on: still failing,"
            " waived until 31 Dec (张伟)" in en
        )
        assert "已恢复\n" not in zh and "Resolved\n" not in en and "处理建议" not in zh
        # Told once: the device keeps failing, reporting each day, and nothing is said of it
        # while the waiver stands (laptop-li, fixed, is resolved after the hold).
        assert digest(NOW + 15 * MINUTE + RESOLVED_AFTER) == [("resolved", "laptop-li")]
        for day in range(1, 32):
            at = NOW + dt.timedelta(days=day)
            report(store, device(1), "laptop-wang", at - MINUTE, {"firewall": "FAIL"})
            report(store, device(2), "laptop-li", at - MINUTE, {"firewall": "PASS"})
            if at < until:
                assert digest(at) == [], at
        # The waiver ended on 31 Dec (Beijing): the device still failing is told new.
        assert digest(until + 15 * MINUTE) == [("new", "laptop-wang")]
        assert hook.received[-1].json()["items"][0]["since"] == "2026-11-29T23:00:00Z"
    assert set(store.alerts.open_items()) == {f"failing:{device(1)}:firewall"}
