"""Classifying a Wi-Fi network on the device (DESIGN principle 1's privacy exception).

Shared by every OS: the probes only have to say which SSID and which security they saw.
TRUSTED wins over everything (the company's own network is never "public"); open, WEP and
OWE networks are PUBLIC whatever their name, because anyone can join them; a name matching a
public pattern is PUBLIC too. Every other network is OTHER and leaves the device only as a
keyed hash, so a home network's name is never reported.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac

from agent.probes.config import ProbeConfig
from agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb

_PUBLIC_SECURITY = {pb.WIFI_SECURITY_OPEN, pb.WIFI_SECURITY_WEP, pb.WIFI_SECURITY_OWE}
_HASH_HEX_CHARS = 32


def hashed_network_id(ssid: str, key: bytes) -> str:
    digest = hmac.new(key, ssid.encode("utf-8"), hashlib.sha256).hexdigest()
    return "h:" + digest[:_HASH_HEX_CHARS]


def classify_network(
    ssid: str, security: pb.WifiSecurity.ValueType, config: ProbeConfig
) -> tuple[str, pb.NetworkClass.ValueType]:
    """(network_id, pb.NetworkClass) for one associated network."""
    if ssid and ssid in config.trusted_networks:
        return ssid, pb.NETWORK_CLASS_TRUSTED
    if security in _PUBLIC_SECURITY or any(
        fnmatch.fnmatchcase(ssid, pattern) for pattern in config.public_network_patterns
    ):
        return ssid, pb.NETWORK_CLASS_PUBLIC
    return hashed_network_id(ssid, config.network_hash_key), pb.NETWORK_CLASS_OTHER


def current_session(
    ctx: ProbeContext, ssid: str, security: pb.WifiSecurity.ValueType, interface: str
) -> pb.WifiSession:
    """The session of a network a probe sees associated now, on any OS: classified, started
    at this observation, with the VPN state of this collection (the VPN fact is collected
    first). The agent's session log (agent.sessions) carries it across observations."""
    network_id, classification = classify_network(ssid, security, ctx.config)
    vpn_up = ctx.report.HasField("vpn") and ctx.report.vpn.active
    session = pb.WifiSession(
        network_id=network_id,
        security=security,
        classification=classification,
        interface=interface,
        vpn_up=vpn_up,
    )
    now = ctx.host.now()
    session.started_at.FromDatetime(now)
    if vpn_up:
        session.vpn_up_at.FromDatetime(now)
    return session
