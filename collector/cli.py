"""`devposture-collector`: set up, run and query a devposture collector.

Every error names the problem and the fix, and exits non-zero; nothing is half-written.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import secrets
import sys
from pathlib import Path

from cryptography import x509

from collector import __version__
from collector.compliance import Waiver
from collector.config import CollectorConfig, ConfigError, load
from collector.datadir import InitError, initialize
from collector.pki import fingerprint, utcnow
from collector.policy import PolicyError, default_policy_text, load_policy
from collector.render import FORMATS, render
from collector.reports import (
    DEVICE_COLUMNS,
    FAILING_COLUMNS,
    FLEET_COLUMNS,
    HISTORY_COLUMNS,
    device_rows,
    failing_rows,
    fleet_rows,
    history_rows,
)
from collector.server import policy_in_force, serve_forever
from collector.store import Store
from collector.tokens import new_token

DEFAULT_DATA = Path(os.environ.get("DEVPOSTURE_DATA", "/var/lib/devposture-collector"))


class CliError(Exception):
    """A failure to report to the person at the terminal, without a traceback."""


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is a number from 0 to 65535 (0 picks a free one)")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return value


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="collector data folder (default: $DEVPOSTURE_DATA or %(default)s)",
    )


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")


def _add_waiver_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    waiver = commands.add_parser("waiver", help="exemptions for a device and a check, that expire")
    waiver_commands = waiver.add_subparsers(dest="waiver_command", required=True, metavar="COMMAND")
    add = waiver_commands.add_parser("add", help="exempt devices from a check until a date")
    add.add_argument("--device", action="append", required=True, metavar="ID",
                     help="device id (repeat for a group of devices)")  # fmt: skip
    add.add_argument("--check", required=True, help="check id, e.g. chat-backup")
    add.add_argument("--owner", required=True, help="who is accountable for the exemption")
    add.add_argument("--reason", required=True, help="why the device may not comply for now")
    add.add_argument("--expires", required=True, type=_moment, metavar="DATE",
                     help="when the exemption ends by itself (required)")  # fmt: skip
    _data_option(add)
    listing = waiver_commands.add_parser("list", help="active waivers (--all: every one)")
    listing.add_argument("--all", action="store_true", help="include expired and revoked ones")
    listing.add_argument(
        "--log", action="store_true", help="every waiver change instead (the audit trail)"
    )
    _data_option(listing)
    _format_option(listing)
    revoke = waiver_commands.add_parser("revoke", help="end a waiver now")
    revoke.add_argument("waiver_id")
    revoke.add_argument("--reason", required=True, help="why it ends early (kept in the log)")
    _data_option(revoke)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devposture-collector",
        description="Enroll devices, receive their posture reports and check them against the"
        " WeChat management measures (clauses 6.3.1, 6.3.2, 6.2.1).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create a data folder: CA, server certificate, config")
    _data_option(init)
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
        "--enroll-port", type=_port, default=None, help="enrollment port (default 7443)"
    )
    init.add_argument("--report-port", type=_port, default=None, help="report port (default 7444)")

    ca = commands.add_parser("ca", help="the collector's certificate authority")
    ca_commands = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    ca_fp = ca_commands.add_parser("fingerprint", help="print the CA fingerprint agents pin")
    _data_option(ca_fp)

    token = commands.add_parser("token", help="enrollment tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = token_commands.add_parser(
        "create", help="print a new enrollment token (one use, expires) on standard output"
    )
    _data_option(create)
    create.add_argument(
        "--ttl",
        type=_positive,
        default=None,
        metavar="HOURS",
        help="hours until it expires (default from config: 24)",
    )

    serve = commands.add_parser("serve", help="serve agents until stopped (SIGTERM or Ctrl-C)")
    _data_option(serve)
    serve.add_argument("--listen", default=None, help="override [listen] host")
    serve.add_argument(
        "--enroll-port", type=_port, default=None, help="override enroll_port (0: any free port)"
    )
    serve.add_argument(
        "--report-port", type=_port, default=None, help="override report_port (0: any free port)"
    )
    serve.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="write the bound ports here as JSON once serving",
    )

    policy = commands.add_parser("policy", help="the policy: clauses, checks and thresholds")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    policy_check = policy_commands.add_parser(
        "check", help="validate a policy file; every problem is shown with its line"
    )
    policy_check.add_argument("file", type=Path, help="the policy file (TOML)")
    policy_commands.add_parser("default", help="print the bundled policy, to start a copy from")

    _add_waiver_commands(commands)

    report = commands.add_parser("report", help="compliance reports")
    report_commands = report.add_subparsers(dest="report_command", required=True, metavar="COMMAND")
    views = (
        ("fleet", "per check: devices passing, in grace, failing, unknown, exempt, stale"),
        ("device", "each check of a device (or of every device): state, since, why, what to do"),
        ("failing", "devices failing a check, the longest-failing first"),
        ("history", "every state a device had on each check, from when until when"),
    )
    for name, summary in views:
        view = report_commands.add_parser(name, help=summary)
        if name == "device":
            view.add_argument("device_id", nargs="?", help="the device id (default: every device)")
        if name == "history":
            view.add_argument("device_id", help="the device id")
        view.add_argument(
            "--as-of", type=_moment, default=None, metavar="DATE",
            help="as the fleet stood then: 2026-11-01 or 2026-11-01T09:30 (UTC unless a zone"
            " is given); default: now",
        )  # fmt: skip
        _data_option(view)
        _format_option(view)
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    kwargs = {}
    if args.enroll_port is not None:
        kwargs["enroll_port"] = args.enroll_port
    if args.report_port is not None:
        kwargs["report_port"] = args.report_port
    try:
        config, ca_cert = initialize(args.data, args.listen, args.san, **kwargs)
    except (InitError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(f"Created collector data folder {config.data_dir}")
    print(f"CA fingerprint: {fingerprint(ca_cert)}")
    print("Give agents this fingerprint (--ca-fingerprint) together with an enrollment token")
    print(f"from `devposture-collector token create --data {config.data_dir}`.")
    return 0


def cmd_ca_fingerprint(args: argparse.Namespace) -> int:
    config = load(args.data)
    print(fingerprint(x509.load_pem_x509_certificate(config.ca_cert.read_bytes())))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    config = load(args.data)
    hours = args.ttl if args.ttl is not None else config.token_ttl_hours
    now = utcnow()
    expires = now + dt.timedelta(hours=hours)
    token = new_token()
    store = Store.open(config.database)
    try:
        store.add_token(token, now, expires, uses=1)
    finally:
        store.close()
    print(str(token))
    print(
        f"token {token.token_id}: enrolls one device,"
        f" expires {expires.isoformat(timespec='seconds')}",
        file=sys.stderr,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = load(args.data)
    try:
        asyncio.run(
            serve_forever(config, args.enroll_port, args.report_port, args.listen, args.ready_file)
        )
    except OSError as exc:
        raise CliError(f"{exc}. Choose other ports with --enroll-port/--report-port") from exc
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        count = len(exc.problems)
        print(f"{args.file}: {count} problem(s); the policy was not accepted", file=sys.stderr)
        return 1
    checks = ", ".join(c.check_id for c in policy.checks)
    counts = f"{len(policy.clauses)} clause(s), {len(policy.checks)} check(s)"
    print(f"{args.file}: OK: {counts} ({checks})")
    return 0


def cmd_policy_default(args: argparse.Namespace) -> int:
    sys.stdout.write(default_policy_text())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    config = load(args.data)
    try:
        policy = policy_in_force(config)
    except PolicyError as exc:
        raise CliError(f"the policy file has mistakes; fix them first:\n{exc}") from exc
    at = args.as_of or utcnow()
    store = Store.open(config.database)
    try:
        if args.report_command == "fleet":
            rows, columns = fleet_rows(store, policy, at), FLEET_COLUMNS
            if not store.devices_seen(at) and args.format == "table":
                print("No devices enrolled yet. Create a token with"
                      " `devposture-collector token create`.")  # fmt: skip
                return 0
        elif args.report_command == "device":
            rows, columns = device_rows(store, policy, at, args.device_id), DEVICE_COLUMNS
            if args.device_id and not rows:
                raise CliError(
                    f"no device {args.device_id} was enrolled by {at:%Y-%m-%d %H:%M} UTC;"
                    " see the ids in `devposture-collector report device`"
                )
        elif args.report_command == "history":
            rows, columns = history_rows(store, args.device_id, at), HISTORY_COLUMNS
            if not rows:
                raise CliError(
                    f"no history for device {args.device_id}: see the ids in"
                    " `devposture-collector report device`"
                )
        else:
            rows, columns = failing_rows(store, policy, at), FAILING_COLUMNS
    finally:
        store.close()
    sys.stdout.write(render(rows, columns, args.format))
    return 0


WAIVER_COLUMNS = (
    "waiver", "device", "check", "owner", "reason", "created", "expires", "status",
)  # fmt: skip


def cmd_waiver(args: argparse.Namespace) -> int:
    config = load(args.data)
    now = utcnow()
    store = Store.open(config.database)
    try:
        if args.waiver_command == "add":
            return _waiver_add(args, config, store, now)
        if args.waiver_command == "revoke":
            if not store.revoke_waiver(args.waiver_id, now, args.reason):
                raise CliError(
                    f"no active waiver {args.waiver_id}: see `devposture-collector waiver list`"
                )
            print(f"waiver {args.waiver_id} revoked")
            return 0
        if args.log:
            events = [
                {"waiver": w, "action": a, "at": t.isoformat(timespec="seconds"), "detail": d}
                for w, a, t, d in store.waiver_events()
            ]
            sys.stdout.write(render(events, ("waiver", "action", "at", "detail"), args.format))
            return 0
        rows = []
        for w in store.waivers():
            status = (
                "active" if w.active(now)
                else "revoked" if w.revoked_at is not None and w.revoked_at <= now
                else "expired"
            )  # fmt: skip
            if status == "active" or args.all:
                rows.append({
                    "waiver": w.waiver_id, "device": w.device_id, "check": w.check_id,
                    "owner": w.owner, "reason": w.reason,
                    "created": w.created_at.isoformat(timespec="seconds"),
                    "expires": w.expires_at.isoformat(timespec="seconds"), "status": status,
                })  # fmt: skip
        sys.stdout.write(render(rows, WAIVER_COLUMNS, args.format))
        return 0
    finally:
        store.close()


def _waiver_add(
    args: argparse.Namespace, config: CollectorConfig, store: Store, now: dt.datetime
) -> int:
    policy = policy_in_force(config)
    if policy.check(args.check) is None:
        known = ", ".join(c.check_id for c in policy.checks)
        raise CliError(f"no check {args.check!r} in the policy (checks: {known})")
    if args.expires <= now:
        raise CliError("--expires must be in the future: a waiver always ends by itself")
    if not args.owner.strip() or not args.reason.strip():
        raise CliError("--owner and --reason must not be empty: the audit trail needs both")
    known_devices = {d.device_id for d in store.devices_seen()}
    unknown = [d for d in args.device if d not in known_devices]
    if unknown:
        raise CliError(
            f"no enrolled device {', '.join(unknown)}: see `devposture-collector report device`"
        )
    for device_id in dict.fromkeys(args.device):
        waiver = Waiver(
            f"w-{secrets.token_hex(4)}", device_id, args.check, args.owner.strip(),
            args.reason.strip(), now, args.expires,
        )  # fmt: skip
        store.add_waiver(waiver, now)
        print(f"waiver {waiver.waiver_id}: {device_id} exempt from {args.check}"
              f" until {args.expires.isoformat(timespec='minutes')}")  # fmt: skip
    return 0


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use 2026-11-01 or 2026-11-01T09:30"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handlers = {
        ("init", None): cmd_init,
        ("ca", "fingerprint"): cmd_ca_fingerprint,
        ("token", "create"): cmd_token_create,
        ("serve", None): cmd_serve,
        ("report", "fleet"): cmd_report,
        ("report", "device"): cmd_report,
        ("report", "failing"): cmd_report,
        ("report", "history"): cmd_report,
        ("waiver", "add"): cmd_waiver,
        ("waiver", "list"): cmd_waiver,
        ("waiver", "revoke"): cmd_waiver,
        ("policy", "check"): cmd_policy_check,
        ("policy", "default"): cmd_policy_default,
    }
    sub = getattr(args, f"{args.command}_command", None)
    try:
        return handlers[(args.command, sub)](args)
    except (CliError, ConfigError) as exc:
        print(f"devposture-collector: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
