"""The audit log's explanation column (说明) in the reader's language, on a real collector: an
entry of every kind (a command's note, its error, a refusal of its role, of a remote caller
without a valid credential, a dashboard login refused, accepted, and a logout), worded in a
Chinese table locally, over the admin port (real TLS) and on the dashboard's audit page,
while JSON, CSV and the dashboard's downloads keep the English the log stores, byte for byte.

The column stayed English for a Chinese reader: 'credential 0123… for 李伟, role auditor',
'no device deadbeef: see the ids in …', 'signed in'."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import grpc
import pytest

from devposture.collector import cli_words
from devposture.collector.admin import audit_words
from devposture.collector.admin.commands import Actor, CommandError, Runner
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, AUDITOR, VIEWER
from devposture.collector.web.server import start_dashboard
from devposture.policy import catalogs, cli_messages
from devposture.policy.cli_messages import CONTEXT
from tests.collector.test_admin import AdminCollector, admin_collector
from tests.collector.test_cli_review import MARK, _in, marked  # noqa: F401  (a fixture)
from tests.conftest import enroll_agent
from tests.web.conftest import Fleet, fetch, login

NO_DEVICE = "no device {device_id}: see the ids in `devposture-collector device list`"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminCollector]:
    root = tmp_path_factory.mktemp("audit-words")
    with admin_collector(root / "collector") as running:
        _every_kind(running, root)
        yield running


def _every_kind(collector: AdminCollector, root: Path) -> None:
    """One audit entry of each kind the log holds."""
    devices = [enroll_agent(collector.live, root / f"agent{n}", hostname=f"pc-{n}")
               for n in range(3)]  # fmt: skip
    ids = [d.enrollment.device_id for d in devices]
    expires = (utcnow() + dt.timedelta(days=30)).date().isoformat()
    store = collector.store()
    try:
        runner = Runner(store, collector.live.config)
        admin = Actor("张伟 (IT)", ADMIN, "0123456789abcdef")

        def run(command: str, arguments: dict[str, str] | None = None,
                actor: Actor = admin) -> None:  # fmt: skip
            with suppress(CommandError):  # audited: an error or a refusal is an entry too
                runner.run(command.split(), arguments or {}, actor, peer="local", remote=False)

        waiver = {"check": "firewall", "owner": "张伟", "reason": "等待新电脑", "expires": expires}
        run("waiver add", {"device": ids[0], **waiver})
        run("waiver add", {"device": f"{ids[1]}\n{ids[2]}", **waiver})  # one note a device
        run("waiver revoke", {"waiver_id": store.waivers.recorded()[0].waiver_id,
                              "reason": "已修好"})  # fmt: skip
        run("token create")
        run("token create", {"uses": "3", "group": "财务部"})
        run("token create", {"bundle": "1", "enroll_address": "127.0.0.1:7443"})
        run("token create", {"bundle": "1", "enroll_address": "collector.example.com:7443"})
        run("admin add", {"name": "李伟", "role": AUDITOR})
        run("device retire", {"device_id": ids[1], "reason": "换了新电脑"})
        run("device revoke", {"device_id": ids[2], "reason": "丢失"})
        run("audit public-key")
        run("audit check")
        run("audit export", {"from": "2026-01-01", "to": "2100-01-01",
                             "out": str(root / "bundle.zip")})  # fmt: skip
        run("device show", {"device_id": "deadbeef"})  # not found
        run("token create", actor=Actor("Li Wei", VIEWER, "fedcba9876543210"))  # its role
        run("no such")  # no such command
    finally:
        store.close()
    with pytest.raises(grpc.RpcError):  # a caller with no valid credential, over the admin port
        collector.run("dpa_0123456789abcdef_" + "x" * 43, "audit", "log")
    with _dashboard(collector, collector.credential("王芳 (helpdesk)", VIEWER)) as (fleet, cookie):
        logout = fetch(fleet, "GET", "/", cookie=cookie).text
        csrf = logout.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        origin = {"Origin": fleet.base}
        assert fetch(fleet, "POST", "/logout", form={"csrf": csrf}, cookie=cookie,
                     headers=origin).status == 303  # fmt: skip
        for wrong in ("not a credential", "dpa_0123456789abcdef_" + "y" * 43):
            assert fetch(fleet, "POST", "/login", form={"credential": wrong}).status == 401


@contextmanager
def _dashboard(collector: AdminCollector, credential: str) -> Iterator[tuple[Fleet, str]]:
    """The collector's dashboard, and a session of `credential` on it."""
    dashboard = start_dashboard(collector.live.config, "127.0.0.1", 0)
    try:
        fleet = Fleet(collector.live, dashboard, credential, "", "", "")
        yield fleet, login(fleet)
    finally:
        dashboard.stop()


