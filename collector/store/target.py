"""Where the store lives: a SQLite file (a site's default) or a PostgreSQL database (several
collectors sharing one), as collector.toml's `[database]` names it.

A PostgreSQL address never carries its password: it is read from a file only the collector's
account can read (`password_file`), or by libpq itself from PGPASSWORD or ~/.pgpass. An
address with a password in it is refused, because collector.toml, process lists and logs show
addresses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, urlsplit

from devposture.policy.cli_messages import BadValue, Worded
from devposture.policy.os_errors import os_error

SCHEMES = ("postgresql", "postgres")


class DatabaseTargetError(BadValue):
    """A database address or password file that cannot be used; the text says how to fix it
    (a ValueError, worded in the reader's language by the command line)."""


class NewerSchema(Worded, RuntimeError):
    """The database was written by a newer collector (its schema is newer than this one
    knows): opening it could misread or damage it. Raised by `schema._refuse_newer`; here,
    beside the other reasons a database cannot be used, so that the command line words it."""


@dataclass(frozen=True)
class SqliteTarget:
    path: Path

    def describe(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class PostgresTarget:
    url: str
    password_file: Path | None = None

    def conninfo(self) -> str:
        return self.url

    def connect_arguments(self) -> dict[str, object]:
        """What psycopg is given besides the address: the password, read now (a rotated
        password is picked up by the next connection), and names for the server's views."""
        arguments: dict[str, object] = {
            "application_name": "devposture-collector", "connect_timeout": 10,
        }  # fmt: skip
        if self.password_file is not None:
            arguments["password"] = read_password(self.password_file)
        return arguments

    def describe(self) -> str:
        return self.url


DatabaseTarget = SqliteTarget | PostgresTarget


def is_postgres_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


# A password wherever an address may hold one, for an address shown back in a message: after
# `user:` in a URL, or as a `password` keyword (a URL's query, a libpq keyword string).
_PASSWORD_SHOWN = re.compile(
    r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s]*)|(://[^/?#@:]*:)[^/?#@]*(@)"
)


def shown(url: str) -> str:
    """`url` as a message may show it: any password in it hidden."""
    return _PASSWORD_SHOWN.sub(
        lambda m: f"{m[1]}***" if m[1] is not None else f"{m[3]}***{m[4]}", url
    )


def _split(url: str) -> SplitResult:
    """`url`'s parts, or DatabaseTargetError for an address urllib cannot read (an IPv6
    address missing its closing bracket, a port that is not a number)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read to check it)
    except ValueError as exc:
        raise DatabaseTargetError(
            "the PostgreSQL address {url} is malformed ({problem}): write"
            " postgresql://user@host:5432/database (an IPv6 address in brackets:"
            " postgresql://user@[::1]:5432/database)",
            url=repr(shown(url)),
            problem=exc,
        ) from exc
    return parts


def postgres_target(url: str, password_file: Path | None = None) -> PostgresTarget:
    """A checked PostgreSQL address (postgresql://user@host:port/database?options)."""
    parts = _split(url)
    if parts.scheme.lower() not in SCHEMES:
        raise DatabaseTargetError(
            "{url} is not a PostgreSQL address: write postgresql://user@host:5432/database",
            url=repr(shown(url)),
        )
    in_query = any(key.strip().lower() == "password" for key, _ in parse_qsl(parts.query))
    if parts.password is not None or in_query:
        raise DatabaseTargetError(
            "the PostgreSQL address holds a password, which would show in collector.toml and"
            " in process lists: remove it from the address and put it in a file readable only"
            " by the collector (--database-password-file), or in PGPASSWORD"
        )
    if not parts.path.strip("/") and not parts.hostname:
        raise DatabaseTargetError(
            "the PostgreSQL address {url} names no server or database: write"
            " postgresql://user@host:5432/database",
            url=repr(shown(url)),
        )
    if password_file is not None:
        read_password(password_file)  # fail now, not at the first connection
    return PostgresTarget(url, password_file)


def read_password(path: Path) -> str:
    """The password in `path`: its text less the line end an editor adds, and less the byte
    order mark Notepad's "UTF-8 with BOM" writes first (sent, it is the password's first
    character, and the server answers only "password authentication failed")."""
    try:
        # utf-8-sig: UTF-8, its mark (if any) left out.
        text = path.read_text(encoding="utf-8-sig")
        if "\0" in text:  # UTF-16 without its mark reads as UTF-8 with a NUL in every other
            raise UnicodeDecodeError("utf-8", b"\0", 0, 1, "NUL")  # place; no password has one
    except UnicodeDecodeError as exc:
        raise DatabaseTargetError(
            "the database password file {path} is not UTF-8 text (saved as UTF-16, or in"
            " another encoding): save the password in it again as UTF-8 (in Notepad: Save As,"
            " Encoding UTF-8)",
            path=path,
        ) from exc
    except OSError as exc:
        raise DatabaseTargetError(
            "cannot read the database password file {path}: {problem}; give the collector's"
            " account read access to it",
            path=path,
            problem=os_error(exc, exc.strerror),
        ) from exc
    password = text.strip("\r\n")
    if not password:
        raise DatabaseTargetError("the database password file {path} is empty", path=path)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise DatabaseTargetError(
            "the database password file {path} can be read by other users: chmod 600 it",
            path=path,
        )
    return password


def database_target(value: str, base: Path, password_file: str = "") -> DatabaseTarget:
    """collector.toml's `[database]`: a PostgreSQL address (`url`), or a SQLite file (`path`,
    relative to the data folder)."""
    if is_postgres_url(value):
        file = None if not password_file else base / password_file
        return postgres_target(value, file)
    return SqliteTarget(base / value)
