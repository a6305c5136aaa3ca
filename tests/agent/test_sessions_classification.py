"""Sessions whose network shows more after joining: a portal or a category found later."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devposture.agent.probes.wifi_classify import hashed_network_id
from devposture.agent.sessions import Session, SessionLog, identity, merge
from devposture.v1 import devposture_pb2 as pb

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
KEY = b"fleet-key"
WPA2 = pb.WIFI_SECURITY_WPA2_PERSONAL


def other(ssid: str = "Cafe", **extra: object) -> pb.WifiSession:
    """What a probe reports for a network with no public signal: the keyed hash."""
    return pb.WifiSession(
        network_id=hashed_network_id(ssid, KEY),
        security=WPA2,
        classification=pb.NETWORK_CLASS_OTHER,
        interface="wlan0",
        **extra,  # type: ignore[arg-type]
    )


def public(ssid: str = "Cafe", *reasons: str, **extra: object) -> pb.WifiSession:
    return pb.WifiSession(
        network_id=ssid,
        security=WPA2,
        classification=pb.NETWORK_CLASS_PUBLIC,
        interface="wlan0",
        classification_reasons=reasons,
        **extra,  # type: ignore[arg-type]
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_portal_found_later_makes_the_session_public_from_its_start() -> None:
    log = merge([], T0, [other()], vpn_active=False, hash_key=KEY)
    log = merge(log, at(1), [public("Cafe", "captive portal", captive_portal=True)], False, KEY)
    (session,) = log  # the same session, not a closed one and a new one
    assert session.started_at == T0.isoformat() and session.ended_at is None
    assert (session.network_id, session.classification) == ("Cafe", pb.NETWORK_CLASS_PUBLIC)
    assert session.classification_reasons == ("captive portal",)
    assert session.captive_portal is True
    proto = session.to_proto()
    assert list(proto.classification_reasons) == ["captive portal"] and proto.captive_portal


def test_public_stays_public_and_keeps_every_reason() -> None:
    log = merge([], T0, [public("Cafe", "captive portal", captive_portal=True)], False, KEY)
    # The user signed in at the portal: NetworkManager now reaches the Internet.
    log = merge(log, at(2), [other(captive_portal=False)], vpn_active=False, hash_key=KEY)
    log = merge(
        log, at(3), [public("Cafe", "Windows network category Public", network_category="Public")],
        False, KEY,
    )  # fmt: skip
    (session,) = log
    assert session.classification == pb.NETWORK_CLASS_PUBLIC and session.network_id == "Cafe"
    assert session.classification_reasons == ("captive portal", "Windows network category Public")
    assert session.captive_portal is True  # once seen, the network had a portal
    assert session.network_category == "Public"


def test_the_vpn_delay_counts_from_joining_not_from_the_portal() -> None:
    log = merge([], T0, [other()], vpn_active=False, hash_key=KEY)
    log = merge(log, at(1), [public("Cafe", "captive portal", captive_portal=True)], False, KEY)
    log = merge(log, at(4), [public("Cafe", "captive portal", captive_portal=True)], True, KEY)
    (session,) = log
    assert (session.started_at, session.vpn_up_at) == (T0.isoformat(), at(4).isoformat())


def test_another_network_on_the_same_card_is_another_session() -> None:
    log = merge([], T0, [other("Home")], vpn_active=False, hash_key=KEY)
    log = merge(log, at(1), [public("Cafe", "captive portal")], vpn_active=False, hash_key=KEY)
    assert [(s.network_id, s.ended_at) for s in log] == [
        (hashed_network_id("Home", KEY), at(1).isoformat()),
        ("Cafe", None),
    ]


def test_without_the_key_a_change_of_class_cannot_be_followed() -> None:
    log = merge([], T0, [other()], vpn_active=False)
    log = merge(log, at(1), [public("Cafe", "captive portal")], vpn_active=False)
    assert [s.ended_at is None for s in log] == [False, True]
    assert identity("Cafe", pb.NETWORK_CLASS_PUBLIC, b"") == "Cafe"
    assert identity("Cafe", pb.NETWORK_CLASS_PUBLIC, KEY) == hashed_network_id("Cafe", KEY)


def test_a_hidden_name_stays_one_session_until_it_is_told() -> None:
    hidden = pb.WifiSession(
        security=WPA2,
        classification=pb.NETWORK_CLASS_UNKNOWN,
        interface="en0",
        classification_reasons=["name hidden by macOS"],
    )
    log = merge([], T0, [hidden], vpn_active=False, hash_key=KEY)
    log = merge(log, at(1), [hidden], vpn_active=False, hash_key=KEY)
    (session,) = log
    assert session.classification == pb.NETWORK_CLASS_UNKNOWN and session.network_id == ""
    assert session.to_proto().classification_reasons == ["name hidden by macOS"]
    # Location Services granted: the name is known now, which is a network of its own.
    log = merge(log, at(2), [public("Cafe", "open network")], vpn_active=False, hash_key=KEY)
    assert [(s.classification, s.ended_at is None) for s in log] == [
        (pb.NETWORK_CLASS_UNKNOWN, False), (pb.NETWORK_CLASS_PUBLIC, True),
    ]  # fmt: skip


def test_the_log_keeps_the_new_fields_and_reads_an_older_log(tmp_path: Path) -> None:
    path = tmp_path / "wifi-sessions.json"
    older = [{
        "interface": "wlan0", "network_id": "Airport-Free", "security": 1,
        "classification": 1, "started_at": T0.isoformat(), "ended_at": None, "vpn_up_at": None,
    }]  # fmt: skip
    path.write_text(json.dumps(older), encoding="utf-8")
    log = SessionLog(path, KEY)
    (session,) = log.load()
    assert session.classification_reasons == () and session.captive_portal is None
    observed = public("Cafe", "captive portal", captive_portal=True)
    session = Session.observed(observed, at(1).isoformat(), vpn_active=False)
    log.save([session])
    assert log.load() == [session]
    assert not (tmp_path / "wifi-sessions.damaged").exists()
    path.write_text(json.dumps([{**older[0], "classification_reasons": "open"}]), "utf-8")
    assert log.load() == []  # not a list of reasons: set aside, never misread
    assert (tmp_path / "wifi-sessions.damaged").exists()


def test_the_report_carries_the_upgraded_session(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "wifi-sessions.json", KEY)
    for when, observed in ((T0, other()), (at(1), public("Cafe", "captive portal"))):
        report = pb.PostureReport()
        report.collected_at.FromDatetime(when)
        report.wifi.has_wifi_interface = True
        report.wifi.sessions.append(observed)
        log.apply(report)
    (session,) = report.wifi.sessions
    assert session.network_id == "Cafe" and session.started_at.ToDatetime(UTC) == T0
    assert list(session.classification_reasons) == ["captive portal"]
