"""VPN on Windows: tunnel adapters from `Get-NetAdapter` and `ipconfig /all`, psutil's interfaces
as a supplement.

Get-NetAdapter's list view is read first: its property names and state words are the same in
every display language, so a Korean, Polish or Thai Windows reads its VPN adapters there. An
adapter is up when its interface is operational and its medium connected.

`ipconfig /all` is read next, for what only it shows: the built-in VPN client's "PPP adapter"s,
"Unknown adapter"s whose driver no table names, and each adapter's IPv4 address. An adapter both
list (the same description) is up only when both say so: Windows calls a VPN adapter that no
server answered connected, with an automatic address (169.254/16) that carries no traffic.
ipconfig's titles are in the display language; in a language without a table it is a ParseError,
reported, since a PPP connection may then go unseen: "no VPN" is not proven there, while a VPN
Get-NetAdapter saw up is still seen. Where ipconfig was read, a failed Get-NetAdapter (Windows 7
has no NetAdapter module) costs nothing, as ipconfig listed every adapter it would have, so it is
not reported.

A PPP adapter counts only when the RAS phonebook entry of its name is a VPN's (phonebooks.py)
or, where no phonebook holds it, when its name says VPN; one that is up and that neither tells
is said as an error of the ipconfig source (vpn_adapters.py, "PPP adapter"): a dial-up
broadband (PPPoE) link is no VPN. The phonebooks are read only when ipconfig lists a PPP adapter.

psutil (`ctx.host.net_interfaces()`) adds interfaces whose connection name says VPN but that
neither listed (ipconfig can miss adapters being set up). No VPN adapter at all is a fact
(active=false), not an error; the fact is an error only when no source answered.
"""

from __future__ import annotations

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.ipconfig import parse_ipconfig
from devposture.agent.parsers.windows.netadapter import parse_net_adapters
from devposture.agent.probes.commands import IPCONFIG, NET_ADAPTERS
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.agent.probes.vpn_room import fitted
from devposture.agent.probes.windows.commands import run_text
from devposture.agent.probes.windows.phonebooks import read_phonebooks
from devposture.agent.probes.windows.vpn_adapters import (
    adapter_kind,
    adapter_up,
    name_kind,
    net_adapter_kind,
    ppp_link,
)
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_VPN
NET_ADAPTERS_SOURCE = "Get-NetAdapter"
IPCONFIG_SOURCE = "ipconfig"


def unknown_ppp_error(count: int) -> pb.ProbeError:
    """Said of PPP connections that are up and whose name tells no VPN from a dial-up: any VPN
    error makes a public Wi-Fi session with no VPN seen UNKNOWN, not the PASS a PPPoE dial-up
    counted as a VPN gave."""
    return error(
        FACT, pb.PROBE_ERROR_CODE_NO_SOURCE,
        f"{count} PPP connection(s) up that neither a phonebook entry nor the name tells from a"
        " broadband (PPPoE) or modem dial-up: not counted as a VPN", IPCONFIG_SOURCE,
    )  # fmt: skip


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.VpnFact()
    # The VPN interfaces by lower-cased description, and the names already seen (for psutil).
    found: dict[str, pb.VpnInterface] = {}
    seen: set[str] = set()
    listing_error: pb.ProbeError | None = None
    read_any = False
    try:
        for adapter in parse_net_adapters(run_text(ctx, NET_ADAPTERS)):
            kind = net_adapter_kind(adapter)
            if kind:
                found[adapter.description.lower()] = fact.interfaces.add(
                    name=adapter.description or adapter.name, kind=kind, up=adapter.up
                )
                seen.update({adapter.name.lower(), adapter.description.lower()})
        read_any = True
    except (HostError, ParseError) as exc:
        listing_error = source_error(FACT, NET_ADAPTERS_SOURCE, exc)
    errors: list[pb.ProbeError] = []
    unknown_ppp = 0
    try:
        entries = parse_ipconfig(run_text(ctx, IPCONFIG))
        phonebook = read_phonebooks(ctx.host) if any(e.kind == "ppp" for e in entries) else {}
        for entry in entries:
            kind = adapter_kind(entry, phonebook)
            if not kind:
                unknown_ppp += ppp_link(entry, phonebook) == "unknown" and adapter_up(entry)
                continue
            listed = found.get(entry.description.lower()) if entry.description else None
            if listed is not None:
                listed.up = listed.up and adapter_up(entry)
            else:
                name = entry.description or entry.name
                fact.interfaces.add(name=name, kind=kind, up=adapter_up(entry))
            seen.update({entry.name.lower(), entry.description.lower()})
        read_any = True
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, IPCONFIG_SOURCE, exc))
        if listing_error is not None:
            errors.insert(0, listing_error)
    if unknown_ppp:
        errors.append(unknown_ppp_error(unknown_ppp))
    try:
        for interface in ctx.host.net_interfaces():
            kind = name_kind(interface.name)
            if kind and interface.name.lower() not in seen:
                fact.interfaces.add(name=interface.name, kind=kind, up=interface.is_up)
        read_any = True
    except HostError as exc:
        errors.append(source_error(FACT, "interfaces", exc))
    if not read_any:
        return FactOutcome(None, errors)
    fact.active = any(i.up for i in fact.interfaces)
    return FactOutcome(fitted(fact), errors)
