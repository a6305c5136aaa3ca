"""`devposture-collector tls ...` and `ca ...`: server certificate rotation and CA rollover.

Every command works on the data folder while `serve` runs: the collector picks up the new
files for new connections within a couple of seconds, so nothing is restarted. Each command
says what it did and what IT should do next, because a CA rollover spans weeks and the person
who finishes it may not be the one who started it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from devposture.collector.config import ConfigError, load
from devposture.policy.cli_messages import (
    Said,
    enumeration,
    error_line,
    reader_language,
    said,
    say,
)
from devposture.policy.os_errors import os_error

if TYPE_CHECKING:
    from devposture.collector.trust import Authorities, Trust

# The trust code (cryptography, grpc) is imported by these commands only, when they run: every
# other command of the CLI registers these parsers, and must not pay for those imports.

DEFAULT_DATA = Path(os.environ.get("DEVPOSTURE_DATA", "/var/lib/devposture-collector"))
PROG = "devposture-collector"

# argparse has no public name for the object add_subparsers() returns.
Subparsers = argparse._SubParsersAction


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="collector data folder (default: $DEVPOSTURE_DATA or %(default)s)",
    )


def _force_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--force", action="store_true", help=help_text)


def add_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `ca fingerprint`, `ca rollover stage|activate|finish|status` and `tls rotate`."""
    ca = commands.add_parser("ca", help="the collector's certificate authority (CA)")
    ca_commands = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    ca_fp = ca_commands.add_parser(
        "fingerprint", help="print the fingerprint of the CA agents pin when they enroll"
    )
    ca_fp.add_argument(
        "--all", action="store_true", help="every trusted CA, labelled (during a rollover: two)"
    )
    _data_option(ca_fp)

    rollover = ca_commands.add_parser(
        "rollover",
        help="replace the CA in stages, without cutting off any agent",
        description="Replace the CA in three stages: stage (trust a new CA beside the old),"
        " activate (the new CA signs), finish (stop trusting the old CA). Between the stages,"
        " wait until every agent has renewed its certificate (agents do by themselves, within"
        " one certificate lifetime): `status` says how many have not, and until when.",
    )
    steps = rollover.add_subparsers(dest="rollover_command", required=True, metavar="STEP")
    stage = steps.add_parser(
        "stage", help="step 1: make a new CA and trust it beside the current one"
    )
    _data_option(stage)
    activate = steps.add_parser(
        "activate", help="step 2: the new CA signs device and server certificates"
    )
    _force_option(activate, "activate even though some agents have not renewed since `stage`:"
                  " each of them is cut off and needs a new enrollment token")  # fmt: skip
    _data_option(activate)
    finish = steps.add_parser("finish", help="step 3: stop trusting the old CA")
    _force_option(finish, "finish even though some agents may still use a certificate from"
                  " the old CA: each of them is cut off and needs a new enrollment"
                  " token")  # fmt: skip
    _data_option(finish)
    status = steps.add_parser("status", help="where the rollover stands and the next step")
    status.add_argument(
        "--devices",
        action="store_true",
        help="also list the devices the next step waits for (those that have not renewed)",
    )
    _data_option(status)

    tls = commands.add_parser("tls", help="the server certificate agents see")
    tls_commands = tls.add_subparsers(dest="tls_command", required=True, metavar="COMMAND")
    rotate = tls_commands.add_parser(
        "rotate",
        help="issue a new server key and certificate; the running collector uses it at once",
    )
    rotate.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="add a DNS name or IP address agents use to reach the collector (repeatable);"
        " the names of the current certificate are kept",
    )
    _data_option(rotate)


def _trust(args: argparse.Namespace) -> Trust:
    from devposture.collector.trust import Trust  # noqa: PLC0415

    return Trust(load(args.data))


def _fail(message: Said | BaseException) -> int:
    sys.stderr.write(error_line(PROG, message, reader_language()))
    return 1


def _day(moment: dt.datetime, trust: Trust) -> str:
    """A moment in the company's time zone (the policy in force), as every CLI time reads."""
    from devposture.collector.company_time import shown  # noqa: PLC0415
    from devposture.collector.policy.in_force import zone_in_force  # noqa: PLC0415

    return shown(moment, zone_in_force(trust.config))


def cmd_ca_fingerprint(args: argparse.Namespace) -> int:
    """The signing CA's fingerprint alone on standard output, so scripts can capture it."""
    from devposture.collector.pki import fingerprint  # noqa: PLC0415
    from devposture.collector.trust import TrustError  # noqa: PLC0415

    trust = _trust(args)
    try:
        if not args.all:  # the CA's certificate is all it takes (not its key)
            print(fingerprint(trust.trusted_cas()[0]))
            return 0
        for label, generation, cert in trust.labelled_cas():
            # The fingerprint first, as `ca fingerprint` prints it alone: a script cuts it.
            say(
                "{fingerprint}  CA {generation}, {label}, valid until {until}",
                fingerprint=fingerprint(cert),
                generation=generation,
                label=label,
                until=_day(cert.not_valid_after_utc, trust),
            )
    except OSError as exc:
        return _fail(said(
            "{path}: {problem}: the data folder's CA is incomplete; put back its ca/ folder"
            " from your backup", path=exc.filename, problem=os_error(exc, exc.strerror),
        ))  # fmt: skip
    except (TrustError, ValueError) as exc:
        return _fail(exc)
    return 0


