"""`devposture-agent`: enroll this computer, show what it would report, send a report, run as
a service.

Every command reads the agent's settings first (`agent.settings`: the command line, then
`DEVPOSTURE_AGENT_*` variables, then agent.toml, then the defaults), and refuses a bad one
before doing anything. Errors name the problem and the fix, and exit non-zero. `once` exits 0
only when the collector has acknowledged the report and answered every one queued before it,
and otherwise 1, saying why on standard error (the report kept on disk, or acknowledged with the
rest left for the next round), so an installer or a scheduler can trust its exit code.
"""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import io
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent import __version__, public_status, service, transport
from devposture.agent.collect import build_report
from devposture.agent.deliver import (
    AgentWork,
    collect_and_deliver,
    open_outbox,
    readdress_queue,
    utcnow,
)
from devposture.agent.employee.company_time import company_zone, stamp
from devposture.agent.host import Host, LiveHost
from devposture.agent.host.bundle import BundleError, BundleHost, RecordingHost
from devposture.agent.host.command_cache import CommandCache
from devposture.agent.install_setup import (
    INSTALLERS,
    Setup,
    SetupRequest,
    append_log,
    cleanup,
)
from devposture.agent.notify.notifier import Notifier, live_sender
from devposture.agent.pipe_output import silence_stdout, write_out
from devposture.agent.probes import host_facts
from devposture.agent.probes.commands import is_declared
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.renewal import Outcome, ensure_fresh_certificate
from devposture.agent.service import DEFAULT_INTERVAL, Schedule
from devposture.agent.service_manager import ServiceManager, stop_on_signals
from devposture.agent.sessions import SessionLog
from devposture.agent.settings import (
    ENV,
    KEYS,
    ConfigError,
    Overrides,
    Settings,
    default_config_file,
    default_enrollment_file,
    default_log_file,
)
from devposture.agent.settings import load as load_settings
from devposture.agent.state import (
    AgentState,
    StateError,
    platform_public_dir,
    platform_state_dir,
)
from devposture.agent.status import (
    EXIT_COMPLIANT,
    EXIT_FAILING,
    EXIT_NOT_JUDGED,
    View,
    collector_heading,
    exit_code,
    local_verdicts,
    render_delivery,
    render_status,
)
from devposture.agent.watch import DEFAULT_BACKUP_SETTLE, DEFAULT_NETWORK_INTERVAL
from devposture.log_format import FORMATS, LEVELS, configure
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import looks_like_value
from devposture.policy.catalogs import Lang
from devposture.policy.cli_help import localize
from devposture.policy.cli_messages import (
    Said,
    Worded,
    error_line,
    option_error,
    reader_language,
    said,
    say,
    told,
    told_in,
)
from devposture.policy.os_errors import os_error
from devposture.v1 import devposture_pb2 as pb

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PROG = "devposture-agent"
# `status`'s epilog; its codes are filled in when the parser is put into the reader's language.
STATUS_EXIT_CODES = """exit status:
  {compliant}  every check compliant or exempt
  {failing}  a check is failing, also while within its grace period
  {not_judged}  nothing failing, but a check cannot be told, or the company's collector has
     not judged this computer yet
  {failed}  the status could not be shown
"""
# `once`'s epilog, its codes filled in likewise.
ONCE_EXIT_CODES = """exit status:
  {ok}  the collector acknowledged this report and answered every one queued before it
  {failed}  anything else, said on standard error: the report was not acknowledged (it is kept
     on disk), or it was but sending stopped before the rest (kept on disk, sent next time)
"""
log = logging.getLogger(__name__)


class CliError(Worded):
    """A failure to report to the person at the terminal, without a traceback, in their
    language (`Worded`)."""


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="agent state folder (default: $DEVPOSTURE_AGENT_STATE, else [state] folder in"
        " agent.toml, else {state})",
    )
    parser.add_argument(
        "--public-folder", type=Path, default=None, metavar="DIR",
        help="where the service publishes what `status` shows for every user of this computer"
        " (default: $DEVPOSTURE_AGENT_PUBLIC_FOLDER, else [state] public_folder in agent.toml,"
        " else {public})",
    )  # fmt: skip


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name. Their default is to be absent,
    so that one given before the command is not undone by the command's own parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
        help="the agent's configuration file (default: $DEVPOSTURE_AGENT_CONFIG, else"
        " {config}; a missing default file means the defaults)",
    )  # fmt: skip
    common.add_argument(
        "--log-format", choices=FORMATS, default=argparse.SUPPRESS,
        help="text (default) or json, one object per line ([logging] format)",
    )  # fmt: skip
    common.add_argument(
        "--log-level", choices=tuple(LEVELS), default=argparse.SUPPRESS,
        help="the least important messages logged (default: info for `run`, warning for the"
        " other commands)",
    )  # fmt: skip
    common.add_argument(
        "--log-file", type=Path, default=argparse.SUPPRESS, metavar="FILE",
        help="the service's log file, rotated at 10 MB, 5 kept; - for standard error ([logging]"
        " file; default: {log_file}). Other commands log to standard error",
    )  # fmt: skip
    common.add_argument(
        "--https-proxy", default=argparse.SUPPRESS, metavar="URL",
        help="reach the collector through this HTTPS proxy, http://HOST:PORT ([network]"
        " https_proxy)",
    )  # fmt: skip
    return common


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise option_error("{value} is not a number of seconds", value=repr(text)) from None
    if not value > 0:
        raise option_error("{value}: must be more than 0 seconds", value=repr(text))
    return value


def _backup_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backup-folder",
        action="append",
        default=[],
        metavar="PATH",
        help="another folder holding WeChat/WeCom backups (repeatable; '~' is every user's"
        " home; default: $DEVPOSTURE_AGENT_BACKUP_FOLDERS, else [backups] folders)",
    )


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise option_error("{value} is not a number of megabytes", value=repr(text)) from None
    if not value > 0:
        raise option_error("{value}: must be more than 0 MB", value=repr(text))
    return int(value * 1024 * 1024)