@pytest.fixture
def known(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sentence of the command line known, as `make catalogs` puts them in the
    catalogs: with `marked`, a message worded for the reader shows in brackets whether or
    not the catalogs have its Chinese yet; one left as it was written shows bare."""
    every = [english for context, english in cli_words.every_message() if context == CONTEXT]
    sentences = audit_words.Sentences(every)  # once, as the cached one is: it compiles them all
    monkeypatch.setattr(audit_words, "_sentences", lambda: sentences)


def _where(collector: AdminCollector, tmp_path: Path) -> dict[str, list[str]]:
    """`audit log`'s arguments on the collector machine, and over the admin port."""
    credential = tmp_path / "credential"
    credential.write_text(collector.credential("审计 王", AUDITOR) + "\n")
    credential.chmod(0o600)
    return {
        "local": ["--data", str(collector.live.config.data_dir)],
        "remote": ["--collector", f"127.0.0.1:{collector.admin_port}", "--ca-fingerprint",
                   collector.live.ca_fingerprint, "--credential-file", str(credential)],
    }  # fmt: skip


def _stored(collector: AdminCollector) -> list[str]:
    return [e.message for e in collector.audit()]


@pytest.mark.usefixtures("marked", "known")
def test_every_kind_of_entry_is_worded_in_a_chinese_table_and_kept_in_files(
    collector: AdminCollector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name, where in _where(collector, tmp_path).items():
        _in(monkeypatch, "zh_CN.UTF-8")
        assert collector_cli(["audit", "log", *where, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        stored = _stored(collector)
        messages = [row["message"] for row in rows]
        assert messages == stored[: len(messages)], name  # the English, byte for byte
        assert collector_cli(["audit", "log", *where, "--format", "csv"]) == 0
        lines = list(csv.DictReader(io.StringIO(capsys.readouterr().out.lstrip("\ufeff"))))
        assert [line["message"] for line in lines] == stored[: len(lines)], name
        assert collector_cli(["audit", "log", *where]) == 0
        table = capsys.readouterr().out
        bare = [m for m in messages if m and MARK.format("")[0] not in
                cli_messages.told_in(audit_words.message_cell(m), "zh")]  # fmt: skip
        assert bare == [], name  # every kind is one of our sentences
        for message in messages:
            if message:
                assert audit_words.message_in(message, "zh") in table, (name, message)
    kinds = "\n".join(stored)
    for written in ("credential ", "signed in", "signed out", "not an admin credential",
                    "is unknown or revoked", "device " + "", "exported ", "public key ",
                    "the tables agree with the chain", "; as an enrollment value for ",
                    "admin credential ", "agents could not trust the collector at ",
                    "role; Li Wei (fedcba9876543210) has the viewer role",
                    "no admin command"):  # fmt: skip
        assert written in kinds, written  # each kind is in the log


def test_the_chinese_reader_gets_the_catalog_s_chinese_and_the_english_reader_the_log_s(
    collector: AdminCollector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    english = NO_DEVICE.format(device_id="deadbeef")
    chinese = catalogs.translate("zh", CONTEXT, NO_DEVICE).format(device_id="deadbeef")
    assert chinese != english and "deadbeef" in chinese  # the catalog has its Chinese
    for where in _where(collector, tmp_path).values():
        _in(monkeypatch, "zh_CN.UTF-8")
        assert collector_cli(["audit", "log", *where]) == 0
        table = capsys.readouterr().out
        assert chinese in table and english not in table
        _in(monkeypatch, "C.UTF-8")
        assert collector_cli(["audit", "log", *where]) == 0
        assert english in capsys.readouterr().out


def test_the_dashboard_s_audit_page_words_each_message_and_its_download_keeps_the_log_s(
    collector: AdminCollector,
) -> None:
    with _dashboard(collector, collector.credential("审计 刘", AUDITOR)) as (fleet, cookie):
        page = fetch(fleet, "GET", "/audit?lang=zh", cookie=cookie).text
        chinese = catalogs.translate("zh", CONTEXT, NO_DEVICE).format(device_id="deadbeef")
        assert chinese.replace("`", "&#96;") in page or chinese in page
        english = NO_DEVICE.format(device_id="deadbeef")
        assert english not in page
        assert english in fetch(fleet, "GET", "/audit?lang=en", cookie=cookie).text
        rows = json.loads(fetch(fleet, "GET", "/download/audit?format=json", cookie=cookie).text)
        assert [row["message"] for row in rows] == _stored(collector)[: len(rows)]


def test_a_name_or_reason_typed_by_it_is_never_translated() -> None:
    """A sentence with hardly any words of its own ('{first} and {second}') is taken only when
    a value inside it is one of ours; a reason IT typed stays as typed, even one that reads
    like a sentence of ours."""
    sentences = audit_words.Sentences([
        "{first} and {second}", "signed in", "device {device_id} retired: {reason}",
    ])  # fmt: skip
    assert sentences.said("Li and Wang") is None  # a name, not a sentence of ours
    found = sentences.said("signed in and signed in")
    assert found is not None and found.english == "{first} and {second}"
    retired = sentences.said("device 01ab retired: signed in")  # the reason IT typed
    assert retired is not None and retired.params["reason"] == "signed in"
    assert sentences.said("device 01ab retired") is None  # not this sentence: as it is


def test_a_time_in_an_entry_reads_in_the_brackets_of_the_reader_s_language() -> None:
    """'令牌 …：可用 2 次，2026-12-07 03:07 (UTC+08:00) 过期': the log keeps the English, in
    which the time's brackets are ASCII; a Chinese reader gets them full-width, as every other
    time in a Chinese sentence (`devposture.policy.moments`)."""
    stored = "token 0123456789abcdef: 2 uses, expires 2026-12-07 03:07 (UTC+08:00)"
    sentences = audit_words.Sentences(["token {token}: {uses} use(s), expires {until}"])
    found = sentences.said(stored)
    assert found is not None and str(found) == stored
    assert "2026-12-07 03:07（UTC+08:00）" in found.worded("zh")
    assert found.worded("en") == stored
    odd = sentences.said("token 0123456789abcdef: 2 uses, expires 2026-12-07 (soon)")
    assert odd is not None and odd.params["until"] == "2026-12-07 (soon)"  # as it is


def test_a_role_refusal_names_the_holder_in_the_reader_s_brackets_and_keeps_the_role_s_id(
    collector: AdminCollector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """'Li Wei (fedcba9876543210) 的角色是查看者' kept the log's ASCII brackets in Chinese, and
    the role to ask for, '--role admin', read '--role 管理员', which `admin add` refuses."""
    (stored,) = [m for m in _stored(collector) if "Li Wei (fedcba9876543210)" in m]
    assert "--role admin`" in stored
    for where in _where(collector, tmp_path).values():
        _in(monkeypatch, "zh_CN.UTF-8")
        assert collector_cli(["audit", "log", *where, "--wide"]) == 0
        table = capsys.readouterr().out
        assert "Li Wei（fedcba9876543210）" in table and "Li Wei (" not in table
        assert "--role admin`" in table and "--role 管理员" not in table
        _in(monkeypatch, "C.UTF-8")
        assert collector_cli(["audit", "log", *where, "--wide"]) == 0
        assert stored in capsys.readouterr().out
        _in(monkeypatch, "zh_CN.UTF-8")
        assert collector_cli(["audit", "log", *where, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert "Li Wei (fedcba9876543210)" in [row["actor"] for row in rows]  # as stored
    with _dashboard(collector, collector.credential("审计 孙", AUDITOR)) as (fleet, cookie):
        page = fetch(fleet, "GET", "/audit?lang=zh", cookie=cookie).text
        assert "Li Wei（fedcba9876543210）" in page


def test_devices_named_with_their_hosts_read_in_the_reader_s_brackets() -> None:
    """A prefix's candidates ('3f2a… (laptop-li), 3f2b… (-)'), listed as the reader's language
    lists; a host's own brackets stay as the device gave them."""
    sentences = audit_words.Sentences([
        "{typed} is the start of {count} device ids: {named}. Type more of the id to tell them"
        " apart.",
    ])  # fmt: skip
    first, second = "3f2a" + "0" * 28, "3f2a" + "1" * 28
    stored = (f"'3f2a' is the start of 2 device ids: {first} (laptop-li), {second} (pc (old))."
              " Type more of the id to tell them apart.")  # fmt: skip
    found = sentences.said(stored)
    assert found is not None and str(found) == stored and found.worded("en") == stored
    assert f"{first}（laptop-li）" in found.worded("zh")
    assert f"{second}（pc (old)）" in found.worded("zh")
    odd = sentences.said("'3f2a' is the start of 2 device ids: 3f2a (a), b. Type more of the id"
                         " to tell them apart.")  # not ids and hosts: as it was written
    assert odd is not None and odd.params["named"] == "3f2a (a), b"
