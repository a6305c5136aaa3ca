"""Errors and sentences of the command lines worded per language, travelling between the admin
port and a remote command line, and found in the source for the catalogs; argparse's own
words matched and worded again."""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from devposture.collector.admin.client import remote_error
from devposture.collector.admin.commands import ERROR_METADATA, CommandError, NotFound
from devposture.policy import cli_messages
from devposture.policy.cli_help import ARGPARSE_WORDS, localize, reword, wrapped
from devposture.policy.cli_messages import Worded, extract, said, worded_classes
from devposture.policy.moments import moment

NO_DEVICE = "no device {device_id}: see the ids in `devposture-collector device list`"


def test_an_error_is_english_as_text_and_worded_per_language() -> None:
    error = NotFound(NO_DEVICE, device_id="3f2a")
    assert str(error) == "no device 3f2a: see the ids in `devposture-collector device list`"
    assert error.worded("zh") == "没有设备 3f2a：设备 ID 见 `devposture-collector device list`"
    nested = CommandError("{option}: {problem}", option="--as-of", problem=error)
    assert nested.worded("zh").startswith("--as-of：没有设备 3f2a：")
    assert CommandError.as_is("设备 x: 原样").worded("en") == "设备 x: 原样"


def test_another_modules_worded_error_keeps_its_words_when_passed_on(tmp_path: Path) -> None:
    """`as_is` of a worded error (the agent's enrollment, a config file's problems) words it
    in the reader's language; of any other, its text."""
    from devposture.agent.enroll import TryLater, Unreachable  # noqa: PLC0415
    from devposture.config_file import ConfigError, ConfigFile, Setting  # noqa: PLC0415

    later = TryLater("the collector asks this address to slow down: {detail}", retry_after=3.0,
                     detail="busy")  # fmt: skip
    assert later.retry_after == 3.0 and str(later).endswith("slow down: busy")
    assert CommandError.as_is(later).worded("zh") == "采集器要求本机放慢请求：busy"
    assert CommandError.as_is(ValueError("plain")).worded("zh") == "plain"
    path = tmp_path / "agent.toml"
    path.write_text("[network]\nport = true\n")
    file = ConfigFile(path, {"network": {"port": Setting(int, 7443)}})
    file.whole("network", "port")
    with pytest.raises(ConfigError) as refused:
        file.check()
    assert str(refused.value) == (f"{path}:2: [network] port must be a whole number, not true:"
                                  " write e.g. `port = 7443`")  # fmt: skip
    assert Unreachable.as_is(refused.value).worded("zh") == (
        f"{path} 第 2 行：[network] port 应为整数，而不是 true：例如写成 `port = 7443`")


def test_sentences_one_to_a_line_are_worded_line_by_line() -> None:
    head = said("none of the collector's {count} addresses answered:", count=2)
    both = cli_messages.lines(head, said("the collector did not say which port takes reports"),
                              "as it is", indent="  ")  # fmt: skip
    assert both.worded("zh") == ("采集器的 2 个地址都没有应答：\n  采集器没有告知接收报告的端口"
                                 "\n  as it is")  # fmt: skip
    assert Worded.from_wire(Worded(both).wire()) is not None  # it travels as any other


NO_CHECK = "no check {check} in the policy (checks: {known})"


def test_names_in_a_sentence_are_listed_as_the_readers_language_enumerates() -> None:
    """A list of names inside a Chinese sentence takes the enumeration comma the catalog's
    lists take (the reasons' "apt、jq"), not ASCII commas: `policy check` read "6 项检查
    （antivirus, firewall, …）". The English, which logs and scripts read, is unchanged."""
    checks = cli_messages.enumeration(["antivirus", "firewall", "os-updates"])
    error = CommandError(NO_CHECK, check="'nope'", known=checks)
    assert str(error) == ("no check 'nope' in the policy (checks: antivirus, firewall,"
                          " os-updates)")  # fmt: skip
    assert error.worded("zh") == ("策略中没有检查项 'nope'（现有检查项：antivirus、firewall、"
                                  "os-updates）")  # fmt: skip
    back = CommandError.from_wire(error.wire())  # a remote reader words it too
    assert back is not None and back.worded("zh") == error.worded("zh")
    assert str(back) == str(error)
    # A list of sentences words each; none is '' (so that `or said("none")` reads), one is
    # the item itself.
    both = cli_messages.enumeration([said("none yet"), "b"])
    assert isinstance(both, cli_messages.Said) and both.worded("zh") == "还没有、b"
    assert cli_messages.enumeration([]) == "" and cli_messages.enumeration(["a"]) == "a"


def test_a_kept_text_stays_for_programs_and_is_worded_for_people() -> None:
    """`Told.keeping`: JSON and CSV keep the stored text byte for byte, a person reads the
    sentence (a waiver's expiry, stored in UTC, in the company's time zone)."""
    sentence = said("{status} since {at}", status=said("revoked"), at="2026-12-03 16:38")
    cell = cli_messages.Told.keeping("revoked since 2026-12-03T08:38:00+00:00", sentence)
    assert str(cell) == "revoked since 2026-12-03T08:38:00+00:00"
    assert cell.worded("en") == "revoked since 2026-12-03 16:38"
    assert cell.worded("zh") == sentence.worded("zh")


