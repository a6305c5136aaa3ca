"""Every message of the collector's command line, for the catalogs
(`devposture.policy.cli_catalog`): its errors and sentences, found in the modules below, and
its help texts, found in its parser. `make catalogs` adds them to the `.po` files; the catalog
test fails on one without its Chinese, and on an English put together at run time."""

from __future__ import annotations

from pathlib import Path

from devposture.collector import cli, company_time, datadir, join, pki, ports, renewal, workers
from devposture.collector.admin import client, enrollment_bundle, service
from devposture.collector.evidence import facts_view
from devposture.collector.store import migrate, target
from devposture.policy import cli_catalog

_HERE = Path(__file__).parent
# The modules whose words a person reads from `devposture-collector` (besides the shared
# ones, `cli_catalog.SHARED`); the admin service's and client's, the data folder's, the
# company time's, the ports', the database target's, the move's and the device keys' refusals
# (enrollment, renewal: the agent shows them) are imported too, so that their error classes
# are known by name. The evidence modules' findings (`told`) are the
# auditor's: `audit verify`, `check` and `export` print them. The urgent alert's words
# (`alerts/urgent.py`, with the refusals it names) are IT's, sent by `serve`.
SOURCES: tuple[Path, ...] = tuple(
    _HERE / name
    for name in (
        "cli.py", "cli_pki.py", "cli_migrate.py", "cli_backup.py", "config.py", "admin/cli.py",
        "admin/commands.py", "admin/output.py", "admin/device_ids.py", "admin/profiles.py",
        "admin/audit_words.py", "admin/enrollment_bundle.py",
        "admin/client.py", "admin/service.py", "admin/one_export.py", "datadir.py", "join.py",
        "company_time.py",
        "alerts/settings.py", "ports.py", "store/target.py", "store/disk_space.py",
        "store/schema.py", "store/migrate.py", "store/identity.py", "store/chain.py", "tokens.py",
        "enroll_refusals.py", "device_refusals.py", "trust.py", "reports.py", "delivery_health.py",
        "device_history.py", "issuing_ca.py", "ca_holdings.py", "pki.py", "renewal.py",
        "service.py", "workers.py",
        "evidence/verify.py", "evidence/consistency.py", "evidence/crosscheck.py",
        "evidence/export.py", "evidence/signing.py", "evidence/check_pool.py",
        "evidence/stopping.py", "evidence/member_lines.py", "evidence/body_lines.py",
        "evidence/member_bytes.py",
        "evidence/facts_view.py", "credentials.py", "waiver_log.py",
        "refused_writes.py", "alerts/urgent.py",
    )
)  # fmt: skip
_LOADED = (client.RemoteError, service.Unauthenticated, datadir.InitError, join.join,
           company_time.NotATime, ports.PortUnavailable, target.NewerSchema,
           migrate.MigrationError, pki.CsrRejected, renewal.ProofRejected,
           workers.WorkersFailed, enrollment_bundle.BundleError,
           facts_view.NoSuchReport)  # fmt: skip


def mistakes() -> list[str]:
    return cli_catalog.mistakes(SOURCES)


def raw_lines() -> list[str]:
    return cli_catalog.raw_lines(SOURCES)


def every_message() -> list[tuple[str, str]]:
    return cli_catalog.every_message(SOURCES, cli.build_parser())
