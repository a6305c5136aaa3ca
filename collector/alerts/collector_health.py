"""This collector's own problems: its server certificate or a CA it trusts expiring soon, and
the disk holding its data folder filling up. Each collector looks at its own files and keeps
what it found in the database (`store.alerts.keep_problems`), where whichever collector
composes the digest reads every collector's.

A certificate is known by its fingerprint (collectors sharing one see one item; a renewed one
is a new item and the old resolves); the disk by the collector reporting it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from devposture.collector.alerts.detect import CERTIFICATE, DISK, iso
from devposture.collector.config import CollectorConfig
from devposture.collector.store.alerts import Detail
from devposture.collector.trust import Trust


def reporter(config: CollectorConfig) -> str:
    """This collector among those sharing the database: its host and data folder (hashed:
    no path is stored)."""
    folder = hashlib.sha256(str(config.data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}/{folder}"


def _certificates(config: CollectorConfig) -> list[tuple[str, Path]]:
    """("server" or "ca", file) for the server certificate and every CA trusted now."""
    trust = Trust(config)
    found = [("server", config.server_cert)]
    try:
        generations = trust.authorities().trusted
    except (OSError, ValueError):
        generations = (1,)
    return found + [("ca", trust.cert_path(g)) for g in generations]


def problems(
    config: CollectorConfig, now: dt.datetime, warning_days: int, disk_percent: int
) -> dict[str, Detail]:
    """What is wrong with this collector now, by key."""
    found: dict[str, Detail] = {}
    collector = socket.gethostname()
    for role, path in _certificates(config):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue  # the service itself refuses to start without them
        expires = cert.not_valid_after_utc
        if expires - now <= dt.timedelta(days=warning_days):
            digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()[:16]
            found[f"{CERTIFICATE}:{digest}"] = {
                "kind": CERTIFICATE, "collector": collector, "certificate": role,
                "expires_at": iso(expires),
            }  # fmt: skip
    used = used_percent(config.data_dir)
    if used is not None and used >= disk_percent:
        found[f"{DISK}:{reporter(config)}"] = {
            "kind": DISK, "collector": collector, "used_percent": used,
        }  # fmt: skip
    return found


def used_percent(folder: Path) -> int | None:
    """How full the disk holding `folder` is, as `df` counts it (blocks reserved for root
    count as used); None when it cannot be read."""
    try:
        figures = os.statvfs(folder)
    except OSError:
        return None
    total = figures.f_blocks - figures.f_bfree + figures.f_bavail
    if total <= 0:
        return None
    return round(100 * (figures.f_blocks - figures.f_bfree) / total)
