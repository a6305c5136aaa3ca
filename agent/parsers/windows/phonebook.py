"""A RAS phonebook (`rasphone.pbk`): the dial-up, broadband and VPN connections Windows knows,
each under the name `ipconfig /all` titles its "PPP adapter" with, and of which type.

ipconfig prints a PPPoE dial-up and a VPN connection alike (agent/probes/windows/vpn_adapters.py,
"PPP adapter"); the phonebook entry that Windows dials tells them. It is an INI file, one section
per connection, "[宽带连接]" then "Type=5" among its settings. The type is RASENTRY's dwType (the
Windows SDK's ras.h): 1 a phone line (a modem), 2 a VPN (PPTP, L2TP, SSTP, IKEv2), 3 a direct
cable, 4 an Internet dial, 5 broadband (PPPoE); its "DEVICE=" line says "vpn" or "PPPoE" too.
Real phonebooks of Chinese machines hold "[宽带连接]" with Type=5 and DEVICE=PPPoE, and IKEv2
connections with Type=2 and DEVICE=vpn (tests/fixtures/windows/README.md, "phonebook").

Only the section names and their Type are read: the file also holds server names, and nothing
of it is logged or sent. A section without a Type is of an unknown type, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping

# RASENTRY.dwType (ras.h: RASET_Phone .. RASET_Broadband), by the number the phonebook writes.
ENTRY_TYPES: Mapping[str, str] = {
    "1": "phone",
    "2": "vpn",
    "3": "direct",
    "4": "internet",
    "5": "broadband",
}
UNKNOWN = "unknown"


def parse_phonebook(text: str) -> dict[str, str]:
    """Each entry's type ("vpn", "broadband", ... or "unknown"), by its name in lower case (as
    ipconfig's title may differ in case). A later section of the same name wins, as a file
    edited by hand may repeat one; Windows itself keeps names unique."""
    entries: dict[str, str] = {}
    name: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip().lower()
            entries[name] = UNKNOWN
        elif name is not None and entries[name] == UNKNOWN and line.startswith("Type="):
            entries[name] = ENTRY_TYPES.get(line.partition("=")[2].strip(), UNKNOWN)
    return entries
