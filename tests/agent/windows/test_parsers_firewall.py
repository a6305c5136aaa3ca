"""Firewall profiles from Get-NetFirewallProfile, netsh advfirewall (English and Chinese) and
the active profiles from Get-NetConnectionProfile."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.firewall_profiles import (
    parse_active_categories,
    parse_firewall_profiles,
)
from devposture.agent.parsers.windows.listformat import parse_list
from devposture.agent.parsers.windows.netsh_firewall import parse_allprofiles
from devposture.agent.parsers.windows.text import decode_output
from tests.agent.windows.replay_windows import fixture


def text(name: str, encoding: str = "cp437") -> str:
    return decode_output(fixture(name), encoding)


def test_all_three_profiles_enabled() -> None:
    profiles = parse_firewall_profiles(text("firewall/netfirewallprofile-all-enabled.txt"))
    assert [(p.name, p.enabled) for p in profiles] == [
        ("domain", True),
        ("private", True),
        ("public", True),
    ]
    # NotConfigured in this store: the effective default is not shown, so it is not guessed.
    assert {p.default_inbound_action for p in profiles} == {""}


def test_all_three_profiles_disabled() -> None:
    profiles = parse_firewall_profiles(text("firewall/netfirewallprofile-all-disabled.txt"))
    assert [p.enabled for p in profiles] == [False, False, False]


def test_active_store_prints_block() -> None:
    (domain,) = parse_firewall_profiles(
        text("firewall/netfirewallprofile-activestore-domain-snippet.txt")
    )
    assert (domain.name, domain.enabled, domain.default_inbound_action) == ("domain", True, "drop")


def test_wrapped_value_continues_the_previous_property() -> None:
    (record,) = parse_list(text("firewall/netfirewallprofile-private-only-wrapped.txt"))
    assert record["LogFileName"] == r"%systemroot%\system32\LogFiles\Firewall\pfirewall.log"
    (private,) = parse_firewall_profiles(
        text("firewall/netfirewallprofile-private-only-wrapped.txt")
    )
    assert private.enabled


def test_netsh_english_all_off() -> None:
    profiles = parse_allprofiles(text("netsh_firewall/allprofiles-en-all-off.txt"))
    assert [(p.name, p.enabled, p.default_inbound_action) for p in profiles] == [
        ("domain", False, "drop"),
        ("private", False, "drop"),
        ("public", False, "drop"),
    ]


def test_netsh_chinese_gbk_all_on() -> None:
    profiles = parse_allprofiles(
        text("netsh_firewall/allprofiles-zh-win7-all-on.cp936-crlf.txt", "cp936")
    )
    assert [(p.name, p.enabled) for p in profiles] == [
        ("domain", True),
        ("private", True),
        ("public", True),
    ]


def test_netsh_unknown_state_word_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_allprofiles("Domain Profile Settings:\nState                 MAYBE\n")
    with pytest.raises(ParseError):
        parse_allprofiles("Ok.\n")


def test_active_categories() -> None:
    assert parse_active_categories(
        text("connection_profile/netconnectionprofile-ethernet-public.txt")
    ) == {"public"}
    # Three networks, names in Japanese; categories are never translated.
    assert parse_active_categories(
        text("connection_profile/netconnectionprofile-ja-three-networks.txt")
    ) == {"private", "public"}
    assert parse_active_categories("") == frozenset()
    with pytest.raises(ParseError):
        parse_active_categories("Name : x\nNetworkCategory : Öffentlich\n")
