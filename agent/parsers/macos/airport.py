"""`system_profiler SPAirPortDataType -json`: Wi-Fi interfaces and the current network.

Real Macs print one entry per 802.11 interface under "spairport_airport_interfaces": the Wi-Fi
card (en0, with "spairport_status_information" and a card type) and AirDrop's awdl0, which is
no network connection and is skipped. The current association is
"spairport_current_network_information" with "_name" (the SSID) and "spairport_security_mode".

Traps seen in real outputs:
  * since macOS 14.4/15 the SSID is "<redacted>" unless the caller has Location Services
    permission; the SSID is then unknown, not "<redacted>" (`ssid_redacted`). macOS may also
    answer with no name at all (osquery#8220, osquery#8781 on macOS 26.0.1): an associated
    network always has a name, so an empty or missing one is hidden too;
  * some builds spell the mode "pairport_security_mode_..." (first letter dropped);
  * the card being off ("spairport_status_off") or not associated
    ("spairport_status_disassociated") means no current network, not an error.
This source is preferred over `airport -I`, whose "802.11 auth: open" line is no security
information (field notes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

REDACTED = "<redacted>"
_PREFIXES = ("spairport_security_mode_", "pairport_security_mode_")
# Mixed and transition modes admit the weaker protocol, so they are reported as the weaker one.
_SECURITY: dict[str, pb.WifiSecurity.ValueType] = {
    "none": pb.WIFI_SECURITY_OPEN,
    "wep": pb.WIFI_SECURITY_WEP,
    "owe": pb.WIFI_SECURITY_OWE,
    "wpa_personal": pb.WIFI_SECURITY_WPA_PERSONAL,
    "wpa_personal_mixed": pb.WIFI_SECURITY_WPA_PERSONAL,
    "wpa2_personal_mixed": pb.WIFI_SECURITY_WPA_PERSONAL,
    "wpa2_personal": pb.WIFI_SECURITY_WPA2_PERSONAL,
    "wpa3_transition": pb.WIFI_SECURITY_WPA2_PERSONAL,
    "wpa3_personal": pb.WIFI_SECURITY_WPA3_PERSONAL,
    "wpa_enterprise": pb.WIFI_SECURITY_WPA_ENTERPRISE,
    "wpa_enterprise_mixed": pb.WIFI_SECURITY_WPA_ENTERPRISE,
    "wpa2_enterprise_mixed": pb.WIFI_SECURITY_WPA_ENTERPRISE,
    "wpa2_enterprise": pb.WIFI_SECURITY_WPA2_ENTERPRISE,
    "wpa3_enterprise": pb.WIFI_SECURITY_WPA3_ENTERPRISE,
}


@dataclass(frozen=True)
class CurrentNetwork:
    ssid: str  # "" when macOS redacted it
    ssid_redacted: bool
    security: pb.WifiSecurity.ValueType


@dataclass(frozen=True)
class WifiInterface:
    name: str
    status: str  # "connected", "off", "disassociated", ... ("" when not printed)
    current: CurrentNetwork | None

    @property
    def associated(self) -> bool:
        """Joined to a network: connected, or a network shown without any status."""
        return self.current is not None and self.status in ("connected", "")


def wifi_security(mode: str) -> pb.WifiSecurity.ValueType:
    """The proto security for a "spairport_security_mode_*" value. A mode this table does not
    know is UNKNOWN (associated, security not understood), never guessed."""
    for prefix in _PREFIXES:
        if mode.startswith(prefix):
            return _SECURITY.get(mode.removeprefix(prefix), pb.WIFI_SECURITY_UNKNOWN)
    return pb.WIFI_SECURITY_UNKNOWN


def _current(raw: object) -> CurrentNetwork | None:
    if not isinstance(raw, dict) or "_name" not in raw:
        return None  # awdl0 prints a block with only the network type
    name = raw["_name"]
    mode = raw.get("spairport_security_mode", "")
    if not isinstance(name, str) or not isinstance(mode, str):
        raise ParseError("system_profiler: network name or security mode is not text")
    redacted = name in (REDACTED, "")
    return CurrentNetwork("" if redacted else name, redacted, wifi_security(mode))


def _is_wifi_card(raw: dict[str, Any]) -> bool:
    """A card has a status or a card type; a trimmed output may keep only the network it is
    associated with, which also proves it is Wi-Fi. awdl0 has none of the three."""
    current = raw.get("spairport_current_network_information")
    named = isinstance(current, dict) and "_name" in current
    return named or "spairport_status_information" in raw or "spairport_wireless_card_type" in raw


def parse_airport_json(text: str) -> list[WifiInterface]:
    """The Wi-Fi cards system_profiler lists (empty: this Mac has no Wi-Fi hardware)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError("system_profiler: output is not JSON") from exc
    sections = data.get("SPAirPortDataType") if isinstance(data, dict) else None
    if not isinstance(sections, list):
        raise ParseError("system_profiler: no SPAirPortDataType list")
    cards: list[WifiInterface] = []
    for section in sections:
        if not isinstance(section, dict):
            raise ParseError("system_profiler: SPAirPortDataType entry is not an object")
        interfaces = section.get("spairport_airport_interfaces", [])
        if not isinstance(interfaces, list):
            raise ParseError("system_profiler: interfaces is not a list")
        for raw in interfaces:
            if not isinstance(raw, dict) or not _is_wifi_card(raw):
                continue
            status = str(raw.get("spairport_status_information", "")).removeprefix(
                "spairport_status_"
            )
            current = _current(raw.get("spairport_current_network_information"))
            if current is None and status == "connected":
                current = _nameless(raw.get("spairport_current_network_information"))
            cards.append(WifiInterface(str(raw.get("_name", "")), status, current))
    return cards


def _nameless(raw: object) -> CurrentNetwork:
    """A card that says it is connected but names no network: the name was withheld, which is
    not the same as being off the network (that would read as "no public Wi-Fi used")."""
    mode = raw.get("spairport_security_mode", "") if isinstance(raw, dict) else ""
    return CurrentNetwork("", True, wifi_security(mode if isinstance(mode, str) else ""))
