"""`device show` and `device list` word a device's status, its history (the events of its
identity) and a suspected clone's detail in the reader's language, with times in Beijing time,
on the collector machine and over the admin port alike. They were the store's English, which a
Chinese reader got as it was ("revoked since …", "renewed: certificate generation 2"). JSON and
CSV keep the English, byte for byte what they were, which scripts read.

The history is made for real: a collector with its admin port, agents enrolled over the
enrollment port (one with a group's token), a renewal over mutual TLS, a copied state folder
refused as a clone, a reestablishment after the certificate expired, and IT's commands."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import grpc
import pytest

from devposture.agent.enroll import enroll
from devposture.agent.renewal import Outcome, ensure_fresh_certificate
from devposture.agent.state import AgentState
from devposture.agent.transport import open_channel, send_report
from devposture.collector.admin.worded_cells import cells_json, in_language, with_cells
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import VIEWER
from devposture.collector.device_history import clone_detail, device_status, history
from devposture.collector.render import Row
from devposture.collector.tokens import new_token
from devposture.policy.cli_messages import Told
from tests.collector.test_admin import admin_collector
from tests.collector.test_identity_lifecycle import _expire_certificate
from tests.conftest import EnrolledAgent, LiveCollector, host_info, make_report

BEIJING = ZoneInfo("Asia/Shanghai")
ZH, EN = "zh_CN.UTF-8", "C.UTF-8"
CLONE_EN = ("a certificate of generation 1 was presented after generation 2 was in use: the"
            " agent's state folder is probably running on a second computer")  # fmt: skip
CLONE_ZH = "第 2 代证书启用后又出示了第 1 代证书，客户端的状态文件夹很可能正在另一台电脑上运行"


@dataclasses.dataclass(frozen=True)
class Fleet:
    data: str
    remote: list[str]
    tokens: dict[str, str]  # the token that enrolled each device
    revoked: str  # enrolled into a group, renewed, cloned, regrouped, reestablished, revoked
    retired: str  # put in a group, then retired
    active: str
    events: dict[str, list[str]]  # each device's events' times, as Beijing reads them
    since: dict[str, str]  # each device's status time, as its row stamps it


def _send(agent: EnrolledAgent) -> None:
    with open_channel(agent.state, agent.enrollment) as channel:
        send_report(channel, make_report(agent.enrollment.device_id))


def _enroll(live: LiveCollector, state: AgentState, group: str = "") -> tuple[EnrolledAgent, str]:
    """An agent enrolled with a token of its own (made for a group, or none); its token's id."""
    token = new_token()
    store = live.store()
    try:
        now = utcnow()
        store.identity.add_token(token, now, now + dt.timedelta(hours=1), 1, group)
    finally:
        store.close()
    enrollment = enroll(state, live.enroll_address, str(token), live.ca_fingerprint,
                        host_info("laptop-1"))  # fmt: skip
    return EnrolledAgent(state, enrollment), token.token_id