def cmd_tls_rotate(args: argparse.Namespace) -> int:
    from devposture.collector.datadir import InitError, check_names  # noqa: PLC0415
    from devposture.collector.pki import fingerprint  # noqa: PLC0415
    from devposture.collector.trust import TrustError  # noqa: PLC0415

    trust = _trust(args)
    try:
        check_names(list(args.san or []))  # as `init` does: a certificate carries them
        cert = trust.rotate_server_certificate(args.san)
    except InitError as exc:
        return _fail(said("{problem}. Nothing was changed", problem=exc.said))
    except (TrustError, OSError, ValueError) as exc:
        return _fail(said("{problem}. Nothing was changed", problem=exc))
    dns, ips = trust.server_names()
    say(
        "New server certificate, serial {serial}, signed by the CA with\n"
        "fingerprint {fingerprint}.",
        serial=f"{cert.serial_number:x}",
        fingerprint=fingerprint(trust.signing_authority().cert),
    )
    say("Names: {names}", names=enumeration(dns + ips))
    say("Valid until {date}.", date=_day(cert.not_valid_after_utc, trust))
    say(
        "A running collector uses it for new connections within a few seconds; agents\n"
        "verify it against the CA, so they need nothing. No restart is needed."
    )
    return 0


def _stage_text(
    trust: Trust, authorities: Authorities, now: dt.datetime, devices: bool = False
) -> str:
    """Where the rollover stands and what to do next, in the reader's language."""
    lines = _stage(trust, authorities, now, devices)
    return "\n".join(line.worded(reader_language()) for line in lines)


def _waiting(trust: Trust, moment: dt.datetime | None, now: dt.datetime, step: str,
             devices: bool) -> list[Said]:  # fmt: skip
    """What the next step waits for: the devices that have not renewed since `moment`, from
    the database (not from today's certificate lifetime, which IT may have changed)."""
    waiting = trust.not_renewed_since(moment, now)
    since = _day(moment or now, trust)
    if not waiting:
        return [
            said(
                "Every active device has renewed since {since} (or its older certificate"
                " has expired). Next: run `{prog} ca rollover {step}`.",
                since=since,
                prog=PROG,
                step=step,
            )
        ]
    lines = [
        said("{count} active device(s) did not renew since {since}; the last of their older"
             " certificates is valid until {until}.",
             count=len(waiting), since=since, until=_day(waiting[0].valid_until, trust)),
        said("Next: when they have renewed (agents do by themselves), at the latest on {until},"
             " run `{prog} ca rollover {step}`. Before then it would cut them off.",
             until=_day(waiting[0].valid_until, trust), prog=PROG, step=step),
    ]  # fmt: skip
    if not devices:
        lines.append(said("To see which: `{prog} ca rollover status --devices`.", prog=PROG))
        return lines
    for held in waiting:
        lines.append(said("  {device_id}  {hostname}  older certificate valid until {until}",
                          device_id=held.device_id, hostname=held.hostname or "-",
                          until=_day(held.valid_until, trust)))  # fmt: skip
    return lines


def _waiting_for_finish(trust: Trust, authorities: Authorities, now: dt.datetime,
                        devices: bool) -> list[Said]:  # fmt: skip
    """What `finish` waits for: the devices that may still present a certificate the new CA
    did not sign, by the CA the database recorded for each (so also one a collector still
    signed with the previous CA after `activate`), and why."""
    from devposture.collector.issuing_ca import held_causes, held_line  # noqa: PLC0415

    held = trust.held_by_other_cas(now)
    if not held:
        return [said("Every active device uses a certificate from the new CA, or its older"
                     " certificates have expired. Next: run `{prog} ca rollover finish`.",
                     prog=PROG)]  # fmt: skip
    until = _day(held[0].valid_until, trust)
    lines = [
        said("{count} active device(s) may still use a certificate not signed by the new CA;"
             " the last of those certificates is valid until {until}.",
             count=len(held), until=until),
        *held_causes(held, authorities.activated_at),
        said("Next: when they have renewed (agents do by themselves), at the latest on {until},"
             " run `{prog} ca rollover {step}`. Before then it would cut them off.",
             until=until, prog=PROG, step="finish"),
    ]  # fmt: skip
    if not devices:
        lines.append(said("To see which: `{prog} ca rollover status --devices`.", prog=PROG))
        return lines
    generations = trust.ca_generations()

    def day(moment: dt.datetime) -> str:
        return _day(moment, trust)

    return lines + [held_line(h, authorities.activated_at, generations, day) for h in held]


