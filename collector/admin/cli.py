"""The command-line side of the admin commands: their options, and running them locally (on
the data folder) or remotely (on a collector's admin port).

Each command's options map one to one onto the argument names of its entry in
`commands.COMMANDS`, so the parser here and the table there cannot drift apart silently: an
option the table does not know is refused by the runner.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from devposture.collector.admin import device_ids, output, profiles
from devposture.collector.admin.commands import (
    COMMANDS,
    CommandError,
    Result,
    Runner,
    Words,
    local_actor,
)
from devposture.collector.admin.progress_line import ProgressLine
from devposture.collector.company_time import NotATime, typed
from devposture.collector.config import load
from devposture.collector.credentials import ROLES, VIEWER
from devposture.collector.store import Store
from devposture.policy.cli_messages import bracketed, option_error, reader_language, said

DEFAULT_DATA = Path(os.environ.get("DEVPOSTURE_DATA", "/var/lib/devposture-collector"))
if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

# Command groups that can also run on a remote collector (`admin` is local only).
REMOTE_GROUPS = ("report", "waiver", "device", "token", "audit")


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise option_error(
            "{value}: a port is a number from 0 to 65535 (0 picks a free one)", value=repr(text)
        )
    return value


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise option_error("{value}: must be a number greater than zero", value=repr(text))
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise option_error("{value} is not a whole number", value=repr(text)) from None
    if value <= 0:
        raise option_error("{value}: must be at least 1", value=repr(text))
    return value


def moment(text: str) -> str:
    """A date or time as typed: checked for its form here, and read in the company's time zone
    by the command (`company_time.typed`), on the collector that knows the policy in force."""
    try:
        typed(text, dt.UTC)
    except NotATime as exc:
        raise argparse.ArgumentTypeError(exc.worded(reader_language())) from None
    return text.strip()


def data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="collector data folder (default: $DEVPOSTURE_DATA or %(default)s)",
    )


format_option = output.format_options


def _where_options(parser: argparse.ArgumentParser, *, remote: bool) -> None:
    if not remote:
        data_option(parser)
        return
    # No default here: a --data given (or $DEVPOSTURE_DATA) runs locally even when admin.toml
    # names a default profile; `_where` fills in DEFAULT_DATA.
    parser.add_argument(
        "--data", type=Path, default=None,
        help="collector data folder (default: $DEVPOSTURE_DATA or {data})",
    )  # fmt: skip
    group = parser.add_argument_group(
        "remote collector", "run on a collector's admin port instead of the local data folder"
    )
    group.add_argument(
        "--profile", metavar="NAME",
        help="the collector, CA fingerprint and credential file of profile NAME in"
        " {profiles} (its [defaults] profile is used when neither --profile, --collector nor"
        " --data is given); --collector, --ca-fingerprint and --credential-file override its"
        " values",
    )  # fmt: skip
    group.add_argument(
        "--collector",
        metavar="HOST:PORT",
        help="the collector's admin address ([admin] in collector.toml, 7445)",
    )
    group.add_argument(
        "--ca-fingerprint",
        metavar="SHA256",
        help="the collector's CA fingerprint (`devposture-collector ca"
        " fingerprint`): proves it is your collector",
    )
    group.add_argument("--credential-file", metavar="FILE",
                       help="file holding your admin credential (`admin add`), or - for"
                            " standard input; never give the credential itself")  # fmt: skip


def _sub(commands: Subcommands, group: str, name: str, **kwargs: object) -> argparse.ArgumentParser:
    help_text = kwargs.pop("help", None) or COMMANDS[(group, name)].summary
    parser = commands.add_parser(name, help=str(help_text))
    _where_options(parser, remote=group in REMOTE_GROUPS)
    return parser


def _as_of(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of", type=moment, default=None, metavar="DATE",
        help="as the fleet stood then: 2026-11-01 (that day's start) or 2026-11-01T09:30, in"
        " the company's time zone (the policy's time_zone, Asia/Shanghai by default) unless"
        " an offset is given (+08:00, Z); default: now",
    )  # fmt: skip


def _group(commands: Subcommands, name: str, help_text: str) -> Subcommands:
    parser = commands.add_parser(name, help=help_text)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _audit_commands(commands: Subcommands) -> None:
    """`audit log`, and the evidence commands: `export`, `check`, `public-key`, `verify`."""
    audit = _group(commands, "audit", "the audit log of admin commands, and audit evidence")
    format_option(_sub(audit, "audit", "log"))
    export = audit.add_parser("export", help=COMMANDS[("audit", "export")].summary)
    # With --collector, the bundle is made there and streamed here (an auditor's credential).
    _where_options(export, remote=True)
    export.add_argument("--from", required=True, type=moment, metavar="DATE",
                        help="start of the period: a date is that day's start in the"
                             " company's time zone (the policy's time_zone, Asia/Shanghai by"
                             " default) unless an offset is given (+08:00, Z)")  # fmt: skip
    export.add_argument("--to", required=True, type=moment, metavar="DATE",
                        help="end of the period, not included: --to 2026-11-01 ends as"
                             " 1 November begins in the company's time zone")  # fmt: skip
    export.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="the bundle to write (a new file; with --collector, on this"
                             " computer)")  # fmt: skip
    export.add_argument(
        "--progress",
        action="store_true",
        help="show progress on standard error (shown anyway on a terminal)",
    )
    check = audit.add_parser("check", help=COMMANDS[("audit", "check")].summary)
    data_option(check)
    check.add_argument(
        "--progress",
        action="store_true",
        help="show progress on standard error (shown anyway on a terminal)",
    )
    _sub(audit, "audit", "public-key")
    verify = audit.add_parser(
        "verify", help="check an audit bundle with the collector's public key (no database)"
    )
    verify.add_argument("bundle", type=Path, metavar="FILE", help="the bundle (`audit export`)")
    verify.add_argument("--public-key", required=True, type=Path, metavar="KEY.pem",
                        help="the collector's public key (`audit public-key`)")  # fmt: skip
    verify.add_argument(
        "--progress",
        action="store_true",
        help="show progress on standard error (shown anyway on a terminal)",
    )
    verify.add_argument(
        "--after",
        type=Path,
        default=None,
        metavar="OLD",
        help="an earlier bundle of the same collector: also prove that FILE's chain extends"
        " the one OLD committed to (history was not rewritten)",
    )

    facts = audit.add_parser(
        "facts", help="print an audit bundle's report bodies as JSON, one a line (no database)"
    )
    facts.add_argument("bundle", type=Path, metavar="FILE", help="the bundle (`audit export`)")
    facts.add_argument("--report", default=None, metavar="REPORT_ID",
                       help="only this report (its id, as the chain names it)")  # fmt: skip


def _device_commands(commands: Subcommands) -> None:
    """`device list|show|group|revoke|retire`."""
    device = _group(commands, "device", "enrolled devices: list, show, group, revoke, retire")
    device_list = _sub(device, "device", "list")
    device_list.add_argument("--group", default=None, metavar="NAME",
                             help="only the devices of this group")  # fmt: skip
    format_option(device_list)
    show = _sub(device, "device", "show")
    show.add_argument("device_id", help="the device id (see `device list`)")
    format_option(show, listing=False)
    for action in ("revoke", "retire"):
        change = _sub(device, "device", action)
        change.add_argument("device_id", help="the device id (see `device list`)")
        change.add_argument("--reason", required=True, help="why (kept in the device's log)")
    grouping = _sub(device, "device", "group")
    grouping.add_argument("device_id", help="the device id (see `device list`)")
    grouping.add_argument(
        "group", nargs="?", default=None, metavar="NAME",
        help="the group, e.g. 财务部 or sales-eu: 1 to 64 letters or digits (any script),"
        " '-', '_', '.' and spaces",
    )  # fmt: skip
    grouping.add_argument("--clear", action="store_true", help="take the device out of its group")


def add_commands(commands: Subcommands) -> None:
    """Add the report, waiver, device, token, audit and admin commands to the parser."""
    report = _group(commands, "report", "compliance reports")
    for name in ("fleet", "device", "failing", "history"):
        view = _sub(report, "report", name)
        if name == "device":
            view.add_argument("device_id", nargs="?", help="the device id (default: every device)")
        if name == "history":
            view.add_argument("device_id", help="the device id")
        if name in ("fleet", "failing"):
            view.add_argument("--group", default=None, metavar="NAME",
                              help="only the devices of this group (as grouped now)")  # fmt: skip
        _as_of(view)
        if name == "fleet":  # no reasons: its headings and messages only
            view.add_argument("--lang", choices=("zh", "en"), default=None,
                              help="the language of the table's headings and of the messages:"
                                   " zh, Chinese, or en (default: the locale's); files do not"
                                   " change")  # fmt: skip
        else:
            view.add_argument("--lang", choices=("zh", "en"), default=None,
                              help="the language of the reasons (reason_text) and of the"
                                   " messages: zh, Chinese (the reasons' default), or en; the"
                                   " reason column holds the stored code")  # fmt: skip
        format_option(view)

    waiver = _group(commands, "waiver", "exemptions for a device and a check, that expire")
    add = _sub(waiver, "waiver", "add")
    add.add_argument("--device", action="append", required=True, metavar="ID",
                     help="device id (repeat for a group of devices)")  # fmt: skip
    add.add_argument("--check", required=True, help="check id, e.g. chat-backup")
    add.add_argument("--owner", required=True, help="who is accountable for the exemption")
    add.add_argument("--reason", required=True, help="why the device may not comply for now")
    add.add_argument("--expires", required=True, type=moment, metavar="DATE",
                     help="when the exemption ends by itself (required): a date lasts to the"
                          " end of that day in the company's time zone (the policy's"
                          " time_zone, Asia/Shanghai by default); a time"
                          " (2026-12-31T18:00) is that moment there, unless an offset is"
                          " given (+08:00, Z)")  # fmt: skip
    listing = _sub(waiver, "waiver", "list")
    listing.add_argument("--all", action="store_true", help="include expired and revoked ones")
    listing.add_argument(
        "--log", action="store_true", help="every waiver change instead (the audit trail)"
    )
    format_option(listing)
    revoke = _sub(waiver, "waiver", "revoke")
    revoke.add_argument("waiver_id")
    revoke.add_argument("--reason", required=True, help="why it ends early (kept in the log)")

    _device_commands(commands)

    token = _group(commands, "token", "enrollment tokens")
    create = _sub(token, "token", "create")
    create.add_argument("--uses", type=positive_int, default=None, metavar="N",
                        help="how many devices it may enroll (default: 1)")  # fmt: skip
    create.add_argument("--ttl", type=positive, default=None, metavar="HOURS",
                        help="hours until it expires (default from config: 24)")  # fmt: skip
    create.add_argument("--group", default=None, metavar="NAME",
                        help="the group the devices it enrolls join, e.g. 财务部")  # fmt: skip
    create.add_argument(
        "--bundle", action="store_true",
        help="print one enrollment value instead: the collector's address(es), its CA"
        " fingerprint and the token, for /etc/devposture/enroll.token on each computer",
    )  # fmt: skip
    create.add_argument(
        "--enroll-address", action="append", default=None, metavar="HOST:PORT",
        help="with --bundle: an address agents reach this collector's enrollment port by"
        " (repeatable, tried in turn; default: [listen] host and enroll_port of"
        " collector.toml)",
    )  # fmt: skip
    format_option(_sub(token, "token", "list"))
    token_revoke = _sub(token, "token", "revoke")
    token_revoke.add_argument("token_id", help="the token id (see `token list`)")

    _audit_commands(commands)

    admin = _group(commands, "admin", "admin credentials (on the collector machine only)")
    admin_add = _sub(admin, "admin", "add")
    admin_add.add_argument("name", help="whose credential, e.g. 'Li Wei (IT)'")
    admin_add.add_argument("--role", choices=ROLES, default=VIEWER,
                           help="viewer: reports and listings; admin: also changes"
                                " (default: %(default)s)")  # fmt: skip
    format_option(_sub(admin, "admin", "list"))
    admin_revoke = _sub(admin, "admin", "revoke")
    admin_revoke.add_argument("credential_id", help="the credential id (see `admin list`)")


def is_admin_command(words: Words) -> bool:
    """A command of the table, or `audit verify` or `audit facts` (which read a bundle: they
    need neither table nor database)."""
    return words in COMMANDS or words in (("audit", "verify"), ("audit", "facts"))


def run_verify(args: argparse.Namespace) -> int:
    """`audit verify`: exit 0 only when everything in the bundle verifies."""
    # Imported here: only this command needs the verifier.
    from devposture.collector.evidence import signing  # noqa: PLC0415
    from devposture.collector.evidence.consistency import NotComparable, verify_continuation  # noqa: PLC0415
    from devposture.collector.evidence.member_lines import BundleUnreadable  # noqa: PLC0415
    from devposture.collector.evidence.verify import verify_bundle  # noqa: PLC0415

    try:
        key = signing.load_public(args.public_key.read_bytes())
    except OSError as exc:
        raise CommandError("cannot read the public key {path}: {problem}",
                           path=args.public_key, problem=exc) from None  # fmt: skip
    except signing.SigningKeyError as exc:
        raise CommandError("{path}: {problem}", path=args.public_key, problem=exc) from None
    show = args.progress or sys.stderr.isatty()
    line = ProgressLine()
    try:
        try:
            verdict = (verify_bundle(args.bundle, key,
                                     _verify_progress(line, args.bundle) if show else None)
                       if args.after is None else
                       verify_continuation(args.bundle, args.after, key,
                                           functools.partial(_verify_progress, line)
                                           if show else None))  # fmt: skip
        finally:  # an error, or Ctrl-C, on a line of its own
            line.close()
    except NotComparable as exc:
        raise CommandError.as_is(exc) from None
    except BundleUnreadable as exc:  # not a verdict: the evidence was never looked at
        raise CommandError(
            "{problem}. Nothing was verified", problem=exc.args[0] if exc.args else exc
        ) from None
    sys.stdout.write(verdict.worded(reader_language()))
    return 0 if verdict.ok else 1


def _verify_progress(line: ProgressLine, bundle: Path) -> Callable[[int, int], None]:
    """What shows a bundle's verification going on, on standard error (a quarter takes
    minutes)."""

    def show(done: int, total: int) -> None:
        lang = reader_language()
        share = bracketed(f"{100 * done // total}%", lang) if total else ""
        line.show(said("audit verify {name}: {done}/{total} chain entries{share}",
                       name=bundle.name, done=done, total=total,
                       share=share).worded(lang), last=done >= total)  # fmt: skip

    return show


def run_facts(args: argparse.Namespace) -> int:
    """`audit facts`: each report body of a bundle as a JSON line (they are not verified)."""
    # Imported here: only this command reads report bodies out of a bundle.
    import zipfile  # noqa: PLC0415

    from devposture.collector.evidence.facts_view import NoSuchReport, report_facts  # noqa: PLC0415

    try:
        for item in report_facts(args.bundle, args.report):
            sys.stdout.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
    except NoSuchReport as exc:
        raise CommandError.as_is(exc) from None
    except BrokenPipeError:  # the reader (`head`, a pager) has had enough: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise CommandError(
            "cannot read the report bodies of {bundle} ({problem}): give the .zip that"
            " `audit export` wrote.",
            bundle=args.bundle,
            problem=exc,
        ) from None
    return 0


def _text(value: object) -> str | None:
    """An option's value as it travels in AdminCommand.arguments (None: not given)."""
    if value is None or value is False:
        return None
    if value is True:
        return "true"
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def arguments_of(words: Words, args: argparse.Namespace) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in COMMANDS[words].options:
        text = _text(getattr(args, name, None))
        if text is not None:
            values[name] = text
    return values


