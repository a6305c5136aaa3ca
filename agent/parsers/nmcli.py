"""NetworkManager's `nmcli -t` (terse) output: devices, the Wi-Fi access point list and each
device's connectivity.

Terse mode separates fields with ':' and escapes a ':' or '\\' inside a value with a
backslash (BSSIDs print as 02\\:1A\\:...). Commands the probe runs:
    nmcli -t -f DEVICE,TYPE,STATE,CONNECTION device
    nmcli -t -f IN-USE,SSID,BSSID,CHAN,SIGNAL,SECURITY device wifi list --rescan no
    nmcli -t -f DEVICE,IP4-CONNECTIVITY,IP6-CONNECTIVITY device
SECURITY is built by nmcli (src/nmcli/devices.c) from the access point's flags as
space-separated tokens: WEP, WPA1, WPA2, WPA3, OWE (also for OWE transition), 802.1X; an
open network prints an empty value.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

DEVICE_FIELDS = ("DEVICE", "TYPE", "STATE", "CONNECTION")
WIFI_FIELDS = ("IN-USE", "SSID", "BSSID", "CHAN", "SIGNAL", "SECURITY")
CONNECTIVITY_FIELDS = ("DEVICE", "IP4-CONNECTIVITY", "IP6-CONNECTIVITY")


def split_terse(line: str) -> list[str]:
    """Split one terse line on unescaped ':' and undo the escapes."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def _rows(text: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = split_terse(line)
        if len(values) != len(fields):
            raise ParseError(f"nmcli: expected {len(fields)} terse fields, got {len(values)}")
        rows.append(dict(zip(fields, values, strict=True)))
    return rows


@dataclass(frozen=True)
class NmDevice:
    device: str
    type: str  # "wifi", "ethernet", "loopback", "wifi-p2p", ...
    state: str  # "connected", "disconnected", "unavailable", "connected (externally)", ...
    connection: str


@dataclass(frozen=True)
class NmAccessPoint:
    in_use: bool
    ssid: str
    bssid: str
    security: str  # nmcli's SECURITY tokens, e.g. "WPA2 WPA3"


def parse_devices(text: str) -> list[NmDevice]:
    return [
        NmDevice(r["DEVICE"], r["TYPE"], r["STATE"], r["CONNECTION"])
        for r in _rows(text, DEVICE_FIELDS)
    ]


def parse_wifi_list(text: str) -> list[NmAccessPoint]:
    aps = []
    for r in _rows(text, WIFI_FIELDS):
        if r["IN-USE"] not in ("*", " ", ""):
            raise ParseError("nmcli: IN-USE is neither '*' nor blank")
        aps.append(NmAccessPoint(r["IN-USE"] == "*", r["SSID"], r["BSSID"], r["SECURITY"]))
    return aps


_KNOWN_TOKENS = {"WEP", "WPA1", "WPA2", "WPA3", "OWE", "802.1X"}


def wifi_security(tokens: str) -> pb.WifiSecurity.ValueType:
    """pb.WifiSecurity for nmcli's SECURITY value. A network offering several modes is
    reported by the weakest one it accepts ("WPA1 WPA2" -> WPA): that is what an attacker or
    a misconfigured client can use."""
    parts = tokens.split()
    if not parts or parts == ["--"]:
        return pb.WIFI_SECURITY_OPEN
    if not set(parts) <= _KNOWN_TOKENS:
        return pb.WIFI_SECURITY_UNKNOWN
    if "OWE" in parts and not {"WPA1", "WPA2", "WPA3"} & set(parts):
        return pb.WIFI_SECURITY_OWE
    if "WEP" in parts:
        return pb.WIFI_SECURITY_WEP
    enterprise = "802.1X" in parts
    for token, personal, corporate in (
        ("WPA1", pb.WIFI_SECURITY_WPA_PERSONAL, pb.WIFI_SECURITY_WPA_ENTERPRISE),
        ("WPA2", pb.WIFI_SECURITY_WPA2_PERSONAL, pb.WIFI_SECURITY_WPA2_ENTERPRISE),
        ("WPA3", pb.WIFI_SECURITY_WPA3_PERSONAL, pb.WIFI_SECURITY_WPA3_ENTERPRISE),
    ):
        if token in parts:
            return corporate if enterprise else personal
    return pb.WIFI_SECURITY_UNKNOWN


# NetworkManager's connectivity states (NMConnectivityState), as nmcli prints them.
_CONNECTIVITY = {"unknown", "none", "portal", "limited", "full"}


def parse_connectivity(text: str) -> dict[str, bool | None]:
    """Per device: True when NetworkManager found a captive portal (IPv4 or IPv6 "portal"),
    False when its check reached the Internet ("full", no portal), None when it cannot say.

    "limited", "none" and "unknown" say nothing about a portal: with no connectivity URI
    configured (Debian's default) NetworkManager reports "limited" on every device without
    checking anything (recorded in tests/fixtures/linux/nmcli)."""
    result: dict[str, bool | None] = {}
    for row in _rows(text, CONNECTIVITY_FIELDS):
        states = (row["IP4-CONNECTIVITY"], row["IP6-CONNECTIVITY"])
        if not set(states) <= _CONNECTIVITY:
            raise ParseError("nmcli: connectivity state not understood")
        if "portal" in states:
            result[row["DEVICE"]] = True
        elif "full" in states:
            result[row["DEVICE"]] = False
        else:
            result[row["DEVICE"]] = None
    return result
