"""Device ids typed as unique prefixes wherever a device id is typed; a prefix of several
devices refused naming them; one of none left to the command, which says so (audited)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from devposture.collector.admin.commands import CommandError
from devposture.collector.admin.device_ids import complete
from devposture.collector.cli import main as collector_cli
from tests.collector.cli_fleet import DEVICES, CliFleet, cli_fleet

# A waiver lasts at most a year (collector/admin/commands.py MAX_WAIVER): one ending in 90 days.
SOON = (dt.date.today() + dt.timedelta(days=90)).isoformat()

__all__ = ["cli_fleet"]  # the fixture
(FIRST, FIRST_HOST), (SECOND, SECOND_HOST), (THIRD, _) = DEVICES  # 3f2a0…, 3f2a9c…, b7e1…


def _cli(fleet: CliFleet, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = collector_cli([*argv, "--data", str(fleet.data)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_unique_prefix_names_its_device_in_every_command(
    cli_fleet: CliFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(cli_fleet, capsys, "device", "show", "3F2A9", "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["device"] == SECOND
    code, out, err = _cli(cli_fleet, capsys, "report", "history", "b7e1", "--format", "json")
    assert code == 0 and json.loads(out)[0]["check"] == "firewall"
    code, out, err = _cli(cli_fleet, capsys, "report", "device", "3f2a0", "--format", "json")
    assert code == 0 and {r["device"] for r in json.loads(out)} == {FIRST}
    code, out, err = _cli(cli_fleet, capsys, "waiver", "add", "--device", "3f2a0", "--device",
                          "b7e1", "--check", "firewall", "--owner", "Li Wei (IT)", "--reason",
                          "new laptops on the way", "--expires", SOON)  # fmt: skip
    assert code == 0, err
    code, out, _ = _cli(cli_fleet, capsys, "waiver", "list", "--format", "json")
    assert sorted(w["device"] for w in json.loads(out)) == sorted([FIRST, THIRD])
    code, out, err = _cli(cli_fleet, capsys, "device", "group", "3f2a9", "财务部")
    assert code == 0 and f"device {SECOND} is now in group 财务部" in out
    code, out, err = _cli(cli_fleet, capsys, "device", "retire", "b7e", "--reason", "returned")
    assert code == 0 and f"device {THIRD} (desktop-3) retired" in out


def test_a_prefix_of_several_devices_is_refused_naming_them(
    cli_fleet: CliFleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _cli(cli_fleet, capsys, "device", "revoke", "3f2a", "--reason", "stolen")
    assert code == 1 and out == ""
    assert f"{FIRST} ({FIRST_HOST})" in err and f"{SECOND} ({SECOND_HOST})" in err
    assert "Type more of the id" in err
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")  # in the reader's language
    code, out, err = _cli(cli_fleet, capsys, "device", "revoke", "3f2a", "--reason", "stolen")
    assert code == 1 and "是 2 台设备 ID 的开头" in err and "请多输入几位以区分" in err
    assert f"{FIRST}（{FIRST_HOST}）" in err  # the brackets of a Chinese sentence
    code, out, err = _cli(cli_fleet, capsys, "device", "list", "--format", "json")
    assert {d["status"] for d in json.loads(out)} == {"active"}  # nothing was revoked


def test_a_prefix_of_no_device_is_refused_by_the_command_and_audited(
    cli_fleet: CliFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(cli_fleet, capsys, "device", "show", "ffff")
    assert code == 1 and "no device ffff" in err and "device list" in err
    code, out, _ = _cli(cli_fleet, capsys, "audit", "log", "--format", "json")
    shown = [e for e in json.loads(out) if e["command"] == "device show"]
    assert [e["outcome"] for e in shown] == ["error"]


def test_an_exact_id_wins_over_longer_ones_it_starts() -> None:
    known = [("laptop", "a"), ("laptop2", "b")]
    assert complete({"device_id": "laptop"}, lambda: known) == {"device_id": "laptop"}
    with pytest.raises(CommandError, match="start of 2 device ids"):
        complete({"device_id": "lap"}, lambda: known)
    full = "0" * 32

    def never() -> list[tuple[str, str]]:
        raise AssertionError("a full id needs no lookup")

    assert complete({"device": f"{full}\n{full}"}, never) == {"device": f"{full}\n{full}"}


def test_a_device_already_so_is_refused_with_its_status_in_the_readers_words(
    cli_fleet: CliFleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _cli(cli_fleet, capsys, "device", "revoke", "b7e", "--reason", "stolen")
    assert code == 0, err
    code, _, err = _cli(cli_fleet, capsys, "device", "retire", "b7e", "--reason", "returned")
    assert code == 1 and f"device {THIRD} is already revoked: nothing to do" in err
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    code, _, err = _cli(cli_fleet, capsys, "device", "retire", "b7e", "--reason", "returned")
    assert code == 1 and f"设备 {THIRD} 当前已是“已吊销”状态：无需操作" in err
