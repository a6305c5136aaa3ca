"""`devposture-agent`: enroll this computer, show what it would report, send a report.

Errors name the problem and the fix, and exit non-zero. `once` exits 0 only when the collector
has acknowledged the report, so an installer or a scheduler can trust its exit code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from pathlib import Path

from google.protobuf import json_format

from devposture.agent import __version__, service
from devposture.agent.collect import build_report
from devposture.agent.deliver import AgentWork, collect_and_deliver, open_outbox, utcnow
from devposture.agent.host import Host, LiveHost
from devposture.agent.host.bundle import BundleError, BundleHost, RecordingHost
from devposture.agent.host.command_cache import CommandCache
from devposture.agent.probes import host_facts
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.renewal import Outcome, ensure_fresh_certificate
from devposture.agent.service import DEFAULT_INTERVAL, Schedule
from devposture.agent.sessions import SessionLog
from devposture.agent.state import AgentState, StateError, default_state_dir
from devposture.agent.status import (
    LOCAL_HEADING,
    collector_heading,
    local_verdicts,
    render_delivery,
    render_status,
)
from devposture.agent.watch import DEFAULT_BACKUP_SETTLE, DEFAULT_NETWORK_INTERVAL
from devposture.net.address import CollectorAddress, normalize_fingerprint
from devposture.v1 import devposture_pb2 as pb

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
log = logging.getLogger(__name__)


class CliError(Exception):
    """A failure to report to the person at the terminal, without a traceback."""


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help=f"agent state folder (default: $DEVPOSTURE_AGENT_STATE or {default_state_dir()})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _backup_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backup-folder",
        action="append",
        default=[],
        metavar="PATH",
        help="another folder holding WeChat/WeCom backups (repeatable; '~' is every user's home)",
    )


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megabytes") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 MB")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devposture-agent",
        description="Observe this computer's security posture (antivirus, firewall, updates,"
        " Wi-Fi and VPN, chat backups) and report the facts to your company's collector."
        " It never reads chat content.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enroll_cmd = commands.add_parser("enroll", help="enroll this computer with a collector")
    enroll_cmd.add_argument(
        "--collector", required=True, metavar="HOST:PORT", help="the collector's enrollment address"
    )
    enroll_cmd.add_argument(
        "--token-file",
        required=True,
        type=Path,
        metavar="FILE",
        help="file holding the enrollment token IT gave you ('-' reads standard input)",
    )
    enroll_cmd.add_argument(
        "--ca-fingerprint",
        required=True,
        metavar="FP",
        help="the collector CA's fingerprint (sha256:...) IT gave you",
    )
    enroll_cmd.add_argument("--force", action="store_true", help="replace an existing enrollment")
    _state_option(enroll_cmd)

    collect_cmd = commands.add_parser(
        "collect",
        help="collect a report and print it, or record a diagnostic bundle; sends nothing",
    )
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
        "once", help="collect one report and send it (and any still queued)"
    )
    _outbox_option(once_cmd)
    _state_option(once_cmd)
    _backup_option(once_cmd)

    renew_cmd = commands.add_parser(
        "renew",
        help="renew this computer's certificate now (the agent also does it by itself when"
        " a third of its lifetime is left)",
    )
    _state_option(renew_cmd)

    status_cmd = commands.add_parser(
        "status",
        help="show this computer's compliance with each clause, and what to do (中文/English)",
    )
    status_cmd.add_argument(
        "--local", action="store_true", help="check now on this computer instead of showing"
        " the collector's last judgment",
    )  # fmt: skip
    _state_option(status_cmd)

    run_cmd = commands.add_parser(
        "run",
        help="run as a service: report at start-up, every --interval seconds, and right away"
        " when the network changes or a new chat backup appears; stops on SIGTERM",
    )
    run_cmd.add_argument(
        "--interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds between periodic reports (default: the policy's interval, or"
        f" {DEFAULT_INTERVAL:g} before the collector has sent one)",
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
    _outbox_option(run_cmd)
    _state_option(run_cmd)
    _backup_option(run_cmd)
    return parser


def probe_config(state: AgentState, args: argparse.Namespace | None = None) -> ProbeConfig:
    """Probe settings: from the configuration the collector handed out (the policy's Wi-Fi
    rules, backup folders and hash key), plus any --backup-folder. Before the first one, the
    device hashes private network names with its own key."""
    folders = tuple(getattr(args, "backup_folder", None) or ())
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
    )


def live_host(state: AgentState) -> LiveHost:
    """The real computer, with costly command outputs cached in the state folder if enrolled."""
    if state.is_enrolled():
        return LiveHost(CommandCache(state.command_cache_path))
    return LiveHost()


def _read_token(path: Path) -> str:
    if str(path).startswith("dpt_") and not path.exists():
        # The token itself where its file goes: never echo it, and say what it exposed.
        raise CliError(
            f"--token-file takes the path of a file holding the token, not the token (token"
            f" {str(path).split('_')[1][:16]}). Typed on a command line, it can be seen by other"
            " users of this computer and stays in the shell's history: ask IT to revoke it"
            " (`devposture-collector token revoke ID`) and to give you a new one, saved in a"
            " file (or use --token-file - and paste it)"
        )
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot read the token file {path}: {exc.strerror}; check the path"
        ) from exc
    token = text.strip()
    if not token:
        raise CliError(f"the token file {path} is empty: put the token IT gave you in it")
    return token


def cmd_enroll(args: argparse.Namespace, state: AgentState) -> int:
    try:
        address = CollectorAddress.parse(args.collector)
        pin = normalize_fingerprint(args.ca_fingerprint)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if state.is_enrolled() and not args.force:
        current = state.load()
        raise CliError(
            f"this computer is already enrolled as device {current.device_id} with"
            f" {current.collector_host}; add --force to enroll again"
        )
    token = _read_token(args.token_file)
    # Enrolling needs the cryptography package (the key, the request); the service does not,
    # and keeps ~9 MB less resident for not importing it (bench/agent_service_idle.py).
    from devposture.agent.enroll import EnrollError, enroll  # noqa: PLC0415

    try:
        enrollment = enroll(state, address, token, pin, host_facts(LiveHost()))
    except EnrollError as exc:
        raise CliError(str(exc)) from exc
    print(f"Enrolled: this computer is device {enrollment.device_id}")
    print(f"Reports go to {address.target(enrollment.report_port)} over mutual TLS.")
    return EXIT_OK


def cmd_collect(args: argparse.Namespace, state: AgentState) -> int:
    if not args.json and args.bundle is None:
        raise CliError("say what to produce: --json (print the report), --bundle OUT, or both")
    if args.replay is not None and args.bundle is not None:
        raise CliError("--replay reads a bundle; it cannot also record one (drop --bundle)")
    config = probe_config(state, args)
    if args.replay is not None:
        try:
            bundle = BundleHost.load(args.replay)
        except BundleError as exc:
            raise CliError(f"{exc}") from exc
        host: Host = bundle
        device_id = ""
        if bundle.probe_config is not None:
            # The recording's own backup folders and Wi-Fi rules: the same facts anywhere.
            config = bundle.probe_config
        else:
            print(
                "This bundle (format 1) does not record the probe configuration: replaying"
                " with this computer's backup folders and Wi-Fi rules",
                file=sys.stderr,
            )
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
            raise CliError(f"cannot write the bundle to {args.bundle}: {exc.strerror}") from exc
        print(f"Diagnostic bundle written to {args.bundle}", file=sys.stderr)
    if args.json:
        print(json_format.MessageToJson(report, indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_once(args: argparse.Namespace, state: AgentState) -> int:
    enrollment = state.load()
    done = collect_and_deliver(
        state, enrollment, live_host(state), probe_config(state, args),
        pb.COLLECTION_TRIGGER_MANUAL, outbox_max_bytes=args.outbox_max_mb,
    )  # fmt: skip
    report, result = done.report, done.result
    for report_id in result.set_aside:
        print(f"report {report_id} was refused by the collector and set aside", file=sys.stderr)
    if done.acknowledged:
        others = len(result.acknowledged) + len(result.duplicates) - 1
        extra = f" (and {others} queued earlier)" if others else ""
        print(f"Report {report.report_id} acknowledged by the collector{extra}.")
        return EXIT_OK if result.stopped_by is None else EXIT_FAILED
    refused = done.device_refused
    if refused is not None:
        raise CliError(
            f"the collector refuses this device: {refused}.\nThe report was not accepted and"
            " will not be, nor any other from this device: sending again does not help. Ask"
            " IT; if they agree this computer should report again, enroll it again with a new"
            " token from them: devposture-agent enroll --force --collector"
            f" {CollectorAddress(enrollment.collector_host, enrollment.enroll_port).target()}"
            f" --ca-fingerprint {enrollment.ca_fingerprint} --token-file NEW-TOKEN-FILE"
            + (f" --state {args.state}" if args.state is not None else "")
        )
    if result.stopped_by is not None:
        raise CliError(
            f"the collector did not acknowledge the report ({result.stopped_by});"
            f" it is kept on disk and will be sent next time"
        )
    raise CliError(
        "the collector refused the report; it was set aside (see the outbox's rejected/ folder)"
    )


def cmd_renew(args: argparse.Namespace, state: AgentState) -> int:
    enrollment = state.load()
    result = ensure_fresh_certificate(state, enrollment, utcnow(), force=True)
    if result.outcome is Outcome.FAILED:
        raise CliError(
            f"the certificate was not renewed ({result.detail}); the current one stays in use"
        )
    until = f"{result.expires_at:%Y-%m-%d %H:%M} UTC" if result.expires_at else "?"
    print(f"Certificate {result.outcome.value} ({result.detail}); valid until {until}.")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, state: AgentState) -> int:
    ack = state.load_verdicts() if state.is_enrolled() and not args.local else None
    if ack is not None and ack.verdicts:
        sys.stdout.write(render_status(list(ack.verdicts), collector_heading(ack)))
    else:
        report = build_report(live_host(state), probe_config(state, args))
        verdicts = local_verdicts(report, report.collected_at.ToDatetime(dt.UTC))
        sys.stdout.write(render_status(verdicts, LOCAL_HEADING))
    if state.is_enrolled():
        delivery = render_delivery(open_outbox(state).stats())
        if delivery:
            sys.stdout.write("\n" + delivery)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, state: AgentState) -> int:
    enrollment = state.load()
    host = live_host(state)
    work = AgentWork(
        state, enrollment, host, lambda: probe_config(state, args),
        outbox_max_bytes=args.outbox_max_mb, interval=args.interval,
        default_interval=DEFAULT_INTERVAL,
    )  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    schedule = Schedule(args.network_interval, args.backup_settle)
    print(
        f"devposture agent running as device {enrollment.device_id};"
        f" collecting every {work.interval():g} s and on network or backup changes",
        flush=True,
    )
    service.run(host, probe_config(state, args), work, stop, schedule)
    print("devposture agent stopped", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    state = AgentState(args.state if args.state is not None else default_state_dir())
    handlers = {
        "enroll": cmd_enroll, "collect": cmd_collect, "once": cmd_once, "run": cmd_run,
        "status": cmd_status, "renew": cmd_renew,
    }  # fmt: skip
    try:
        return handlers[args.command](args, state)
    except (CliError, StateError) as exc:
        print(f"devposture-agent: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
