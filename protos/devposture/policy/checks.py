"""First evaluation: one small check per clause, each a pure function of one report.

Facts travel, verdicts are made here (DESIGN principle 1). A check that cannot tell says
UNKNOWN with the reason (principle 2); it never turns missing evidence into PASS. The policy
issue replaces `CheckParameters` with the policy file; the functions stay pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.policy.check_parameters import PARAMETERS, ParameterValue, version_numbers
from devposture.policy.reasons import Item, encode, item
from devposture.v1 import devposture_pb2 as pb


class State(StrEnum):
    PASS = "PASS"  # noqa: S105 - a compliance state, not a password
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Verdict:
    state: State
    # A reason code with its parameters, encoded (devposture.policy.reasons): worded per
    # language and time zone only when shown.
    reason: str


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


# What went wrong, by the agent's error code: a term, worded in each language (the agent's
# own message, English as its tools gave it, shown beside it).
_CAUSES: dict[int, str] = {
    pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND: "probe_command_not_found",
    pb.PROBE_ERROR_CODE_PERMISSION_DENIED: "probe_permission_denied",
    pb.PROBE_ERROR_CODE_TIMEOUT: "probe_timeout",
    pb.PROBE_ERROR_CODE_COMMAND_FAILED: "probe_command_failed",
    pb.PROBE_ERROR_CODE_PARSE_ERROR: "probe_parse_error",
    pb.PROBE_ERROR_CODE_NOT_SUPPORTED: "probe_not_supported",
    pb.PROBE_ERROR_CODE_NO_SOURCE: "probe_no_source",
    pb.PROBE_ERROR_CODE_INTERNAL: "probe_internal",
}


def _cause(error: pb.ProbeError) -> str:
    return _CAUSES.get(error.code, "probe_unspecified")


def _probe_errors(report: pb.PostureReport, fact: pb.Fact.ValueType) -> list[Item]:
    """Why a fact is missing, when the agent said: its error code in words, its message
    beside it."""
    return [
        item("probe.error", cause=_cause(e), detail=e.message)
        for e in report.errors
        if e.fact == fact and not e.source
    ]


# Reasons without parameters, encoded once (the checks judge every report as it arrives).
_NOT_REPORTED = {
    term: encode("fact.missing", fact=term)
    for term in ("antivirus", "firewall", "firewall_state", "os_updates", "wifi", "chat_backups",
                 "chat_clients")
}  # fmt: skip
_AV_NONE = encode("av.none")
_FW_ON = encode("fw.on_plain")
_FW_NONE = encode("fw.none_configured")
_UPD_CHECK_UNKNOWN = encode("upd.check_unknown")
_WIFI_NO_INTERFACE = encode("wifi.no_interface")
_APPS_NONE = encode("apps.none")


def _missing(report: pb.PostureReport, fact: pb.Fact.ValueType, term: str) -> Verdict:
    """UNKNOWN: the fact is absent; `term` names it (devposture.policy.reasons.TERMS). The
    reason is the agent's error for the fact, or else each of its sources' (every firewall
    tool installed failed: "firewall-cmd: a tool failed (FirewallD is not running)")."""
    errors = _probe_errors(report, fact) or _source_errors(report, fact)
    if not errors:
        return Verdict(State.UNKNOWN, _NOT_REPORTED[term])
    return Verdict(State.UNKNOWN, encode("fact.unread", fact=term, errors=errors))


def _source_errors(report: pb.PostureReport, fact: pb.Fact.ValueType) -> list[Item]:
    """The per-source errors of a fact, as reason items."""
    return [
        item("fact.source_unread", source=e.source, cause=_cause(e), detail=e.message)
        for e in report.errors
        if e.fact == fact and e.source
    ]


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

    Each problem, doubt and note is a reason item naming its product; several make a list.
    """
    if not report.HasField("antivirus"):
        return _missing(report, pb.FACT_ANTIVIRUS, "antivirus")
    products = report.antivirus.products
    if not products:
        unread = _source_errors(report, pb.FACT_ANTIVIRUS)
        if unread:
            return Verdict(State.UNKNOWN, encode("av.none_unread", errors=unread))
        return Verdict(State.FAIL, _AV_NONE)
    failing: list[Item] = []
    unknown: list[Item] = []
    # Sources that said "installed, but no signature database at all".
    no_database = {
        e.source
        for e in report.errors
        if e.fact == pb.FACT_ANTIVIRUS and e.code == pb.PROBE_ERROR_CODE_NO_SOURCE
    }
    for product in products:
        problems, doubts, notes = _antivirus_product_problems(product, now, p, no_database)
        if not problems and not doubts:
            return Verdict(State.PASS, _listed([item("av.ok", product=product.name), *notes]))
        failing += problems
        if not problems:
            unknown += doubts
    if unknown:
        return Verdict(State.UNKNOWN, _listed(unknown + failing))
    return Verdict(State.FAIL, _listed(failing))


