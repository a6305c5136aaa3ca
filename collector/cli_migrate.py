"""`devposture-collector migrate --to postgresql://…`: move a site from its SQLite file to the
PostgreSQL that several collectors will share (collector/store/migrate.py does the move).

The collector must be stopped: the data folder's lock is taken for the whole move, so a
collector cannot start and take reports that would not be moved. On success collector.toml
names the new database, and the SQLite file stays where it was, unused, as a backup.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from devposture.collector.cli_pki import Subparsers, _data_option
from devposture.collector.config import CONFIG_NAME, load, use_database
from devposture.collector.store import database_errors
from devposture.collector.store.target import (
    DatabaseTargetError,
    PostgresTarget,
    postgres_target,
)
from devposture.log_format import redact
from devposture.policy.cli_messages import Said, Worded, said, say


class MigrateError(Worded):
    """The move was refused or failed; the text names the problem and the fix."""


def add_command(commands: Subparsers[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "migrate",
        help="move this site's SQLite database to PostgreSQL, history and evidence chain"
        " intact (stop the collector first)",
    )
    _data_option(command)
    command.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="an empty PostgreSQL database: postgresql://user@host:5432/database (no password)",
    )
    command.add_argument(
        "--database-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the PostgreSQL password, readable only by the collector's account"
        " (or set PGPASSWORD, or use ~/.pgpass)",
    )


def absolute(path: Path | None) -> Path | None:
    """A file named on the command line, as collector.toml must name it: from the current
    folder, not from the data folder that the file's own paths are read from."""
    return None if path is None else path.absolute()


def unusable_database(database: PostgresTarget, exc: Exception, option: str) -> Said:
    """Why the PostgreSQL database given with `option` cannot be used, and what to check."""
    if _refused_privilege(exc):
        # The server answered: the address, the server and the password are right; the
        # account lacks rights (PostgreSQL 15 lets only a database's owner create tables in
        # its public schema). The statement's LINE and caret are left out.
        account, name = _account_of(database)
        return said(
            "the PostgreSQL account {account} may not create or change the collector's tables"
            " in {database} ({problem}): have the database's owner run ALTER DATABASE {name}"
            " OWNER TO {account} (or GRANT CREATE ON SCHEMA public TO {account}, and let it own"
            " the collector's tables), then run this command again",
            account=account,
            database=database.describe(),
            name=name,
            problem=redact(str(exc)).strip().splitlines()[0],
        )
    return said(
        "cannot use the PostgreSQL database {database} ({problem}): check the {option}"
        " address, that the server runs and takes connections from this host, and the"
        " password file",
        database=database.describe(),
        problem=redact(str(exc)).strip(),
        option=option,
    )


def _refused_privilege(exc: Exception) -> bool:
    """`exc` is the server's "permission denied" (or "must be owner of table")."""
    try:
        import psycopg  # noqa: PLC0415 (installed where PostgreSQL is used)
    except ImportError:
        return False
    return isinstance(exc, psycopg.errors.InsufficientPrivilege)


def _account_of(database: PostgresTarget) -> tuple[str, str]:
    """The account and the database name the address connects as and to (libpq's defaults
    where it names none: the system's user name, and a database of that name)."""
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 (PostgreSQL is used)

    given = conninfo_to_dict(database.conninfo())
    account = str(given.get("user") or os.environ.get("PGUSER") or getpass.getuser())
    return account, str(given.get("dbname") or os.environ.get("PGDATABASE") or account)


def postgresql_error(exc: Exception) -> bool:
    """`exc` is psycopg's: the PostgreSQL server's refusal or failure."""
    try:
        import psycopg  # noqa: PLC0415 (installed where PostgreSQL is used)
    except ImportError:
        return False
    return isinstance(exc, psycopg.Error)


def _progress(table: str, rows: int) -> None:
    say("  {table}: {rows} rows", table=table, rows=rows, stream=sys.stderr)
    sys.stderr.flush()


def cmd_migrate(args: argparse.Namespace) -> int:
    # This command's own imports (datadir's lock brings cryptography): not every command's.
    from devposture.collector.datadir import DataFolderInUse, lock_data_folder  # noqa: PLC0415
    from devposture.collector.store.migrate import MigrationError, migrate  # noqa: PLC0415

    config = load(args.data)
    if isinstance(config.database, PostgresTarget):
        raise MigrateError(
            "this collector already uses PostgreSQL ({database}): nothing to move",
            database=config.database.describe(),
        )
    try:
        # Named in collector.toml as given here: absolute, not relative to the data folder.
        destination = postgres_target(args.to, absolute(args.database_password_file))
    except DatabaseTargetError as exc:
        raise MigrateError.as_is(exc) from exc
    try:
        lock = lock_data_folder(config.data_dir)
    except DataFolderInUse as exc:
        raise MigrateError("{problem}; the move needs the collector stopped", problem=exc) from exc
    switched = False

    def switch() -> None:
        """Make collector.toml name the copy: called once it is committed, with the site's
        file still held, so that no write to the site falls in between."""
        nonlocal switched
        try:
            use_database(config.data_dir, destination)
        except OSError as exc:
            raise MigrateError(
                "the site was copied to {destination} and read back identical, but {path} could"
                " not be rewritten to name it ({problem}): the site still uses its SQLite file."
                " Correct that, then run the same migrate command again: it finds the copy"
                " complete and finishes the move",
                destination=destination.describe(),
                path=config.data_dir / CONFIG_NAME,
                problem=exc,
            ) from exc
        switched = True

    try:
        say(
            "Moving {source} to {destination}",
            source=config.database.describe(),
            destination=destination.describe(),
            stream=sys.stderr,
        )
        try:
            moved = migrate(config.database, destination, _progress, switch)
        except MigrationError as exc:
            raise MigrateError.as_is(exc) from exc
        except database_errors() as exc:
            if not postgresql_error(exc):
                raise  # the site's SQLite file: `main` says what to do
            raise MigrateError(unusable_database(destination, exc, "--to")) from exc
        except KeyboardInterrupt:
            if not switched:  # Ctrl-C: `main` ends with 130, after this line
                say(
                    "Interrupted before the move ended: the site still uses its SQLite file;"
                    " run the same migrate command again to move it",
                    stream=sys.stderr,
                )
            raise
    finally:
        lock.release()
    if moved.already:
        say(
            "The PostgreSQL database already held this site, every table identical: an"
            " earlier run copied it and stopped before rewriting collector.toml. Nothing was"
            " copied again."
        )
    else:
        total = sum(moved.rows.values())
        say(
            "Moved {total} rows in {tables} tables; every table read back identical.",
            total=total,
            tables=len(moved.rows),
        )
    if moved.chain_head is not None:
        seq, digest = moved.chain_head
        say(
            "Evidence chain head: seq {seq}, hash {digest} (the same before and after)",
            seq=seq,
            digest=digest,
        )
    say("{path} now names the PostgreSQL database.", path=config.data_dir / CONFIG_NAME)
    say(
        "The SQLite file {source} is no longer used: keep it with the site's backups. Start"
        " the collector again.",
        source=config.database.describe(),
    )
    return 0
