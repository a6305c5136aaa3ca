"""`device show` and `device list` word a device's clock and outbox in the reader's language,
on the collector machine and over the admin port alike: they were English f-strings, which a
Chinese reader got in English (and `device list` cut the clock's words at the first ASCII
colon, which the Chinese does not have). JSON keeps the English, which scripts read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.admin.commands import DEVICE_LIST_COLUMNS, Result, present
from devposture.collector.cli import main as collector_cli
from devposture.collector.credentials import VIEWER
from devposture.collector.delivery_health import clock_off, describe_outbox, describe_skew
from devposture.collector.render import Row
from devposture.collector.store.identity import DeviceInfo
from tests.collector.test_admin import AdminCollector, admin_collector
from tests.collector.test_clock_skew import send_from_a_clock_behind
from tests.conftest import enroll_agent

ZH_CLOCK = ("比采集器慢 3 小时 5 分：请把这台电脑的时间设为自动设置"
            "（报告的时间仍以采集器的时钟为准）")  # fmt: skip
EN_CLOCK = ("3 h 5 min behind the collector: set the computer's time automatically (reports are"
            " still read on the collector's clock)")  # fmt: skip
ZH_OUTBOX = ("2 份等待发送；自安装以来合并 12 份（与相邻报告的事实相同），丢弃 3 份，损坏 0 份："
             "设备离线时待发队列已满，这些报告已丢失")  # fmt: skip
EN_OUTBOX = ("2 waiting; since install 12 merged (same facts as a neighbour), 3 dropped,"
             " 0 corrupt: the outbox was full while the device was offline, those reports are"
             " lost")  # fmt: skip


@dataclasses.dataclass
class Skewed:
    collector: AdminCollector
    device_id: str
    data: str
    remote: list[str]


@pytest.fixture
def skewed(tmp_path: Path) -> Iterator[Skewed]:
    """A collector with its admin port, and a device whose clock is 3 h 5 min behind and whose
    outbox dropped 3 reports while it was offline."""
    with admin_collector(tmp_path / "collector") as collector:
        agent = enroll_agent(collector.live, tmp_path / "agent")
        send_from_a_clock_behind(agent)
        credential = tmp_path / "credential"
        credential.write_text(collector.credential("Li Wei (IT)", VIEWER) + "\n")
        credential.chmod(0o600)
        remote = ["--collector", f"127.0.0.1:{collector.admin_port}", "--credential-file",
                  str(credential), "--ca-fingerprint", collector.live.ca_fingerprint]  # fmt: skip
        yield Skewed(collector, agent.enrollment.device_id,
                     str(collector.live.config.data_dir), remote)  # fmt: skip


def _run(argv: list[str], lang: str, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:  # fmt: skip
    monkeypatch.setenv("LANG", lang)
    assert collector_cli(argv) == 0
    out, err = capsys.readouterr()
    return out, err


def test_device_show_words_the_clock_and_the_outbox_in_the_readers_language(
    skewed: Skewed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    show = ["device", "show", skewed.device_id]
    zh, _ = _run([*show, "--data", skewed.data], "zh_CN.UTF-8", capsys, monkeypatch)
    assert ZH_CLOCK in zh and ZH_OUTBOX in zh
    assert "behind the collector" not in zh and "waiting" not in zh
    assert "\n事件：\n" in zh  # a field's lines follow a Chinese colon
    en, _ = _run([*show, "--data", skewed.data], "C.UTF-8", capsys, monkeypatch)
    assert EN_CLOCK in en and EN_OUTBOX in en
    assert "比采集器" not in en and "\nevents:\n" in en
    # Over the admin port the reader gets the same words as on the collector machine.
    assert _run([*show, *skewed.remote], "zh_CN.UTF-8", capsys, monkeypatch)[0] == zh
    assert _run([*show, *skewed.remote], "C.UTF-8", capsys, monkeypatch)[0] == en
    # A script reads the English, whoever runs it.
    for lang in ("zh_CN.UTF-8", "C.UTF-8"):
        for where in (["--data", skewed.data], skewed.remote):
            (row,) = json.loads(_run([*show, *where, "--format", "json"], lang, capsys,
                                     monkeypatch)[0])  # fmt: skip
            assert (row["clock"], row["outbox"]) == (EN_CLOCK, EN_OUTBOX)


def test_device_list_words_the_clock_in_its_table_and_counts_in_its_notes(
    skewed: Skewed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for where in (["--data", skewed.data], skewed.remote):
        out, err = _run(["device", "list", *where], "zh_CN.UTF-8", capsys, monkeypatch)
        assert "比采集器慢 3 小时 5 分" in out and "behind" not in out
        # The whole of it: the short form has no colon to cut at.
        assert "请把这台电脑" not in out
        assert "1 台设备的时钟偏差 5 分钟以上" in err and "1 台设备离线时待发队列满了" in err
        out, err = _run(["device", "list", *where], "C.UTF-8", capsys, monkeypatch)
        assert "3 h 5 min behind the collector" in out and "set the computer" not in out
        assert "1 device with a clock off by 5 minutes or more" in err
        assert "1 device that lost reports to a full outbox while offline" in err
        listed = _run(["device", "list", *where, "--format", "json"], "zh_CN.UTF-8", capsys,
                      monkeypatch)[0]  # fmt: skip
        assert json.loads(listed)[0]["clock_off"] == "3 h 5 min behind the collector"


def test_device_lists_notes_count_one_device_and_several() -> None:
    def notes(count: int, lang: str) -> str:
        rows: list[Row] = [{"device": f"d{n}", "clock_off": clock_off(dt.timedelta(hours=1)),
                 "reports_lost": 2, "clone_suspected": "2026-12-01"}
                for n in range(count)]  # fmt: skip
        return present(("device", "list"), Result("", DEVICE_LIST_COLUMNS, rows), "table",
                       "zh" if lang == "zh" else "en")[1]  # fmt: skip

    assert notes(1, "en").splitlines() == [
        "1 device suspected of being cloned: see `devposture-collector device show ID`",
        "1 device with a clock off by 5 minutes or more: see `devposture-collector device show ID`",
        "1 device that lost reports to a full outbox while offline: see `devposture-collector"
        " device show ID`",
    ]
    assert notes(3, "en").splitlines()[1].startswith("3 devices with a clock off")
    assert notes(3, "en").splitlines()[0].startswith("3 devices suspected of being cloned")
    assert notes(1, "zh").splitlines()[0].startswith("1 台设备疑似被复制：")
    assert notes(3, "zh").splitlines()[1].startswith("3 台设备的时钟偏差 5 分钟以上：")


def test_every_clock_and_outbox_reads_in_both_languages() -> None:
    ahead = describe_skew(-dt.timedelta(days=2, hours=1, minutes=9))
    assert str(ahead).startswith("2 d 1 h ahead of the collector: set the computer's time")
    assert ahead.worded("zh").startswith("比采集器快 2 天 1 小时：请把这台电脑的时间设为自动设置")
    in_step = describe_skew(dt.timedelta(seconds=42))
    assert (str(in_step), in_step.worded("zh")) == (
        "in step with the collector (within 42 s)", "与采集器时间一致（仅相差 42 秒）")
    minutes = clock_off(dt.timedelta(minutes=7, seconds=3))
    assert (str(minutes), minutes.worded("zh")) == (
        "7 min 3 s behind the collector", "比采集器慢 7 分 3 秒")
    unknown = describe_skew(None)
    assert (str(unknown), unknown.worded("zh")) == (
        "not measured (the agent does not say when it sends)", "未测量（客户端没有告知发送时间）")
    device = DeviceInfo(
        "d1", "laptop-1", "linux", dt.datetime(2026, 12, 1, tzinfo=dt.UTC), None, "active",
        None, "", 1, None, None, "", outbox_pending=0, outbox_coalesced_total=4,
        outbox_dropped_total=0, outbox_corrupt_total=1,
    )  # fmt: skip
    kept = describe_outbox(device)
    assert str(kept) == (
        "0 waiting; since install 4 merged (same facts as a neighbour), 0 dropped, 1 corrupt")
    assert kept.worded("zh") == (
        "0 份等待发送；自安装以来合并 4 份（与相邻报告的事实相同），丢弃 0 份，损坏 1 份")