def _listed(items: list[Item]) -> str:
    """One item as itself, several as a list (said one after the other)."""
    if len(items) == 1:
        one = items[0]
        return encode(one[0], **(one[1] if len(one) > 1 else {}))
    return encode("list.items", items=items)


_UPDATE_TERMS = {
    pb.SIGNATURE_UPDATE_OUTCOME_FAILED: "update_failed",
    pb.SIGNATURE_UPDATE_OUTCOME_LOCKED: "update_locked",
}


def _antivirus_product_problems(
    product: pb.AntivirusProduct, now: dt.datetime, p: CheckParameters, no_database: set[str]
) -> tuple[list[Item], list[Item], list[Item]]:
    """(problems: FAIL, doubts: UNKNOWN, notes: said on a PASS) for one product, as items."""
    problems: list[Item] = []
    doubts: list[Item] = []
    notes: list[Item] = []
    name = product.name
    if product.HasField("enabled") and not product.enabled:
        problems.append(item("av.disabled", product=name))
    elif not product.HasField("enabled"):
        doubts.append(item("av.enabled_unknown", product=name))
    if product.HasField("real_time_protection") and not product.real_time_protection:
        problems.append(item("av.rtp_off", product=name))
    elif not product.HasField("real_time_protection"):
        doubts.append(item("av.rtp_unknown", product=name))
    if product.health_issues:
        problems.append(item("av.health", product=name, issues=list(product.health_issues)))
    if product.source in no_database and not product.HasField("signatures_updated_at"):
        problems.append(item("av.no_database", product=name))
    elif product.HasField("signatures_updated_at"):
        updated = utc(product.signatures_updated_at)
        if now - updated > p.signature_max_age:
            problems.append(item(
                "av.signatures_old", product=name, date=product.signatures_updated_at.seconds,
                days=p.signature_max_age.days,
            ))  # fmt: skip
    elif product.HasField("signatures_up_to_date"):
        if not product.signatures_up_to_date:
            problems.append(item("av.signatures_out_of_date", product=name))
    else:
        doubts.append(item("av.signature_date_unknown", product=name))
    if product.HasField("signature_update"):
        more_problems, more_doubts, notes = _signature_update_problems(product, now, p)
        problems += more_problems
        doubts += more_doubts
    return problems, doubts, notes


def _signature_update_problems(
    product: pb.AntivirusProduct, now: dt.datetime, p: CheckParameters
) -> tuple[list[Item], list[Item], list[Item]]:
    """The updater's last outcome, judged as check_antivirus's docstring says:
    (problems, doubts, notes)."""
    update = product.signature_update
    detail = update.detail or None
    if update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_ENGINE_OUTDATED:
        return [item("av.engine_outdated", product=product.name, detail=detail)], [], []
    outcome = _UPDATE_TERMS.get(update.outcome)
    if outcome is None:
        return [], [], []
    words = {
        "product": product.name, "outcome": outcome, "detail": detail,
        "attempted": update.attempted_at.seconds if update.HasField("attempted_at") else None,
    }  # fmt: skip
    if update.HasField("succeeded_at"):
        succeeded = utc(update.succeeded_at)
        success = update.succeeded_at.seconds
        if now - succeeded > p.signature_max_age:
            days = p.signature_max_age.days
            return [item("av.update_success_old", success=success, days=days, **words)], [], []
        return [], [], [item("av.update_success", success=success, **words)]
    if product.HasField("signatures_updated_at") or (
        product.HasField("signatures_up_to_date") and not product.signatures_up_to_date
    ):
        return [], [], [item("av.update", **words)]  # the signature date decides above
    return [], [item("av.update_unknown", **words)], []


