"""VPN on Windows: tunnel adapters from `ipconfig /all`, psutil's interfaces as a supplement.

An adapter is up when its media is connected and it has an IPv4 address (a VPN adapter
without one carries no traffic yet). psutil (`ctx.host.net_interfaces()`) adds interfaces whose
connection name says VPN but that ipconfig did not list (it can miss adapters being set up).
No VPN adapter at all is a fact (active=false), not an error; ipconfig failing is an error,
unless psutil still answered.
"""

from __future__ import annotations

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.ipconfig import parse_ipconfig
from devposture.agent.probes.commands import IPCONFIG
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.agent.probes.windows.commands import run_text
from devposture.agent.probes.windows.vpn_adapters import adapter_kind, adapter_up, name_kind
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_VPN


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.VpnFact()
    errors: list[pb.ProbeError] = []
    read_any = False
    seen: set[str] = set()
    try:
        for adapter in parse_ipconfig(run_text(ctx, IPCONFIG)):
            kind = adapter_kind(adapter)
            if not kind:
                continue
            name = adapter.description or adapter.name
            fact.interfaces.add(name=name, kind=kind, up=adapter_up(adapter))
            seen.update({adapter.name.lower(), adapter.description.lower()})
        read_any = True
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "ipconfig", exc))
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
    return FactOutcome(fact, errors)