def _collectors(trust: Trust, stage: str, new: str, now: dt.datetime) -> list[Said]:
    """What the other collectors on the database hold that the next step needs
    (collector/ca_holdings.py)."""
    from devposture.collector.ca_holdings import status_lines  # noqa: PLC0415

    others, moment = trust.other_collectors(now)

    def day(at: dt.datetime) -> str | Said:
        return _day(at, trust)

    return status_lines(stage, others, moment, new, generations=trust.ca_generations(), day=day)


def _stage(trust: Trust, authorities: Authorities, now: dt.datetime,
           devices: bool = False) -> list[Said]:  # fmt: skip
    from devposture.collector.pki import fingerprint  # noqa: PLC0415
    from devposture.collector.trust import Stage  # noqa: PLC0415

    signing = fingerprint(trust.signing_authority().cert)
    if authorities.stage == Stage.STEADY:
        return [
            said(
                "No CA rollover in progress. CA {generation} signs: {fingerprint}",
                generation=authorities.signing,
                fingerprint=signing,
            ),
            said("To replace it: `{prog} ca rollover stage`.", prog=PROG),
        ]
    if authorities.stage == Stage.STAGED:
        new = max(authorities.trusted)
        return [
            said(
                "Stage 1 of 3 (staged): CA {new} is trusted beside CA {old}, which still signs.",
                new=new,
                old=authorities.signing,
            ),
            said("Agents receive both CAs the next time they renew their certificate or enroll."),
            *_waiting(trust, authorities.staged_at, now, "activate", devices),
            *_collectors(trust, Stage.STAGED, fingerprint(trust.ca_cert(new)), now),
        ]
    if authorities.stage == Stage.ACTIVATED:
        old = enumeration(str(g) for g in authorities.trusted if g != authorities.signing)
        return [
            said(
                "Stage 2 of 3 (activated): CA {new} signs; CA {old} is still trusted for device"
                " certificates it signed.",
                new=authorities.signing,
                old=old,
            ),
            said("Give new installations the new fingerprint: {fingerprint}", fingerprint=signing),
            *_waiting_for_finish(trust, authorities, now, devices),
            *_collectors(trust, Stage.ACTIVATED, signing, now),
        ]
    raise AssertionError(authorities.stage)  # pragma: no cover


def cmd_ca_rollover(args: argparse.Namespace) -> int:
    from devposture.collector.clock import utcnow  # noqa: PLC0415
    from devposture.collector.pki import fingerprint  # noqa: PLC0415
    from devposture.collector.trust import TrustError  # noqa: PLC0415

    trust = _trust(args)
    step: str = args.rollover_command
    now = utcnow()
    try:
        if step == "status":
            print(_stage_text(trust, trust.authorities(), now, args.devices))
            return 0
        if step == "stage":
            generation, cert = trust.stage_rollover(now)
            say(
                "Staged CA {generation}: {fingerprint}",
                generation=generation,
                fingerprint=fingerprint(cert),
            )
            say(
                "The collector now accepts device certificates from both CAs, and hands both\n"
                "to agents when they renew or enroll. The current CA still signs everything,\n"
                "and new installations still use the current fingerprint."
            )
        elif step == "activate":
            generation, cert = trust.activate_rollover(now, force=args.force)
            say(
                "CA {generation} now signs device certificates and the server certificate.",
                generation=generation,
            )
            say(
                "New fingerprint, for new installations (--ca-fingerprint): {fingerprint}",
                fingerprint=fingerprint(cert),
            )
            say(
                "Update your installation scripts now. Agents that renewed since staging keep\n"
                "working; device certificates from the old CA stay accepted until `finish`."
            )
        elif step == "finish":
            retired = trust.finish_rollover(now, force=args.force)
            for generation, cert in retired:
                say(
                    "CA {generation} is no longer trusted: {fingerprint}",
                    generation=generation,
                    fingerprint=fingerprint(cert),
                )
            say(
                "Its files were moved to {folder}; keep the key offline or\n"
                "delete it. Only the new CA is trusted now.",
                folder=trust.ca_dir / "retired",
            )
        else:  # pragma: no cover - argparse allows only the steps above
            return _fail(said("unknown step {step}", step=step))
    except (TrustError, OSError, ValueError) as exc:
        return _fail(exc)
    print()
    try:  # the step is done; where the rollover stands next needs the database too
        print(_stage_text(trust, trust.authorities(), now))
    except (TrustError, OSError, ValueError) as exc:
        return _fail(exc)
    return 0


HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("ca", "fingerprint"): cmd_ca_fingerprint,
    ("ca", "rollover"): cmd_ca_rollover,
    ("tls", "rotate"): cmd_tls_rotate,
}


def main(argv: list[str] | None = None) -> int:
    """Run these commands alone (`python -m collector.cli_pki ...`), as in the full CLI."""
    parser = argparse.ArgumentParser(prog=PROG)
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sub = getattr(args, f"{args.command}_command", None)
    try:
        return HANDLERS[(args.command, sub)](args)
    except ConfigError as exc:
        return _fail(Said(str(exc), as_is=True))


if __name__ == "__main__":
    sys.exit(main())