def _outbox_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outbox-max-mb",
        type=_megabytes,
        default=None,
        metavar="MB",
        help="most the outbox may hold while the collector is unreachable (default: the"
        " collector's setting, else the agent's default)",
    )


def localized_parser(lang: Lang) -> argparse.ArgumentParser:
    """The parser with its help and argparse's words in `lang` (the locale's: the help is
    shown before any option is read), its defaults filled in."""
    parser = build_parser()
    log_file = default_log_file()
    localize(parser, lang, {
        "state": platform_state_dir(), "public": platform_public_dir(),
        "config": default_config_file(),
        "config_folder": default_config_file().parent,
        "enrollment_file": default_enrollment_file(), "interval": f"{DEFAULT_INTERVAL:g}",
        "log_file": log_file if log_file is not None else _STANDARD_ERROR.worded(lang),
        "compliant": EXIT_COMPLIANT, "failing": EXIT_FAILING, "not_judged": EXIT_NOT_JUDGED,
        "failed": EXIT_FAILED, "ok": EXIT_OK,
    })  # fmt: skip
    return parser


_STANDARD_ERROR = said("standard error, the journal")


def build_parser() -> argparse.ArgumentParser:
    """The parser as written, in English (the catalogs' msgids: `localized_parser`)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="devposture-agent",
        parents=[common],
        description="Observe this computer's security posture (antivirus, firewall, updates,"
        " Wi-Fi and VPN, chat backups) and report the facts to your company's collector."
        " It never reads chat content.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enroll_cmd = commands.add_parser(
        "enroll", parents=[common], help="enroll this computer with a collector"
    )
    enroll_cmd.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="file holding the enrollment value (or the bare token) IT gave you; '-' reads"
        " standard input (default: the enrollment file, {enrollment_file}, which is deleted"
        " after success)",
    )
    enroll_cmd.add_argument(
        "--collector", action="append", default=[], metavar="HOST:PORT",
        help="the collector's enrollment address (repeatable: tried in turn); not needed with"
        " an enrollment value, which names it",
    )  # fmt: skip
    enroll_cmd.add_argument(
        "--ca-fingerprint",
        default=None,
        metavar="FP",
        help="the collector CA's fingerprint (sha256:...) IT gave you; not needed with an"
        " enrollment value",
    )
    enroll_cmd.add_argument("--force", action="store_true", help="replace an existing enrollment")
    _state_option(enroll_cmd)

    collect_cmd = commands.add_parser(
        "collect", parents=[common],
        help="collect a report and print it, or record a diagnostic bundle; sends nothing",
    )  # fmt: skip
    collect_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    collect_cmd.add_argument(
        "--bundle",
        type=Path,
        metavar="OUT",
        help="also write a diagnostic bundle: every command output and file sample the probes"
        " used (no chat content), for IT to replay on another machine",
    )
    collect_cmd.add_argument(
        "--replay",
        type=Path,
        metavar="BUNDLE",
        help="collect from a diagnostic bundle instead of this computer",
    )
    _backup_option(collect_cmd)
    _state_option(collect_cmd)

    once_cmd = commands.add_parser(
        "once", parents=[common], help="collect one report and send it (and any still queued)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=ONCE_EXIT_CODES,
    )  # fmt: skip
    _outbox_option(once_cmd)
    _state_option(once_cmd)
    _backup_option(once_cmd)

    renew_cmd = commands.add_parser(
        "renew",
        parents=[common],
        help="renew this computer's certificate now (the agent also does it by itself when"
        " a third of its lifetime is left)",
    )
    _state_option(renew_cmd)

    status_cmd = commands.add_parser(
        "status",
        parents=[common],
        help="show this computer's compliance with each clause, and what to do (in the"
        " computer's language, Chinese or English)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=STATUS_EXIT_CODES,
    )
    status_cmd.add_argument(
        "--local", action="store_true", help="check now on this computer instead of showing"
        " the collector's last judgment",
    )  # fmt: skip
    _state_option(status_cmd)
    _backup_option(status_cmd)

    config_cmd = commands.add_parser(
        "config", parents=[common],
        help="check agent.toml and show every setting in force and where it comes from",
    )  # fmt: skip
    _state_option(config_cmd)
    _backup_option(config_cmd)

    run_cmd = commands.add_parser(
        "run",
        parents=[common],
        help="run as a service: enroll with the enrollment file if not enrolled yet, then"
        " report at start-up, every --interval seconds, and right away when the network"
        " changes or a new chat backup appears; stops on SIGTERM",
    )
    _run_options(run_cmd)
    service_cmd = commands.add_parser(
        "service", parents=[common],
        help="Windows only: the service's entry point, started by Windows' service manager"
        " (`sc start devposture-agent`); the same work as `run`",
    )  # fmt: skip
    _run_options(service_cmd)
    _setup_commands(commands, common)
    return parser


def _setup_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    setup_cmd = commands.add_parser(
        "setup", parents=[common],
        help="configure the agent on this computer, as installers do (the MSI, a Jamf or Intune"
        " script): set agent.toml's collector keys, put the enrollment value in place, make the"
        " configuration folder private; an empty value is not given",
    )  # fmt: skip
    setup_cmd.add_argument(
        "--installer", choices=INSTALLERS, default="script",
        help="who runs it (msi: its messages name the MSI's properties, and go to"
        " logs/setup.log too)",
    )  # fmt: skip
    setup_cmd.add_argument(
        "--collector", default="", metavar="HOST:PORT[,HOST:PORT]",
        help="the collector's enrollment addresses ([collector] addresses)",
    )  # fmt: skip
    setup_cmd.add_argument(
        "--enrollment-file", default="", metavar="FILE",
        help="a file holding the enrollment value (`token create --bundle`): copied, private,"
        " to where the service reads it at its first start; the value itself is never an"
        " argument",
    )  # fmt: skip
    setup_cmd.add_argument(
        "--ca-fingerprint", default="", metavar="FP",
        help="the collector CA's fingerprint, sha256:… ([collector] ca_fingerprint)",
    )  # fmt: skip
    setup_cmd.add_argument(
        "--state", default="", metavar="DIR",
        help="the agent's state folder, when not the default ([state] folder)",
    )  # fmt: skip
    setup_cmd.add_argument(
        "--config-folder", type=Path, default=None, metavar="DIR",
        help="where agent.toml goes (default: {config_folder}); the service reads it there only"
        " when --config names it",
    )  # fmt: skip
    cleanup_cmd = commands.add_parser(
        "cleanup", parents=[common],
        help="what uninstalling runs: keeps the state (the device's identity, unsent reports)"
        " unless --purge=1",
    )  # fmt: skip
    cleanup_cmd.add_argument("--installer", choices=INSTALLERS, default="script")
    cleanup_cmd.add_argument(
        "--purge", default="", metavar="1",
        help="1: delete the configuration and state folders too (the MSI's PURGE property);"
        " anything else keeps them, and says so",
    )  # fmt: skip
    cleanup_cmd.add_argument("--config-folder", type=Path, default=None, metavar="DIR")
    cleanup_cmd.add_argument(
        "--state", type=Path, default=None, metavar="DIR",
        help="the state folder to delete when agent.toml names none (default: the system's)",
    )  # fmt: skip


def _run_options(run_cmd: argparse.ArgumentParser) -> None:
    run_cmd.add_argument(
        "--interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds between periodic reports (default: the policy's interval, or"
        " {interval} before the collector has sent one)",
    )
    run_cmd.add_argument(
        "--network-interval",
        type=_seconds,
        default=DEFAULT_NETWORK_INTERVAL,
        metavar="SECONDS",
        help="how often to look for a network change (default: %(default)g)",
    )
    run_cmd.add_argument(
        "--backup-settle",
        type=_seconds,
        default=DEFAULT_BACKUP_SETTLE,
        metavar="SECONDS",
        help="quiet time after backup files change before reporting (default: %(default)g)",
    )
    run_cmd.add_argument(
        "--enrollment-file", type=Path, default=None, metavar="FILE",
        help="where IT puts the enrollment value, used at the first start and then deleted"
        " (default: $DEVPOSTURE_AGENT_ENROLLMENT_FILE, else [enrollment] file in agent.toml,"
        " else {enrollment_file})",
    )  # fmt: skip
    run_cmd.add_argument(
        "--enrollment-check", type=_seconds, default=None, metavar="SECONDS",
        help="while not enrolled, how often to look at the enrollment file (default: 60)",
    )  # fmt: skip
    _outbox_option(run_cmd)
    _state_option(run_cmd)
    _backup_option(run_cmd)


def overrides(args: argparse.Namespace) -> Overrides:
    """What the command line says about the settings (agent.settings)."""
    return Overrides(
        config=getattr(args, "config", None),
        state=getattr(args, "state", None),
        public_folder=getattr(args, "public_folder", None),
        collectors=tuple(getattr(args, "collector", None) or ()),
        ca_fingerprint=getattr(args, "ca_fingerprint", None),
        enrollment_file=getattr(args, "enrollment_file", None),
        log_format=getattr(args, "log_format", None),
        log_level=getattr(args, "log_level", None),
        log_file=getattr(args, "log_file", None),
        https_proxy=getattr(args, "https_proxy", None),
        backup_folders=tuple(getattr(args, "backup_folder", None) or ()),
    )


def probe_config(state: AgentState, folders: tuple[str, ...] = ()) -> ProbeConfig:
    """Probe settings: from the configuration the collector handed out (the policy's Wi-Fi
    rules, backup folders and hash key), plus the agent's own backup folders (--backup-folder,
    $DEVPOSTURE_AGENT_BACKUP_FOLDERS or [backups] folders). Before the first one, the device
    hashes private network names with its own key."""
    if not state.is_enrolled():
        return ProbeConfig(backup_folders=folders)
    config = state.load_config()
    if config is None:
        return ProbeConfig(backup_folders=folders, network_hash_key=state.network_hash_key())
    return ProbeConfig(
        backup_folders=(*config.backup_folders, *folders),
        trusted_networks=tuple(config.trusted_networks),
        public_network_patterns=tuple(config.public_network_patterns),
        network_hash_key=config.network_hash_key or state.network_hash_key(),
        time_zone=config.time_zone,
    )


def live_host(state: AgentState) -> LiveHost:
    """The real computer, running only the probes' declared commands (agent/probes/commands.py),
    with costly command outputs cached in the state folder if enrolled."""
    cache = CommandCache(state.command_cache_path) if state.is_enrolled() else None
    return LiveHost(cache, declared=is_declared)


def _exists(path: Path) -> bool:
    """Whether `path` names a file; False, not an error, for a text no file can be named
    (a value is longer than a file name may be)."""
    try:
        return path.exists()
    except OSError:
        return False


def _read_token(path: Path) -> str:
    """The text of --token-file (a value or a bare token), or of standard input for '-'."""
    typed = str(path)
    if (typed.startswith("dpt_") or looks_like_value(typed)) and not _exists(path):
        # The secret itself where its file goes: never echo it, and say what it exposed.
        shown = said(" (token {token})", token=typed.split("_")[1][:16]) if typed.startswith(
            "dpt_") else ""  # fmt: skip
        raise CliError(
            "--token-file takes the path of a file holding the token, not the token{shown}."
            " Typed on a command line, it can be seen by other users of this computer and"
            " stays in the shell's history: ask IT to revoke it (`devposture-collector token"
            " revoke ID`) and to give you a new one, saved in a file (or use --token-file -"
            " and paste it)",
            shown=shown,
        )
    try:
        text = sys.stdin.read() if typed == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError("cannot read the token file {path}: {problem}; check the path",
                       path=path, problem=os_error(exc, exc.strerror)) from exc  # fmt: skip
    token = text.strip()
    if not token:
        raise CliError("the token file {path} is empty: put the token IT gave you in it",
                       path=path)  # fmt: skip
    return token


def cmd_enroll(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    """Enroll now, from --token-file, or from the enrollment file as the service would (and
    then delete it, as the service would)."""
    if state.is_enrolled() and not args.force:
        current = state.load()
        raise CliError(
            "this computer is already enrolled as device {device_id} with {collector}; add"
            " --force to enroll again",
            device_id=current.device_id, collector=current.collector_host,
        )
    # Enrolling needs the cryptography package (the key, the request); the service does not,
    # and keeps ~9 MB less resident for not importing it (bench/agent_service_idle.py).
    from devposture.agent.enroll import EnrollError, enroll_first  # noqa: PLC0415
    from devposture.agent.first_start import (  # noqa: PLC0415
        FileRefused,
        PlanError,
        plan,
        read_secret_file,
        remove_used_file,
    )

    secret = None
    if args.token_file is None:
        where = settings.enrollment_file
        try:
            secret = read_secret_file(where)
        except FileRefused as exc:
            raise CliError.as_is(exc) from exc
        if secret is None:
            raise CliError(
                "there is no enrollment file at {path}: give --token-file FILE (the file"
                " holding what IT gave you), or put the value there",
                path=where,
            )
        text = secret.text
    else:
        where, text = args.token_file, _read_token(args.token_file)
    try:
        found = plan(text, str(where), settings.collectors, settings.ca_fingerprint)
        enrollment = enroll_first(
            state, found.addresses, found.token, found.ca_fingerprint,
            host_facts(LiveHost(declared=is_declared)),
        )
    except (PlanError, EnrollError) as exc:
        raise CliError.as_is(exc) from exc
    if secret is not None:
        remove_used_file(settings.enrollment_file, secret)
    address = CollectorAddress(enrollment.collector_host, enrollment.enroll_port)
    say("Enrolled: this computer is device {device_id}", device_id=enrollment.device_id)
    say("Reports go to {target} over mutual TLS.", target=address.target(enrollment.report_port))
    moved = readdress_queue(state, enrollment.device_id)
    if moved:
        say("{count} report(s) collected before and not yet sent will go with this enrollment.",
            count=moved)  # fmt: skip
    return EXIT_OK


def cmd_collect(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    if not args.json and args.bundle is None:
        raise CliError("say what to produce: --json (print the report), --bundle OUT, or both")
    if args.replay is not None and args.bundle is not None:
        raise CliError("--replay reads a bundle; it cannot also record one (drop --bundle)")
    config = probe_config(state, settings.backup_folders)
    if args.replay is not None:
        try:
            bundle = BundleHost.load(args.replay)
        except BundleError as exc:
            raise CliError.as_is(exc) from exc
        host: Host = bundle
        device_id = ""
        if bundle.probe_config is not None:
            # The recording's own backup folders and Wi-Fi rules: the same facts anywhere.
            config = bundle.probe_config
        else:
            say("This bundle (format 1) does not record the probe configuration: replaying"
                " with this computer's backup folders and Wi-Fi rules", stream=sys.stderr)
    else:
        host = live_host(state)
        device_id = state.load().device_id if state.is_enrolled() else ""
    recorder = RecordingHost(host) if args.bundle is not None else None
    report = build_report(recorder or host, config, device_id)
    if args.replay is None and state.is_enrolled():
        SessionLog(state.wifi_sessions_path, config.network_hash_key).apply(report, save=False)
    if recorder is not None:
        try:
            recorder.save(args.bundle, __version__, config)
        except OSError as exc:
            raise CliError("cannot write the bundle to {path}: {problem}", path=args.bundle,
                           problem=os_error(exc, exc.strerror)) from exc  # fmt: skip
        say("Diagnostic bundle written to {path}", path=args.bundle, stream=sys.stderr)
    if args.json:
        # Imported here: the service never prints JSON, and would keep protobuf's text and
        # JSON formats resident for nothing (tests/agent/test_service_imports.py).
        from google.protobuf import json_format  # noqa: PLC0415

        print(json_format.MessageToJson(report, indent=2, ensure_ascii=False))
    return EXIT_OK


# Why a drain stopped without a failed call, in the reader's language (a call's failure is
# the collector's or gRPC's text, shown as it is).
_STOPPED_WORDS = {
    transport.STOPPING: said("the agent is stopping"),
    transport.NONE_ANSWERED: said("the collector answered for none of the reports sent"),
    transport.PART_ANSWERED: said("the collector answered for only part of the batch"),
    transport.OUTBOX_STUCK: said("the outbox could not remove delivered reports"),
}


def cmd_once(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    enrollment = state.load()
    done = collect_and_deliver(
        state, enrollment, live_host(state), probe_config(state, settings.backup_folders),
        pb.COLLECTION_TRIGGER_MANUAL, outbox_max_bytes=args.outbox_max_mb,
    )  # fmt: skip
    report, result = done.report, done.result
    for report_id in result.set_aside:
        say("report {report_id} was refused by the collector and set aside",
            report_id=report_id, stream=sys.stderr)
    if done.acknowledged:
        others = len(result.acknowledged) + len(result.duplicates) - 1
        if others:
            say("Report {report_id} acknowledged by the collector (and {others} queued"
                " earlier).", report_id=report.report_id, others=others)
        else:
            say("Report {report_id} acknowledged by the collector.", report_id=report.report_id)
        if result.stopped_by is None:
            return EXIT_OK
        # This report got through, but not everything that waits did: an installer or a
        # scheduler proving the agent works reads a failure, and must read why (it read none).
        problem = _STOPPED_WORDS.get(result.stopped_by, result.stopped_by)
        left = _waiting(state)
        if left is None:
            raise CliError(
                "sending stopped after report {report_id} was acknowledged: {problem}. The"
                " reports left in the outbox stay on disk, to be sent next time (the collector"
                " stores each only once)",
                report_id=report.report_id, problem=problem,
            )  # fmt: skip
        raise CliError(
            "sending stopped after report {report_id} was acknowledged: {problem}. The outbox"
            " keeps {count} report(s) on disk, to be sent next time (the collector stores each"
            " only once)",
            report_id=report.report_id, problem=problem, count=left,
        )  # fmt: skip
    refused = done.device_refused
    if refused is not None:
        command = (
            "devposture-agent enroll --force --collector"
            f" {CollectorAddress(enrollment.collector_host, enrollment.enroll_port).target()}"
            f" --ca-fingerprint {enrollment.ca_fingerprint} --token-file NEW-TOKEN-FILE"
            + (f" --state {args.state}" if args.state is not None else "")
        )
        raise CliError(
            "the collector refuses this device: {refused}.\nThe report was not accepted and"
            " will not be, nor any other from this device: sending again does not help. Ask"
            " IT; if they agree this computer should report again, enroll it again with a new"
            " token from them: {command}",
            refused=refused, command=command,
        )
    if result.stopped_by is not None:
        advice = _tls_advice(result.stopped_by)
        if advice is not None:  # sending again does not help until it is dealt with
            raise CliError(
                "the collector did not acknowledge the report ({problem}); it is kept on disk."
                " {advice}",
                problem=result.stopped_by, advice=advice,
            )
        raise CliError(
            "the collector did not acknowledge the report ({problem}); it is kept on disk and"
            " will be sent next time",
            problem=_STOPPED_WORDS.get(result.stopped_by, result.stopped_by),
        )
    raise CliError(
        "the collector refused the report; it was set aside (see the outbox's rejected/ folder)"
    )


def _waiting(state: AgentState) -> int | None:
    """How many reports the outbox holds after a drain that stopped (those not sent, and those
    delivered that it could not remove); None when the outbox cannot be read (the sentence
    then names no number rather than a wrong one)."""
    try:
        return int(open_outbox(state).stats().pending_reports)
    except OSError:
        return None


def _tls_advice(stopped_by: str) -> Said | None:
    """What to do when the collector's certificate did not verify (gRPC's words for it in
    the status it gave): a clock behind makes a new certificate "not yet valid"; a collector
    set up again (a new CA) or another server is not signed by the CA pinned at enrollment.
    None for anything else: a network problem that clears by itself."""
    if "CERTIFICATE_VERIFY_FAILED" not in stopped_by and "certificate verify failed" not in (
        stopped_by.lower()
    ):
        return None
    if "not yet valid" in stopped_by:
        return said("This computer's clock is behind: the collector's certificate is not"
                    " valid yet by it. Set the date and time; the report goes with the next"
                    " round.")  # fmt: skip
    if "expired" in stopped_by:
        return said("The collector's certificate has expired, or this computer's clock is"
                    " far ahead: check the date and time, and tell IT.")  # fmt: skip
    return said("The collector at this address does not show a certificate of the CA this"
                " computer pinned at enrollment (it was set up again, or this is another"
                " server): ask IT; it may need enrolling again (`devposture-agent enroll"
                " --force`).")  # fmt: skip


# What `renew` did, inside its sentence, in the reader's language.
_RENEWAL_WORDS = {
    Outcome.RENEWED: said("renewed"), Outcome.REESTABLISHED: said("reestablished"),
    Outcome.NOT_DUE: said("not due"), Outcome.BACKING_OFF: said("backing off"),
}


def cmd_renew(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    enrollment = state.load()
    result = ensure_fresh_certificate(state, enrollment, utcnow(), force=True)
    if result.outcome is Outcome.FAILED:
        raise CliError(
            "the certificate was not renewed ({problem}); the current one stays in use",
            problem=result.detail,
        )
    zone = company_zone(state.company_time_zone())
    until = stamp(result.expires_at, zone) if result.expires_at else "?"
    say("Certificate {outcome} ({detail}); valid until {until}.",
        outcome=_RENEWAL_WORDS.get(result.outcome, result.outcome.value), detail=result.detail,
        until=until)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    """The collector's last judgment (or a local check), from the private state when this
    user may read it (root, an administrator), else from the copy the service publishes for
    every user (agent.public_status): the same lines either way, and not a word about root."""
    try:
        shown: public_status.Shown | None = public_status.of_state(state)
        private = True
    except PermissionError:
        shown, private = _published(state, local=args.local), False
    view = View.here(utcnow(), shown.time_zone if shown is not None else "")
    ack = shown.judged if shown is not None and not args.local else None
    if ack is not None and ack.verdicts:
        verdicts, judged = list(ack.verdicts), True
        text = render_status(verdicts, collector_heading(ack, view), view)
    else:
        report = _local_report(state, settings, private)
        verdicts = local_verdicts(report, report.collected_at.ToDatetime(dt.UTC))
        judged = False
        heading = view.words.local_check
        if not private:
            heading += "\n" + _UNPRIVILEGED_CHECK.worded(view.lang)
        text = render_status(verdicts, heading, view)
    refusal = shown.refusal if shown is not None and not args.local else None
    if refusal is not None:  # the verdicts below are the last the collector gave, if any
        reason, at_us = refusal
        when = view.moment(Timestamp(seconds=at_us // 1_000_000))
        refused = view.words.refused if judged else view.words.refused_unjudged
        text = refused(when, reason.worded(view.lang)) + "\n\n" + text
        judged = False  # the collector judges this computer no more
    if shown is not None and shown.delivery is not None:
        delivery = render_delivery(shown.delivery, view)
        if delivery:
            text += "\n" + delivery
    write_out(text)
    return exit_code(verdicts, judged)


# Under a local check's heading when it ran without the rights the service has.
_UNPRIVILEGED_CHECK = said(
    "Checked without administrator rights: what only the agent's service can read reads"
    " \"cannot tell\" here, and the company's Wi-Fi rules were not used. Without --local, status"
    " shows the company server's judgment."
)


def _published(state: AgentState, *, local: bool) -> public_status.Shown | None:
    """The service's public copy, for a user who may not read the private state. A local
    check goes on without it (None: no time zone, no delivery counts); else its absence is
    the error, saying what to do."""
    try:
        return public_status.read_published(state.public_dir or platform_public_dir())
    except public_status.PublicStatusError:
        if local:
            return None
        raise


def _local_report(state: AgentState, settings: Settings, private: bool) -> pb.PostureReport:
    """A report collected now for a local check. A user who may not read the private state
    collects as an agent not yet enrolled does: no command cache (it lives there), agent.toml's
    backup folders only, no Wi-Fi rules (the collector's configuration is private: it holds
    the key for hashing network names), each probe reading what this user may."""
    if private:
        return build_report(live_host(state), probe_config(state, settings.backup_folders))
    return build_report(LiveHost(declared=is_declared), ProbeConfig(settings.backup_folders))


# Where a setting came from, as `config` lists it: the fixed ones in the reader's language
# (a file's path or an option's name stays as it is).
_ORIGIN_WORDS = {"default": said("default"), "command line": said("command line")}


def cmd_config(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    """Every setting in force and where it came from; reaching here means agent.toml is
    good (a bad one was refused before any command ran)."""
    none = said("(none)")
    shown: dict[str, object] = {
        "collectors": ", ".join(a.target() for a in settings.collectors) or none,
        "ca_fingerprint": settings.ca_fingerprint or none,
        "state": settings.state_dir,
        "public_folder": settings.public_dir,
        "enrollment_file": settings.enrollment_file,
        "log_format": settings.log_format,
        "log_level": settings.log_level or said("(info for run, warning for the other commands)"),
        "log_file": settings.log_file or default_log_file() or said("(standard error)"),
        "https_proxy": settings.https_proxy or said("(none: direct)"),
        "backup_folders": ", ".join(settings.backup_folders) or none,
    }
    if settings.config_file:
        say("configuration file: {file}", file=settings.config_file)
    else:
        say("configuration file: {file} (absent: defaults)", file=default_config_file())
    for name, value in shown.items():
        section, key = KEYS[name]
        origin = settings.origins.get(name, "default")
        say("[{section}] {key} = {value}    <- {origin} (env {variable})", section=section,
            key=key, value=value, origin=_ORIGIN_WORDS.get(origin, origin), variable=ENV[name])
    return EXIT_OK


def _first_start(
    args: argparse.Namespace, settings: Settings, state: AgentState,
    manager: ServiceManager, stop: threading.Event,
) -> bool:  # fmt: skip
    """Enroll with the enrollment file when not enrolled yet; whether the service goes on
    (False: stopped while waiting)."""
    if state.is_enrolled():
        if settings.enrollment_file.exists():
            log.warning(
                "already enrolled, but %s is still there: delete it, it holds an enrollment"
                " secret (to enroll again, run `devposture-agent enroll --force`)",
                settings.enrollment_file,
            )  # fmt: skip
        return True
    # Imported only when needed: enrolling loads the cryptography package (see cmd_enroll).
    from devposture.agent.first_start import CHECK_SECONDS, FirstStart  # noqa: PLC0415

    first = FirstStart(
        state, settings.enrollment_file, settings.collectors, settings.ca_fingerprint,
        manager, stop, lambda: host_facts(LiveHost(declared=is_declared)),
        check_seconds=args.enrollment_check or CHECK_SECONDS,
    )  # fmt: skip
    return first.run() is not None


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# The environment variable naming the pipe (`restart_without_enrollment_code`) that holds the
# stop signals taken while the service started itself afresh, and how long that waits for a
# signal its watcher has just read.
STOP_PIPE = "DEVPOSTURE_STOPS_DURING_RESTART"
RESTART_SETTLE_SECONDS = 0.05


def restart_without_enrollment_code(stop: threading.Event) -> None:
    """Start this service again in the same process (same PID, so systemd sees no restart),
    once a first-start enrollment is done. Enrolling loaded the cryptography package and its
    Rust library (about 14 MB resident) that the service never needs again; the program
    started afresh runs without them (tests/agent/test_service_imports.py). PyInstaller's
    launcher is told to start as new, not as a child of itself."""
    sys.stdout.flush()
    sys.stderr.flush()
    if getattr(sys, "frozen", False):
        argv = [sys.executable, *sys.argv[1:]]
        env = {**os.environ, "PYINSTALLER_RESET_ENVIRONMENT": "1"}
    else:
        argv = [sys.executable, *sys.orig_argv[1:]]
        env = dict(os.environ)
    log.info("enrolled: starting the service afresh, without the enrollment code")
    # A stop asked for from here must reach the new program; one asked for before has set
    # `stop`, which exec would forget (the service then stopped only at its next round, an
    # hour on: clean-clone CI runs' SIGTERMs, sent as the enrollment file went, landed
    # here twice). Blocking the signals in this thread keeps one it would take pending across
    # exec, but another thread (the signals' watcher, the file watcher) may take it: then the
    # interpreter writes its number to the wakeup fd. So from here that is a pipe whose
    # reading end the new program inherits and reads (`stop_asked_during_restart`); one the
    # watcher read just before is set in `stop` within moments.
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if stop.wait(RESTART_SETTLE_SECONDS) or _stops_in(reader):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return
    os.set_inheritable(reader, True)
    env[STOP_PIPE] = str(reader)
    os.execve(sys.executable, argv, env)  # noqa: S606 (this same program, by its own path)


def _stops_in(reader: int) -> bool:
    """Whether a stop signal's number waits in the pipe `reader` (read without waiting)."""
    blocking = os.get_blocking(reader)
    os.set_blocking(reader, False)
    try:
        data = os.read(reader, 64)
    except BlockingIOError:
        data = b""
    finally:
        os.set_blocking(reader, blocking)
    return bool({int(s) for s in STOP_SIGNALS} & set(data))


