"""ClamAV's updater on Linux: where freshclam keeps its signatures, and how it last fared.

freshclam.conf (Debian and Ubuntu: /etc/clamav/freshclam.conf; Fedora and RHEL:
/etc/freshclam.conf; built from source: /usr/local/etc/freshclam.conf) names the database
folder (`DatabaseDirectory`, default /var/lib/clamav) and the log (`UpdateLogFile`). The log
grows at its end, so only its last LOG_TAIL_BYTES are read; when they hold no finished
attempt (the log was just rotated), the previous log `<log>.1` is read the same way (Debian's
logrotate keeps it uncompressed: `delaycompress`). Its times are local, read in the zone of
/etc/localtime.

Without any freshclam.conf, freshclam cannot run, so there is no updater to report on: the
signatures' own age still decides. The configuration is read with grep, for the needed
options only: it may hold a proxy password, which must not reach a diagnostic bundle. A
freshclam.conf without `UpdateLogFile` logs only to the terminal or journal, which the agent
does not read yet: that is reported as a NO_SOURCE error for "freshclam-log", and the
signature_update stays unset.
"""

from __future__ import annotations

from datetime import UTC, timedelta, tzinfo

from devposture.agent.host import HostError, SourceMissingError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.freshclam import (
    FreshclamConfig,
    UpdateState,
    parse_freshclam_conf,
    parse_update_log,
)
from devposture.agent.parsers.localtime import parse_tzif
from devposture.agent.probes.commands import FRESHCLAM_CONFS, freshclam_conf_grep
from devposture.agent.probes.outcome import ProbeContext, error, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_ANTIVIRUS
DEFAULT_DATABASE = "/var/lib/clamav"
LOCALTIME = "/etc/localtime"
LOG_TAIL_BYTES = 64 * 1024
TZIF_BYTES = 64 * 1024
CLOCK_SLACK = timedelta(hours=1)
SOURCE_CONF = "freshclam-conf"
SOURCE_LOG = "freshclam-log"


def freshclam_config(ctx: ProbeContext, errors: list[pb.ProbeError]) -> FreshclamConfig | None:
    """The first freshclam.conf found; None when there is none (or it cannot be read)."""
    for path in FRESHCLAM_CONFS:
        if not ctx.host.exists(path):
            continue
        try:
            # grep exits 1 when no line matches: a config that sets none of the options.
            result = ctx.host.run(freshclam_conf_grep(path), ctx.config.command_timeout, {0, 1})
            return parse_freshclam_conf(result.stdout_text())
        except (HostError, ParseError) as exc:
            errors.append(source_error(FACT, SOURCE_CONF, exc))
            return None
    return None


def _zone(ctx: ProbeContext, errors: list[pb.ProbeError]) -> tzinfo | None:
    try:
        return parse_tzif(ctx.host.read_bytes(LOCALTIME, TZIF_BYTES))
    except SourceMissingError:
        return UTC  # what the C library, and so freshclam, uses without /etc/localtime
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, SOURCE_LOG, exc))
        return None


def _read_state(ctx: ProbeContext, log: str, zone: tzinfo | None) -> UpdateState | None:
    for path in (log, f"{log}.1"):
        try:
            data = ctx.host.read_tail(path, LOG_TAIL_BYTES)
        except SourceMissingError:
            if path == log:
                raise
            return None
        state = parse_update_log(data.decode("utf-8", errors="replace"), zone)
        if state is not None:
            return state
    return None


def signature_update(
    ctx: ProbeContext, config: FreshclamConfig, errors: list[pb.ProbeError]
) -> pb.SignatureUpdate | None:
    """freshclam's last outcome from its log; None, with an error saying why, when unknown."""
    if config.update_log_file is None:
        errors.append(
            error(
                FACT,
                pb.PROBE_ERROR_CODE_NO_SOURCE,
                "freshclam.conf sets no UpdateLogFile: freshclam's update state is not read",
                SOURCE_LOG,
            )
        )
        return None
    zone = _zone(ctx, errors)
    try:
        state = _read_state(ctx, config.update_log_file, zone)
    except HostError as exc:
        errors.append(source_error(FACT, SOURCE_LOG, exc))
        return None
    if state is None:
        errors.append(
            error(
                FACT,
                pb.PROBE_ERROR_CODE_NO_SOURCE,
                "freshclam's log holds no finished update attempt",
                SOURCE_LOG,
            )
        )
        return None
    update = pb.SignatureUpdate(outcome=state.outcome, detail=state.detail)
    # A line written while the clock was ahead (and since set right) is no "when": the
    # collector refuses a report with times far in its future, so such a time is left unset.
    latest = ctx.host.now() + CLOCK_SLACK
    if state.attempted_at is not None and state.attempted_at <= latest:
        update.attempted_at.FromDatetime(state.attempted_at)
    if state.succeeded_at is not None and state.succeeded_at <= latest:
        update.succeeded_at.FromDatetime(state.succeeded_at)
    return update