def _cli(argv: list[str]) -> None:
    assert collector_cli(argv) == 0, argv


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("history")
    with admin_collector(tmp / "collector") as collector:
        live = collector.live
        data = str(live.config.data_dir)
        agent, token = _enroll(live, AgentState(tmp / "agent"), "sales")
        state, enrollment = agent.state, agent.enrollment
        revoked = enrollment.device_id
        _send(agent)
        clone = EnrolledAgent(AgentState(tmp / "copy"), enrollment)
        shutil.copytree(state.directory, clone.state.directory)
        assert ensure_fresh_certificate(state, enrollment, utcnow(), force=True).outcome is (
            Outcome.RENEWED)  # fmt: skip
        _send(agent)
        with pytest.raises(grpc.RpcError):
            _send(clone)  # an older certificate after the newer was used: a clone
        _cli(["device", "group", revoked, "hq", "--data", data])
        _cli(["device", "group", revoked, "--clear", "--data", data])
        _expire_certificate(live, agent)  # a renewal recorded 20 days ago
        assert ensure_fresh_certificate(state, enrollment, utcnow()).outcome is (
            Outcome.REESTABLISHED)  # fmt: skip
        _cli(["device", "revoke", revoked, "--reason", "laptop stolen", "--data", data])
        retired_agent, retired_token = _enroll(live, AgentState(tmp / "retired"))
        retired = retired_agent.enrollment.device_id
        _cli(["device", "group", retired, "财务部", "--data", data])
        _cli(["device", "retire", retired, "--reason", "换了新电脑", "--data", data])
        active = _enroll(live, AgentState(tmp / "active"))[0].enrollment.device_id
        store = live.store()
        try:
            events = {d: [f"{at.astimezone(BEIJING):%Y-%m-%d %H:%M} (UTC+08:00)"
                          for _, _, at, _ in store.identity.device_events(d)]
                      for d in (revoked, retired, active)}  # fmt: skip
            since = {}
            for d in (revoked, retired):
                device = store.identity.device(d)
                assert device is not None and device.status_at is not None
                since[d] = device.status_at.astimezone(BEIJING).isoformat(timespec="seconds")
        finally:
            store.close()
        credential = tmp / "credential"
        credential.write_text(collector.credential("Li Wei (IT)", VIEWER) + "\n")
        credential.chmod(0o600)
        remote = ["--collector", f"127.0.0.1:{collector.admin_port}", "--credential-file",
                  str(credential), "--ca-fingerprint", live.ca_fingerprint]  # fmt: skip
        tokens = {revoked: token, retired: retired_token}
        yield Fleet(data, remote, tokens, revoked, retired, active, events, since)


def _at(since: str, lang: str) -> str:
    """A status's time (its row's stamp) as a sentence says it: in the company's time zone to
    the minute, its offset in the brackets of the reader's language."""
    at = dt.datetime.fromisoformat(since)
    return f"{at:%Y-%m-%d %H:%M}" + ("（UTC+08:00）" if lang == ZH else " (UTC+08:00)")