def stop_asked_during_restart() -> bool:
    """In a program started afresh after enrolling: whether a stop signal came while it was
    (the pipe `restart_without_enrollment_code` left it, then closed)."""
    named = os.environ.pop(STOP_PIPE, None)
    if named is None:
        return False
    try:
        reader = int(named)
        try:
            return _stops_in(reader)
        finally:
            os.close(reader)
    except (ValueError, OSError):
        return False


def cmd_run(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    manager = ServiceManager()
    stop = threading.Event()
    stop_on_signals(stop, manager)
    if os.name == "posix":
        if stop_asked_during_restart():
            manager.stopping()
            stop.set()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by a restart, if any
    return run_service(args, settings, state, manager, stop)


def cmd_service(args: argparse.Namespace, settings: Settings, state: AgentState) -> int:
    """Windows' service control manager's entry point: `run`'s work, stopped through the
    control handler (agent.windows.service_control) instead of signals."""
    if sys.platform == "win32":
        from devposture.agent.windows.install_commands import SERVICE_NAME  # noqa: PLC0415
        from devposture.agent.windows.service_host import (  # noqa: PLC0415
            NotStartedByWindows,
            serve,
        )

        try:
            return serve(SERVICE_NAME, lambda manager, stop: run_service(
                args, settings, state, manager, stop))  # fmt: skip
        except NotStartedByWindows:
            raise CliError(
                "`service` is started by Windows' service manager: run `sc start"
                " devposture-agent` (as an administrator), or `devposture-agent run` to try the"
                " service in this console"
            ) from None
    raise CliError(
        "`service` is the Windows service's entry point; on Linux and macOS the service"
        " (systemd, launchd) runs `devposture-agent run`"
    )


def run_service(
    args: argparse.Namespace, settings: Settings, state: AgentState,
    manager: ServiceManager, stop: threading.Event,
) -> int:  # fmt: skip
    """The service's work, under whichever service manager started it. What `status` shows
    is published for every user first: after a reboot the runtime folder is empty, after an
    upgrade its format may be new, and a computer not enrolled yet says so."""
    public_status.publish(state)
    enrolled_before = state.is_enrolled()
    if not _first_start(args, settings, state, manager, stop):
        log.info("devposture agent stopped")
        return EXIT_OK
    if not enrolled_before and os.name == "posix":  # Windows has no exec in place
        restart_without_enrollment_code(stop)
        log.info("devposture agent stopped")  # a stop came first: no restart
        return EXIT_OK
    enrollment = state.load()
    host = live_host(state)
    folders = settings.backup_folders
    work = AgentWork(
        state, enrollment, host, lambda: probe_config(state, folders),
        outbox_max_bytes=args.outbox_max_mb, interval=args.interval,
        default_interval=DEFAULT_INTERVAL, notifier=Notifier(state, live_sender()),
    )  # fmt: skip
    schedule = Schedule(args.network_interval, args.backup_settle)
    log.info(
        "devposture agent running as device %s; collecting every %g s and on network or"
        " backup changes", enrollment.device_id, work.interval(),
    )  # fmt: skip
    service.run(
        host, probe_config(state, folders), work, stop, schedule, manager=manager,
        name=f"enrolled as {enrollment.device_id}",
    )  # fmt: skip
    log.info("devposture agent stopped")
    return EXIT_OK


SERVICE_COMMANDS = ("run", "service")


def service_log_file(args: argparse.Namespace, settings: Settings) -> Path | None:
    """The rotated file the service logs to (None: standard error). Only the service: a
    command run by a person answers on the terminal."""
    if args.command not in SERVICE_COMMANDS:
        return None
    chosen = settings.log_file or default_log_file()
    return None if chosen is None or str(chosen) == "-" else chosen


def cmd_setup(args: argparse.Namespace) -> int:
    """`setup` and `cleanup` read no settings first: they write them, and an uninstall must
    not fail on a broken agent.toml."""
    folder = args.config_folder or default_config_file().parent
    try:
        if args.command == "setup":
            request = SetupRequest(
                collectors=args.collector, enrollment_file=args.enrollment_file,
                ca_fingerprint=args.ca_fingerprint,
                https_proxy=getattr(args, "https_proxy", "") or "", state=args.state,
                installer=args.installer,
            )  # fmt: skip
            lines = Setup(request, folder).run()
        else:
            lines = cleanup(args.purge == "1", folder, state_default=args.state,
                           installer=args.installer)  # fmt: skip
            if args.purge not in ("", "0", "1"):
                lines.insert(0, told("--purge={value} is not 1: nothing deleted",
                                     value=repr(args.purge)))
    except Exception as exc:  # an installer keeps no output: every failure goes to setup.log
        if isinstance(exc, Worded):
            problem = exc.said
        elif isinstance(exc, OSError):
            problem = said("{path}: {problem}; run it as root (an administrator on Windows)",
                           path=exc.filename, problem=os_error(exc, exc.strerror))  # fmt: skip
        else:
            problem = _unexpected(exc)
        # setup.log keeps the English: whoever reads it (IT, a vendor) reads English.
        message = str(problem)
        sys.stderr.write(error_line(f"{PROG} {args.command}", problem, reader_language()))
        if args.installer != "script":
            append_log(folder, [f"{args.command} ({args.installer}) failed: {message}"])
        return EXIT_FAILED
    lang = reader_language()
    for line in lines:  # in the reader's language; setup.log keeps the English (`str`)
        print(told_in(line, lang))
    # After a purge the folder is gone: writing a log would make it again, with the system's
    # default permissions.
    if args.installer != "script" and folder.exists():
        append_log(folder, [f"{args.command} ({args.installer}): {line}" for line in lines])
    return EXIT_OK


def utf8_when_redirected(stream: TextIO, platform: str = sys.platform) -> None:
    """On Windows, output sent to a file or a pipe (`collect --json > report.json`, a
    management tool reading it) is written in the ANSI code page, which has no Chinese on an
    English Windows and fails on a report naming 微信; a console gets Unicode either way.
    Redirected output is UTF-8 there, as everywhere else."""
    if platform == "win32" and not stream.isatty() and isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")


def escaped_when_unencodable(stream: TextIO) -> None:
    """A stream whose encoding cannot write every character (ASCII under the C locale without
    Python's UTF-8 coercion, as a frozen program or PYTHONUTF8=0 may run; a Latin-1 locale)
    writes those it cannot as escapes ("\\u516c"): a reason naming the firewall profile
    "公用" or a hotspot "星巴克免费WiFi" made `status` fail with UnicodeEncodeError and show
    nothing. A UTF-8 stream is left as it is."""
    if not isinstance(stream, io.TextIOWrapper) or not stream.encoding:
        return
    if not codecs.lookup(stream.encoding).name.startswith("utf"):
        stream.reconfigure(errors="backslashreplace")


def _unexpected(exc: Exception) -> Said:
    return said("unexpected {kind}: {problem} (please report it to IT; -v shows the details)",
                kind=type(exc).__name__, problem=exc)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    utf8_when_redirected(sys.stdout)
    utf8_when_redirected(sys.stderr)
    escaped_when_unencodable(sys.stdout)
    lang = reader_language()
    try:
        return _main(argv, lang)
    except KeyboardInterrupt:  # Ctrl-C: one line, as the shell's code for it (128 + SIGINT),
        sys.stderr.write(error_line(PROG, said("interrupted (Ctrl-C)"), lang))  # as the
        return 130  # collector's command line ends: silence read as a command that finished


def _main(argv: list[str] | None, lang: Lang) -> int:
    args = localized_parser(lang).parse_args(argv)
    if args.command in ("setup", "cleanup"):
        return cmd_setup(args)
    try:
        settings = load_settings(overrides(args))
    except ConfigError as exc:
        sys.stderr.write(error_line(PROG, exc, lang))
        return EXIT_FAILED
    level = "debug" if args.verbose else settings.log_level
    level = level or ("info" if args.command in SERVICE_COMMANDS else "warning")
    # To stderr, the service's journal; secrets redacted in every format.
    log_file = service_log_file(args, settings)
    try:
        configure(settings.log_format, level=LEVELS[level], file=log_file)
    except OSError as exc:
        sys.stderr.write(error_line(PROG, said(
            "cannot write the log file {path} ({problem}): make its folder writable by the"
            " service, or name another with [logging] file (--log-file; - for standard error)",
            path=log_file, problem=os_error(exc, exc.strerror),
        ), lang))  # fmt: skip
        return EXIT_FAILED
    state = AgentState(settings.state_dir, proxy=settings.https_proxy,
                       public_dir=settings.public_dir)  # fmt: skip
    handlers = {
        "enroll": cmd_enroll, "collect": cmd_collect, "once": cmd_once, "run": cmd_run,
        "status": cmd_status, "renew": cmd_renew, "config": cmd_config,
        "service": cmd_service,
    }  # fmt: skip
    try:
        return handlers[args.command](args, settings, state)
    except (CliError, StateError, public_status.PublicStatusError) as exc:
        sys.stderr.write(error_line(PROG, exc, lang))
        return EXIT_FAILED
    except BrokenPipeError:  # the reader of the output went away: nothing more to say
        silence_stdout()
        return EXIT_FAILED
    except PermissionError as exc:
        if args.command in SERVICE_COMMANDS:
            raise
        sys.stderr.write(error_line(PROG, _permission_said(exc), lang))
        return EXIT_FAILED
    except Exception as exc:
        if args.command in SERVICE_COMMANDS:
            raise  # the journal keeps the service's traceback
        log.debug("unexpected error", exc_info=True)  # shown with -v
        sys.stderr.write(error_line(PROG, _unexpected(exc), lang))
        return EXIT_FAILED


def _permission_said(exc: PermissionError) -> Said:
    """What to do about a file the agent may not touch. Usually the state folder is the
    service's own (0700) and `status` or `once` ran as another account: run it as root. But
    root, or the folder's owner, is refused only by the folder's own mode or attributes
    (chattr +i): "run it as root" was no help to them."""
    path = Path(str(exc.filename)) if exc.filename else None
    problem = os_error(exc, exc.strerror)
    privileged = hasattr(os, "geteuid") and os.geteuid() == 0
    owner = _owned_by_me(path)
    if privileged or owner:
        return said("{path}: {problem}; the folder's permissions or attributes forbid it"
                    " (check them with `ls -ld` and `lsattr -d`), or give --state a folder"
                    " you can write", path=exc.filename, problem=problem)  # fmt: skip
    return said("{path}: {problem}; run it as root (an administrator on Windows)",
                path=exc.filename, problem=problem)  # fmt: skip


def _owned_by_me(path: Path | None) -> bool:
    """Whether the nearest existing folder of `path` belongs to this process's user."""
    if path is None or not hasattr(os, "geteuid"):
        return False
    for folder in (path, *path.parents):
        try:
            return folder.stat().st_uid == os.geteuid()
        except OSError:
            continue
    return False


if __name__ == "__main__":
    sys.exit(main())
