"""Antivirus on Windows: Security Center's registered products and Defender's own status.

Security Center (root/SecurityCenter2 AntiVirusProduct) lists every product that registered
with Windows, Defender and third-party ones alike, several at once; each becomes a product
with source "security-center", enabled and signature freshness decoded from productState's
bit field (agent.parsers.windows.security_center). An expired product is reported with
`enabled` unset: its licence ran out, and whether its engine still scans is not stated. Windows
Server has no Security Center; the error is reported and Defender is still read.

A third-party product that Security Center reports "on" is reported with real-time protection
on. Security Center has no separate real-time flag; its "on" is the protection state itself:
  * Microsoft defines WSC_SECURITY_PRODUCT_STATE_ON as "turned on and protecting the user",
    OFF as "protection is disabled", SNOOZED as "temporarily off, and not actively protecting"
    and EXPIRED as "no longer actively protecting" (iwscapi.h, IWscProduct::get_ProductState:
    https://learn.microsoft.com/windows/win32/api/iwscapi/ne-iwscapi-wsc_security_product_state).
  * osquery reports exactly that state as `windows_security_products.state`
    (osquery/osquery, osquery/tables/system/windows/windows_security_products.cpp), and the
    aggregate antivirus health as `windows_security_center.antivirus` ("Good", "Poor", ...).
  * Fleet's built-in policy "Antivirus healthy (Windows)" passes a machine on that health
    being Good and the product's signatures up to date, with no further real-time test
    (fleetdm/fleet, frontend/pages/policies/constants.ts, DEFAULT_POLICIES key 3): "on" is
    what protecting means there too.
Only "on" says so. A snoozed or expired product, and a product that is off, leave real-time
protection unset: "off" already fails as disabled, and the snoozed and expired values of the
bit field come from community decodings (the field itself is undocumented), not from a
statement that scanning stopped or goes on. Microsoft's own product is left to Defender's
status, which reports RealTimeProtectionEnabled directly and names passive mode; its Security
Center entry says nothing about real-time protection. So 火绒 (Huorong), 360, Tencent 电脑管家
or Kingsoft registered "on" with up-to-date signatures pass with Defender off.

Defender (`Get-MpComputerStatus`) adds what Security Center does not say: real-time
protection, the signature version and when signatures were last updated. It is reported as a
second product with source "defender" (the collector sees both views). Windows prints that date
in the machine's culture and local time, so the same PowerShell run first prints the culture's
date patterns and the time zone; the date is read with them and turned into UTC
(agent.parsers.windows.defender, local_dates). A date that cannot be read that way is a
PARSE_ERROR of the "defender" source and leaves signatures_updated_at unset, never guessed; the
rest of the product stays. When neither source could be read there is no fact, only the errors:
unknown is not "no antivirus".

Security Center keeps every registration, those an uninstall left behind included, so the list
has no bound of its own; the collector takes `MAX_PRODUCTS`. When there are more, the products
that protect (on, in real time, signatures up to date, nothing in their way) are kept first,
then those nothing is known against, then those with a problem: one protecting product decides
the clause (PASS), and a product left out is never one that could have passed it while one
kept could not. How many were left out is said in an error of source `PRODUCTS_SOURCE`.
"""

from __future__ import annotations

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.defender import (
    DefenderStatus,
    parse_mp_computer_status,
    signatures_updated_at,
)
from devposture.agent.parsers.windows.security_center import (
    SecurityCenterProduct,
    parse_antivirus_products,
)
from devposture.agent.probes.commands import DEFENDER, SECURITY_CENTER
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.agent.probes.report_room import keep
from devposture.agent.probes.windows.commands import run_text
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_ANTIVIRUS
DEFENDER_NAME = "Microsoft Defender Antivirus"
MAX_PRODUCTS = 64  # the collector's DEFAULT_MAX_ITEMS
PRODUCTS_SOURCE = "products"


def _security_center(ctx: ProbeContext) -> list[pb.AntivirusProduct]:
    return [
        security_center_product(found)
        for found in parse_antivirus_products(run_text(ctx, SECURITY_CENTER))
    ]


def security_center_product(found: SecurityCenterProduct) -> pb.AntivirusProduct:
    """One registered product as the collector reads it (see the module docstring)."""
    product = pb.AntivirusProduct(
        name=found.name,
        source="security-center",
        signatures_up_to_date=found.state.signatures_up_to_date,
    )
    if found.state.scanner != "expired":
        product.enabled = found.state.scanner == "on"
    if found.state.scanner == "on" and not found.state.microsoft:
        # Security Center's "on" is "turned on and protecting the user": real time.
        product.real_time_protection = True
    return product


# Running modes in which Defender does not protect in real time (AMRunningMode).
_STANDING_BY = ("passive", "edr block")


def _defender_product(status: DefenderStatus, errors: list[pb.ProbeError]) -> pb.AntivirusProduct:
    product = pb.AntivirusProduct(
        name=DEFENDER_NAME,
        source="defender",
        enabled=status.service_enabled and status.antivirus_enabled,
        signature_version=status.signature_version,
    )
    if status.real_time_protection is not None:
        product.real_time_protection = status.real_time_protection
    mode = status.running_mode.strip()
    if any(word in mode.lower() for word in _STANDING_BY):
        # Defender beside another antivirus ("Passive Mode", "SxS Passive Mode", "EDR Block
        # Mode": Microsoft's "Defender Antivirus compatibility" page) still reports itself
        # enabled, real-time protection on: it scans nothing until asked. What stands in its
        # way is said, as mdatp's passive mode is; the other product, when Security Center
        # lists it, is judged on its own.
        product.health_issues.append(f"AMRunningMode: {mode}")
    if status.signatures_out_of_date is not None and status.signature_version:
        product.signatures_up_to_date = not status.signatures_out_of_date
    try:
        updated = signatures_updated_at(status)
    except ParseError as exc:
        errors.append(source_error(FACT, "defender", exc))
    else:
        if updated is not None:
            product.signatures_updated_at.FromDatetime(updated)
    return product


def probe(ctx: ProbeContext) -> FactOutcome:
    errors: list[pb.ProbeError] = []
    products: list[pb.AntivirusProduct] = []
    read_any = False
    try:
        products += _security_center(ctx)
        read_any = True
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "security-center", exc))
    try:
        status = parse_mp_computer_status(run_text(ctx, DEFENDER))
        products.append(_defender_product(status, errors))
        read_any = True
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "defender", exc))
    if not read_any:
        if not errors:
            errors.append(error(FACT, pb.PROBE_ERROR_CODE_INTERNAL, "no antivirus source ran"))
        return FactOutcome(None, errors)
    kept, left_out = keep(products, _rank, MAX_PRODUCTS)
    if left_out:
        message = (
            f"{left_out} of {len(products)} antivirus products left out of the report (the"
            f" collector takes {MAX_PRODUCTS}): those protecting are kept first"
        )
        errors.append(error(FACT, pb.PROBE_ERROR_CODE_UNSPECIFIED, message, PRODUCTS_SOURCE))
    return FactOutcome(pb.AntivirusFact(products=kept), errors)


def _rank(product: pb.AntivirusProduct) -> int:
    """0: it protects, as far as it says; 1: nothing is known against it; 2: a problem."""
    said = [
        product.enabled if product.HasField("enabled") else None,
        product.real_time_protection if product.HasField("real_time_protection") else None,
        product.signatures_up_to_date if product.HasField("signatures_up_to_date") else None,
    ]
    if product.health_issues or False in said:
        return 2
    return 1 if None in said else 0