def _run(argv: list[str], lang: str, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    monkeypatch.setenv("LANG", lang)
    capsys.readouterr()
    assert collector_cli(argv) == 0
    return capsys.readouterr().out


def _events(times: list[str], words: list[str], lang: str) -> list[str]:
    """The history's lines: in Chinese, each time's offset in full-width brackets."""
    assert len(times) == len(words)
    if lang == ZH:  # and one space after the bracket, not two (catalogs.closed_up)
        times = [at.replace(" (", "（").replace(")", "）") for at in times]
    gap = " " if lang == ZH else "  "
    return [f"  {at}{gap}{what}" for at, what in zip(times, words, strict=True)]


def _revoked_history(fleet: Fleet, lang: str) -> list[str]:
    token = fleet.tokens[fleet.revoked]
    if lang == ZH:
        words = [
            f"注册：令牌 {token}，第 1 代证书，分组 sales", "续期：第 2 代证书",
            f"疑似被复制：{CLONE_ZH}", "分组：改为 hq（原为 sales）", "分组：移出分组 hq",
            "续期：第 3 代证书", "重新建立身份：第 4 代证书", "吊销：laptop stolen",
        ]  # fmt: skip
    else:
        words = [
            f"enrolled: token {token}, certificate generation 1, group sales",
            "renewed: certificate generation 2", f"clone suspected: {CLONE_EN}",
            "group: group set to hq (was sales)", "group: group hq cleared",
            "renewed: certificate generation 3", "reestablished: certificate generation 4",
            "revoked: laptop stolen",
        ]  # fmt: skip
    return _events(fleet.events[fleet.revoked], words, lang)


def _after(out: str, heading: str) -> list[str]:
    """The lines of a field of `device show` (below its heading line)."""
    lines = out.splitlines()
    return lines[lines.index(heading) + 1:]


def test_device_show_words_the_status_history_and_clone_in_the_readers_language(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    show = ["device", "show", fleet.revoked]
    since = fleet.since[fleet.revoked]
    zh = _run([*show, "--data", fleet.data], ZH, capsys, monkeypatch)
    assert f"\n状态      已吊销（自 {_at(since, ZH)}起）\n" in zh
    assert f"\n克隆详情  {CLONE_ZH}\n" in zh
    assert _after(zh, "事件：") == _revoked_history(fleet, ZH)
    assert "status" not in zh and "since" not in zh and "generation" not in zh
    en = _run([*show, "--data", fleet.data], EN, capsys, monkeypatch)
    assert f"\nstatus                  revoked since {_at(since, EN)}\n" in en
    assert f"\nclone_detail            {CLONE_EN}\n" in en
    assert _after(en, "events:") == _revoked_history(fleet, EN)
    # Over the admin port the reader gets the same words as on the collector machine.
    assert _run([*show, *fleet.remote], ZH, capsys, monkeypatch) == zh
    assert _run([*show, *fleet.remote], EN, capsys, monkeypatch) == en


def test_a_retired_device_and_a_group_set_read_in_both_languages(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    since, times = fleet.since[fleet.retired], fleet.events[fleet.retired]
    token = fleet.tokens[fleet.retired]
    for where in (["--data", fleet.data], fleet.remote):
        zh = _run(["device", "show", fleet.retired, *where], ZH, capsys, monkeypatch)
        assert f"\n状态      已退役（自 {_at(since, ZH)}起）\n" in zh
        assert _after(zh, "事件：") == _events(times, [
            f"注册：令牌 {token}，第 1 代证书", "分组：设为 财务部", "退役：换了新电脑"], ZH)
        en = _run(["device", "show", fleet.retired, *where], EN, capsys, monkeypatch)
        assert f"\nstatus                  retired since {_at(since, EN)}\n" in en
        assert _after(en, "events:") == _events(times, [
            f"enrolled: token {token}, certificate generation 1",
            "group: group set to 财务部", "retired: 换了新电脑"], EN)  # fmt: skip


def test_device_list_words_each_status(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def row_of(out: str, device: str) -> str:
        return next(line for line in out.splitlines() if line.startswith(device))

    for where in (["--data", fleet.data], fleet.remote):
        zh = _run(["device", "list", *where], ZH, capsys, monkeypatch)
        assert f"已吊销（自 {_at(fleet.since[fleet.revoked], ZH)}起）" in row_of(zh, fleet.revoked)
        assert f"已退役（自 {_at(fleet.since[fleet.retired], ZH)}起）" in row_of(zh, fleet.retired)
        assert "  在用  " in row_of(zh, fleet.active)
        assert "since" not in zh and "active" not in zh
        en = _run(["device", "list", *where], EN, capsys, monkeypatch)
        assert f"  revoked since {_at(fleet.since[fleet.revoked], EN)}  " in row_of(
            en, fleet.revoked)
        assert f"  retired since {_at(fleet.since[fleet.retired], EN)}  " in row_of(
            en, fleet.retired)
        assert "  active  " in row_of(en, fleet.active)


def test_scripts_read_the_english_whoever_runs_them(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = "\n".join(line[2:] for line in _revoked_history(fleet, EN))
    revoked_since = f"revoked since {fleet.since[fleet.revoked]}"
    for lang in (ZH, EN):
        for where in (["--data", fleet.data], fleet.remote):
            (row,) = json.loads(_run(["device", "show", fleet.revoked, *where, "--format", "json"],
                                     lang, capsys, monkeypatch))  # fmt: skip
            assert (row["status"], row["clone_detail"], row["events"]) == (
                revoked_since, CLONE_EN, events)
            listed = json.loads(_run(["device", "list", *where, "--format", "json"], lang,
                                     capsys, monkeypatch))  # fmt: skip
            assert {r["device"]: r["status"] for r in listed} == {
                fleet.revoked: revoked_since, fleet.active: "active",
                fleet.retired: f"retired since {fleet.since[fleet.retired]}"}  # fmt: skip
            csv = _run(["device", "list", *where, "--format", "csv"], lang, capsys, monkeypatch)
            assert f",{revoked_since},laptop stolen," in csv and ",active,," in csv


def test_the_os_reads_as_its_maker_writes_it_and_scripts_keep_the_code(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'操作系统  linux': the store's code in a person's table; 'Linux' in either language (a
    name no language translates), while JSON and CSV keep 'linux', which scripts compare."""
    for where in (["--data", fleet.data], fleet.remote):
        zh = _run(["device", "show", fleet.active, *where], ZH, capsys, monkeypatch)
        assert "\n操作系统  Linux\n" in zh
        en = _run(["device", "list", *where], EN, capsys, monkeypatch)
        assert "  linux  " not in en and "  Linux  " in en
        (row,) = json.loads(_run(["device", "show", fleet.active, *where, "--format", "json"],
                                 ZH, capsys, monkeypatch))  # fmt: skip
        assert row["os"] == "linux"


# --- what the store may hold beyond what this version writes ---------------------------------


def _worded(cell: Told | str, lang: str) -> str:
    return cell.worded("zh" if lang == ZH else "en") if isinstance(cell, Told) else cell


def test_a_text_of_no_known_shape_is_shown_as_it_is() -> None:
    """A later version's action, a detail typed into the database, a status this version does
    not know: the reader gets the text as stored rather than a wrong sentence or nothing."""
    at = dt.datetime(2026, 12, 3, 8, 38, tzinfo=dt.UTC)
    cell = history([("d1", "quarantined", at, "by the SOC"), ("d1", "enrolled", at, "legacy"),
                    ("d1", "revoked", at, "lost {on} the train: (s)")], BEIJING)  # fmt: skip
    assert _worded(cell, ZH).splitlines() == [
        "2026-12-03 16:38（UTC+08:00） quarantined: by the SOC",
        "2026-12-03 16:38（UTC+08:00） enrolled: legacy",
        "2026-12-03 16:38（UTC+08:00） 吊销：lost {on} the train: (s)",
    ]
    assert str(cell) == _worded(cell, EN) == "\n".join(
        "2026-12-03 16:38 (UTC+08:00)  " + text
        for text in ("quarantined: by the SOC", "enrolled: legacy",
                     "revoked: lost {on} the train: (s)"))  # fmt: skip
    assert history([], BEIJING) == "" and clone_detail("") == ""
    odd = clone_detail("seen on two computers")
    assert (str(odd), _worded(odd, ZH)) == ("seen on two computers", "seen on two computers")
    status = device_status("quarantined", "2026-12-03T16:38:00+08:00")
    assert (str(status), status.worded("zh"), status.worded("en")) == (
        "quarantined since 2026-12-03T16:38:00+08:00",  # what JSON and CSV keep
        "quarantined（自 2026-12-03 16:38（UTC+08:00）起）",
        "quarantined since 2026-12-03 16:38 (UTC+08:00)")
    odd = device_status("revoked", "2026-12-03 (by hand)")  # no time a program wrote
    assert (str(odd), odd.worded("zh")) == ("revoked since 2026-12-03 (by hand)",
                                            "已吊销（自 2026-12-03 (by hand) 起）")
    assert (str(device_status("active", None)), device_status("active", None).worded("zh")) == (
        "active", "在用")


def test_years_of_weekly_renewals_are_worded_and_sent_whole() -> None:
    """A device renewed every week for 40 years: each line worded, locally and through the
    admin port's worded cells, as deep sentences would not be (past the recursion limit)."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    events = [("d1", "renewed", start + dt.timedelta(weeks=n), f"certificate generation {n + 2}")
              for n in range(2100)]  # fmt: skip
    rows: list[Row] = [{"device": "d1", "events": history(events, BEIJING)}]
    (received,) = with_cells([{"device": "d1", "events": str(rows[0]["events"])}],
                             cells_json(rows))  # fmt: skip
    lines = str(in_language([received], "zh")[0]["events"]).splitlines()
    assert len(lines) == 2100
    assert lines[0] == "2026-01-01 08:00（UTC+08:00） 续期：第 2 代证书"
    assert lines[-1].endswith("（UTC+08:00） 续期：第 2101 代证书")
    english = str(received["events"]).splitlines()
    assert english[-1].endswith("  renewed: certificate generation 2101")