def _open_firewalld_zones(fact: pb.FirewallFact) -> list[Item]:
    """firewalld's zones in force that accept everything, each named with its interfaces.
    Agents before FirewallProfile.zones send none: their reports are judged as before."""
    found: list[Item] = []
    for prof in fact.profiles:
        if prof.name != "firewalld" or not prof.active:
            continue
        for zone in prof.zones:
            if zone.default_inbound_action != "allow":
                continue
            interfaces = list(zone.interfaces)
            if zone.is_default:
                found.append(item("fw.default_zone_accepts", zone=zone.name,
                                  interfaces=interfaces or None))  # fmt: skip
            else:
                found.append(item("fw.zone_accepts", zone=zone.name, interfaces=interfaces))
    return found


def check_firewall(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """PASS when a firewall filters inbound traffic on every path in force, FAIL when none
    does or one path is open, UNKNOWN when the agent could not tell.

    firewalld's zones decide before the other Linux backends: a zone in force that accepts
    everything (a Wi-Fi in `trusted`, `public` set to ACCEPT) is a FAIL naming the zone,
    whatever nftables or iptables show, since what they show on such a host is firewalld's own
    rules, which accept that traffic (a known open path is a FAIL even where another source
    could not be read)."""
    if not report.HasField("firewall"):
        return _missing(report, pb.FACT_FIREWALL, "firewall")
    fact = report.firewall
    open_zones = _open_firewalld_zones(fact)
    if open_zones:
        return Verdict(State.FAIL, _listed(open_zones))
    off = [
        prof.name
        for prof in fact.profiles
        if prof.HasField("enabled")
        and not prof.enabled
        and (not prof.HasField("active") or prof.active)
    ]
    if fact.HasField("enabled") and fact.enabled:
        on = [prof.name for prof in fact.profiles if prof.enabled]
        # Windows' profiles are alternatives, and the one in force decides. Linux's backends
        # (nftables, iptables, ufw, firewalld) all act on the same packets: one that filters
        # protects the host, whatever rules another holds (Docker's, a VPN client's).
        layered = report.host.os_family == pb.OS_FAMILY_LINUX
        if off and not layered and any(prof.HasField("active") for prof in fact.profiles):
            return Verdict(State.FAIL, encode("fw.off_profiles", profiles=off))
        return Verdict(State.PASS, encode("fw.on", profiles=on) if on else _FW_ON)
    if fact.HasField("enabled"):
        families, cards = _open_paths(report)
        if families or cards:
            found = [item("fw.families_open", families=families)] if families else []
            found += [item("fw.cards_open", interfaces=cards[""])] if "" in cards else []
            found += [item("fw.family_cards_open", family=family, interfaces=names)
                      for family, names in sorted(cards.items()) if family]  # fmt: skip
            return Verdict(State.FAIL, _listed(found))
        seen = [prof.name for prof in fact.profiles]
        return Verdict(State.FAIL, encode("fw.none", profiles=seen) if seen else _FW_NONE)
    return _missing(report, pb.FACT_FIREWALL, "firewall_state")


# The profiles a Linux agent reads from its firewall tools; any other it sends is an IP family
# (below) or a network card whose inbound traffic none of them filters
# (agent/probes/linux/firewall.py).
_LINUX_BACKENDS = frozenset(
    {"nftables", "iptables", "iptables-legacy", "ip6tables", "ip6tables-legacy", "ufw",
     "firewalld"}
)  # fmt: skip
_FAMILIES = ("IPv4", "IPv6")


def _open_paths(report: pb.PostureReport) -> tuple[list[str], dict[str, list[str]]]:
    """The IP families and the Linux network cards the agent found open to every inbound
    connection: named in the reason, where "no firewall filters inbound traffic (nftables,
    wlp2s0)" read as if nftables filtered nothing (and an IPv4 left open beside filtered IPv6
    as if no tool filtered either). Cards by the family they are open in ("" for every family
    in use): the agent names a card open in one family only "wlp2s0 (IPv6)"."""
    if report.host.os_family != pb.OS_FAMILY_LINUX:
        return [], {}
    names = [
        prof.name for prof in report.firewall.profiles
        if prof.name not in _LINUX_BACKENDS and prof.default_inbound_action == "allow"
        and prof.HasField("enabled") and not prof.enabled
    ]  # fmt: skip
    cards: dict[str, list[str]] = {}
    for name in names:
        if name not in _FAMILIES:
            card, _, family = name.partition(" ")
            family = family.removeprefix("(").removesuffix(")")
            cards.setdefault(family if family in _FAMILIES else "", []).append(
                card if family in _FAMILIES else name
            )
    return [n for n in names if n in _FAMILIES], cards


def check_os_updates(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """6.3.1 for the system: no security update pending, and updates checked recently. A count
    the agent could not tell (apt on a distribution without a security archive, a failing
    `dnf updateinfo`) is UNKNOWN with the agent's reasons, never PASS."""
    if not report.HasField("os_updates"):
        return _missing(report, pb.FACT_OS_UPDATES, "os_updates")
    fact = report.os_updates
    if not fact.HasField("pending_security"):
        tool = fact.source or None
        why = _source_errors(report, pb.FACT_OS_UPDATES)
        if why:
            return Verdict(State.UNKNOWN, encode("upd.pending_untold", tool=tool, errors=why))
        return Verdict(State.UNKNOWN, encode("upd.pending_unknown", tool=tool))
    if fact.pending_security > 0:
        since = fact.oldest_pending_since
        return Verdict(State.FAIL, encode(
            "upd.pending", count=fact.pending_security,
            since=since.seconds if fact.HasField("oldest_pending_since") else None,
            names=list(fact.pending_security_names[:5]) or None,
        ))  # fmt: skip
    if not fact.HasField("last_checked"):
        return Verdict(State.UNKNOWN, _UPD_CHECK_UNKNOWN)
    checked = fact.last_checked.seconds
    if now - utc(fact.last_checked) > p.updates_check_max_age:
        days = p.updates_check_max_age.days
        return Verdict(State.FAIL, encode("upd.check_old", checked=checked, days=days))
    others = fact.pending_total or None
    return Verdict(State.PASS, encode("upd.ok", others=others, checked=checked))


def check_public_wifi(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """6.3.2: no WeChat on public Wi-Fi without a VPN. A public session (the agent's class,
    made from every signal the OS gave) needs a VPN up within the grace after it started, else
    FAIL, saying why the network counted as public (the session's classification reasons). A
    session whose network the OS hid (NETWORK_CLASS_UNKNOWN: macOS without Location Services)
    and that had no VPN in time cannot be judged: UNKNOWN, unless a FAIL already stands.

    Nor can a public session with no VPN seen at all when the agent could not read the VPN
    (the VPN fact, or one of its sources, failed: a Windows whose `ipconfig` is in a language
    the agent cannot read leaves only the connection names, which prove no absence): UNKNOWN,
    naming what failed. A VPN seen, but late, is a FAIL whatever else failed."""
    if not report.HasField("wifi"):
        return _missing(report, pb.FACT_WIFI, "wifi")
    fact = report.wifi
    if not fact.has_wifi_interface:
        return Verdict(State.PASS, _WIFI_NO_INTERFACE)
    judged = (pb.NETWORK_CLASS_PUBLIC, pb.NETWORK_CLASS_UNKNOWN)
    sessions = [s for s in fact.sessions if s.classification in judged]
    vpn_errors = _probe_errors(report, pb.FACT_VPN) or _source_errors(report, pb.FACT_VPN)
    unprotected: list[Item] = []
    unread: list[Item] = []
    hidden: list[Item] = []
    hidden_reasons: set[str] = set()
    for session in sessions:
        public = session.classification == pb.NETWORK_CLASS_PUBLIC
        if not public:
            hidden_reasons.update(session.classification_reasons)
        started = utc(session.started_at)
        late = None
        if session.vpn_up:
            late = utc(session.vpn_up_at) - started
            if late <= p.vpn_grace:
                continue
        if public:
            where = {"network": session.network_id or None,
                     "why": list(session.classification_reasons) or None}  # fmt: skip
            if late is None:
                seen = item("wifi.no_vpn", at=session.started_at.seconds, **where)
                (unread if vpn_errors else unprotected).append(seen)
            else:
                unprotected.append(item("wifi.late", seconds=int(late.total_seconds()), **where))
        else:
            interface = session.interface or None
            hidden.append(
                item("wifi.hidden_no_vpn", interface=interface, at=session.started_at.seconds)
                if late is None
                else item(
                    "wifi.hidden_late", interface=interface, seconds=int(late.total_seconds())
                )
            )
    if unprotected:
        return Verdict(State.FAIL, encode("wifi.public", sessions=unprotected))
    if unread:
        return Verdict(State.UNKNOWN, encode("wifi.vpn_unread", errors=vpn_errors, sessions=unread))
    if hidden:
        code = "wifi.hidden_macos" if any("macOS" in r for r in hidden_reasons) else "wifi.hidden"
        return Verdict(State.UNKNOWN, encode(code, sessions=hidden))
    if not sessions:
        return Verdict(State.PASS, encode("wifi.none_public", count=len(fact.sessions)))
    public_sessions = [s for s in sessions if s.classification == pb.NETWORK_CLASS_PUBLIC]
    named = [
        item("wifi.network", network=s.network_id or None,
             why=list(s.classification_reasons) or None)
        for s in public_sessions
    ]  # fmt: skip
    return Verdict(State.PASS, encode(
        "wifi.all_vpn", count=len(fact.sessions), public=len(public_sessions),
        hidden=(len(sessions) - len(public_sessions)) or None, networks=named or None,
    ))  # fmt: skip


def check_chat_backup(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
    """6.2.1: back up work chats regularly, keep the backups safe.

    Only backup sets count (kind APP_BACKUP or ARCHIVE): never the apps' live data, which the
    agent reports apart. A backup is kept safe when its own files are encrypted or it lies on
    an encrypted volume. Any plain backup on a volume known not to be encrypted fails the
    clause, whatever else exists: it is a copy of work chats anyone with the disk can read
    (one whose volume is unknown makes the clause UNKNOWN). Otherwise the clause needs one
    safe backup within the age limit; the newest one's age decides."""
    if not report.HasField("chat_backups"):
        return _missing(report, pb.FACT_CHAT_BACKUPS, "chat_backups")
    fact = report.chat_backups
    legacy = [b for b in fact.backups if b.kind == pb.BACKUP_KIND_UNSPECIFIED]
    if legacy and len(legacy) == len(fact.backups):
        version = report.agent_version or None
        return Verdict(State.UNKNOWN, encode("backup.legacy_agent", version=version))
    sets = [
        b
        for b in fact.backups
        if b.kind != pb.BACKUP_KIND_UNSPECIFIED and b.HasField("newest_backup_at")
    ]
    plain = [b for b in sets if b.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED]
    exposed = [b for b in plain if b.HasField("on_encrypted_volume") and not b.on_encrypted_volume]
    if exposed:
        first = max(exposed, key=lambda b: utc(b.newest_backup_at))
        return Verdict(State.FAIL, encode(
            "backup.exposed", location=first.location, date=first.newest_backup_at.seconds,
            others=(len(exposed) - 1) or None, **_evidence(first),
        ))  # fmt: skip
    if not sets:
        return _no_backup(report, fact)
    newest = max(sets, key=lambda b: utc(b.newest_backup_at))
    newest_at = utc(newest.newest_backup_at)
    if now - newest_at > p.backup_max_age:
        return Verdict(State.FAIL, encode(
            "backup.old", location=newest.location, date=newest.newest_backup_at.seconds,
            days=p.backup_max_age.days,
        ))  # fmt: skip
    doubtful = [b for b in plain if not b.on_encrypted_volume]
    if doubtful:
        first = doubtful[0]
        return Verdict(State.UNKNOWN, encode(
            "backup.volume_unknown", location=first.location, **_evidence(first)
        ))  # fmt: skip
    fresh = [b for b in sets if now - utc(b.newest_backup_at) <= p.backup_max_age]
    safe = [b for b in fresh if _kept_safe(b)]
    if safe:
        best = max(safe, key=lambda b: utc(b.newest_backup_at))
        how = "backup.encrypted" if best.encryption == pb.ENCRYPTION_STATE_ENCRYPTED else (
            "backup.protected")  # fmt: skip
        return Verdict(State.PASS, encode(
            how, location=best.location, date=best.newest_backup_at.seconds, why=_safe_why(best)
        ))  # fmt: skip
    return Verdict(State.UNKNOWN, encode(
        "backup.not_safe", location=newest.location, date=newest.newest_backup_at.seconds,
        **_evidence(newest),
    ))  # fmt: skip


def _evidence(backup: pb.ChatBackup) -> dict[str, str]:
    """What the agent saw of a backup's encryption and of its volume (its own words)."""
    return {"encryption": backup.encryption_evidence, "volume": backup.volume_evidence}


def _kept_safe(backup: pb.ChatBackup) -> bool:
    return backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED or backup.on_encrypted_volume


def _safe_why(backup: pb.ChatBackup) -> list[str]:
    parts = []
    if backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED:
        parts.append(backup.encryption_evidence)
    if backup.on_encrypted_volume:
        parts.append(backup.volume_evidence)
    return [p for p in parts if p]


# The agent's word on live data folders it left out of a full report (agent/probes/
# chat_backups.py, LIVE_DATA_SOURCE): those accounts' backups were looked for all the same.
LIVE_DATA_LEFT_OUT = "live_data"


def _no_backup(report: pb.PostureReport, fact: pb.ChatBackupFact) -> Verdict:
    """No backup set at all: FAIL, unless something that could hold one was not read."""
    unread = [
        f"{e.source}: {e.message}"
        for e in report.errors
        if e.fact == pb.FACT_CHAT_BACKUPS and e.source and e.source != LIVE_DATA_LEFT_OUT
    ] + list(fact.skipped_reasons)
    if unread:
        return Verdict(State.UNKNOWN, encode("backup.none_unread", places=unread[:3]))
    if fact.entries_skipped:
        return Verdict(State.UNKNOWN, encode("backup.none_skipped", count=fact.entries_skipped))
    if fact.live_data:
        return Verdict(State.FAIL, encode(
            "backup.none_live", locations=fact.locations_checked, accounts=len(fact.live_data)
        ))  # fmt: skip
    return Verdict(State.FAIL, encode("backup.none", locations=fact.locations_checked))


_CHAT_APPS = {pb.CHAT_APP_WECHAT: "wechat", pb.CHAT_APP_WECOM: "wecom"}


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
        return _missing(report, pb.FACT_CHAT_CLIENTS, "chat_clients")
    minimums = {pb.CHAT_APP_WECHAT: p.min_version_wechat, pb.CHAT_APP_WECOM: p.min_version_wecom}
    unread = _source_errors(report, pb.FACT_CHAT_CLIENTS)
    clients = report.chat_clients.clients
    if not clients:
        if unread:
            return Verdict(State.UNKNOWN, encode("apps.none_unread", errors=unread))
        return Verdict(State.PASS, _APPS_NONE)
    old: list[Item] = []
    doubts: list[Item] = []
    current: list[Item] = []
    for client in clients:
        app = _CHAT_APPS.get(client.app, "unknown_app")
        where = client.location or None
        minimum = minimums.get(client.app)
        if not client.version:
            why = client.version_error or None
            doubts.append(item("apps.version_unknown", app=app, location=where, why=why))
            continue
        order = None if minimum is None else _version_order(client.version, minimum)
        words = {"app": app, "version": client.version, "location": where}
        if order is None:
            doubts.append(item("apps.incomparable", minimum=minimum or "?", **words))
        elif order < 0:
            old.append(item("apps.old", minimum=minimum, **words))
        else:
            current.append(item("apps.client", app=app, version=client.version))
    if old:
        return Verdict(State.FAIL, _listed(old + doubts))
    if doubts or unread:
        unread_items = [item("apps.source_unread", **one[1]) for one in unread]
        return Verdict(State.UNKNOWN, _listed(doubts + unread_items))
    return Verdict(State.PASS, encode("apps.ok", clients=current))


CHECKS: tuple[Check, ...] = (
    Check(
        "antivirus", "6.3.1", "安装杀毒软件", "Antivirus installed and up to date", check_antivirus
    ),
    Check("firewall", "6.3.1", "安装防火墙", "Firewall on", check_firewall),
    Check(
        "os-updates", "6.3.1", "定期更新系统和软件", "System and software updated", check_os_updates
    ),
    Check(
        "public-wifi", "6.3.2", "公共无线网络须使用 VPN", "VPN on public Wi-Fi", check_public_wifi
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
    return [
        (check, judge(check, report, now, params))
        for check in CHECKS
        if check_ids is None or check.check_id in check_ids
    ]


def judge(
    check: Check, report: pb.PostureReport, now: dt.datetime, params: CheckParameters
) -> Verdict:
    """One check's verdict on one report. A check that raises gives UNKNOWN, never PASS."""
    try:
        return check.evaluate(report, now, params)
    except Exception as exc:  # a bug in one check must not stop the others or the ingest
        return Verdict(State.UNKNOWN, encode("check.crashed", error=type(exc).__name__))
