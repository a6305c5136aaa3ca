"""Classifying a Wi-Fi network on the device (DESIGN principle 1's privacy exception).

Shared by every OS: the probes say what the OS told them about the network they are on (its
name, its security, and where the OS has them, Windows' network category and a captive
portal), and this module decides, giving one reason phrase per signal that counted:

* TRUSTED: the name is one of the company's networks (`[networks] trusted` in the policy).
  The policy promises these are never public, so no other signal overrides the name.
* PUBLIC: anyone can join or read it (open, WEP, Enhanced Open/OWE), Windows files the
  connection under the Public category, the OS saw a captive portal, or the name matches
  one of the policy's public patterns (operator hotspots such as CMCC or i-Shanghai).
* UNKNOWN: the OS hid the name (macOS without Location Services permission) and nothing
  else makes the network public: it can be neither trusted nor called "other".
* OTHER: everything else. Its name leaves the device only as a keyed hash, so a home
  network's name is never reported.

Patterns are shell patterns (`*`, `?`, `[...]`) matched without regard to case or to
full-width/half-width forms (NFKC): an SSID is whatever bytes a router was given, and
"CMCC-WEB", "cmcc-web" and "ＣＭＣＣ-WEB" are the same hotspot to a person. Chinese characters
have no case and pass through unchanged.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass

from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb

_SECURITY_REASONS: dict[pb.WifiSecurity.ValueType, str] = {
    pb.WIFI_SECURITY_OPEN: "open network",
    pb.WIFI_SECURITY_WEP: "WEP",
    pb.WIFI_SECURITY_OWE: "Enhanced Open (OWE): no password",
}
_HASH_HEX_CHARS = 32
PUBLIC_CATEGORY = "Public"
COMPANY = "company network"
CAPTIVE_PORTAL = "captive portal"
HIDDEN_BY_MACOS = "name hidden by macOS"
NO_NAME = "the OS gave no network name"


@dataclass(frozen=True)
class NetworkSignals:
    """What the OS told about one associated network. `hidden_reason` is set when the OS
    withheld the name (then `ssid` is ""); `network_category` is Windows' category of the
    connection ("" elsewhere); `captive_portal` is None when the OS does not say."""

    ssid: str
    security: pb.WifiSecurity.ValueType
    hidden_reason: str = ""
    network_category: str = ""
    captive_portal: bool | None = None


@dataclass(frozen=True)
class Classification:
    network_id: str
    classification: pb.NetworkClass.ValueType
    reasons: tuple[str, ...]


def hashed_network_id(ssid: str, key: bytes) -> str:
    digest = hmac.new(key, ssid.encode("utf-8"), hashlib.sha256).hexdigest()
    return "h:" + digest[:_HASH_HEX_CHARS]


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def matching_pattern(ssid: str, patterns: tuple[str, ...]) -> str | None:
    """The first public pattern the name matches (case and width folded), or None."""
    name = _folded(ssid)
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, _folded(pattern)):
            return pattern
    return None


def classify(signals: NetworkSignals, config: ProbeConfig) -> Classification:
    """The class, the id to report and the reasons, for one associated network."""
    ssid = signals.ssid
    if ssid and not signals.hidden_reason and ssid in config.trusted_networks:
        return Classification(ssid, pb.NETWORK_CLASS_TRUSTED, (COMPANY,))
    reasons: list[str] = []
    if signals.security in _SECURITY_REASONS:
        reasons.append(_SECURITY_REASONS[signals.security])
    if signals.network_category == PUBLIC_CATEGORY:
        reasons.append(f"Windows network category {PUBLIC_CATEGORY}")
    if signals.captive_portal:
        reasons.append(CAPTIVE_PORTAL)
    hidden = signals.hidden_reason or ("" if ssid else NO_NAME)
    if hidden:
        # No name: no pattern can match and no hash can stand for it.
        if reasons:
            return Classification("", pb.NETWORK_CLASS_PUBLIC, (*reasons, hidden))
        return Classification("", pb.NETWORK_CLASS_UNKNOWN, (hidden,))
    pattern = matching_pattern(ssid, config.public_network_patterns)
    if pattern is not None:
        reasons.append(f"name matches {pattern}")
    if reasons:
        return Classification(ssid, pb.NETWORK_CLASS_PUBLIC, tuple(reasons))
    return Classification(
        hashed_network_id(ssid, config.network_hash_key), pb.NETWORK_CLASS_OTHER, ()
    )


def classify_network(
    ssid: str, security: pb.WifiSecurity.ValueType, config: ProbeConfig
) -> tuple[str, pb.NetworkClass.ValueType]:
    """(network_id, pb.NetworkClass) from the name and security alone."""
    result = classify(NetworkSignals(ssid, security), config)
    return result.network_id, result.classification


def current_session(ctx: ProbeContext, signals: NetworkSignals, interface: str) -> pb.WifiSession:
    """The session of a network a probe sees associated now, on any OS: classified, started
    at this observation, with the VPN state of this collection (the VPN fact is collected
    first). The agent's session log (agent.sessions) carries it across observations."""
    result = classify(signals, ctx.config)
    vpn_up = ctx.report.HasField("vpn") and ctx.report.vpn.active
    session = pb.WifiSession(
        network_id=result.network_id,
        security=signals.security,
        classification=result.classification,
        interface=interface,
        vpn_up=vpn_up,
        classification_reasons=result.reasons,
        network_category=signals.network_category,
    )
    if signals.captive_portal is not None:
        session.captive_portal = signals.captive_portal
    now = ctx.host.now()
    session.started_at.FromDatetime(now)
    if vpn_up:
        session.vpn_up_at.FromDatetime(now)
    return session
