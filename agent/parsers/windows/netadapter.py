"""`Get-NetAdapter | Format-List`: the network adapters Windows knows, in no language of its own.

`ipconfig /all` words its section titles and labels in the display language, so a machine in a
language without a table cannot be read there (agent/parsers/windows/ipconfig.py). The NetAdapter
module's list view prints the same adapters with property names and state words that Windows
never translates: a Spanish Windows 10 prints "InterfaceOperationalStatus : Down" and
"MediaConnectionState : Disconnected" (tests/fixtures/windows/README.md, "netadapter"). Only the
adapter's Name (the connection name the user sees, "Ethernet 2", "Беспроводная сеть") and its
InterfaceDescription (the driver's name, which is what tells a VPN's virtual NIC) are free text.

One block per adapter, blank lines between them; a label is padded with spaces to its colon and
one ("LinkSpeed(Gbps)") carries its unit in parentheses. A value longer than the console wraps
onto the next line, indented to the value column: a line without a label continues the value
above it. A published copy may be indented as a whole, so indentation is ignored.

An adapter is up when its interface is operational ("Up", the IF_OPER_STATUS of RFC 2863 that
the view prints by name) and its medium is connected. A VPN's virtual NIC is "Down" and
"Disconnected" until its client connects. A word outside the documented values is a ParseError,
never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

# InterfaceOperationalStatus as the view prints it (MSFT_NetAdapter, RFC 2863 ifOperStatus).
OPERATIONAL = frozenset(
    {"Up", "Down", "Testing", "Unknown", "Dormant", "NotPresent", "LowerLayerDown"}
)
# MediaConnectionState: the NDIS media connect state by name.
MEDIA = frozenset({"Connected", "Disconnected", "Unknown"})
_LABEL = re.compile(
    r"^\s*(?P<label>[A-Za-z][A-Za-z0-9_]*(?:\([A-Za-z]+\))?)\s*:(?: (?P<value>.*))?$"
)
_REQUIRED = ("Name", "InterfaceDescription", "InterfaceOperationalStatus", "MediaConnectionState")


@dataclass(frozen=True)
class NetAdapter:
    name: str  # the connection name, in the user's language
    description: str  # the driver's name for the adapter
    operational: str  # one of OPERATIONAL
    media: str  # one of MEDIA

    @property
    def up(self) -> bool:
        return self.operational == "Up" and self.media == "Connected"


def _blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, ""
            continue
        match = _LABEL.match(line)
        if match is None:
            if not last:
                raise ParseError("Get-NetAdapter: a line belongs to no property")
            current[last] += line.strip()
            continue
        label = match["label"]
        if label in current:
            raise ParseError(f"Get-NetAdapter: property {label} repeated in one adapter")
        current[label] = (match["value"] or "").strip()
        last = label
    if current:
        blocks.append(current)
    return blocks


def parse_net_adapters(text: str) -> list[NetAdapter]:
    """The adapters in `text`; [] when PowerShell printed nothing (no adapter). Raises
    ParseError on a block without one of the properties read, or a state word not documented."""
    adapters = []
    for block in _blocks(text):
        missing = [name for name in _REQUIRED if name not in block]
        if missing:
            raise ParseError(f"Get-NetAdapter: an adapter without {', '.join(missing)}")
        operational = block["InterfaceOperationalStatus"]
        media = block["MediaConnectionState"]
        if operational not in OPERATIONAL:
            raise ParseError("Get-NetAdapter: InterfaceOperationalStatus not understood")
        if media not in MEDIA:
            raise ParseError("Get-NetAdapter: MediaConnectionState not understood")
        description = block["InterfaceDescription"]
        adapters.append(NetAdapter(block["Name"], description, operational, media))
    return adapters
