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

Its signature version number is not read yet: no real public recording of the bundle's
Info.plist was found to test a parser on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent.host import HostError, ProcessInfo
from agent.parsers import ParseError
from agent.parsers.mdatp import parse_mdatp_health
from agent.probes.macos.av_products import MACOS_AV_PROCESSES
from agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_ANTIVIRUS
MDE_NAME = "Microsoft Defender for Endpoint"
XPROTECT_BUNDLES = (
    "/Library/Apple/System/Library/CoreServices/XProtect.bundle",
    "/System/Library/CoreServices/XProtect.bundle",
)


def _names(processes: list[ProcessInfo]) -> set[str]:
    return {p.name for p in processes} | {p.exe_name for p in processes if p.exe_name}


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


def _mdatp(ctx: ProbeContext, errors: list[pb.ProbeError]) -> pb.AntivirusProduct | None:
    if not ctx.host.which("mdatp"):
        return None
    try:
        result = ctx.host.run(["mdatp", "health"], ctx.config.command_timeout)
        health = parse_mdatp_health(result.stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "mdatp", exc))
        return None
    product = pb.AntivirusProduct(
        name=MDE_NAME, source="mdatp", signature_version=health.definitions_version
    )
    if health.healthy is not None:
        product.enabled = health.healthy
    if health.real_time_protection is not None:
        product.real_time_protection = health.real_time_protection
    if health.definitions_updated is not None:
        product.signatures_updated_at.FromDatetime(health.definitions_updated)
    if health.definitions_up_to_date is not None:
        product.signatures_up_to_date = health.definitions_up_to_date
    return product


def _from_processes(running: set[str]) -> list[pb.AntivirusProduct]:
    found: dict[str, list[str]] = {}
    for process, product in MACOS_AV_PROCESSES.items():
        if process in running:
            found.setdefault(product, []).append(process)
    return [
        pb.AntivirusProduct(name=name, source="process", enabled=True, processes=sorted(procs))
        for name, procs in sorted(found.items())
    ]


def probe(ctx: ProbeContext) -> FactOutcome:
    errors: list[pb.ProbeError] = []
    running: set[str] | None = None
    try:
        running = _names(ctx.host.processes())
    except HostError as exc:
        errors.append(source_error(FACT, "processes", exc))
    products: list[pb.AntivirusProduct] = []
    xprotect = _xprotect(ctx, errors)
    if xprotect is not None:
        products.append(xprotect)
    mde = _mdatp(ctx, errors)
    for product in _from_processes(running or set()):
        if mde is not None and product.name == MDE_NAME:
            mde.processes.extend(product.processes)
        else:
            products.append(product)
    if mde is not None:
        products.append(mde)
    if not products:
        return FactOutcome(None, errors)
    return FactOutcome(pb.AntivirusFact(products=products), errors)
