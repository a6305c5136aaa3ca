"""`netsh wlan show interfaces`: the wireless interfaces, which are connected, and how.

The output is a header ("There is 1 interface on the system:" in the machine's language) and
one block of "label : value" lines per interface, each starting with the name label. Labels are
padded to no fixed column and differ by language and Windows version, so a line is split at its
first colon (ASCII or full-width) and the label looked up in `netsh_wlan_labels`. Lines with
unknown labels (rates, BSSIDs, QoS counters) are skipped: they carry nothing the agent reports;
but a connected interface must have an authentication line, or its security is unknown (a
ParseError, never a session of unknown security that would count as an ordinary network).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows import netsh_wlan_labels as labels
from devposture.v1 import devposture_pb2 as pb

_FIELD = re.compile(r"^\s*(?P<label>[^:：]+?)\s*[:：]\s?(?P<value>.*)$")
_NOTE = re.compile(r"\([^)]*\)\s*$")


@dataclass(frozen=True)
class WlanInterface:
    name: str
    connected: bool
    ssid: str
    # As printed, in the machine's language ("WPA2 - 个人"); "" when not connected.
    authentication: str
    cipher: str
    security: pb.WifiSecurity.ValueType


@dataclass(frozen=True)
class WlanReport:
    """Either a list of interfaces or one of the conditions netsh reports instead."""

    interfaces: tuple[WlanInterface, ...] = ()
    no_interface: bool = False
    service_stopped: bool = False
    location_denied: bool = False


def wifi_security(authentication: str, cipher: str) -> pb.WifiSecurity.ValueType:
    """The pb.WifiSecurity for netsh's authentication and cipher values (any language).
    Empty authentication: the system did not say (UNKNOWN). Unknown text: ParseError."""
    if not authentication.strip():
        return pb.WIFI_SECURITY_UNKNOWN
    key = _NOTE.sub("", authentication).lower().replace(" ", "").replace("-", "")
    if key not in labels.AUTHENTICATION:
        raise ParseError("netsh wlan: authentication value not in the language tables")
    security = labels.AUTHENTICATION[key]
    cipher_key = cipher.strip().lower().replace(" ", "").replace("-", "")
    if security == pb.WIFI_SECURITY_OPEN and cipher_key in labels.WEP_CIPHERS:
        return pb.WIFI_SECURITY_WEP
    return security


def _interface(fields: dict[str, str]) -> WlanInterface:
    state = fields.get("state", "")
    if state in labels.CONNECTED:
        connected = True
    elif state in labels.DISCONNECTED:
        connected = False
    else:
        raise ParseError("netsh wlan: interface state not in the language tables")
    if not connected:
        return WlanInterface(fields["name"], False, "", "", "", pb.WIFI_SECURITY_UNSPECIFIED)
    authentication = fields.get("authentication", "")
    if not authentication.strip():
        # netsh prints the authentication of every connected interface. Without it (a label in
        # a language or version the tables lack, a copy cut short) the network's openness is
        # unknown, and a session of unknown security would count as an ordinary network.
        raise ParseError("netsh wlan: a connected interface without an authentication line")
    cipher = fields.get("cipher", "")
    return WlanInterface(
        name=fields["name"],
        connected=True,
        ssid=fields.get("ssid", ""),
        authentication=authentication,
        cipher=cipher,
        security=wifi_security(authentication, cipher),
    )


def parse_wlan_interfaces(text: str) -> WlanReport:
    """The report for one run of `netsh wlan show interfaces` (decoded, "\\n" line ends)."""
    stripped = text.strip()
    if any(message in stripped for message in labels.NO_INTERFACE):
        return WlanReport(no_interface=True)
    if labels.SERVICE_STOPPED_MARKER in stripped:
        return WlanReport(service_stopped=True)
    if labels.LOCATION_DENIED_URI in stripped or labels.LOCATION_DENIED_CALL.search(stripped):
        return WlanReport(location_denied=True)
    blocks: list[dict[str, str]] = []
    for line in text.split("\n"):
        match = _FIELD.match(line)
        if match is None:
            continue
        key = labels.LABELS.get(match.group("label"))
        if key is None:
            continue
        value = match.group("value").strip()
        if key == "name":
            blocks.append({"name": value})
        elif blocks:
            blocks[-1].setdefault(key, value)
    if not blocks:
        raise ParseError("netsh wlan: no interface block found")
    return WlanReport(interfaces=tuple(_interface(block) for block in blocks))
