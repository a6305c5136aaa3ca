"""`devposture-collector backup --out FOLDER`: a copy of the data folder that a collector can
be put back from, taken while it serves.

What a site needs to come back after a lost disk: the database (history and evidence chain),
the CA and its keys (agents have pinned the CA: a new one means enrolling every device again),
the evidence-signing key (auditors check bundles with its public half), the network hash key
(Wi-Fi names are kept as its hashes), the TLS key and certificate, collector.toml and the
policy. A SQLite database is copied with SQLite's online backup: one consistent snapshot,
while the collector goes on writing (a file copy of a database in use may be torn). A
PostgreSQL database is not copied: `pg_dump` backs it up, and this copies the rest.

The copy is itself a data folder. To restore: stop the collector, move its data folder aside,
put the copy in its place, start the collector.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

from devposture.collector.cli_pki import Subparsers, _data_option
from devposture.collector.config import load
from devposture.collector.store.target import PostgresTarget, SqliteTarget
from devposture.policy.cli_messages import Worded, say

# Left out: the serving collector's lock and the files of a write in progress.
_SKIPPED_SUFFIXES = (".partial", ".tmp", ".new")


class BackupError(Worded):
    """The backup was refused or failed; the text names the problem and the fix."""


def add_command(commands: Subparsers[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "backup",
        help="copy the data folder (database, CA, keys, settings) to a new folder, while the"
        " collector serves; the copy is a data folder to restore from",
    )
    _data_option(command)
    command.add_argument(
        "--out", required=True, type=Path, metavar="FOLDER",
        help="a new folder for the copy (keep it where the collector's disk is not)",
    )  # fmt: skip


def cmd_backup(args: argparse.Namespace) -> int:
    config = load(args.data)
    out: Path = args.out
    if out.exists():
        raise BackupError("{path} exists already: give a new folder", path=out)
    database = config.database
    inside = isinstance(database, SqliteTarget) and database.path.resolve().is_relative_to(
        config.data_dir.resolve()
    )
    try:
        out.mkdir(mode=0o700, parents=True)
        _copy_folder(config.data_dir, out, database)
        if isinstance(database, SqliteTarget):
            copy = out / (database.path.resolve().relative_to(config.data_dir.resolve())
                          if inside else database.path.name)  # fmt: skip
            _copy_database(database.path, copy)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(
            "the backup to {path} failed ({problem}): nothing in it can be trusted; delete it,"
            " free space or fix what is named, and run the backup again",
            path=out, problem=exc,
        ) from exc
    say("Backed up {data} to {out}: the CA, keys, settings and policy.", data=config.data_dir,
        out=out)  # fmt: skip
    if isinstance(database, PostgresTarget):
        say("The database is PostgreSQL ({database}): back it up with pg_dump at the same time.",
            database=database.describe())  # fmt: skip
    elif inside:
        say("The database, as one consistent copy taken while the collector served.")
    else:
        say("The database, as one consistent copy, at {copy}; collector.toml names its place"
            " on the collector, {path}: put it back there to restore.",
            copy=out / database.path.name, path=database.path)  # fmt: skip
    say("To restore: stop the collector, move its data folder aside, put {out} in its place,"
        " start the collector.", out=out)
    return 0


def _copy_folder(data: Path, out: Path, database: object) -> None:
    """Every file of the data folder (its modes kept: the keys stay private), but the
    database's own files, which `_copy_database` copies, the serving collector's lock and
    remote exports' bundles."""
    # Here, not at the top: the data folder's module brings cryptography, which no other
    # command but this one needs (tests/collector/test_cli_imports.py).
    from devposture.collector.datadir import EXPORT_FOLDER_PREFIX, LOCK_NAME  # noqa: PLC0415

    skipped: set[Path] = set()
    if isinstance(database, SqliteTarget):
        base = database.path.resolve()
        skipped = {base, *(base.with_name(base.name + s) for s in ("-wal", "-shm", "-journal"))}

    top = data.resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        # A remote export's folder in the data folder is a bundle being streamed (or one a
        # killed collector left): report bodies, not the site's state.
        exports = Path(folder).resolve() == top
        return {
            name for name in names
            if (Path(folder) / name).resolve() in skipped or name == LOCK_NAME
            or name.endswith(_SKIPPED_SUFFIXES)
            or (exports and name.startswith(EXPORT_FOLDER_PREFIX)
                and (Path(folder) / name).is_dir())
        }  # fmt: skip

    shutil.copytree(data, out, ignore=ignore, dirs_exist_ok=True)


def _copy_database(source: Path, copy: Path) -> None:
    """SQLite's online backup, in one step: one read transaction, a consistent snapshot,
    while the collector goes on writing (WAL: readers do not stop writers). In small steps
    it starts over whenever the collector commits, and under load never ends."""
    copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    reading = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        writing = sqlite3.connect(copy)
        try:
            reading.backup(writing)
        finally:
            writing.close()
    finally:
        reading.close()
    copy.chmod(0o600)