def _where(args: argparse.Namespace) -> None:
    """Fill in --collector, --ca-fingerprint and --credential-file from the profile asked for
    (or the default one), unless a data folder was named; and --data's default."""
    if not hasattr(args, "profile"):
        return  # a local-only command
    local = args.data is not None or "DEVPOSTURE_DATA" in os.environ
    if args.profile is not None or (args.collector is None and not local):
        chosen = profiles.choose(args.profile)
        if chosen is not None:
            args.collector = args.collector or chosen.collector
            args.ca_fingerprint = args.ca_fingerprint or chosen.ca_fingerprint
            args.credential_file = args.credential_file or chosen.credential_file
    if args.data is None:
        args.data = DEFAULT_DATA


def _run(words: Words, arguments: Mapping[str, str], args: argparse.Namespace) -> Result:
    _where(args)
    remote = getattr(args, "collector", None)
    if remote is None:
        if getattr(args, "credential_file", None) or getattr(args, "ca_fingerprint", None):
            raise CommandError(
                "--credential-file and --ca-fingerprint are for a remote collector:"
                " add --collector HOST:PORT (its admin port), or drop them to use --data"
            )
        config = load(args.data)
        store = Store.open(config.database)
        try:
            arguments = device_ids.complete(
                arguments, lambda: ((d, host) for d, host, _ in store.identity.names())
            )
            return Runner(store, config).run(
                words, arguments, local_actor(), peer="local", remote=False
            )
        finally:
            store.close()
    if not args.ca_fingerprint or not args.credential_file:
        raise CommandError(
            "with --collector, give --ca-fingerprint (from `devposture-collector ca"
            " fingerprint` on the collector) and --credential-file (your admin credential)"
        )
    # Imported here: only a remote command speaks gRPC to a collector's admin port.
    from devposture.collector.admin.client import read_credential, run_remote  # noqa: PLC0415

    credential = read_credential(args.credential_file)
    if words == ("audit", "export"):
        return _export_remote(remote, credential, arguments, args)

    def devices() -> list[tuple[str, str]]:
        """The collector's devices, asked for only when a device id prefix was typed."""
        listed = run_remote(remote, args.ca_fingerprint, credential, ("device", "list"), {})
        return [(str(r.get("device")), str(r.get("hostname") or "")) for r in listed.rows]

    arguments = device_ids.complete(arguments, devices)
    return run_remote(remote, args.ca_fingerprint, credential, words, arguments)


