"""Reason codes: declared once, stored canonically, rendered per language and time zone, and a
text stored by an older version shown as it is."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devposture.agent.probes import ProbeConfig, wifi_classify
from devposture.policy.catalogs import LANGS, Lang
from devposture.policy.reasons import (
    CODES,
    STATES,
    TERMS,
    Param,
    encode,
    item,
    parse,
    placeholders,
    render,
    state_word,
)  # fmt: skip
from devposture.v1 import devposture_pb2 as pb

BEIJING = dt.timezone(dt.timedelta(hours=8))
# 2026-12-03 16:38 in Beijing.
MOMENT = int(dt.datetime(2026, 12, 3, 8, 38, tzinfo=dt.UTC).timestamp())


def _sample(param: Param) -> Any:
    return {
        "text": "ClamAV", "int": 3, "date": MOMENT, "time": MOMENT, "texts": ["a", "b"],
        "items": [item("av.disabled", product="X"), item("av.none")], "reason": "av.none",
        "term": "wechat", "state": "FAIL", "signals": ["open network", "name matches CMCC*"],
        "phrase": "nft did not finish within 10 s", "phrases": ["public", "Passive Mode"],
    }[param.kind]  # fmt: skip


def test_each_code_declares_exactly_the_placeholders_of_its_words() -> None:
    for code, message in CODES.items():
        assert placeholders(message.english) == set(message.params), code
        for param in message.params.values():
            assert param.default is None or param.default in TERMS, code


@pytest.mark.parametrize("lang", LANGS)
def test_every_code_renders_whole_in_each_language(lang: Lang) -> None:
    for code, message in CODES.items():
        stored = encode(code, **{n: _sample(p) for n, p in message.params.items()})
        text = render(stored, lang, BEIJING)
        assert text and text != stored and "{" not in text, (code, text)
        assert "object at 0x" not in text and "None" not in text, (code, text)


def test_the_stored_form_is_canonical_and_round_trips() -> None:
    stored = encode("av.signatures_old", product="微信杀毒", days=7, date=MOMENT)
    assert stored == f'av.signatures_old {{"date":{MOMENT},"days":7,"product":"微信杀毒"}}'
    found = parse(stored)
    assert found is not None and found.code == "av.signatures_old"
    assert found.params == {"product": "微信杀毒", "days": 7, "date": MOMENT}
    assert encode("av.none") == "av.none" and encode("upd.pending_unknown", tool=None) == (
        "upd.pending_unknown"
    )


@pytest.mark.parametrize(
    "legacy",
    [
        "no known antivirus product installed or running",
        "failing, within grace until 2026-12-03 16:38 (UTC+08:00): firewall off on: public",
        "av.none but more words",
        'av.none {"not":"declared"}',
        "unknown.code {}",
        "",
    ],
)
def test_a_legacy_text_is_not_a_code_and_renders_unchanged(legacy: str) -> None:
    assert parse(legacy) is None
    assert render(legacy, "zh", BEIJING) == legacy


@pytest.mark.parametrize(
    "odd", ['av.signatures_old {"date":"yesterday"}', 'list.items {"items":[[]]}',
            'standing.grace {"until":1e400}'],
)  # fmt: skip
def test_a_coded_reason_with_values_of_the_wrong_kind_is_shown_as_stored(odd: str) -> None:
    assert parse(odd) is not None
    assert render(odd, "zh", BEIJING) == odd


def test_times_are_shown_in_the_zone_given() -> None:
    stored = encode("standing.grace", until=MOMENT, reason="av.none")
    assert render(stored, "zh", BEIJING) == (
        "不合规，宽限期至 2026-12-03 16:38（UTC+08:00）：未发现已安装或正在运行的杀毒软件"
    )
    berlin = render(stored, "en", dt.timezone(dt.timedelta(hours=1)))
    assert berlin.startswith("failing, within grace until 2026-12-03 09:38 (UTC+01:00): no known")


def test_a_nested_legacy_reason_stays_as_it_was() -> None:
    stored = encode("standing.grace", until=MOMENT, reason="firewall off on: public")
    assert render(stored, "zh", BEIJING).endswith("：firewall off on: public")


def test_optional_parts_and_defaults_are_worded_or_left_out() -> None:
    assert render(encode("upd.pending", count=2), "en", BEIJING) == "2 security updates pending"
    full = encode("upd.pending", count=2, since=MOMENT, names=["openssl", "curl"])
    assert render(full, "zh", BEIJING) == (
        "有 2 个安全更新尚未安装，最早自 2026-12-03 起：openssl、curl"
    )
    hidden = encode("wifi.network")
    assert render(hidden, "zh", BEIJING) == "名称被隐藏的网络"


def test_state_words() -> None:
    assert [state_word(s, "zh") for s in STATES] == [
        "合规", "不合规", "不合规（宽限期内）", "无法判断", "已豁免", "未按时上报",
    ]  # fmt: skip
    assert state_word("PASS", "en") == "compliant" and state_word("ODD", "zh") == "ODD"


_VALUES = st.recursive(
    st.text() | st.integers(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(min_size=1), _VALUES | st.none(), max_size=5))
def test_the_encoder_writes_what_json_would_write(params: dict[str, Any]) -> None:
    """The hand-written encoder (encoded per report, so fast) is json.dumps's canonical form."""
    stored = encode("av.ok", **params)
    kept = {k: v for k, v in params.items() if v is not None}
    expected = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert stored == ("av.ok" if not kept else f"av.ok {expected}")
    if kept:
        assert json.loads(stored.partition(" ")[2]) == kept