def test_a_translation_missing_or_broken_falls_back_to_the_english(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert said("not in any catalog {x}", x=1).worded("zh") == "not in any catalog 1"
    # A Chinese naming another placeholder (the catalog test refuses it first): the English.
    monkeypatch.setattr(cli_messages, "translate", lambda lang, context, english: "{路径}：坏了")
    assert said("{path}: broken", path="a").worded("zh") == "a: broken"


def test_an_error_travels_as_its_template_and_parameters() -> None:
    error = CommandError("{option}: {problem}", option="--to",
                         problem=NotFound(NO_DEVICE, device_id="ab"))  # fmt: skip
    back = CommandError.from_wire(error.wire())
    assert back is not None and back.said == error.said
    assert back.worded("zh") == error.worded("zh") and str(back) == str(error)
    assert error.wire().isascii()  # it travels in gRPC metadata
    for foreign in ("not json", "[1, 2]", '{"en": 3}', '{"en": "x", "params": {"a": [1]}}'):
        assert CommandError.from_wire(foreign) is None


class _OldCollectorsRefusal(grpc.RpcError, grpc.Call):
    """A refusal as a collector of an older version sends it: a text, no worded metadata."""

    def __init__(self, details: str, trailing: Sequence[tuple[str, str]] = ()) -> None:
        self._details, self._trailing = details, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def test_a_refusal_without_its_template_is_shown_as_its_text() -> None:
    assert remote_error(_OldCollectorsRefusal("no device ab: see …")) is None
    worded = NotFound(NO_DEVICE, device_id="ab")
    sent = _OldCollectorsRefusal(str(worded), [(ERROR_METADATA, worded.wire())])
    found = remote_error(sent)
    assert found is not None and found.worded("zh").startswith("没有设备 ab：")
    garbled = _OldCollectorsRefusal("text", [(ERROR_METADATA, "{not json")])
    assert remote_error(garbled) is None


def test_the_messages_are_found_in_the_source_and_a_put_together_one_is_refused(
    tmp_path: Path,
) -> None:
    source = tmp_path / "cli.py"
    source.write_text(
        'raise CommandError("no device {device_id}", device_id=d)\n'
        'raise NotFound(f"no device {d}")\n'
        "raise CommandError(str(exc))\n"
        "raise CommandError.as_is(exc)\n"
        'print(said("wrote {path}", path=p))\n'
        'raise ValueError(f"not ours {x}")\n',
        encoding="utf-8",
    )
    found, mistakes = extract([source], worded_classes(Worded))
    assert found == ["no device {device_id}", "wrote {path}"]
    assert mistakes == ["cli.py:2", "cli.py:3"]


def test_argparse_words_are_argparses_own() -> None:
    """Each template matched and translated is one argparse words (a newer Python that
    rewords one shows here)."""
    text = inspect.getsource(argparse)
    for template in ARGPARSE_WORDS:
        assert repr(template)[1:-1] in text or template in text, template


def test_argparse_refusals_are_worded_again() -> None:
    english = "argument --format: invalid choice: 'pdf' (choose from 'table', 'csv')"
    assert reword(english, "zh") == "参数 --format：无效的选择：'pdf'（可选：'table', 'csv'）"
    assert reword(english, "en") == english
    assert reword("the following arguments are required: --check, --owner", "zh") == (
        "缺少以下必需参数：--check, --owner"
    )
    assert reword("something argparse never said", "zh") == "something argparse never said"


def test_chinese_help_is_wrapped_to_the_terminals_columns() -> None:
    text = ("分三个阶段更换 CA：stage（在旧 CA 之外同时信任新 CA）、activate（由新 CA 签发），"
            "每两个阶段之间等待。")  # fmt: skip
    # A Chinese character is two columns; "CA" and "activate" stay whole; "、" ends a line.
    assert wrapped(text, 30) == [
        "分三个阶段更换 CA：stage（在旧",
        "CA 之外同时信任新 CA）、",
        "activate（由新 CA 签发），每两",
        "个阶段之间等待。",
    ]
    # "、" would make 13 columns of 12: it stays on its line rather than start the next
    assert wrapped("信任新 CA）、activate", 12) == ["信任新 CA）、", "activate"]
    # An opening bracket never ends a line: it goes down with what it opens ("时间（" above
    # "2026-12-31T18:00）" in `waiver add --help`).
    assert wrapped("时间（2026-12-31T18:00）表示", 8) == ["时间", "（2026-12-31T18:00）", "表示"]
    assert wrapped("（2026-12-31T18:00）", 8) == ["（", "2026-12-31T18:00）"]  # nothing before it


def test_a_localized_parser_refuses_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--n", type=int, help="log more detail")
    localize(parser, "zh")
    with pytest.raises(SystemExit):
        parser.parse_args(["--n", "x"])
    err = capsys.readouterr().err
    assert err.startswith("用法：demo") and "demo：错误：参数 --n：无效的 int 值：'x'" in err
    assert "输出更详细的日志" in parser.format_help()


def test_a_chinese_sentence_leaves_no_space_after_a_time_s_bracket() -> None:
    """`closed_up`: "{time} 过期" in the catalog, a time worded "…（UTC+08:00）" in Chinese."""
    at = moment(dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.UTC), dt.timezone(dt.timedelta(hours=8)))
    sentence = said(
        "the enrollment token expired at {time}: ask IT for a new one"
        " (`devposture-collector token create`)",
        time=at.said,
    )
    assert sentence.worded("zh").startswith("该注册令牌已于 2026-12-05 09:00（UTC+08:00）过期：")
    assert sentence.worded("en").startswith("the enrollment token expired at 2026-12-05 09:00 (UTC")
    plain = said("the enrollment token expired at {time}: ask IT for a new one"
                 " (`devposture-collector token create`)", time="2026-12-05")  # fmt: skip
    assert plain.worded("zh").startswith("该注册令牌已于 2026-12-05 过期：")
