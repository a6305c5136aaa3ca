"""First evaluation: one small check per clause, each a pure function of one report.

Facts travel, verdicts are made here (DESIGN principle 1). A check that cannot tell says
UNKNOWN with the reason (principle 2); it never turns missing evidence into PASS. The policy
issue replaces `CheckParameters` with the policy file; the functions stay pure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.v1 import devposture_pb2 as pb


class State(StrEnum):
    PASS = "PASS"  # noqa: S105 - a compliance state, not a password
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str


# Each check's parameters as the policy file names them, with their defaults. The policy
# validator checks names and types against this table: a default that is a whole number asks
# for a whole number, one that is text asks for a dotted version number ("4.0.0").
ParameterValue = int | str
PARAMETERS: dict[str, dict[str, ParameterValue]] = {
    "antivirus": {"signature_max_age_days": 7},
    "firewall": {},
    "os-updates": {"check_max_age_days": 14},
    "public-wifi": {"vpn_grace_seconds": 120},
    "chat-backup": {"backup_max_age_days": 30},
    # Policy choices, not advisories: no public advisory found names a minimum for the
    # desktop clients. WeChat 4.0.0 starts the 4.x line Tencent now ships for Windows (winget
    # Tencent.WeChat.Universal, product code Weixin), macOS and Linux under one numbering;
    # 3.x for Windows (winget Tencent.WeChat) has 3.9.12.x as its newest. WeCom 4.1.30 is a
    # recent 4.x release (winget Tencent.WeCom 4.1.30.6004, .6008; 5.0 builds exist). Raise
    # both as releases come; see docs/chat-clients.md.
    "chat-app-updates": {"min_version_wechat": "4.0.0", "min_version_wecom": "4.1.30"},
}
_DOTTED = re.compile(r"\d+(?:\.\d+)*")


def version_numbers(text: str) -> tuple[int, ...] | None:
    """The numbers of a dotted version ("3.9.12.17" -> (3, 9, 12, 17)), None for other text."""
    value = text.strip()
    if not _DOTTED.fullmatch(value):
        return None
    return tuple(int(part) for part in value.split("."))


@dataclass(frozen=True)
class CheckParameters:
    signature_max_age: dt.timedelta = dt.timedelta(days=7)
    updates_check_max_age: dt.timedelta = dt.timedelta(days=14)
    backup_max_age: dt.timedelta = dt.timedelta(days=30)
    vpn_grace: dt.timedelta = dt.timedelta(seconds=120)
    min_version_wechat: str = "4.0.0"
    min_version_wecom: str = "4.1.30"

    @classmethod
    def from_values(cls, values: Mapping[str, Mapping[str, ParameterValue]]) -> CheckParameters:
        """From per-check values named as in PARAMETERS (a policy's [checks.parameters])."""

        def get(check: str, name: str) -> int:
            value = values.get(check, {}).get(name, PARAMETERS[check][name])
            assert isinstance(value, int), f"{check}.{name} is a whole number"
            return value

        def text(check: str, name: str) -> str:
            value = values.get(check, {}).get(name, PARAMETERS[check][name])
            assert isinstance(value, str), f"{check}.{name} is a text"
            return value

        return cls(
            signature_max_age=dt.timedelta(days=get("antivirus", "signature_max_age_days")),
            updates_check_max_age=dt.timedelta(days=get("os-updates", "check_max_age_days")),
            backup_max_age=dt.timedelta(days=get("chat-backup", "backup_max_age_days")),
            vpn_grace=dt.timedelta(seconds=get("public-wifi", "vpn_grace_seconds")),
            min_version_wechat=text("chat-app-updates", "min_version_wechat"),
            min_version_wecom=text("chat-app-updates", "min_version_wecom"),
        )


CheckFunction = Callable[[pb.PostureReport, dt.datetime, CheckParameters], Verdict]


@dataclass(frozen=True)
class Check:
    check_id: str
    clause: str
    title_zh: str
    title_en: str
    evaluate: CheckFunction


def _date(ts: object) -> str:
    assert isinstance(ts, dt.datetime)
    day = ts.astimezone(dt.UTC)
    if day.year < 1000:  # strftime's %Y does not pad: keep its text
        return day.strftime("%Y-%m-%d")
    return f"{day.year}-{day.month:02d}-{day.day:02d}"  # strftime's, at a third of the cost


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The seconds a Timestamp may hold (protobuf refuses others; so does `utc`).
_SECONDS_MIN, _SECONDS_MAX = -62_135_596_800, 253_402_300_799


def utc(ts: Timestamp) -> dt.datetime:
    """`ts.ToDatetime(dt.UTC)`, the same value and errors, at a third of the cost: a report
    has a dozen timestamps, and every report is judged as it arrives."""
    seconds, nanos = ts.seconds, ts.nanos
    if _SECONDS_MIN <= seconds <= _SECONDS_MAX and 0 <= nanos < 1_000_000_000:
        return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
    return ts.ToDatetime(dt.UTC)  # raises ValueError, as it always did


def _probe_error(report: pb.PostureReport, fact: pb.Fact.ValueType) -> str | None:
    """The reason a fact is missing, when the agent said why."""
    messages = [e.message for e in report.errors if e.fact == fact and not e.source]
    return "; ".join(messages) if messages else None


def _missing(report: pb.PostureReport, fact: pb.Fact.ValueType, what: str) -> Verdict:
    reason = _probe_error(report, fact)
    if reason is None:
        return Verdict(State.UNKNOWN, f"the agent did not report {what}")
    return Verdict(State.UNKNOWN, f"{what} could not be read: {reason}")


def _source_errors(report: pb.PostureReport, fact: pb.Fact.ValueType) -> list[str]:
    return [f"{e.source}: {e.message}" for e in report.errors if e.fact == fact and e.source]


def check_antivirus(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """PASS when one product is on, protects in real time, has fresh signatures and names
    nothing in its way; FAIL when every product has a problem; UNKNOWN when what decides is
    missing. Per product (`_antivirus_product_problems`):

    - health_issues (what the product says stands in the way: mdatp's "missing license",
      "real-time protection enabled but not available", passive mode …) are a FAIL, named.
    - The updater's last outcome (signature_update, e.g. from freshclam's log):
      ENGINE_OUTDATED is a FAIL ("engine outdated: upgrade ClamAV"): the vendor says the
      engine is too old for current signatures, and its CDN refuses end-of-life engines, so
      fresh files today do not mean fresh files next week. FAILED or LOCKED is named in the
      reason but is a FAIL only when the last success is older than the signature age limit
      (the signatures are then stale anyway, whatever their files say); while the signature
      files are within the limit it is a note on a PASS (one failed hourly attempt is not a
      stale device). A failure with neither a known last success nor a signature date is
      UNKNOWN, never PASS.
    """
    if not report.HasField("antivirus"):
        return _missing(report, pb.FACT_ANTIVIRUS, "antivirus")
    products = report.antivirus.products
    if not products:
        unread = _source_errors(report, pb.FACT_ANTIVIRUS)
        if unread:
            return Verdict(State.UNKNOWN, "no antivirus found, but " + "; ".join(unread))
        return Verdict(State.FAIL, "no known antivirus product installed or running")
    failing: list[str] = []
    unknown: list[str] = []
    # Sources that said "installed, but no signature database at all".
    no_database = {
        e.source
        for e in report.errors
        if e.fact == pb.FACT_ANTIVIRUS and e.code == pb.PROBE_ERROR_CODE_NO_SOURCE
    }
    for product in products:
        problems, doubts, notes = _antivirus_product_problems(product, now, p, no_database)
        if not problems and not doubts:
            reason = f"{product.name}: on, real-time protection, signatures fresh"
            return Verdict(State.PASS, "; ".join([reason, *notes]))
        failing += [f"{product.name}: {x}" for x in problems]
        unknown += [f"{product.name}: {x}" for x in doubts if not problems]
    if unknown:
        return Verdict(State.UNKNOWN, "; ".join(unknown + failing))
    return Verdict(State.FAIL, "; ".join(failing))


_UPDATE_WORDS = {
    pb.SIGNATURE_UPDATE_OUTCOME_FAILED: "last signature update failed",
    pb.SIGNATURE_UPDATE_OUTCOME_LOCKED: "last signature update did not run: updater locked",
}


def _antivirus_product_problems(
    product: pb.AntivirusProduct, now: dt.datetime, p: CheckParameters, no_database: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """(problems: FAIL, doubts: UNKNOWN, notes: said on a PASS) for one product."""
    problems: list[str] = []
    doubts: list[str] = []
    notes: list[str] = []
    if product.HasField("enabled") and not product.enabled:
        problems.append("disabled")
    elif not product.HasField("enabled"):
        doubts.append("cannot tell whether it is enabled")
    if product.HasField("real_time_protection") and not product.real_time_protection:
        problems.append("real-time protection off")
    elif not product.HasField("real_time_protection"):
        doubts.append("cannot tell whether real-time protection is on")
    if product.health_issues:
        problems.append("health issues: " + ", ".join(product.health_issues))
    if product.source in no_database and not product.HasField("signatures_updated_at"):
        problems.append("no signature database")
    elif product.HasField("signatures_updated_at"):
        updated = utc(product.signatures_updated_at)
        if now - updated > p.signature_max_age:
            problems.append(
                f"signatures from {_date(updated)}, older than {p.signature_max_age.days} days"
            )
    elif product.HasField("signatures_up_to_date"):
        if not product.signatures_up_to_date:
            problems.append("signatures out of date")
    else:
        doubts.append("signature date unknown")
    if product.HasField("signature_update"):
        more_problems, more_doubts, notes = _signature_update_problems(product, now, p)
        problems += more_problems
        doubts += more_doubts
    return problems, doubts, notes


def _signature_update_problems(
    product: pb.AntivirusProduct, now: dt.datetime, p: CheckParameters
) -> tuple[list[str], list[str], list[str]]:
    """The updater's last outcome, judged as check_antivirus's docstring says:
    (problems, doubts, notes)."""
    problems: list[str] = []
    doubts: list[str] = []
    notes: list[str] = []
    update = product.signature_update
    detail = f" ({update.detail})" if update.detail else ""
    if update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_ENGINE_OUTDATED:
        problems.append(f"engine outdated{detail}: upgrade {product.name}")
        return problems, doubts, notes
    words = _UPDATE_WORDS.get(update.outcome)
    if words is None:
        return problems, doubts, notes
    if update.HasField("attempted_at"):
        words += f" on {_date(utc(update.attempted_at))}"
    words += detail
    if update.HasField("succeeded_at"):
        succeeded = utc(update.succeeded_at)
        if now - succeeded > p.signature_max_age:
            problems.append(
                f"{words}; last success {_date(succeeded)},"
                f" older than {p.signature_max_age.days} days"
            )
        else:
            notes.append(f"{words}; last success {_date(succeeded)}")
    elif product.HasField("signatures_updated_at") or (
        product.HasField("signatures_up_to_date") and not product.signatures_up_to_date
    ):
        notes.append(words)  # the signature date (or "out of date") decides above
    else:
        doubts.append(f"{words}, and neither the last success nor the signature date is known")
    return problems, doubts, notes


def check_firewall(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    if not report.HasField("firewall"):
        return _missing(report, pb.FACT_FIREWALL, "the firewall")
    fact = report.firewall
    off = [
        prof.name
        for prof in fact.profiles
        if prof.HasField("enabled")
        and not prof.enabled
        and (not prof.HasField("active") or prof.active)
    ]
    if fact.HasField("enabled") and fact.enabled:
        on = [prof.name for prof in fact.profiles if prof.enabled]
        if off and any(prof.HasField("active") for prof in fact.profiles):
            return Verdict(State.FAIL, "firewall off on active profile(s): " + ", ".join(off))
        return Verdict(State.PASS, "filtering inbound traffic: " + (", ".join(on) or "on"))
    if fact.HasField("enabled"):
        seen = ", ".join(prof.name for prof in fact.profiles) or "no firewall configured"
        return Verdict(State.FAIL, f"no firewall filters inbound traffic ({seen})")
    return _missing(report, pb.FACT_FIREWALL, "the firewall state")


def check_os_updates(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    if not report.HasField("os_updates"):
        return _missing(report, pb.FACT_OS_UPDATES, "OS updates")
    fact = report.os_updates
    if not fact.HasField("pending_security"):
        return Verdict(
            State.UNKNOWN, f"{fact.source or 'update tool'} did not tell pending security updates"
        )
    if fact.pending_security > 0:
        names = ", ".join(fact.pending_security_names[:5])
        since = ""
        if fact.HasField("oldest_pending_since"):
            since = f" since {_date(utc(fact.oldest_pending_since))}"
        return Verdict(
            State.FAIL,
            f"{fact.pending_security} security update(s) pending{since}"
            + (f": {names}" if names else ""),
        )
    if fact.HasField("last_checked"):
        checked = utc(fact.last_checked)
        if now - checked > p.updates_check_max_age:
            return Verdict(
                State.FAIL,
                f"updates last checked {_date(checked)}, more than"
                f" {p.updates_check_max_age.days} days ago",
            )
        when = f"; last checked {_date(checked)}"
    else:
        return Verdict(
            State.UNKNOWN,
            "no security updates pending, but when updates were last checked is unknown",
        )
    others = f" ({fact.pending_total} other update(s))" if fact.pending_total else ""
    return Verdict(State.PASS, f"no security updates pending{others}{when}")


def check_public_wifi(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """6.3.2: no WeChat on public Wi-Fi without a VPN. A public session (the agent's class,
    made from every signal the OS gave) needs a VPN up within the grace after it started, else
    FAIL, saying why the network counted as public (the session's classification reasons). A
    session whose network the OS hid (NETWORK_CLASS_UNKNOWN: macOS without Location Services)
    and that had no VPN in time cannot be judged: UNKNOWN, unless a FAIL already stands."""
    if not report.HasField("wifi"):
        return _missing(report, pb.FACT_WIFI, "Wi-Fi")
    fact = report.wifi
    if not fact.has_wifi_interface:
        return Verdict(State.PASS, "no Wi-Fi interface: no public Wi-Fi use possible")
    judged = (pb.NETWORK_CLASS_PUBLIC, pb.NETWORK_CLASS_UNKNOWN)
    sessions = [s for s in fact.sessions if s.classification in judged]
    unprotected: list[str] = []
    hidden: list[str] = []
    hidden_reasons: set[str] = set()
    for session in sessions:
        public = session.classification == pb.NETWORK_CLASS_PUBLIC
        name = session.network_id or "a network with a hidden name"
        why = ", ".join(session.classification_reasons)
        what = f"{name} ({why})" if public and why else name
        if not public:
            what = f"Wi-Fi on {session.interface or 'an interface'}"
            hidden_reasons.update(session.classification_reasons)
        started = utc(session.started_at)
        if not session.vpn_up:
            problem = f"{what} at {started:%Y-%m-%d %H:%M} UTC without VPN"
        else:
            late = utc(session.vpn_up_at) - started
            if late <= p.vpn_grace:
                continue
            problem = f"{what}: VPN came up {int(late.total_seconds())} s late"
        (unprotected if public else hidden).append(problem)
    if unprotected:
        return Verdict(State.FAIL, "public Wi-Fi: " + "; ".join(unprotected))
    if hidden:
        lead = "network name not reported by the OS"
        if any("macOS" in r for r in hidden_reasons):
            lead = (
                "network name hidden by macOS: grant Location Services to the devposture agent"
                " (System Settings > Privacy & Security)"
            )
        return Verdict(
            State.UNKNOWN, f"{lead}; cannot tell whether it was public: " + "; ".join(hidden)
        )
    public_sessions = [s for s in sessions if s.classification == pb.NETWORK_CLASS_PUBLIC]
    if not sessions:
        return Verdict(
            State.PASS, f"{len(fact.sessions)} Wi-Fi session(s), none on a public network"
        )
    named = [
        f"{s.network_id or 'hidden name'} ({', '.join(s.classification_reasons)})"
        if s.classification_reasons
        else s.network_id or "hidden name"
        for s in public_sessions
    ]
    hidden_count = len(sessions) - len(public_sessions)
    counted = f"{len(public_sessions)} public" + (
        f", {hidden_count} with a hidden name" if hidden_count else ""
    )
    return Verdict(
        State.PASS,
        f"{len(fact.sessions)} Wi-Fi session(s), {counted}, all with VPN"
        + (": " + "; ".join(named) if named else ""),
    )


def check_chat_backup(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """6.2.1: back up work chats regularly, keep the backups safe.

    Only backup sets count (kind APP_BACKUP or ARCHIVE): never the apps' live data, which the
    agent reports apart. A backup is kept safe when its own files are encrypted or it lies on
    an encrypted volume. Any plain backup on a volume known not to be encrypted fails the
    clause, whatever else exists: it is a copy of work chats anyone with the disk can read
    (one whose volume is unknown makes the clause UNKNOWN). Otherwise the clause needs one
    safe backup within the age limit; the newest one's age decides."""
    if not report.HasField("chat_backups"):
        return _missing(report, pb.FACT_CHAT_BACKUPS, "chat backups")
    fact = report.chat_backups
    legacy = [b for b in fact.backups if b.kind == pb.BACKUP_KIND_UNSPECIFIED]
    if legacy and len(legacy) == len(fact.backups):
        return Verdict(
            State.UNKNOWN,
            f"agent {report.agent_version or '(unknown version)'} cannot tell backups from"
            " WeChat's own data folders: update the agent",
        )
    sets = [
        b
        for b in fact.backups
        if b.kind != pb.BACKUP_KIND_UNSPECIFIED and b.HasField("newest_backup_at")
    ]
    plain = [b for b in sets if b.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED]
    exposed = [b for b in plain if b.HasField("on_encrypted_volume") and not b.on_encrypted_volume]
    if exposed:
        first = max(exposed, key=lambda b: utc(b.newest_backup_at))
        others = f" and {len(exposed) - 1} other(s)" if len(exposed) > 1 else ""
        return Verdict(
            State.FAIL,
            f"plain backup {first.location} of {_date(utc(first.newest_backup_at))}{others}"
            f" is not encrypted ({first.encryption_evidence}; {first.volume_evidence})",
        )
    if not sets:
        return _no_backup(report, fact)
    newest = max(sets, key=lambda b: utc(b.newest_backup_at))
    newest_at = utc(newest.newest_backup_at)
    if now - newest_at > p.backup_max_age:
        return Verdict(
            State.FAIL,
            f"newest backup {newest.location} is from {_date(newest_at)},"
            f" older than {p.backup_max_age.days} days",
        )
    doubtful = [b for b in plain if not b.on_encrypted_volume]
    if doubtful:
        first = doubtful[0]
        return Verdict(
            State.UNKNOWN,
            f"plain backup {first.location} ({first.encryption_evidence}): whether its disk is"
            f" encrypted is unknown ({first.volume_evidence})",
        )
    fresh = [b for b in sets if now - utc(b.newest_backup_at) <= p.backup_max_age]
    safe = [b for b in fresh if _kept_safe(b)]
    if safe:
        best = max(safe, key=lambda b: utc(b.newest_backup_at))
        return Verdict(
            State.PASS,
            f"{_safe_how(best)} backup {best.location} of {_date(utc(best.newest_backup_at))}"
            f" ({_safe_why(best)})",
        )
    return Verdict(
        State.UNKNOWN,
        f"backup {newest.location} of {_date(newest_at)} found, not known to be kept safe"
        f" ({newest.encryption_evidence}; {newest.volume_evidence})",
    )


def _kept_safe(backup: pb.ChatBackup) -> bool:
    return backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED or backup.on_encrypted_volume


def _safe_how(backup: pb.ChatBackup) -> str:
    return "encrypted" if backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED else "protected"


def _safe_why(backup: pb.ChatBackup) -> str:
    parts = []
    if backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED:
        parts.append(backup.encryption_evidence)
    if backup.on_encrypted_volume:
        parts.append(backup.volume_evidence)
    return "; ".join(p for p in parts if p)


def _no_backup(report: pb.PostureReport, fact: pb.ChatBackupFact) -> Verdict:
    """No backup set at all: FAIL, unless something that could hold one was not read."""
    in_use = ""
    if fact.live_data:
        in_use = f"; WeChat/WeCom data of {len(fact.live_data)} account(s) found, not a backup"
    unread = _source_errors(report, pb.FACT_CHAT_BACKUPS) + list(fact.skipped_reasons)
    if unread or fact.entries_skipped:
        shown = "; ".join(unread[:3]) or f"{fact.entries_skipped} entries"
        return Verdict(
            State.UNKNOWN,
            f"no WeChat or WeCom backup found, but some places could not be read: {shown}",
        )
    return Verdict(
        State.FAIL,
        f"no WeChat or WeCom backup found ({fact.locations_checked} location(s) checked)" + in_use,
    )


_CHAT_APPS = {pb.CHAT_APP_WECHAT: "WeChat", pb.CHAT_APP_WECOM: "WeCom"}


def _version_order(version: str, minimum: str) -> int | None:
    """-1, 0 or 1 as `version` is below, at or above `minimum`, number by number; None when
    either is not a dotted number, or when `version` has fewer parts than `minimum` and
    agrees on all it has ("4.1.5" against "4.1.5.30": its last part is not known)."""
    have, need = version_numbers(version), version_numbers(minimum)
    if have is None or need is None:
        return None
    common = min(len(have), len(need))
    if have[:common] != need[:common]:
        return -1 if have[:common] < need[:common] else 1
    if len(have) < len(need) and any(need[common:]):
        return None
    return 1 if any(have[common:]) else 0


def check_chat_app_updates(
    report: pb.PostureReport, now: dt.datetime, p: CheckParameters
) -> Verdict:
    """6.3.1 "定期更新系统和软件" for the chat clients: every installed WeChat and WeCom is at
    least the policy's minimum version (old clients carry known vulnerabilities). No client
    installed is nothing to update: PASS. A client whose version is unknown, or a source the
    agent could not read (it may hide an old client), is UNKNOWN, never PASS."""
    if not report.HasField("chat_clients"):
        return _missing(report, pb.FACT_CHAT_CLIENTS, "the installed chat clients")
    minimums = {pb.CHAT_APP_WECHAT: p.min_version_wechat, pb.CHAT_APP_WECOM: p.min_version_wecom}
    unread = _source_errors(report, pb.FACT_CHAT_CLIENTS)
    clients = report.chat_clients.clients
    if not clients:
        if unread:
            return Verdict(
                State.UNKNOWN, "no WeChat or WeCom client found, but " + "; ".join(unread)
            )
        return Verdict(State.PASS, "no WeChat or WeCom client installed")
    old: list[str] = []
    doubts: list[str] = []
    current: list[str] = []
    for client in clients:
        name = _CHAT_APPS.get(client.app, "an unknown chat app")
        where = f" at {client.location}" if client.location else ""
        minimum = minimums.get(client.app)
        if not client.version:
            why = client.version_error or "not reported"
            doubts.append(f"{name}{where}: version unknown ({why})")
            continue
        order = None if minimum is None else _version_order(client.version, minimum)
        if order is None:
            doubts.append(f"{name} {client.version}{where}: cannot compare with {minimum}")
        elif order < 0:
            old.append(f"{name} {client.version}{where} is older than the minimum {minimum}")
        else:
            current.append(f"{name} {client.version}")
    if old:
        return Verdict(State.FAIL, "; ".join(old + doubts))
    if doubts or unread:
        return Verdict(State.UNKNOWN, "; ".join(doubts + [f"unread: {u}" for u in unread]))
    return Verdict(State.PASS, ", ".join(current) + ": at or above the minimum version")


CHECKS: tuple[Check, ...] = (
    Check(
        "antivirus", "6.3.1", "安装杀毒软件", "Antivirus installed and up to date", check_antivirus
    ),
    Check("firewall", "6.3.1", "安装防火墙", "Firewall on", check_firewall),
    Check(
        "os-updates", "6.3.1", "定期更新系统和软件", "System and software updated", check_os_updates
    ),
    Check(
        "public-wifi", "6.3.2", "公共无线网络须使用VPN", "VPN on public Wi-Fi", check_public_wifi
    ),
    Check(
        "chat-backup",
        "6.2.1",
        "定期备份工作聊天记录",
        "Work chats backed up, kept safe",
        check_chat_backup,
    ),
    Check(
        "chat-app-updates",
        "6.3.1",
        "微信和企业微信已更新",
        "WeChat and WeCom up to date",
        check_chat_app_updates,
    ),
)
CHECKS_BY_ID = {check.check_id: check for check in CHECKS}
CHECK_FUNCTIONS: dict[str, CheckFunction] = {check.check_id: check.evaluate for check in CHECKS}


def evaluate(
    report: pb.PostureReport,
    now: dt.datetime,
    params: CheckParameters | None = None,
    check_ids: Collection[str] | None = None,
) -> list[tuple[Check, Verdict]]:
    """Judge one report on every check (or those the policy lists). A check that raises gives
    UNKNOWN, never PASS."""
    params = params or CheckParameters()
    results = []
    for check in CHECKS:
        if check_ids is not None and check.check_id not in check_ids:
            continue
        try:
            verdict = check.evaluate(report, now, params)
        except Exception as exc:  # a bug in one check must not stop the others or the ingest
            verdict = Verdict(State.UNKNOWN, f"check failed internally ({type(exc).__name__})")
        results.append((check, verdict))
    return results
