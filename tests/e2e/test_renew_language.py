"""`devposture-agent renew` that cannot reach its collector, as a person reads it: under
`LANG=zh_CN.UTF-8` what gRPC's status means comes in Chinese, with the code and gRPC's own
text beside it (IT searches for those); under `LANG=C.UTF-8` the line is what it always was,
"CODE: details", byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import AGENT, enrolled_state, serving_collector
from tests.e2e.test_cli_language import EN, ZH, _in


def test_a_renewed_certificate_ends_in_the_company_time_zone(tmp_path: Path) -> None:
    # It said "2026-12-19 02:18 UTC": the company reads Beijing time, with its offset.
    with serving_collector(tmp_path) as collector:
        state = enrolled_state(collector, tmp_path)
        zh = _in(ZH, AGENT, "renew", "--state", str(state))
    assert zh.returncode == 0, zh.stderr
    # Its offset in the full-width brackets of a Chinese sentence.
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d（UTC\+08:00）", zh.stdout), zh.stdout
    assert " UTC。" not in zh.stdout


def test_renew_against_a_stopped_collector_says_why_in_the_readers_language(
    tmp_path: Path,
) -> None:
    with serving_collector(tmp_path) as collector:
        state = enrolled_state(collector, tmp_path)
    # The collector has stopped: nothing listens on its ports any more.
    zh, en = (_in(lang, AGENT, "renew", "--state", str(state)) for lang in (ZH, EN))
    assert zh.returncode == en.returncode == 1, (zh.stderr, en.stderr)
    assert ("devposture-agent：错误：证书未能续期（无法连接采集器：UNAVAILABLE: failed to connect"
            in zh.stderr)  # fmt: skip
    assert zh.stderr.endswith("）；继续使用当前证书\n")
    assert "error: the certificate was not renewed (UNAVAILABLE: " in en.stderr
    assert "cannot be reached" not in en.stderr  # the English is gRPC's, as before