def _export_remote(
    remote: str, credential: str, arguments: Mapping[str, str], args: argparse.Namespace
) -> Result:
    """`audit export --collector`: the bundle made on the collector, streamed into --out here,
    progress on standard error."""
    from devposture.collector.admin.client import export_remote  # noqa: PLC0415

    in_place = sys.stderr.isatty()
    last = [""]

    def progress(line: str) -> None:
        # On a terminal the line is rewritten in place (the rest of a longer one cleared);
        # into a file or a pipe each new update is a line of its own, as `ProgressLine` does:
        # carriage returns made one line of a log hold every update.
        if line and line != last[0]:
            last[0] = line
            sys.stderr.write(f"\r{line}\033[K" if in_place else f"{line}\n")
            sys.stderr.flush()

    show = args.progress or in_place
    period = {name: arguments[name] for name in ("from", "to") if name in arguments}
    try:
        return export_remote(remote, args.ca_fingerprint, credential, period, Path(args.out),
                             progress=progress if show else None)  # fmt: skip
    finally:
        if show and in_place:
            sys.stderr.write("\n")


def run_admin_command(words: Words, args: argparse.Namespace) -> int:
    """Run one command of the table, locally or remotely, and print its result."""
    if words == ("audit", "verify"):
        return run_verify(args)
    if words == ("audit", "facts"):
        return run_facts(args)
    output.refuse_binary_on_terminal(args)
    result = _run(words, arguments_of(words, args), args)
    return output.emit(words, result, args)
