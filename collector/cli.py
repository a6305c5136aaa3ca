"""`devposture-collector`: set up, run and query a devposture collector.

Every error names the problem and the fix, and exits non-zero; nothing is half-written.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sqlite3
import sys
from pathlib import Path

from devposture.collector import (
    __version__,
    cli_backup,
    cli_completion,
    cli_migrate,
    cli_pki,
    log_format,
)
from devposture.collector.admin.cli import (
    DEFAULT_DATA,
    add_commands,
    data_option,
    is_admin_command,
    port,
    run_admin_command,
)
from devposture.collector.admin.profiles import profiles_path
from devposture.collector.cli_migrate import absolute, postgresql_error, unusable_database
from devposture.collector.config import (
    DEFAULT_ENROLL_PORT,
    DEFAULT_REPORT_PORT,
    MAX_DRAIN_SECONDS,
    CollectorConfig,
    ConfigError,
    load,
)
from devposture.collector.log_every import EveryFew
from devposture.collector.store import database_errors
from devposture.collector.store.disk_space import full_disk_said, is_full, no_space_left
from devposture.collector.store.target import DatabaseTargetError, postgres_target
from devposture.log_format import redact
from devposture.policy import PolicyError, default_policy_text, load_policy
from devposture.policy.catalogs import Lang
from devposture.policy.cli_help import localize
from devposture.policy.cli_messages import (
    Said,
    Worded,
    enumeration,
    error_line,
    option_error,
    reader_language,
    said,
    say,
)

__all__ = ["DEFAULT_DATA", "CliError", "build_parser", "main"]


PROG = "devposture-collector"


class CliError(Worded):
    """A failure to report to the person at the terminal, without a traceback, in their
    language (`Worded`)."""


def localized_parser(lang: Lang) -> argparse.ArgumentParser:
    """The parser with its help and argparse's words in `lang` (the locale's: the help is
    shown before any option is read)."""
    parser = build_parser()
    localize(parser, lang, {"data": DEFAULT_DATA, "profiles": profiles_path()})
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The parser as written, in English (the catalogs' msgids: `localized_parser`)."""
    parser = argparse.ArgumentParser(
        prog="devposture-collector",
        description="Enroll devices, receive their posture reports and check them against the"
        " WeChat management measures (clauses 6.3.1, 6.3.2, 6.2.1).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create a data folder: CA, server certificate, config")
    data_option(init)
    init.add_argument(
        "--listen", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    init.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name or IP address agents use to reach this collector (repeatable)",
    )
    init.add_argument(
        "--enroll-port", type=port, default=None, help="enrollment port (default 7443)"
    )
    init.add_argument("--report-port", type=port, default=None, help="report port (default 7444)")
    init.add_argument(
        "--database",
        metavar="URL",
        help="several collectors' shared PostgreSQL (postgresql://user@host:5432/db, no"
        " password in it) instead of a SQLite file in the data folder",
    )
    init.add_argument(
        "--join",
        type=Path,
        metavar="FIRST",
        help="a further collector on the same PostgreSQL as the data folder FIRST (a copy of"
        " it will do): shares its CA, evidence-signing key, network-hash key, policy and"
        " database; gets its own server certificate",
    )
    init.add_argument(
        "--database-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the PostgreSQL password, readable only by the collector's account"
        " (or set PGPASSWORD, or use ~/.pgpass); never give the password on the command line",
    )

    # `ca fingerprint`, `ca rollover ...` and `tls rotate` live with the trust code.
    cli_pki.add_commands(commands)
    cli_migrate.add_command(commands)
    cli_backup.add_command(commands)

    serve = commands.add_parser("serve", help="serve agents until stopped (SIGTERM or Ctrl-C)")
    data_option(serve)
    serve.add_argument("--listen", default=None, help="override [listen] host")
    serve.add_argument(
        "--enroll-port", type=port, default=None, help="override enroll_port (0: any free port)"
    )
    serve.add_argument(
        "--report-port", type=port, default=None, help="override report_port (0: any free port)"
    )
    serve.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="write the bound ports here as JSON once serving",
    )
    serve.add_argument(
        "--admin-port", type=port, default=None,
        help="override [admin] port, the administration port (0: any free port)",
    )  # fmt: skip
    serve.add_argument(
        "--metrics-port", type=port, default=None,
        help="override [metrics] port, the Prometheus /metrics port (0: any free port)",
    )  # fmt: skip
    serve.add_argument(
        "--web-port", type=port, default=None,
        help="override [web] port, the dashboard's port (0: any free port)",
    )  # fmt: skip
    serve.add_argument(
        "--drain-seconds", type=drain_seconds, default=None, metavar="SECONDS",
        help="override [server] drain_seconds: how long health says NOT_SERVING before the"
        " ports close on SIGTERM (0: stop at once)",
    )  # fmt: skip
    serve.add_argument(
        "--log-format", choices=log_format.FORMATS, default=None,
        help="override [logging] format: text (default) or json, one object per line",
    )  # fmt: skip
    serve.add_argument(
        "--workers", type=workers_count, default=1, metavar="N",
        help="serve as N processes sharing the agent ports (SO_REUSEPORT), one per core to"
        " use; default 1",
    )  # fmt: skip
    # The workers' own option (collector/workers.py starts them with it): not for people.
    serve.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)

    policy = commands.add_parser("policy", help="the policy: clauses, checks and thresholds")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    policy_check = policy_commands.add_parser(
        "check", help="validate a policy file; every problem is shown with its line"
    )
    policy_check.add_argument("file", type=Path, help="the policy file (TOML)")
    policy_commands.add_parser("default", help="print the bundled policy, to start a copy from")

    add_commands(commands)
    cli_completion.add_command(commands)
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    kwargs = {}
    if args.enroll_port is not None:
        kwargs["enroll_port"] = args.enroll_port
    if args.report_port is not None:
        kwargs["report_port"] = args.report_port
    if args.join is not None:
        return _join(args, kwargs)
    database = None
    if args.database_password_file is not None and args.database is None:
        raise CliError("--database-password-file goes with --database postgresql://…")
    if args.database is not None:
        try:
            # Named in collector.toml as given here: absolute, not relative to the data folder.
            password_file = absolute(args.database_password_file)
            database = postgres_target(args.database, password_file)
        except DatabaseTargetError as exc:
            raise CliError.as_is(exc) from exc
    # cryptography is imported by init only, not by every command.
    from devposture.collector.datadir import InitError, initialize  # noqa: PLC0415
    from devposture.collector.pki import fingerprint  # noqa: PLC0415

    try:
        config, ca_cert = initialize(args.data, args.listen, args.san, database=database, **kwargs)
    except (InitError, ValueError) as exc:
        raise CliError.as_is(exc) from exc
    except database_errors() as exc:
        if database is None or not postgresql_error(exc):
            raise  # the data folder's SQLite file, a full disk: `main` says what to do
        raise CliError(unusable_database(database, exc, "--database")) from exc
    say("Created collector data folder {path}", path=config.data_dir)
    say("Database: {database}", database=config.database.describe())
    say("CA fingerprint: {fingerprint}", fingerprint=fingerprint(ca_cert))
    say("Give agents this fingerprint (--ca-fingerprint) together with an enrollment token\n"
        "from `devposture-collector token create --data {path}`.", path=config.data_dir)
    return 0


