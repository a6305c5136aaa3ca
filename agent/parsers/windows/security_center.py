"""Windows Security Center's antivirus list: `Get-CimInstance -Namespace root/SecurityCenter2
-ClassName AntiVirusProduct`, one list-format object per registered product.

`productState` is an undocumented bit field (Microsoft shares it only under NDA, so the decoding
is the one public references agree on), read by nibbles:

  * bits 12-15 (mask 0xF000): the scanner: 0x0 off, 0x1 on, 0x2 snoozed, 0x3 expired;
  * bits 8-11  (mask 0x0F00): who made the product: 0x0 a third party, 0x1 Microsoft;
  * bits 4-7   (mask 0x00F0): signatures: 0x0 up to date, 0x1 out of date;
  * bits 16-23: the WSC_SECURITY_PROVIDER flags (0x04 antivirus, 0x02 auto-update ...).

So 397568 = 0x061100 is Defender on and up to date, 393472 = 0x060100 Defender off (typical when
a third-party product took over), 266240 = 0x041000 a third-party product on and up to date,
266256 = 0x041010 the same with old signatures. Sources:
  * Idera PowerTips, "Identifying Antivirus Engine State" (2020), the masks and their values:
    https://community.idera.com/database-tools/powershell/powertips/b/tips/posts/
    identifying-antivirus-engine-state
  * neophob.com, "WMI Query Windows SecurityCenter2" (2010), the byte view (second byte 0x10 =
    scanner running, third byte 0x00 up to date / 0x10 too old):
    http://neophob.com/2010/03/wmi-query-windows-securitycenter2/
  * Stack Overflow 4700897, values seen from 34 products on 10000 endpoints:
    https://stackoverflow.com/questions/4700897/wmi-security-center-productstate-clarification
A value whose nibbles fall outside those meanings is a ParseError: the agent never compares
against one magic number.

The scanner nibble carries the product state Security Center documents for its COM API
(IWscProduct::get_ProductState, WSC_SECURITY_PRODUCT_STATE, numbered there ON 0, OFF 1,
SNOOZED 2, EXPIRED 3, not as the nibble is): ON is "turned on and protecting
the user", OFF "turned off and protection is disabled", SNOOZED "temporarily off, and not
actively protecting", EXPIRED "no longer actively protecting"
(https://learn.microsoft.com/windows/win32/api/iwscapi/ne-iwscapi-wsc_security_product_state;
osquery's `windows_security_products.state` reads the same API). The probe
(agent.probes.windows.antivirus) takes a third-party product's "on" as real-time protection on,
and says why there.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.listformat import parse_list

_SCANNER_STATES = {0x0: "off", 0x1: "on", 0x2: "snoozed", 0x3: "expired"}


@dataclass(frozen=True)
class ProductState:
    raw: int
    scanner: str  # "off", "on", "snoozed" or "expired"
    microsoft: bool
    signatures_up_to_date: bool


@dataclass(frozen=True)
class SecurityCenterProduct:
    name: str
    state: ProductState


def decode_product_state(value: int) -> ProductState:
    """The decoded bit field. Raises ParseError for bits no public reference explains."""
    if not 0 <= value <= 0xFFFFFF or value & 0x000F:
        raise ParseError("productState: bits outside the known fields are set")
    scanner = (value >> 12) & 0xF
    owner = (value >> 8) & 0xF
    signatures = (value >> 4) & 0xF
    if scanner not in _SCANNER_STATES or owner > 1 or signatures > 1:
        raise ParseError("productState: a field has a value no reference explains")
    return ProductState(value, _SCANNER_STATES[scanner], owner == 1, signatures == 0)


def parse_antivirus_products(text: str) -> list[SecurityCenterProduct]:
    """Every registered product, in the order printed. An empty output means Security Center
    has no antivirus registered (it prints nothing for no objects)."""
    products: list[SecurityCenterProduct] = []
    for record in parse_list(text):
        name = record.get("displayName", "")
        raw = record.get("productState", "")
        if not name or not raw.isdigit():
            raise ParseError("AntiVirusProduct: an object without displayName or productState")
        products.append(SecurityCenterProduct(name, decode_product_state(int(raw))))
    return products
