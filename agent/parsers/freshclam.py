"""ClamAV's signature updater, freshclam: its configuration and what its log says it did.

The age of the signature files (agent.parsers.clamav) shows how old the signatures are, not
why: freshclam may be failing every hour (mirror unreachable, blocked by the CDN and on
"cool-down"), locked out by another freshclam, or warning that the engine itself is too old
for current signatures ("Your ClamAV installation is OUTDATED!"). It writes each attempt to
the file named by `UpdateLogFile` in freshclam.conf (/var/log/clamav/freshclam.log on Debian
and Ubuntu), to its terminal, or through systemd to the journal. This module reads any of
those texts, line by line, in the words of ClamAV's own sources (freshclam/freshclam.c,
libfreshclam/libfreshclam.c, libfreshclam_internal.c, common/output.c, 0.99 to 1.5):

- `ClamAV update process started at <ctime>` starts an attempt; a line of dashes separates
  daemon wake-ups. Both end the attempt before them.
- Success: `<db> database is up-to-date (version: …)`, `<db> is up to date (…)` (before 0.103),
  `<db> updated (version: …)`, `Database updated (N signatures) from …`.
- Failure: `Update failed…` (the last line of every failed attempt since 0.103, and 0.10x's
  "Update failed. Your network may be down…"), `Database update process failed: …`, the CDN's
  refusal `FreshClam received error code 403 (or 429) from the ClamAV Content Delivery
  Network (CDN).` and the cool-down it imposes, `You are (still) on cool-down until after: …`.
- Engine outdated: `Your ClamAV installation is OUTDATED!` followed by `Local version: X
  Recommended version: Y` (from DNS) or `Current functionality level = N, recommended = M`
  (from a downloaded database).
- Locked: `Failed to lock the log file …` (1.x) or `… is locked by another process` (before
  1.0): another freshclam holds the log, and this one stopped before it started. The message
  goes to the terminal or journal, never into the locked log itself.
- Other start-up failures (`Problem with internal logger`, `Initialization error!`) are
  failed attempts of their own.

With `LogTime yes` every line starts with `<ctime> -> `; warnings and errors may also carry
`WARNING: `/`ERROR: ` or, before 1.0, `^`/`!`. The times are the machine's local time without
a zone, so the caller passes the zone to read them in (or None to leave them unknown). The
`started at` line carries its time whatever LogTime says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

_CTIME = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2} \d{4}"
_STAMP = re.compile(rf"({_CTIME}) -> ?")
_STARTED = re.compile(rf"ClamAV update process started at ({_CTIME})")
_SEPARATOR = re.compile(r"-{20,}\s*$")
_SUCCESS = re.compile(
    r"database is up-to-date|\bis up to date\b|\bupdated \(version:|Database updated \("
)
_CDN_REFUSED = r"received error code \d{3} from the ClamAV Content Delivery Network"
_FAILURE = re.compile(
    rf"Update failed|Database update process failed|on cool-down until after|{_CDN_REFUSED}"
)
_PRECISE_FAILURE = re.compile(
    rf"Database update process failed|cool-down until after|{_CDN_REFUSED}"
)
_OUTDATED = re.compile(r"Your ClamAV installation is OUTDATED")
_OUTDATED_DETAIL = re.compile(
    r"Local version: \S+ Recommended version: \S+"
    r"|Current functionality level = \d+, recommended = \d+"
)
_LOCKED = re.compile(r"Failed to lock the log file|is locked by another process")
_INIT_FAILED = re.compile(
    r"Problem with internal logger|Initialization error|libfreshclam init failed"
)
_SYSLOG_PREFIX = re.compile(r"^\S.*? freshclam\[\d+\]: ")
_LEADING_STAMP = re.compile(rf"^(?:(?:WARNING|ERROR):\s*|[\^!])?({_CTIME}) -> ?")
_LEVEL = re.compile(r"^(?:(?:WARNING|ERROR|LibClamAV \w+):\s*|[\^!*])\s*")
_MAX_DETAIL = 200

OK = pb.SIGNATURE_UPDATE_OUTCOME_OK
FAILED = pb.SIGNATURE_UPDATE_OUTCOME_FAILED
ENGINE_OUTDATED = pb.SIGNATURE_UPDATE_OUTCOME_ENGINE_OUTDATED
LOCKED = pb.SIGNATURE_UPDATE_OUTCOME_LOCKED


@dataclass(frozen=True)
class FreshclamConfig:
    """The freshclam.conf options the agent needs; None when the option is not set."""

    update_log_file: str | None
    database_directory: str | None


@dataclass(frozen=True)
class UpdateState:
    """How the updater last fared. Times are UTC, None when the text or the zone cannot tell."""

    outcome: pb.SignatureUpdateOutcome.ValueType
    attempted_at: datetime | None
    succeeded_at: datetime | None
    detail: str  # freshclam's own words, one line


def parse_freshclam_conf(text: str) -> FreshclamConfig:
    """freshclam.conf: "Option Argument" lines, '#' comments. Options are case-sensitive; a
    repeated option keeps its last value. A file still holding the sample's `Example` line is
    one freshclam refuses to run with, so it is reported as not understood."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, argument = line.partition(" ")
        values[name] = argument.strip().strip('"')
    if "Example" in values:
        raise ParseError(
            "freshclam.conf still has the sample's 'Example' line: freshclam won't run"
        )
    return FreshclamConfig(
        update_log_file=values.get("UpdateLogFile") or None,
        database_directory=values.get("DatabaseDirectory") or None,
    )