def _join(args: argparse.Namespace, ports: dict[str, int]) -> int:
    from devposture.collector.datadir import InitError  # noqa: PLC0415
    from devposture.collector.join import join  # noqa: PLC0415
    from devposture.collector.pki import fingerprint  # noqa: PLC0415

    if args.database is not None or args.database_password_file is not None:
        raise CliError("--join uses the first collector's database: leave out --database")
    try:
        config, ca_cert = join(
            args.data, args.join, args.listen, args.san,
            enroll_port=ports.get("enroll_port", DEFAULT_ENROLL_PORT),
            report_port=ports.get("report_port", DEFAULT_REPORT_PORT),
        )  # fmt: skip
    except (InitError, ConfigError, OSError) as exc:
        raise CliError("cannot join {first}: {problem}", first=args.join, problem=exc) from exc
    say("Created collector data folder {path}, beside {first}", path=config.data_dir,
        first=args.join)
    say("Database: {database}", database=config.database.describe())
    say("CA fingerprint (shared): {fingerprint}", fingerprint=fingerprint(ca_cert))
    return 0


def drain_seconds(text: str) -> float:
    """--drain-seconds: 0 to MAX_DRAIN_SECONDS."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_DRAIN_SECONDS:
        raise option_error(
            "{value} is not a number of seconds from 0 to {maximum}",
            value=repr(text), maximum=f"{MAX_DRAIN_SECONDS:g}",
        )
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here: only `serve` runs the gRPC server, the dashboard and the metrics endpoint
    # (grpc.aio, starlette, jinja2, uvicorn, prometheus_client); every other command starts
    # without loading them (tests/collector/test_cli_imports.py).
    import asyncio  # noqa: PLC0415
    import dataclasses  # noqa: PLC0415

    # gRPC's own log, which writes past Python's logging straight to stderr: errors only (a
    # line for every failed TLS handshake, which anyone can cause, broke the JSON log and
    # filled the journal). Read when grpc loads, below; GRPC_VERBOSITY set by IT wins.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from devposture.collector.ca_holdings import BehindTheRollover  # noqa: PLC0415
    from devposture.collector.datadir import DataFolderInUse, OtherInstallation  # noqa: PLC0415
    from devposture.collector.ports import PortUnavailable  # noqa: PLC0415
    from devposture.collector.server import serve_forever  # noqa: PLC0415

    config = load(args.data)
    if args.drain_seconds is not None:
        config = dataclasses.replace(config, drain_seconds=args.drain_seconds)
    if (args.log_format or config.log_format) != "text":
        log_format.configure(args.log_format or config.log_format, args.verbose, replace=True)
    if args.worker is not None:  # a worker of `serve --workers`: it dies with its parent
        from devposture.collector.parent_death import (  # noqa: PLC0415 (workers only)
            die_with_parent,
            parent_from_environment,
        )

        die_with_parent(parent_from_environment(), f"worker {args.worker}")
    try:
        if args.workers > 1:
            return _supervise(args, config)
        asyncio.run(
            serve_forever(
                config, args.enroll_port, args.report_port, args.listen, args.ready_file,
                admin_port=args.admin_port, metrics_port=args.metrics_port,
                web_port=args.web_port, worker=args.worker,
            )
        )  # fmt: skip
    except (DataFolderInUse, OtherInstallation, PortUnavailable, BehindTheRollover) as exc:
        # each says what to do
        raise CliError.as_is(exc) from exc
    except OSError as exc:
        if is_full(exc) or isinstance(exc, PermissionError):
            raise  # `main` says the disk is full, or whose folder it is
        raise CliError("cannot serve: {problem}", problem=exc) from exc
    return 0


def workers_count(text: str) -> int:
    """--workers: 1 to MAX_WORKERS."""
    from devposture.collector.workers import MAX_WORKERS  # noqa: PLC0415 (serve only)

    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise option_error(
            "--workers must be a whole number from 1 to {maximum} (one per core), not {value}",
            maximum=MAX_WORKERS, value=repr(text),
        )
    return count


def _supervise(args: argparse.Namespace, config: CollectorConfig) -> int:
    """`serve --workers N`: this process supervises N `serve --worker I` processes."""
    from devposture.collector.workers import WorkersFailed, supervise  # noqa: PLC0415

    base = ["serve", "--data", str(args.data)]
    for option, value in (("--listen", args.listen), ("--drain-seconds", args.drain_seconds),
                          ("--log-format", args.log_format)):  # fmt: skip
        if value is not None:
            base += [option, str(value)]
    if args.verbose:
        base.insert(0, "--verbose")
    first_only = []
    for option, value in (("--admin-port", args.admin_port), ("--web-port", args.web_port),
                          ("--metrics-port", args.metrics_port)):  # fmt: skip
        if value is not None:
            first_only += [option, str(value)]
    ports = []
    for option, value in (("--enroll-port", args.enroll_port),
                          ("--report-port", args.report_port)):  # fmt: skip
        if value is not None:
            ports += [option, str(value)]
    try:
        return supervise(config, args.workers, base, first_only + ports, args.ready_file)
    except WorkersFailed as exc:
        raise CliError("cannot serve with {count} workers: {problem}", count=args.workers,
                       problem=exc) from exc  # fmt: skip


def cmd_policy_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(exc.worded(reader_language()), file=sys.stderr)
        say("{file}: {count} problem(s); the policy was not accepted", file=args.file,
            count=len(exc.problems), stream=sys.stderr)
        return 1
    say("{file}: OK: {clauses} clause(s), {count} check(s) ({checks})", file=args.file,
        clauses=len(policy.clauses), count=len(policy.checks),
        checks=enumeration(c.check_id for c in policy.checks))
    return 0


def cmd_policy_default(args: argparse.Namespace) -> int:
    sys.stdout.write(default_policy_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    # In the frozen program (installers/python/freeze), a child started by multiprocessing
    # (serve's report writer) runs this executable again: this runs the child, not the CLI.
    # Only there: elsewhere it does nothing, and importing multiprocessing was about 8 ms of
    # every command's start.
    if getattr(sys, "frozen", False):
        import multiprocessing  # noqa: PLC0415

        multiprocessing.freeze_support()
    args = localized_parser(reader_language()).parse_args(argv)
    # Errors in the reader's language: `--lang` where the command has it, else the locale's.
    lang = reader_language(getattr(args, "lang", None))
    # Text to stderr, secrets redacted; `serve --log-format json` switches to JSON lines.
    log_format.configure("text", args.verbose)
    if args.command != "serve" and not args.verbose:
        # A one-off command whose PostgreSQL cannot be reached ends with one line saying what
        # to check; the pool's own warnings of each try (several lines each, before it) are
        # for a service's log, or for --verbose.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    else:
        # A service's log through a PostgreSQL outage: the pool warns of every connection it
        # fails to make (a few a second); one line per kind every few seconds says the same.
        logging.getLogger("psycopg.pool").addFilter(EveryFew())
    handlers = {
        ("init", None): cmd_init,
        ("migrate", None): cli_migrate.cmd_migrate,
        ("backup", None): cli_backup.cmd_backup,
        ("serve", None): cmd_serve,
        ("policy", "check"): cmd_policy_check,
        ("policy", "default"): cmd_policy_default,
        ("completion", None): cli_completion.cmd_completion,
    }
    sub = getattr(args, f"{args.command}_command", None)
    try:
        if sub is not None and is_admin_command((args.command, sub)):
            return run_admin_command((args.command, sub), args)
        if (args.command, sub) in cli_pki.HANDLERS:
            return cli_pki.HANDLERS[(args.command, sub)](args)
        return handlers[(args.command, sub)](args)
    except Worded as exc:  # each says what is wrong and what to do (a command's, a port's,
        sys.stderr.write(error_line(PROG, exc, lang))  # the policy's, a settings file's)
        return 1
    except Exception as exc:
        if not isinstance(exc, (OSError, *database_errors())):
            raise
        problem = _storage_problem(exc, getattr(args, "data", None))
        if problem is None:
            raise
        sys.stderr.write(error_line(PROG, problem, lang))
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, as the shell's code for it (128 + SIGINT)
        sys.stderr.write(error_line(PROG, said("interrupted (Ctrl-C)"), lang))
        return 130


# What SQLite says of a file that is not (or no longer) a database it can read.
_DAMAGED = ("malformed", "file is not a database", "database corruption")


# What SQLite says of a text column holding bytes that are not UTF-8 (a hand edit: the
# collector writes text as text); the rest of its message is those bytes, never shown.
_NOT_TEXT = re.compile(r"Could not decode to UTF-8 column '([^']{1,64})'")


# What SQLite says when another connection held the write lock past the busy timeout.
_BUSY = "database is locked"


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    return any(words in str(exc) for words in _DAMAGED)


def _storage_problem(exc: Exception, data: Path | None) -> Said | None:
    """What to tell of a failure of the disk or the database (None: let it through)."""
    if is_full(exc) or (data is not None and no_space_left(data)):
        return full_disk_said(data)
    if isinstance(exc, sqlite3.DatabaseError) and _damaged(exc):
        return said(
            "the collector database is damaged ({problem}): stop the collector, keep the"
            " damaged file aside, and put back devposture.db from your last backup",
            problem=exc,
        )
    undecodable = _NOT_TEXT.match(str(exc)) if isinstance(exc, sqlite3.OperationalError) else None
    if undecodable is not None:
        return said(
            "the collector database holds bytes that are not text in column {column}: a row"
            " was edited outside the collector; find out who changed it and restore"
            " devposture.db from your last backup",
            column=undecodable.group(1),
        )
    if isinstance(exc, sqlite3.OperationalError) and _BUSY in str(exc):
        # SQLite waited its whole busy timeout for another writer: not a matter of rights.
        return said(
            "the collector database stayed busy: another command held it for writing the whole"
            " time (a migrate moving the site, a backup, or a command that hangs). Wait until it"
            " has ended, then run this command again"
        )
    if isinstance(exc, sqlite3.Error | PermissionError):
        return said(
            "cannot use the collector database ({problem}): run as the collector's service"
            " account, which owns the data folder",
            problem=exc,
        )
    if isinstance(exc, OSError):
        return None
    return said(
        "cannot use the collector's PostgreSQL database ({problem}): check [database] url in"
        " collector.toml, that the server runs and takes connections from this host, and the"
        " password file",
        problem=redact(str(exc)).strip(),
    )


if __name__ == "__main__":
    sys.exit(main())
