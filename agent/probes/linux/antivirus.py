"""Antivirus on Linux: ClamAV (tools, signature database, daemons), Microsoft Defender for
Endpoint (`mdatp health`), and known endpoint-protection agents seen in the process list.

ClamAV: installed when clamscan, clamd, clamdscan or freshclam is on the path. Its signatures
are the daily/main/bytecode databases in freshclam.conf's DatabaseDirectory (default
/var/lib/clamav); signature_version is the daily database's version and signatures_updated_at
the newest build time among them. An installed ClamAV without any database is reported with
signatures_up_to_date=false (it cannot detect anything). How freshclam last fared (failed,
locked out, engine outdated) comes from its log, as signature_update (clamav_updates): old
files say the signatures are stale, the log says why and since when. ClamAV is an on-demand
scanner: it counts as enabled only when clamd or clamonacc runs, and as real-time only when
clamonacc (on-access scanning) runs.

No product at all: when the full process list was read, an AntivirusFact with no products is
reported. That is positive evidence ("none of the products we know runs, ClamAV is not
installed"), and the collector fails the clause rather than guessing. When the process list
could not be read either, the fact is an error instead.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.clamav import HEADER_SIZE, CvdHeader, parse_cvd_header
from devposture.agent.probes.endpoint_protection import process_names, third_party_products
from devposture.agent.probes.linux.av_products import LINUX_AV_PROCESSES
from devposture.agent.probes.linux.clamav_updates import (
    DEFAULT_DATABASE,
    freshclam_config,
    signature_update,
)
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_ANTIVIRUS
CLAMAV_DB = DEFAULT_DATABASE
_CLAMAV_TOOLS = ("clamscan", "clamd", "clamdscan", "freshclam")
_CLAMAV_DATABASES = ("daily", "main", "bytecode")
_CLAMAV_EXTENSIONS = (".cld", ".cvd", ".cud")
_CLAMAV_PROCESSES = ("clamd", "clamonacc", "freshclam")


def _timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def _clamav_headers(
    ctx: ProbeContext, folder: str, errors: list[pb.ProbeError]
) -> dict[str, CvdHeader]:
    """Newest header per database name ("daily.cld" and "daily.cvd" may both exist)."""
    headers: dict[str, CvdHeader] = {}
    try:
        entries = ctx.host.list_dir(folder)
    except HostError as exc:
        errors.append(source_error(FACT, "clamav-db", exc))
        return headers
    for entry in entries:
        stem, dot, ext = entry.rpartition(".")
        if stem not in _CLAMAV_DATABASES or dot + ext not in _CLAMAV_EXTENSIONS:
            continue
        try:
            header = parse_cvd_header(ctx.host.read_bytes(f"{folder}/{entry}", HEADER_SIZE))
        except (HostError, ParseError) as exc:
            errors.append(source_error(FACT, "clamav-db", exc))
            continue
        if stem not in headers or header.version > headers[stem].version:
            headers[stem] = header
    return headers


def _clamav(
    ctx: ProbeContext, running: set[str] | None, errors: list[pb.ProbeError]
) -> pb.AntivirusProduct | None:
    if not any(ctx.host.which(tool) for tool in _CLAMAV_TOOLS):
        return None
    product = pb.AntivirusProduct(name="ClamAV", source="clamav-db")
    config = freshclam_config(ctx, errors)
    folder = (config.database_directory if config else None) or CLAMAV_DB
    headers = _clamav_headers(ctx, folder.rstrip("/") or "/", errors)
    if headers:
        if "daily" in headers:
            product.signature_version = str(headers["daily"].version)
        newest = max(h.built_at for h in headers.values())
        product.signatures_updated_at.CopyFrom(_timestamp(newest))
    elif not any(e.source == "clamav-db" for e in errors):
        product.signatures_up_to_date = False
        errors.append(
            error(
                FACT,
                pb.PROBE_ERROR_CODE_NO_SOURCE,
                "ClamAV is installed but has no signature database",
                "clamav-db",
            )
        )
    if config is not None:
        update = signature_update(ctx, config, errors)
        if update is not None:
            product.signature_update.CopyFrom(update)
    if running is not None:
        product.processes.extend(sorted(n for n in _CLAMAV_PROCESSES if n in running))
        product.enabled = "clamd" in running or "clamonacc" in running
        product.real_time_protection = "clamonacc" in running
    return product


def probe(ctx: ProbeContext) -> FactOutcome:
    errors: list[pb.ProbeError] = []
    running = process_names(ctx, errors)
    products: list[pb.AntivirusProduct] = []
    clamav = _clamav(ctx, running, errors)
    if clamav is not None:
        products.append(clamav)
    products += third_party_products(ctx, running, LINUX_AV_PROCESSES, errors)
    if not products and running is None:
        return FactOutcome(None, errors)
    return FactOutcome(pb.AntivirusFact(products=products), errors)