@dataclass
class _Attempt:
    times: list[datetime] = field(default_factory=list)
    started: datetime | None = None
    startup_failure: bool = False  # stopped before it began: lock or logger trouble
    succeeded: bool = False
    success_time: datetime | None = None
    failure: str = ""
    failure_rank: int = 0
    outdated: str = ""
    locked: str = ""

    @property
    def finished(self) -> bool:
        return bool(self.succeeded or self.failure or self.locked)

    @property
    def empty(self) -> bool:
        return not (self.finished or self.outdated or self.started)

    def fail(self, detail: str, rank: int) -> None:
        if rank > self.failure_rank:
            self.failure, self.failure_rank = detail, rank

    def last_time(self) -> datetime | None:
        return max(self.times) if self.times else self.started


def _ctime(text: str, zone: tzinfo | None) -> datetime | None:
    if zone is None:
        return None
    try:
        local = datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


def _message(line: str) -> tuple[str, str]:
    """(the LogTime stamp's text or "", the message without prefix, stamp and level). The
    stamp may follow a level ("WARNING: <ctime> -> …", freshclam's stderr), and the whole
    line a syslog or journal prefix ("Oct 10 09:25:25 host freshclam[3073]: …")."""
    prefix = _SYSLOG_PREFIX.match(line)
    if prefix:
        line = line[prefix.end() :]
    stamp = ""
    match = _LEADING_STAMP.match(line)
    if match:
        stamp = match.group(1)
        line = line[match.end() :]
    return stamp, _LEVEL.sub("", line.strip()).strip()


def _detail(message: str) -> str:
    return _STAMP.sub("", message)[:_MAX_DETAIL].strip()


def _new_attempt_needed(current: _Attempt, started: bool, separator: bool, startup: bool) -> bool:
    if started or separator:
        return not current.empty
    if startup:  # start-up failure lines of one run stay together
        return not current.startup_failure and not current.empty
    return False


def parse_update_log(text: str, zone: tzinfo | None) -> UpdateState | None:
    """The updater's last outcome from its log (or terminal, journal or syslog text), oldest
    line first. `zone` is the machine's time zone for the log's local times (None: times
    unknown). None when the text holds no finished attempt and no outdated warning. The
    first line may be cut (the caller read only the log's end): a line that matches nothing
    is skipped."""
    attempts: list[_Attempt] = [_Attempt()]
    lines = text.splitlines()
    for index, raw in enumerate(lines):
        stamp, message = _message(raw)
        started = _STARTED.search(message)
        locked = _LOCKED.search(message)
        startup = bool(locked or _INIT_FAILED.search(message))
        if _new_attempt_needed(
            attempts[-1], bool(started), bool(_SEPARATOR.match(message)), startup
        ):
            attempts.append(_Attempt())
        current = attempts[-1]
        when = _ctime(stamp, zone) if stamp else None
        if when is not None:
            current.times.append(when)
        if started:
            current.started = _ctime(started.group(1), zone)
        elif startup:
            current.startup_failure = True
            if locked:
                current.locked = _detail(message)
            current.fail(_detail(message), 1)
        elif _OUTDATED.search(message):
            following = " ".join(lines[index + 1 : index + 3])
            detail = _OUTDATED_DETAIL.search(following)
            current.outdated = detail.group(0) if detail else "ClamAV installation is OUTDATED"
        elif _FAILURE.search(message):
            current.fail(_detail(message), 2 if _PRECISE_FAILURE.search(message) else 1)
        elif _SUCCESS.search(message):
            current.succeeded = True
            current.success_time = when or current.success_time
    attempts = [a for a in attempts if not a.empty]
    succeeded_at = None
    for attempt in attempts:
        if attempt.succeeded and not attempt.failure:
            succeeded_at = attempt.success_time or attempt.started or succeeded_at
    latest = [a for a in attempts if a.finished or a.outdated]
    if not latest:
        return None
    last = latest[-1]
    attempted_at = last.last_time()
    if last.outdated:
        return UpdateState(ENGINE_OUTDATED, attempted_at, succeeded_at, last.outdated)
    if last.locked:
        return UpdateState(LOCKED, attempted_at, succeeded_at, last.locked)
    if last.failure:
        return UpdateState(FAILED, attempted_at, succeeded_at, last.failure)
    return UpdateState(OK, attempted_at, succeeded_at, "")