@pytest.mark.parametrize("code", ["backup.exposed", "backup.volume_unknown", "backup.not_safe"])
@pytest.mark.parametrize("lang", LANGS)
def test_a_backup_s_evidence_the_agent_had_no_words_for_leaves_no_empty_brackets(
    code: str, lang: Lang
) -> None:
    """The agent words what it saw of a backup's encryption and of its disk; where it saw
    nothing the words are empty, and the reason read "…是否加密（）" / "… unknown ()"."""
    params = {"location": "D:/WeChatBackup/1", "date": MOMENT, "others": None, "encryption": "",
              "volume": ""}
    shown = render(encode(code, **{p: params[p] for p in CODES[code].params}), lang, BEIJING)
    assert "()" not in shown and "（）" not in shown and "; " not in shown and "；" not in shown
    told = render(encode(code, **{p: params[p] for p in CODES[code].params} | {
        "encryption": "no SQLite header", "volume": "BitLocker off"}), lang, BEIJING)  # fmt: skip
    assert "no SQLite header" in told and "BitLocker off" in told


def test_why_a_network_counts_as_public_is_said_in_the_reader_s_language() -> None:
    """The agent words why a network is public in English, in the report itself; a Chinese
    employee read "连接 星巴克免费WiFi（open network、name matches CMCC-WEB） 时未使用 VPN"."""
    why = ["open network", "name matches CMCC-WEB", "a newer agent's words"]
    stored = encode("wifi.no_vpn", network="星巴克免费WiFi", at=MOMENT, why=why)
    chinese = render(stored, "zh", BEIJING)
    assert "开放网络" in chinese and "名称符合 CMCC-WEB" in chinese
    assert "open network" not in chinese and "name matches" not in chinese
    assert "a newer agent's words" in chinese  # one it does not know: as it came
    english = render(stored, "en", BEIJING)
    assert "(open network, name matches CMCC-WEB, a newer agent's words)" in english


def test_every_word_the_agent_gives_for_a_public_network_is_translated() -> None:
    """Each reason wifi_classify can give is one the renderer knows (SIGNALS): a new one
    added there without its words here would reach Chinese readers in English."""
    config = ProbeConfig(network_hash_key=b"k" * 32, trusted_networks=("Corp",),
                         public_network_patterns=("CMCC*",))  # fmt: skip
    given: set[str] = set()
    for security in (pb.WIFI_SECURITY_OPEN, pb.WIFI_SECURITY_WEP, pb.WIFI_SECURITY_OWE,
                     pb.WIFI_SECURITY_WPA2_PERSONAL):  # fmt: skip
        for ssid, hidden in (("CMCC-WEB", ""), ("Corp", ""), ("", wifi_classify.HIDDEN_BY_MACOS),
                             ("", "")):  # fmt: skip
            signals = wifi_classify.NetworkSignals(ssid, security, hidden,
                                                   wifi_classify.PUBLIC_CATEGORY, True)  # fmt: skip
            given.update(wifi_classify.classify(signals, config).reasons)
    for reason in given:
        said = render(encode("wifi.network", network="x", why=[reason]), "zh", BEIJING)
        assert said != f"x（{reason}）", reason  # its Chinese, not the English as it came
    assert len(given) >= 6, given


def test_no_space_is_left_after_a_time_s_full_width_bracket() -> None:
    """The translator's "{at} 连接" was written when a time ended in digits; a Chinese time now
    ends in "）", after which Chinese typography leaves no space. A value's own spaces stay."""
    stored = encode("wifi.no_vpn", at=MOMENT, network="Free WiFi （大厅） 2F", why="")
    zh = render(stored, "zh", BEIJING)
    assert zh.startswith("2026-12-03 16:38（UTC+08:00）连接 Free WiFi （大厅） 2F")
    english = render(stored, "en", BEIJING)
    assert english == "Free WiFi （大厅） 2F at 2026-12-03 16:38 (UTC+08:00) without VPN"
