"""The two database engines behind the store: SQLite (a site's embedded file) and PostgreSQL
(several collectors on one server), behind one small connection API.

The store's SQL is written once, in the dialect both engines share (SQLite's `?` and `:name`
placeholders, `ON CONFLICT`, `RETURNING`, `FILTER`, savepoints). Where the engines differ,
the few fragments that differ come from the `Dialect` (`dialect.greatest(...)`, a list bound
as one parameter, SQLite's planner hints), never from an `if` in a query's caller.

SQLite: one `sqlite3` connection in autocommit mode; a write transaction is BEGIN IMMEDIATE,
which takes the database's one write lock up front.

PostgreSQL (psycopg 3): a connection pool. A statement outside a transaction borrows a
connection for itself; a transaction or a read snapshot holds one for its whole length, on its
thread. A write transaction takes one advisory lock first: writers queue as on SQLite, so the
store's read-then-write steps (a device's newest report, the evidence chain's head) are never
raced by another collector on the same database. Reads never wait for it. Placeholders are
rewritten to psycopg's (`%s`, `%(name)s`) once per distinct statement.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from devposture.collector.store.target import DatabaseTarget, PostgresTarget, SqliteTarget

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

# A row or a value as the engines return them: typed by the query, not by Python.
Row = Any
# Bound values: positional (`?`) or by name (`:name`).
Params = Sequence[object] | Mapping[str, object]

# Any number for the write lock, the same in every collector on a database (pg_advisory_xact_lock
# takes a bigint): "devpostr" in ASCII. Held per schema (`schema_lock`).
WRITE_LOCK = 0x6465_7670_6F73_7472


@functools.cache  # asked at every write transaction; a store knows one or two keys
def schema_lock(base: int, schema: str | None) -> int:
    """The advisory lock `base` for the store in `schema`. Advisory locks belong to the whole
    database, not a schema: two installations in one database (a staging and a production
    schema, or the test suite's schema per test) took turns at one write lock, and one
    collector paused inside a write (a frozen VM) stopped the other's writes too. `public`
    keeps `base` itself, the key every earlier collector takes, so collectors of two versions
    on the usual schema still write one after another; any other schema has a key of its own,
    the same in every collector that writes its tables."""
    if schema is None or schema == "public":
        return base
    digest = hashlib.blake2b(f"{base}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Cursor(Protocol):
    """What the store reads from a statement: sqlite3's cursor and ours for PostgreSQL."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Sequence[Params], /) -> Cursor: ...

    def fetchone(self) -> Row: ...

    def fetchall(self) -> list[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments the two engines spell differently."""

    name: str  # "sqlite" or "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    def greatest(self, a: str, b: str) -> str:
        return f"MAX({a}, {b})" if self.is_sqlite else f"GREATEST({a}, {b})"

    def json_values(self, parameter: str) -> str:
        """A subquery of the strings of a JSON array bound as one parameter (`:name`)."""
        if self.is_sqlite:
            return f"SELECT value FROM json_each({parameter})"  # noqa: S608 (a placeholder)
        return f"SELECT jsonb_array_elements_text(CAST({parameter} AS jsonb))"

    def blob(self, column: str) -> str:
        """`column` read as bytes whatever a hand edit stored in it: SQLite keeps any type in
        any column, and a body or part typed as text (`UPDATE ... SET body = 'x'`, or `||`,
        which always makes text) came back a str, or failed to decode at all, instead of
        bytes that the evidence checks name as changed. PostgreSQL's bytea holds only bytes."""
        return f"CAST({column} AS BLOB)" if self.is_sqlite else column

    def indexed_by(self, index: str) -> str:
        """SQLite's planner hint (PostgreSQL's planner chooses on its statistics)."""
        return f" INDEXED BY {index}" if self.is_sqlite else ""

    @property
    def ordered_join(self) -> str:
        """A join that SQLite must take in the order written (CROSS JOIN), a plain one
        elsewhere."""
        return "CROSS JOIN" if self.is_sqlite else "JOIN"

    def lookup_join(self, left: str, table: str, alias: str, on: str) -> str:
        """`left` joined to its rows of `table` (as `alias`, matched by `on`), looked up row
        by row in the table's index: SQLite takes the join in the order written (CROSS JOIN);
        PostgreSQL gets a LATERAL subquery it cannot flatten (OFFSET 0), where its planner
        otherwise hashed the whole table to join a quarter of the fleet to it (spilling to
        disk: 0.45 s against 0.3 s for a group's overview over 100,000 devices)."""
        if self.is_sqlite:
            return f"{left} CROSS JOIN {table} {alias} ON {on}"
        rows = f"SELECT * FROM {table} {alias} WHERE {on} OFFSET 0"  # noqa: S608 (fragments)
        return f"{left} CROSS JOIN LATERAL ({rows}) AS {alias}"

    @property
    def no_limit(self) -> int | None:
        """A LIMIT that limits nothing (SQLite: any negative number; PostgreSQL: NULL)."""
        return -1 if self.is_sqlite else None

    def fold(self, text: str) -> str:
        """`text` folded as `contains_folded` folds the column."""
        return text.casefold() if self.is_sqlite else text.lower()

    def contains_folded(self, column: str, needle: str) -> str:
        """`needle` (already case-folded) occurs in `column`, case-insensitively in any
        script: SQLite calls Python's casefold (registered as fold), PostgreSQL lower()."""
        if self.is_sqlite:
            return f"instr(fold({column}), {needle}) > 0"
        return f"strpos(lower({column}), {needle}) > 0"


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


# --- SQLite -----------------------------------------------------------------------------------


def _fold(text: str | None) -> str:
    return "" if text is None else text.casefold()


class SqliteDatabase:
    """One SQLite connection (autocommit: transactions are begun explicitly)."""

    dialect = SQLITE
    # Every error of the engine, and those that mean the database itself is failing (a full
    # disk, I/O, a lost server) rather than one statement's data: a group commit keeps its
    # other reports after the first kind, and gives up the whole group after the second.
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    failures: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, target: SqliteTarget, *, read_only: bool = False) -> None:
        self.target = target
        if read_only:
            self._db = sqlite3.connect(
                f"{target.path.resolve().as_uri()}?mode=ro", uri=True,
                check_same_thread=False, timeout=30.0, isolation_level=None,
            )  # fmt: skip
            self._db.execute("PRAGMA query_only=ON")
        else:
            self._db = sqlite3.connect(
                target.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives power loss, which is what an ack promises.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Deleted means gone from the file (retention's pruned bodies and fact parts, and
            # the copies a page split leaves in free space): SQLite keeps such bytes unless
            # built with SQLITE_SECURE_DELETE, as Debian's is and python.org's and Windows'
            # are not; a copy of the file or a backup then still held them.
            self._db.execute("PRAGMA secure_delete=ON")
        self._db.create_function("fold", 1, _fold, deterministic=True)

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for the schema's SQLite-only steps (PRAGMA, executescript)."""
        return self._db

    def execute(self, sql: str, parameters: Params = (), /) -> sqlite3.Cursor:
        return self._db.execute(sql, parameters)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction holding the write lock from its start; rolled back on any
        error (unless SQLite already did: after SQLITE_FULL a ROLLBACK would fail, hiding the
        real error)."""
        cursor = self._db.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self, joining: str | None = None) -> Iterator[None]:
        """Reads inside see one committed state (a read transaction). SQLite cannot join
        another connection's (`shared_snapshot` gives None): `joining` must be None."""
        if joining is not None:
            raise ValueError("a SQLite read transaction cannot be shared between processes")
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def shared_snapshot(self) -> str | None:
        """None: a SQLite read transaction is its connection's alone."""
        return None

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call `callback` with every statement run (None stops): for tests and profiling."""
        self._db.set_trace_callback(callback)

    @property
    def reachable(self) -> bool:
        """A file of this machine: always (its failures are each statement's own)."""
        return True

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's own counter)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def folder(self) -> Path | None:
        return self.target.path.resolve().parent

    def journals_in_memory(self) -> None:
        """Keep this connection's statement journals (and any temporary table) in memory.

        For the connection that writes report groups (`Store.open_for_reports`), whose every
        report is written inside a savepoint: SQLite journals each page a savepoint changes
        and, past 64 KiB, spills that journal to a temporary file, which a group of unary
        reports passed every time (`strace` of the writer under `bench/ingest_vs_echo.py`: a
        file opened, written page by page and unlinked per commit; the writer's CPU 176-183
        against 158-160 us a report in memory). Not for the connection everything else
        shares: its large sorts (an index built by a migration, a report over the fleet) would
        then be held whole in memory too."""
        self._db.execute("PRAGMA temp_store=MEMORY")

    def close(self) -> None:
        self._db.close()


# --- PostgreSQL -------------------------------------------------------------------------------

_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|(?<!:):([A-Za-z_]\w*)|%")
# What pg_export_snapshot() returns: hexadecimal parts joined by "-" (e.g. 00000003-0000001B-1).
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(?:-[0-9A-F]+)+")


@functools.lru_cache(maxsize=2048)
def to_postgresql(sql: str) -> tuple[str, tuple[str, ...]]:
    """`?` and `:name` (outside string literals) as PostgreSQL's own `$1`, `$2` …, and the
    names whose values go there in that order (none for `?`): the text a raw cursor sends as
    it is (`psycopg.RawCursor`).

    Why not psycopg's own `%s`: psycopg parses those again at every execution of a statement
    with more than 50 parameters or 4 KB of text (its cache of parsed statements leaves them
    out, as an ORM's are seldom repeated), and a group of reports is written by a few such
    statements of hundreds of parameters, the same few texts every time. Parsing them was
    half of the report writer's CPU on PostgreSQL (`bench/store_reports.py --postgresql`),
    all of it inside the write lock that every collector on the database takes in turn."""
    names: list[str] = []
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        text = match.group(0)
        if text.startswith("'") or text == "%":
            return text
        count += 1
        if text != "?":
            names.append(match.group(1))
        return f"${count}"

    text = _TOKEN.sub(replace, sql)
    if names and len(names) != count:
        raise ValueError("a statement takes either ? or :name placeholders, not both")
    return text, tuple(names)


def _statement(sql: str, parameters: Params | None) -> tuple[str, Sequence[object] | None]:
    """What a raw cursor is given: without parameters the text as it is (no placeholders);
    with them, PostgreSQL's placeholders and the values in their order."""
    if not parameters:
        return sql, None
    text, names = to_postgresql(sql)
    return text, _in_order(names, parameters)


def _in_order(names: tuple[str, ...], parameters: Params) -> Sequence[object]:
    """A statement's values in its placeholders' order: as given for `?`, else by name."""
    if not names:
        return cast("Sequence[object]", parameters)
    named = cast("Mapping[str, object]", parameters)
    return [named[name] for name in names]


class PostgresCursor:
    """A psycopg cursor that takes the store's placeholders."""

    def __init__(
        self, cursor: psycopg.Cursor[Row], trace: Callable[[str], object] | None = None
    ) -> None:
        self._cursor = cursor
        self._trace = trace

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, sql: str, parameters: Params | None = None, /) -> PostgresCursor:
        if self._trace is not None:
            self._trace(sql)
        self._cursor.execute(*_statement(sql, parameters))
        return self

    def executemany(self, sql: str, parameters: Sequence[Params], /) -> PostgresCursor:
        if self._trace is not None:
            self._trace(sql)
        if not parameters:
            return self
        text, names = to_postgresql(sql)
        self._cursor.executemany(text, [_in_order(names, row) for row in parameters])
        return self

    def fetchone(self) -> Row:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Row]:
        return iter(self._cursor)

    def copy(self, statement: str) -> AbstractContextManager[psycopg.Copy]:
        """PostgreSQL's COPY … FROM STDIN: rows streamed in bulk (no placeholders)."""
        return self._cursor.copy(statement)


class _Rows:
    """The rows of a statement run outside a transaction, read whole before its connection
    went back to the pool."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def execute(self, sql: str, parameters: Params | None = None, /) -> _Rows:
        raise TypeError("run statements on the database or in a transaction")

    def executemany(self, sql: str, parameters: Sequence[Params], /) -> _Rows:
        raise TypeError("run statements on the database or in a transaction")

    def fetchone(self) -> Row:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


# Settings of the collector's sessions, added to any `options` the address gives (a
# search_path, say: the address's own options are kept). JIT is off: compiling a report's
# aggregate took 100-200 ms (its estimated cost passes `jit_above_cost` over a large fleet)
# and saved less than that; the collector's statements are index lookups and one-pass counts.
SESSION_OPTIONS = "-c jit=off"


# How long a statement waits for a connection of the pool (all in use, or the server not
# answering) before it fails. Seconds, not the pool's default half minute: a reader serves
# the event loop (admission) and the dashboard, which must not stand still through an outage,
# and agents waiting on a group's write are better told "unavailable" and come back later.
POOL_WAIT_SECONDS = 5.0
# How long the pool keeps trying to replace a connection, its waits doubling, before it gives
# up; the next statement that finds no connection then tries again at once. psycopg_pool's
# five minutes let its waits grow to a minute and more, so a collector came back that long
# after its server did; this keeps the gap between tries under a few seconds.
RECONNECT_SECONDS = 5.0
# How long a new pool may take to make its first connection before the server is asked why it
# has none (`PostgresDatabase`). A server that answers makes one in milliseconds; a slow one
# costs only that one more connection, and the pool then waits as long as before.
FIRST_LOOK_SECONDS = 0.5
# While the server is down, how often a thread tries it (statements meanwhile fail at once).
PROBE_SECONDS = 1.0


def reads_only(sql: str) -> bool:
    """A statement that cannot have changed anything if it failed midway: a plain SELECT
    (the store's writes are INSERT, UPDATE, DELETE, COPY or WITH ... INSERT)."""
    return sql.lstrip()[:6].upper() == "SELECT"


def _refusal(conninfo: str, arguments: dict[str, object]) -> str | None:
    """Why the server refuses a connection, as libpq says it (`database "x" does not exist`,
    `Connection refused`), on one line: the pool only tells that it got none in time. None
    when a connection made now succeeds (the server was only slow)."""
    import psycopg  # noqa: PLC0415 (PostgreSQL only)

    try:
        connection = psycopg.connect(conninfo, **{**arguments, "connect_timeout": 3})  # type: ignore[arg-type]
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    connection.close()
    return None


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database."""

    dialect = POSTGRESQL

    def __init__(
        self, target: PostgresTarget, *, read_only: bool = False, max_connections: int = 8
    ) -> None:
        # Imported here: a site on SQLite does without them, and every CLI command starts
        # faster without loading them.
        try:
            import psycopg  # noqa: PLC0415
            from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415
            from psycopg_pool import ConnectionPool, PoolTimeout  # noqa: PLC0415
        except ImportError as exc:
            raise RuntimeError(
                "PostgreSQL needs psycopg 3 and psycopg-pool: pip install 'devposture[postgresql]'"
            ) from exc
        self.target = target
        # Cursors that send PostgreSQL's own placeholders as they are (`to_postgresql`).
        self._cursor = psycopg.RawCursor
        self._server_cursor = psycopg.RawServerCursor
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self.failures: tuple[type[Exception], ...] = (
            psycopg.OperationalError,
            psycopg.InterfaceError,
            psycopg.errors.InsufficientResources,
        )
        self._read_only = read_only
        self._trace: Callable[[str], object] | None = None
        self._broken_seen = False  # a connection the server closed, since the last purge
        # Set while the server cannot be reached (a statement found no connection): every
        # statement fails at once, and a thread of its own tries the server until it answers.
        self._down = threading.Event()
        self._closed = False
        self._pool_timeout: type[Exception] = PoolTimeout
        self._held = threading.local()
        self._schema: str | None = None  # current_schema(), read as each connection opens
        self._connected = threading.Event()  # set once the pool has made a connection
        arguments = target.connect_arguments()
        given = conninfo_to_dict(target.conninfo()).get("options")
        arguments["options"] = f"{given} {SESSION_OPTIONS}" if given else SESSION_OPTIONS
        self._pool = ConnectionPool(
            target.conninfo(), kwargs=arguments, min_size=1,
            max_size=max_connections, configure=self._configure, open=False,
            name="devposture", timeout=POOL_WAIT_SECONDS, reconnect_timeout=RECONNECT_SECONDS,
        )  # fmt: skip
        # A store opened on demand (the dashboard's) fails as fast as a statement would; a
        # collector starting without its server exits saying so, and its service manager
        # starts it again. A pool that has no connection after a moment is asked why at once
        # (a database that does not exist, a refused port, a bad password): the operator who
        # mistyped `--database` is told so in a second, not after the pool's whole wait. Where
        # a connection made now succeeds, the server was only slow: the pool waits as before.
        # The first look is this object's own wait, not the pool's: psycopg_pool's wait()
        # closes the pool when its time is up, so a server slow to answer (a busy machine, a
        # first connection's TLS) was taken for an unusable one after half a second.
        self._pool.open(wait=False)
        try:
            if not self._connected.wait(FIRST_LOOK_SECONDS):
                refusal = _refusal(target.conninfo(), arguments)
                if refusal is not None:
                    raise psycopg.OperationalError(refusal)
            self._pool.wait(timeout=POOL_WAIT_SECONDS)
        except PoolTimeout as exc:
            self._close_unopened()
            refusal = _refusal(target.conninfo(), arguments)
            if refusal is None:
                raise
            raise psycopg.OperationalError(refusal) from exc
        except psycopg.OperationalError:
            self._close_unopened()
            raise

    def _close_unopened(self) -> None:
        self._closed = True
        self._pool.close()

    def _configure(self, connection: psycopg.Connection[Row]) -> None:
        connection.autocommit = True
        if self._read_only:
            connection.execute("SET default_transaction_read_only = on")
        row = connection.execute("SELECT current_schema()").fetchone()
        self._schema = None if row is None else row[0]
        self._connected.set()

    def lock_key(self, base: int) -> int:
        """The advisory lock `base` for this store's schema (`schema_lock`)."""
        return schema_lock(base, self._schema)

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Row]]:
        return self._pool

    def _current(self) -> psycopg.Connection[Row] | None:
        held: psycopg.Connection[Row] | None = getattr(self._held, "connection", None)
        return held

    @property
    def reachable(self) -> bool:
        """False from a statement that found the server unreachable until it answers again."""
        return not self._down.is_set()

    @contextmanager
    def _borrow(self) -> Iterator[psycopg.Connection[Row]]:
        """A connection of the pool; at once an error while the server is known to be down,
        instead of each statement waiting POOL_WAIT_SECONDS (the event loop's among them)."""
        if self._down.is_set():
            raise self._pool_timeout(
                "the database could not be reached a moment ago; trying again in the background"
            )
        lent = False
        try:
            with self._pool.connection() as connection:
                lent = True
                yield connection
        except self._pool_timeout:
            if not lent:  # no connection in POOL_WAIT_SECONDS: the server is not answering
                self._went_down()
            raise

    def _went_down(self) -> None:
        """The server did not answer: fail fast from now on, and try it until it does."""
        if self._closed or self._down.is_set():
            return
        self._down.set()
        threading.Thread(target=self._probe, name="devposture-database-probe", daemon=True).start()

    def _probe(self) -> None:
        while not self._closed:
            try:
                with self._pool.connection(timeout=PROBE_SECONDS) as connection:
                    connection.execute("SELECT 1")
            except self.errors:
                if self._closed:
                    return
                time.sleep(PROBE_SECONDS)  # a refusal comes back at once: not a busy loop
                continue
            self._down.clear()
            return

    @contextmanager
    def _holding(self) -> Iterator[psycopg.Connection[Row]]:
        """This thread's connection for a transaction (nested: the one already held)."""
        held = self._current()
        if held is not None:
            yield held
            return
        with self._borrow() as connection:
            self._held.connection = connection
            try:
                yield connection
            finally:
                self._held.connection = None

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call `callback` with every statement run (None stops): for tests and profiling."""
        self._trace = callback

    def execute(self, sql: str, parameters: Params | None = None, /) -> PostgresCursor | _Rows:
        held = self._current()
        if held is not None:
            return PostgresCursor(self._cursor(held), self._trace).execute(sql, parameters)
        if self._trace is not None:
            self._trace(sql)
        try:
            return self._execute_once(sql, parameters)
        except self.failures:
            # The server closed the connection (a restart, a failover): a read is asked again
            # once, on a new one. A write is not: it may have been done before the end.
            if not self._purge_broken() or not reads_only(sql):
                raise
        return self._execute_once(sql, parameters)

    def _execute_once(self, sql: str, parameters: Params | None) -> _Rows:
        with self._borrow() as connection:
            try:
                cursor = self._cursor(connection)
                cursor.execute(*_statement(sql, parameters))
                rows = cursor.fetchall() if cursor.description is not None else []
                return _Rows(list(rows), cursor.rowcount)
            except self.failures:
                self._broken_seen |= connection.broken
                raise

    def _purge_broken(self, failed: psycopg.Connection[Row] | None = None) -> bool:
        """After a connection was found closed by the server (`failed`'s, or one noted since
        the last purge): test the pool's idle ones and replace the dead (one failed call, not
        one per pooled connection, after a restart). True when a broken one was seen."""
        broken = failed is not None and failed.broken
        seen, self._broken_seen = self._broken_seen or broken, False
        if seen:
            with suppress(*self.errors):
                self._pool.check()
        return seen

    def stream(self, sql: str, parameters: Params | None = None) -> Iterator[Row]:
        """The rows of a query read a batch at a time through a server-side cursor, in the
        transaction or snapshot this thread holds: memory stays bounded however many rows."""
        held = self._current()
        if held is None:
            raise RuntimeError("stream() reads inside a transaction or a snapshot")
        with self._server_cursor(held, f"devposture_stream_{threading.get_ident()}") as cursor:
            cursor.itersize = 2000
            cursor.execute(*_statement(sql, parameters))
            yield from cursor

    @contextmanager
    def transaction(self) -> Iterator[PostgresCursor]:
        """A write transaction behind the store's one write lock (an advisory lock held until
        it ends): collectors sharing the database write one after another, as on SQLite."""
        nested = self._current() is not None
        for attempt in (1, 2):
            with self._holding() as connection:
                cursor = PostgresCursor(self._cursor(connection), self._trace)
                try:
                    cursor.execute("BEGIN")
                    cursor.execute("SELECT pg_advisory_xact_lock(?)", (self.lock_key(WRITE_LOCK),))
                except self.failures:
                    # Nothing was written yet: a connection the server closed (a restart, a
                    # failover) is replaced and the transaction begun again, once.
                    if nested or attempt == 2 or not self._purge_broken(connection):
                        raise
                    continue
                try:
                    yield cursor
                    cursor.execute("COMMIT")
                except BaseException:
                    if not connection.closed:
                        # A broken connection cannot roll back; the pool replaces it.
                        with suppress(*self.errors):
                            connection.execute("ROLLBACK")
                    self._purge_broken(connection)
                    raise
                return

    @contextmanager
    def snapshot(self, joining: str | None = None) -> Iterator[None]:
        """Reads inside see one committed state (REPEATABLE READ, read only); given
        `joining` (another connection's `shared_snapshot`, still open), that one's state."""
        if joining is not None and not _SNAPSHOT_ID.fullmatch(joining):
            raise ValueError(f"not a PostgreSQL snapshot id: {joining!r}")
        with self._holding() as connection:
            try:
                connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if joining is not None:  # checked above: no bind parameter is taken here
                    connection.execute(f"SET TRANSACTION SNAPSHOT '{joining}'")
                try:
                    yield
                finally:
                    connection.execute("COMMIT")
            except self.failures:
                self._purge_broken(connection)
                raise

    def shared_snapshot(self) -> str | None:
        """The id other connections join this thread's snapshot by (`snapshot(joining=…)`),
        as long as it is held: what parallel readers of one state use (pg_dump -j does)."""
        row = self.execute("SELECT pg_export_snapshot()").fetchone()
        return str(row[0])

    def data_version(self) -> int:
        """Grows whenever anything is written to the server (its write-ahead log position):
        changes at least as often as this database does."""
        row = self.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()
        return int(row[0])

    def journals_in_memory(self) -> None:
        """The server keeps its own journals: nothing to do."""

    def folder(self) -> Path | None:
        return None

    def close(self) -> None:
        self._closed = True
        self._pool.close()


AnyDatabase = SqliteDatabase | PostgresDatabase


def connect(target: DatabaseTarget, *, read_only: bool = False) -> AnyDatabase:
    if isinstance(target, SqliteTarget):
        return SqliteDatabase(target, read_only=read_only)
    return PostgresDatabase(target, read_only=read_only)


def chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
