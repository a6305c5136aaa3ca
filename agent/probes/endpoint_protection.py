"""Antivirus and EDR products that look the same on Linux and macOS: Microsoft Defender for
Endpoint (`mdatp health`) and agents recognised by their process names.

Defender's real-time protection is reported on only when mdatp's fields agree that it
protects (agent.parsers.mdatp): enabled but not available, a subsystem "unavailable" or
passive mode is off, and each reason, with mdatp's own health_issues, goes into the
product's health_issues.

Each OS passes its own process table; a product seen both through `mdatp` and its processes
is reported once, as the `mdatp` product with the processes attached.
"""

from __future__ import annotations

from collections.abc import Mapping

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.mdatp import parse_mdatp_health
from devposture.agent.probes.commands import MDATP_HEALTH
from devposture.agent.probes.outcome import ProbeContext, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_ANTIVIRUS
MDE_NAME = "Microsoft Defender for Endpoint"
# Well inside what the collector accepts (collector/validation.py: 64 items, 1024 characters).
MAX_ISSUES = 16
MAX_ISSUE_CHARS = 200


def process_names(ctx: ProbeContext, errors: list[pb.ProbeError]) -> set[str] | None:
    """Names (and executable names) of running processes; None, with an error, if unreadable."""
    try:
        processes = ctx.host.processes()
    except HostError as exc:
        errors.append(source_error(FACT, "processes", exc))
        return None
    return {p.name for p in processes} | {p.exe_name for p in processes if p.exe_name}


def mdatp_product(ctx: ProbeContext, errors: list[pb.ProbeError]) -> pb.AntivirusProduct | None:
    if not ctx.host.which("mdatp"):
        return None
    try:
        result = ctx.host.run(MDATP_HEALTH, ctx.config.command_timeout)
        health = parse_mdatp_health(result.stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "mdatp", exc))
        return None
    product = pb.AntivirusProduct(
        name=MDE_NAME,
        source="mdatp",
        signature_version=health.definitions_version,
        health_issues=[issue[:MAX_ISSUE_CHARS] for issue in health.problems()[:MAX_ISSUES]],
    )
    # The daemon answered, so the product runs; whether it protects is in real-time
    # protection and health_issues (an unhealthy product is not a switched-off one).
    product.enabled = True
    if health.real_time_protection is not None:
        product.real_time_protection = health.real_time_protection
    if health.definitions_updated is not None:
        product.signatures_updated_at.FromDatetime(health.definitions_updated)
    if health.definitions_up_to_date is not None:
        product.signatures_up_to_date = health.definitions_up_to_date
    return product


def process_products(running: set[str], table: Mapping[str, str]) -> list[pb.AntivirusProduct]:
    """One product per known product name whose processes run (process name -> product)."""
    found: dict[str, list[str]] = {}
    for process, product in table.items():
        if process in running:
            found.setdefault(product, []).append(process)
    return [
        pb.AntivirusProduct(name=name, source="process", enabled=True, processes=sorted(procs))
        for name, procs in sorted(found.items())
    ]


def third_party_products(
    ctx: ProbeContext,
    running: set[str] | None,
    table: Mapping[str, str],
    errors: list[pb.ProbeError],
) -> list[pb.AntivirusProduct]:
    """Defender (via mdatp) and every product of `table` seen running."""
    mde = mdatp_product(ctx, errors)
    products: list[pb.AntivirusProduct] = []
    for product in process_products(running or set(), table):
        if mde is not None and product.name == MDE_NAME:
            mde.processes.extend(product.processes)
        else:
            products.append(product)
    if mde is not None:
        products.append(mde)
    return products
