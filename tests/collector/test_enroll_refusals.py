"""The enrollment port's refusals are sent worded (collector/enroll_refusals.py): each reason
the store gives (its English, word for word) is matched to its declared template, so that the
agent words it in its reader's language. A reason the store rewords without the template
following would reach Chinese readers in English: these tests fail first."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from devposture.collector.enroll_refusals import worded_refusal
from devposture.collector.store import DeviceRecord, Store
from devposture.collector.store.identity import TokenRejected
from devposture.collector.tokens import Token, TokenFormatError, new_token, parse_token
from tests.databases import fresh_database

AT = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)


def _refused(store: Store, token: Token, device_id: str = "d" * 32) -> TokenRejected:
    with pytest.raises(TokenRejected) as refused:
        store.identity.enroll(token, AT, DeviceRecord(device_id, "02", AT + dt.timedelta(days=9)))
    return refused.value


def test_each_reason_the_store_gives_is_sent_worded(tmp_path: Path) -> None:
    store = Store.open(fresh_database(tmp_path))
    try:
        used, expired, revoked = new_token(), new_token(), new_token()
        store.identity.add_token(used, AT, AT + dt.timedelta(hours=1), uses=1)
        store.identity.enroll(used, AT, DeviceRecord("a" * 32, "01", AT + dt.timedelta(days=9)))
        store.identity.add_token(expired, AT - dt.timedelta(hours=2), AT, uses=1)
        store.identity.add_token(revoked, AT, AT + dt.timedelta(hours=1), uses=1)
        assert store.identity.revoke_token(revoked.token_id, AT)
        reasons = [_refused(store, t) for t in (used, expired, revoked, new_token())]
    finally:
        store.close()
    for reason in reasons:
        worded = worded_refusal(str(reason))
        assert not worded.as_is, str(reason)
        assert str(worded) == str(reason)  # the English an older agent shows, unchanged
    zh = [worded_refusal(str(r)).worded("zh") for r in reasons]
    assert zh[0] == ("该注册令牌的使用次数已用完：请向 IT 要一个新的"
                     "（`devposture-collector token create`）")  # fmt: skip
    assert zh[1].startswith("该注册令牌已于 2026-12-03T08:00:00+00:00 过期：")
    assert zh[2] == "该注册令牌已被吊销：请向 IT 要一个新的"
    assert zh[3].startswith("这个采集器不认识该注册令牌：")


def test_a_revoked_devices_key_names_its_status_in_the_readers_words() -> None:
    text = ("this device's key belongs to a device IT revoked: enroll with a new key"
            " (`devposture-agent enroll --force`)")  # fmt: skip
    assert worded_refusal(text).worded("zh") == (
        "这台电脑的密钥属于一台被 IT 设为“已吊销”的设备：请用新密钥重新注册"
        "（`devposture-agent enroll --force`）"
    )


def test_a_reason_without_a_template_is_sent_as_it_is() -> None:
    found = worded_refusal("the collector is being rebuilt: try tomorrow")
    assert found.as_is and found.worded("zh") == "the collector is being rebuilt: try tomorrow"


def test_a_text_that_is_no_token_is_refused_in_words() -> None:
    with pytest.raises(TokenFormatError) as refused:
        parse_token("dpt_oops")
    assert isinstance(refused.value, ValueError)
    assert refused.value.worded("zh").startswith("这不是 devposture 注册令牌")
