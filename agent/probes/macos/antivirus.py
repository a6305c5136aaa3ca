"""Antivirus on macOS: XProtect, Microsoft Defender (`mdatp health`), and known
endpoint-protection agents seen in the process list.

XProtect is Apple's built-in signature scanner. It has no switch: macOS runs it on every
first launch of downloaded code and in the background (XProtect Remediator), and System
Integrity Protection keeps users and admins from removing or disabling it. So it is always
reported enabled; what matters is how fresh its signatures are. Apple replaces the whole
XProtect.bundle with each signature update, so the bundle's modification time is when the
signatures were last updated (the same rule mondoohq/mql's macos.xprotect uses). The bundle
lives in /Library/Apple/System/Library/CoreServices since macOS 11 and in
/System/Library/CoreServices before. A Mac without either is abnormal and reported as
NO_SOURCE for the "xprotect" source, never as "no antivirus".

Its signature version number (signature_version) is not read yet: no real public recording
was found to test a parser on, neither of `defaults read .../XProtect.bundle/Contents/Info
CFBundleShortVersionString` (public scripts run it, none shows what it printed) nor of a whole
`system_profiler SPInstallHistoryDataType` listing with its XProtectPlistConfigData entries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from devposture.agent.host import HostError
from devposture.agent.probes.endpoint_protection import process_names, third_party_products
from devposture.agent.probes.macos.av_products import MACOS_AV_PROCESSES
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_ANTIVIRUS
XPROTECT_BUNDLES = (
    "/Library/Apple/System/Library/CoreServices/XProtect.bundle",
    "/System/Library/CoreServices/XProtect.bundle",
)


def _xprotect(ctx: ProbeContext, errors: list[pb.ProbeError]) -> pb.AntivirusProduct | None:
    for bundle in XPROTECT_BUNDLES:
        try:
            if not ctx.host.exists(bundle):
                continue
            mtime = ctx.host.stat(bundle).mtime
        except HostError as exc:
            errors.append(source_error(FACT, "xprotect", exc))
            return None
        product = pb.AntivirusProduct(name="XProtect", source="xprotect", enabled=True)
        product.signatures_updated_at.FromDatetime(datetime.fromtimestamp(mtime, UTC))
        return product
    errors.append(
        error(FACT, pb.PROBE_ERROR_CODE_NO_SOURCE, "XProtect.bundle was not found", "xprotect")
    )
    return None


def probe(ctx: ProbeContext) -> FactOutcome:
    errors: list[pb.ProbeError] = []
    running = process_names(ctx, errors)
    products: list[pb.AntivirusProduct] = []
    xprotect = _xprotect(ctx, errors)
    if xprotect is not None:
        products.append(xprotect)
    products += third_party_products(ctx, running, MACOS_AV_PROCESSES, errors)
    if not products:
        return FactOutcome(None, errors)
    return FactOutcome(pb.AntivirusFact(products=products), errors)
