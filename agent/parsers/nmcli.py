"""NetworkManager's `nmcli -t` (terse) output: devices, the Wi-Fi access point list and each
device's connectivity.

Terse mode separates fields with ':' and escapes a ':' or '\\' inside a value with a
backslash (BSSIDs print as 02\\:1A\\:...). Commands the probe runs:
    nmcli -t -f DEVICE,TYPE,STATE,CONNECTION device
    nmcli -t -f IN-USE,SSID,BSSID,CHAN,SIGNAL,SECURITY device wifi list --rescan no
    nmcli -t -f DEVICE,IP4-CONNECTIVITY,IP6-CONNECTIVITY device
SECURITY is built by nmcli (src/nmcli/devices.c) from the access point's flags as
space-separated tokens: WEP, WPA1, WPA2, WPA3, OWE, OWE-TM (since 1.40: the open half of an
OWE transition network, which "itself is unencrypted"; before, it printed OWE), 802.1X and,
since 1.44, WPA-EAP-SUITE-B-192 (WPA3-Enterprise 192-bit); an open network prints an empty
value, and so does a network whose key management this nmcli has no word for (recorded:
nmcli 1.42 prints nothing for a Suite B 192 network). So an empty SECURITY is read again from
the access point's flags, which say "(none)" only when there is no WPA or RSN at all.

nmcli prints through GLib's g_print, which converts what it writes to the locale's character
set: under the agent's LC_ALL=C that is ASCII, and every other character of a network's name
becomes "?" ("公司网络" prints "????", recorded in tests/fixtures/linux/nmcli). A name with "?"
is read again from its bytes, the SSID-HEX field. Both come from one more listing, asked only
for an access point in use that needs it:
    nmcli -t -f IN-USE,BSSID,SSID-HEX,WPA-FLAGS,RSN-FLAGS device wifi list --rescan no
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

DEVICE_FIELDS = ("DEVICE", "TYPE", "STATE", "CONNECTION")
WIFI_FIELDS = ("IN-USE", "SSID", "BSSID", "CHAN", "SIGNAL", "SECURITY")
CONNECTIVITY_FIELDS = ("DEVICE", "IP4-CONNECTIVITY", "IP6-CONNECTIVITY")
DETAIL_FIELDS = ("IN-USE", "BSSID", "SSID-HEX", "WPA-FLAGS", "RSN-FLAGS")
# What g_print writes for a character the C locale cannot show.
UNPRINTABLE = "?"


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
        aps.append(NmAccessPoint(_in_use(r["IN-USE"]), r["SSID"], r["BSSID"], r["SECURITY"]))
    return aps


def _in_use(value: str) -> bool:
    if value not in ("*", " ", ""):
        raise ParseError("nmcli: IN-USE is neither '*' nor blank")
    return value == "*"


def ssid_from_bytes(raw: bytes) -> str:
    """A network's name as nmcli shows it to a Chinese user: UTF-8 when the bytes are UTF-8,
    else GB18030 (what nmcli tries under zh_CN: EUC-CN, GB2312, GB18030, each within GB18030;
    older Chinese routers store their names in GBK), else the printable ASCII bytes with "?"
    for the others (nmcli's own last resort, nm_utils_ssid_to_utf8)."""
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return "".join(chr(b) if 0x20 <= b < 0x7F else UNPRINTABLE for b in raw)


@dataclass(frozen=True)
class NmApDetails:
    ssid: str  # decoded from SSID-HEX
    wpa_flags: frozenset[str]  # nmcli's words ("pair_ccmp", "psk", ...); empty for "(none)"
    rsn_flags: frozenset[str]


def _flags(value: str) -> frozenset[str]:
    words = frozenset(value.split())
    return frozenset() if words == {"(none)"} else words


def details_in_use(text: str, bssid: str) -> NmApDetails:
    """The access point `bssid`, in use, from the DETAIL_FIELDS listing."""
    for row in _rows(text, DETAIL_FIELDS):
        if _in_use(row["IN-USE"]) and row["BSSID"] == bssid:
            try:
                ssid = ssid_from_bytes(bytes.fromhex(row["SSID-HEX"]))
            except ValueError as exc:
                raise ParseError("nmcli: SSID-HEX is not hexadecimal") from exc
            return NmApDetails(ssid, _flags(row["WPA-FLAGS"]), _flags(row["RSN-FLAGS"]))
    raise ParseError("nmcli: the access point in use is missing from the detailed listing")


def security_from_flags(details: NmApDetails) -> pb.WifiSecurity.ValueType:
    """The security of an access point whose SECURITY nmcli printed empty: open only when it
    has neither WPA nor RSN flags (WEP, with the privacy flag alone, prints "WEP"), WPA3-
    Enterprise for Suite B 192, and UNKNOWN for encryption by a key management nmcli has no
    word for: a network that takes a key is not open, nor known to be anything else."""
    flags = details.wpa_flags | details.rsn_flags
    if not flags:
        return pb.WIFI_SECURITY_OPEN
    if "wpa-eap-suite-b-192" in flags:
        return pb.WIFI_SECURITY_WPA3_ENTERPRISE
    return pb.WIFI_SECURITY_UNKNOWN


_KNOWN_TOKENS = {"WEP", "WPA1", "WPA2", "WPA3", "OWE", "OWE-TM", "802.1X", "WPA-EAP-SUITE-B-192"}


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
    if parts == ["OWE-TM"]:  # the open half of a transition network: no encryption
        return pb.WIFI_SECURITY_OPEN
    if "WEP" in parts:
        return pb.WIFI_SECURITY_WEP
    if parts == ["WPA-EAP-SUITE-B-192"]:
        return pb.WIFI_SECURITY_WPA3_ENTERPRISE
    enterprise = "802.1X" in parts or "WPA-EAP-SUITE-B-192" in parts
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
