"""The collector's durable storage: every table, migration and query of the collector, on
either engine (an embedded SQLite file for a site, PostgreSQL for several collectors).

A `Store` is one database and the parts that own its tables:

- `reports`: reports, current verdicts and the state history (what ingest writes);
- `identity`: enrollment tokens, devices, their certificates and lifecycle;
- `waivers`: waivers and their log;
- `admin`: admin credentials and the audit log;
- `fleet`: the fleet's standing now and as of any moment, and its daily records;
- `device_list`, `device_pages` and `dashboard`: the dashboard's reads;
- `evidence`: the evidence chain, which every writer appends to in its own transaction;
- `checkpoints`: how things stood at points of the chain, where audit exports open periods;
- `retention`: report bodies pruned after the policy's retention, each pruning chained;
- `alerts`: IT alerts: what is open and was told, digests, the delivery outbox, and each
  collector's own problems (collector/alerts/);
- `policies`, `coordination`, `sessions` and `guesses`: the policy in force, leases for work
  done once, dashboard sessions and failed guesses, which several collectors on one database
  share.
- `installation`: which installation (evidence-signing key) the database belongs to.

Nothing outside this package writes SQL. The dashboard, the admin service and the metrics
endpoint open a reader (`Store.open_reader`), which the engine refuses to write through.

Threads: on SQLite a Store is one connection: the gRPC service funnels its writes through one
worker thread and reads on a second Store. On PostgreSQL a Store is a connection pool, and any
thread may use it.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from devposture.collector.store.disk_space import StorageFull
from devposture.collector.store.engine import AnyDatabase, SqliteDatabase, connect
from devposture.collector.store.identity import (
    DeviceRecord,
    TokenInfo,
    TokenRejected,
)
from devposture.collector.store.reports import (
    CheckResult,
    DeviceResultRow,
    OutboxFigures,
    ReportRecord,
    StoreOutcome,
)
from devposture.collector.store.schema import SCHEMA_VERSION, prepare
from devposture.collector.store.target import DatabaseTarget, SqliteTarget

if TYPE_CHECKING:
    from devposture.collector.store.admin import Admin
    from devposture.collector.store.alerts import AlertRecords
    from devposture.collector.store.chain import Evidence
    from devposture.collector.store.checkpoints import Checkpoints
    from devposture.collector.store.coordination import Coordination
    from devposture.collector.store.crosscheck import Crosscheck
    from devposture.collector.store.dashboard_reads import DashboardReads
    from devposture.collector.store.device_list import DeviceList
    from devposture.collector.store.device_pages import DevicePages
    from devposture.collector.store.fleet import Fleet
    from devposture.collector.store.guesses import FailedGuesses
    from devposture.collector.store.identity import Identity
    from devposture.collector.store.installation import Installation
    from devposture.collector.store.policies import Policies
    from devposture.collector.store.report_format import ReportFormat
    from devposture.collector.store.reports import Reports
    from devposture.collector.store.retention import Retention
    from devposture.collector.store.sealing import Sealing
    from devposture.collector.store.sessions import DashboardSessions
    from devposture.collector.store.waivers import Waivers

# Each part of a Store: the module (in this package) that defines it; its class is the one
# `Store` declares the part as. A part's module is imported when a Store is first asked for
# that part: a command line uses a few of the twenty (`report fleet`: the fleet, the policy in
# force, the admin part for its audit entry), and importing every one, the evidence checks and
# the dashboard's reads among them, was about a tenth of each command's start (35-60 ms of
# `report fleet`'s 0.35-0.5 s on a slow VM, most of it making the dataclasses those modules
# define).
_PARTS: dict[str, str] = {
    "reports": "reports",
    "identity": "identity",
    "waivers": "waivers",
    "admin": "admin",
    "fleet": "fleet",
    "device_list": "device_list",
    "device_pages": "device_pages",
    "dashboard": "dashboard_reads",
    "evidence": "chain",
    "coordination": "coordination",
    "policies": "policies",
    "sessions": "sessions",
    "guesses": "guesses",
    "crosscheck": "crosscheck",
    "checkpoints": "checkpoints",
    "retention": "retention",
    "sealing": "sealing",
    "alerts": "alerts",
    "installation": "installation",
    "report_format": "report_format",
}
# Held while a part is made: threads that ask a Store for a part first at once get one part.
_MAKING = threading.Lock()


def load_parts() -> None:
    """Import every part's module now: a process that serves for its life (`serve`, its report
    writer) does so before it settles (`gc_settle.settled`), so that the parts' code is frozen
    out of the garbage collector's walks with the rest of what it loaded, as it was when the
    store imported every part at once."""
    for module in _PARTS.values():
        import_module(f"{__name__}.{module}")


@functools.cache
def database_errors() -> tuple[type[Exception], ...]:
    """Every error either engine raises (psycopg's only where it is installed): what a caller
    catches to say "the database cannot be used now" (the CLI, the metrics endpoint). A
    function, so psycopg is loaded only when an error is being matched (`except` evaluates its
    expression then)."""
    try:
        import psycopg  # noqa: PLC0415  (loaded only if installed; SQLite sites may lack it)
    except ImportError:
        return (sqlite3.Error, StorageFull)
    return (sqlite3.Error, psycopg.Error, StorageFull)


def as_target(where: DatabaseTarget | Path) -> DatabaseTarget:
    """A target, from a target or a SQLite file's path."""
    return SqliteTarget(where) if isinstance(where, Path) else where


class Store:
    """One collector database and the parts that own its tables (`_PARTS`), each made when
    first asked for."""

    reports: Reports
    identity: Identity
    waivers: Waivers
    admin: Admin
    fleet: Fleet
    device_list: DeviceList
    device_pages: DevicePages
    dashboard: DashboardReads  # the dashboard for IT's own reads
    evidence: Evidence
    coordination: Coordination
    policies: Policies
    sessions: DashboardSessions
    guesses: FailedGuesses
    crosscheck: Crosscheck  # the tables against the chain (read only)
    checkpoints: Checkpoints
    retention: Retention
    sealing: Sealing
    alerts: AlertRecords
    installation: Installation
    report_format: ReportFormat  # bundle format 4 or 5's records

    def __init__(self, database: AnyDatabase) -> None:
        self._db = database

    def __getattr__(self, name: str) -> object:
        """A part not made yet (`_PARTS`): made now, of the class the Store declares it as,
        and kept as an attribute like any other (so this is not asked again for it)."""
        module = _PARTS.get(name)
        if module is None:
            raise AttributeError(f"'Store' object has no attribute {name!r}")
        made = getattr(import_module(f"{__name__}.{module}"), Store.__annotations__[name])
        with _MAKING:
            part = self.__dict__.get(name)
            if part is None:
                part = self.__dict__[name] = made(self._db)
        return part

    @classmethod
    def open(cls, where: DatabaseTarget | Path) -> Store:
        """Open (creating or upgrading its tables) the database for reading and writing."""
        database = connect(as_target(where))
        try:
            prepare(database)
        except BaseException:
            database.close()
            raise
        return cls(database)

    @classmethod
    def open_for_reports(cls, where: DatabaseTarget | Path) -> Store:
        """`open`, for a connection that only writes report groups (the report writer's):
        its statement journals kept in memory (`journals_in_memory`)."""
        store = cls.open(where)
        store._db.journals_in_memory()
        return store

    @classmethod
    def open_reader(cls, where: DatabaseTarget | Path) -> Store:
        """A connection to an existing database for reads only (the engine refuses writes
        through it): it reads committed data without waiting for writers."""
        return cls(connect(as_target(where), read_only=True))

    @property
    def engine(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._db.dialect.name

    @property
    def target(self) -> DatabaseTarget:
        return self._db.target

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def snapshot(self, joining: str | None = None) -> Iterator[None]:
        """Reads inside see one committed state of the database (a read transaction); given
        `joining`, the state another process shares by `shared_snapshot` (PostgreSQL)."""
        with self._db.snapshot(joining):
            yield

    def shared_snapshot(self) -> str | None:
        """Inside `snapshot`: an id by which other processes read the same state, or None
        where the engine cannot share one (SQLite)."""
        return self._db.shared_snapshot()

    @property
    def reachable(self) -> bool:
        """False while the database's server is known not to answer (PostgreSQL: from a
        statement that found no connection until it answers again); statements then fail
        at once. What health checks say (collector/health.py)."""
        return self._db.reachable

    def data_version(self) -> int:
        """A number that changes whenever the database may have changed (for caches)."""
        return self._db.data_version()

    def journal_mode(self) -> str:
        """SQLite's journal mode ("wal"); PostgreSQL has none of its own to report."""
        if isinstance(self._db, SqliteDatabase):
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])
        return "postgresql"


__all__ = [
    "SCHEMA_VERSION",
    "CheckResult",
    "DatabaseTarget",
    "DeviceRecord",
    "DeviceResultRow",
    "OutboxFigures",
    "ReportRecord",
    "StorageFull",
    "Store",
    "StoreOutcome",
    "TokenInfo",
    "TokenRejected",
    "database_errors",
    "load_parts",
]
