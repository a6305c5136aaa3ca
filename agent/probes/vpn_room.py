"""At most the VPN interfaces the collector takes, every one that is up kept first.

The collector refuses a whole report whose VPN fact lists more than 256 interfaces
(collector/validation.py, `MAX_ITEMS`). Docker's veth pairs and a virtual machine's tap devices
are not VPN interfaces (each OS's probe leaves them out), so a real computer hardly comes near;
a VPN concentrator's hundreds of ppp or tun devices would. The fact's `active` is the probe's,
from every interface, and the interfaces that are up are kept first, so what is left out (down
interfaces) changes nothing judged: clause 6.3.2 reads only whether a VPN was up. That is why
it is said in the agent's log and not as an error of the fact: any VPN error makes the Wi-Fi
check read "VPN unknown" (UNKNOWN) instead of the FAIL of a public network without VPN.
"""

from __future__ import annotations

import logging

from devposture.agent.probes.report_room import keep
from devposture.v1 import devposture_pb2 as pb

MAX_INTERFACES = 256  # collector/validation.py, "devposture.v1.VpnFact.interfaces"
logger = logging.getLogger(__name__)


def fitted(fact: pb.VpnFact) -> pb.VpnFact:
    """`fact` with at most MAX_INTERFACES interfaces, those up first, in the probe's order."""
    interfaces = list(fact.interfaces)
    if len(interfaces) <= MAX_INTERFACES:
        return fact
    kept, left_out = keep(interfaces, lambda interface: not interface.up, MAX_INTERFACES)
    del fact.interfaces[:]
    fact.interfaces.extend(kept)
    logger.warning(
        "VPN: %d of %d interfaces left out of the report (the collector takes %d); every one"
        " that is up is kept first", left_out, len(interfaces), MAX_INTERFACES,
    )  # fmt: skip
    return fact
