"""Every reason code: its English words (the catalogs' msgids) and its parameters' kinds,
declared in one place, with the fixed words (terms), optional parts (wraps) and states that
reasons use. `devposture.policy.reasons` encodes, parses and words them; this module only
declares. Adding a reason: CONTRIBUTING.md, "Checklist: adding a reason".
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal

# How a parameter is stored and shown.
Kind = Literal[
    "text",  # as given: a product, a path, the agent's own error message
    "int",
    "date",  # epoch seconds: the day in the company's time zone
    "time",  # epoch seconds: day, minute and offset in the company's time zone
    "texts",  # a list of texts, joined
    "signals",  # the agent's words for why a network is public: each translated (SIGNALS)
    "phrase",  # the agent's own words: translated where declared (devposture.policy.phrases)
    "phrases",  # a list of them, joined
    "items",  # a list of nested reasons [code, {params}], joined
    "reason",  # one nested stored reason (a legacy text too)
    "term",  # a key of TERMS: a fixed word, translated
    "state",  # a compliance state (PASS, FAIL ...): its name, translated
]


@dataclass(frozen=True)
class Param:
    kind: Kind
    # Optional part: when set, an empty value (None, "", 0, []) shows nothing and any other
    # shows inside these words (a key of WRAPS), e.g. " on {}" -> " on 2026-12-02".
    wrap: str | None = None
    # Shown when the value is empty: a key of TERMS ("a network with a hidden name").
    default: str | None = None


@dataclass(frozen=True)
class Message:
    code: str
    english: str  # the msgid: English words with {name} placeholders
    params: dict[str, Param]


CODES: dict[str, Message] = {}


def _declare(code: str, english: str, **params: Kind | Param) -> None:
    declared = {n: p if isinstance(p, Param) else Param(p) for n, p in params.items()}
    assert placeholders(english) == set(declared), code
    CODES[code] = Message(code, english, declared)


def placeholders(template: str) -> set[str]:
    """The {names} a template fills (a catalog's msgstr must name the same)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# Optional parts, shared by several codes (msgctxt "wrap").
WRAPS = {
    "paren": " ({})",
    "colon": ": {}",
    "on": " on {}",
    "since": " since {}",
    "at": " at {}",
    "others": " and {} other(s)",
    "other_updates": " ({} other update(s))",
    "hidden": ", {} with a hidden name",
}
# Fixed words a parameter may name (msgctxt "term").
TERMS = {
    "antivirus": "antivirus",
    "firewall": "the firewall",
    "firewall_state": "the firewall state",
    "os_updates": "OS updates",
    "wifi": "Wi-Fi",
    "chat_backups": "chat backups",
    "chat_clients": "the installed chat clients",
    "wechat": "WeChat",
    "wecom": "WeCom",
    "unknown_app": "an unknown chat app",
    "update_failed": "last signature update failed",
    "update_locked": "last signature update did not run: updater locked",
    "hidden_network": "a network with a hidden name",
    "an_interface": "an interface",
    "unknown_version": "(unknown version)",
    "not_reported": "not reported",
    # What went wrong reading a fact, by the agent's error code (ProbeErrorCode).
    "probe_command_not_found": "a tool it needs is not installed",
    "probe_permission_denied": "permission denied",
    "probe_timeout": "it took too long",
    "probe_command_failed": "a tool failed",
    "probe_parse_error": "a tool's output could not be understood",
    "probe_not_supported": "not supported on this system",
    "probe_no_source": "nothing to read it from",
    "probe_internal": "an error in the agent",
    "probe_unspecified": "an error",
}
# The agent's words for why a network counts as public (agent/probes/wifi_classify.py sends
# them in English, in the report itself): each is said in the reader's language where it is
# one of these (msgctxt "signal"), a matched pattern with its pattern; any other as it came.
SIGNALS = (
    "open network", "WEP", "Enhanced Open (OWE): no password", "Windows network category Public",
    "captive portal", "name hidden by macOS", "the OS gave no network name", "company network",
)  # fmt: skip
SIGNAL_MATCHED = "name matches {pattern}"
# The compliance states (msgctxt "state").
STATES = {
    "PASS": "compliant",
    "FAIL": "failing",
    "GRACE": "failing, within grace",
    "UNKNOWN": "cannot tell",
    "EXEMPT": "exempt",
    "STALE": "not reported in time",
}

# A list of reasons, each whole ("A; B").
_declare("list.items", "{items}", items="items")
_declare("check.crashed", "check failed internally ({error})", error="text")
_declare("fact.missing", "the agent did not report {fact}", fact="term")
_declare("fact.unreadable", "{fact} could not be read: {error}", fact="term", error="phrase")
_declare("fact.source_error", "{source}: {error}", source="text", error="phrase")
# Since the agent's error codes are worded too (the two above are kept for reasons stored
# before): what went wrong in words, the agent's own message beside it.
_declare("fact.unread", "{fact} could not be read: {errors}", fact="term", errors="items")
_declare("probe.error", "{cause}{detail}", cause="term", detail=Param("phrase", wrap="paren"))
_declare("fact.source_unread", "{source}: {cause}{detail}", source="text", cause="term",
         detail=Param("phrase", wrap="paren"))  # fmt: skip

_declare("av.none", "no known antivirus product installed or running")
_declare("av.none_unread", "no antivirus found, but {errors}", errors="items")
_declare("av.ok", "{product}: on, real-time protection, signatures fresh", product="text")
_declare("av.disabled", "{product}: disabled", product="text")
_declare("av.enabled_unknown", "{product}: cannot tell whether it is enabled", product="text")
_declare("av.rtp_off", "{product}: real-time protection off", product="text")
_declare(
    "av.rtp_unknown", "{product}: cannot tell whether real-time protection is on", product="text"
)
_declare("av.health", "{product}: health issues: {issues}", product="text", issues="phrases")
_declare("av.no_database", "{product}: no signature database", product="text")
_declare(
    "av.signatures_old", "{product}: signatures from {date}, older than {days} days",
    product="text", date="date", days="int",
)  # fmt: skip
_declare("av.signatures_out_of_date", "{product}: signatures out of date", product="text")
_declare("av.signature_date_unknown", "{product}: signature date unknown", product="text")
_declare(
    "av.engine_outdated", "{product}: engine outdated{detail}: upgrade {product}",
    product="text", detail=Param("text", "paren"),
)  # fmt: skip
_UPDATE: dict[str, Kind | Param] = {
    "product": "text", "outcome": "term", "attempted": Param("date", "on"),
    "detail": Param("text", "paren"),
}  # fmt: skip
_declare(
    "av.update_success_old",
    "{product}: {outcome}{attempted}{detail}; last success {success}, older than {days} days",
    success="date", days="int", **_UPDATE,
)  # fmt: skip
_declare(
    "av.update_success", "{product}: {outcome}{attempted}{detail}; last success {success}",
    success="date", **_UPDATE,
)  # fmt: skip
_declare("av.update", "{product}: {outcome}{attempted}{detail}", **_UPDATE)
_declare(
    "av.update_unknown",
    "{product}: {outcome}{attempted}{detail}, and neither the last success nor the signature"
    " date is known",
    **_UPDATE,
)  # fmt: skip

_declare("fw.off_profiles", "firewall off on active profile(s): {profiles}", profiles="phrases")
_declare("fw.on", "filtering inbound traffic: {profiles}", profiles="phrases")
_declare("fw.on_plain", "filtering inbound traffic: on")
_declare("fw.none", "no firewall filters inbound traffic ({profiles})", profiles="phrases")
_declare("fw.none_configured", "no firewall filters inbound traffic (no firewall configured)")
# Linux network cards whose new inbound connections no backend filters (an accept of
# everything on that card before any drop): the agent sends each as a profile of its own.
_declare(
    "fw.cards_open", "all inbound traffic is accepted on network card(s) {interfaces}",
    interfaces="texts",
)  # fmt: skip
# A Linux network card open in one IP family only (the other filtered on it, or unknown): the
# agent sends it as a profile named "wlp2s0 (IPv6)".
_declare(
    "fw.family_cards_open",
    "all inbound {family} traffic is accepted on network card(s) {interfaces}",
    family="text", interfaces="texts",
)  # fmt: skip
# An IP family (IPv4, IPv6) in use whose new inbound connections no Linux backend filters,
# while the other family's are: the agent sends it as a profile named "IPv4" or "IPv6".
_declare(
    "fw.families_open", "all inbound {families} traffic is accepted", families="texts"
)  # fmt: skip
# firewalld's zones in force that accept everything (FirewallProfile.zones): that path is open.
_declare(
    "fw.zone_accepts", "firewalld zone {zone} accepts all inbound traffic on {interfaces}",
    zone="text", interfaces="texts",
)  # fmt: skip
_declare(
    "fw.default_zone_accepts",
    "firewalld's default zone {zone} accepts all inbound traffic on every interface bound to no"
    " other zone{interfaces}",
    zone="text", interfaces=Param("texts", "paren"),
)  # fmt: skip

_declare(
    "upd.pending_unknown", "the update tool{tool} did not tell pending security updates",
    tool=Param("text", "paren"),
)  # fmt: skip
_declare(
    "upd.pending_untold", "the update tool{tool} did not tell pending security updates: {errors}",
    tool=Param("text", "paren"), errors="items",
)  # fmt: skip
_declare(
    "upd.pending", "{count} security update(s) pending{since}{names}",
    count="int", since=Param("date", "since"), names=Param("texts", "colon"),
)  # fmt: skip
_declare(
    "upd.check_old", "updates last checked {checked}, more than {days} days ago",
    checked="date", days="int",
)  # fmt: skip
_declare(
    "upd.check_unknown",
    "no security updates pending, but when updates were last checked is unknown",
)
_declare(
    "upd.ok", "no security updates pending{others}; last checked {checked}",
    others=Param("int", "other_updates"), checked="date",
)  # fmt: skip

_declare("wifi.no_interface", "no Wi-Fi interface: no public Wi-Fi use possible")
_NETWORK = Param("text", default="hidden_network")
_WHERE: dict[str, Kind | Param] = {"network": _NETWORK, "why": Param("signals", "paren")}
_INTERFACE = Param("text", default="an_interface")
_declare("wifi.no_vpn", "{network}{why} at {at} without VPN", at="time", **_WHERE)
_declare("wifi.late", "{network}{why}: VPN came up {seconds} s late", seconds="int", **_WHERE)
_declare("wifi.hidden_no_vpn", "Wi-Fi on {interface} at {at} without VPN",
         interface=_INTERFACE, at="time")  # fmt: skip
_declare("wifi.hidden_late", "Wi-Fi on {interface}: VPN came up {seconds} s late",
         interface=_INTERFACE, seconds="int")  # fmt: skip
_declare("wifi.public", "public Wi-Fi: {sessions}", sessions="items")
_declare(
    "wifi.hidden",
    "network name not reported by the OS; cannot tell whether it was public: {sessions}",
    sessions="items",
)  # fmt: skip
_declare(
    "wifi.hidden_macos",
    "network name hidden by macOS: grant Location Services to the devposture agent (System"
    " Settings > Privacy & Security); cannot tell whether it was public: {sessions}",
    sessions="items",
)  # fmt: skip
_declare(
    "wifi.vpn_unread",
    "whether a VPN was up could not be read ({errors}); cannot tell whether this Wi-Fi was"
    " protected: {sessions}",
    errors="items", sessions="items",
)  # fmt: skip
_declare("wifi.none_public", "{count} Wi-Fi session(s), none on a public network", count="int")
_declare("wifi.network", "{network}{why}", **_WHERE)
_declare(
    "wifi.all_vpn", "{count} Wi-Fi session(s), {public} public{hidden}, all with VPN{networks}",
    count="int", public="int", hidden=Param("int", "hidden"),
    networks=Param("items", "colon"),
)  # fmt: skip

_declare(
    "backup.legacy_agent",
    "agent {version} cannot tell backups from WeChat's own data folders: update the agent",
    version=Param("text", default="unknown_version"),
)  # fmt: skip
# What the agent saw of a backup's encryption and of its volume, each in brackets, and nothing
# where it saw nothing ("()" was shown when the agent had no words for the volume).
_EVIDENCE: dict[str, Kind | Param] = {
    "encryption": Param("phrase", "paren"), "volume": Param("phrase", "paren"),
}  # fmt: skip
_declare(
    "backup.exposed",
    "plain backup {location} of {date}{others} is not encrypted{encryption}{volume}",
    location="text", date="date", others=Param("int", "others"), **_EVIDENCE,
)  # fmt: skip
_declare(
    "backup.old", "newest backup {location} is from {date}, older than {days} days",
    location="text", date="date", days="int",
)  # fmt: skip
_declare(
    "backup.volume_unknown",
    "plain backup {location}{encryption}: whether its disk is encrypted is unknown{volume}",
    location="text", **_EVIDENCE,
)  # fmt: skip
_declare(
    "backup.encrypted", "encrypted backup {location} of {date} ({why})",
    location="text", date="date", why="phrases",
)  # fmt: skip
_declare(
    "backup.protected", "protected backup {location} of {date} ({why})",
    location="text", date="date", why="phrases",
)  # fmt: skip
_declare(
    "backup.not_safe",
    "backup {location} of {date} found, not known to be kept safe{encryption}{volume}",
    location="text", date="date", **_EVIDENCE,
)  # fmt: skip
_declare(
    "backup.none_unread",
    "no WeChat or WeCom backup found, but some places could not be read: {places}",
    places="phrases",
)  # fmt: skip
_declare(
    "backup.none_skipped",
    "no WeChat or WeCom backup found, but some places could not be read: {count} entries",
    count="int",
)  # fmt: skip
_declare(
    "backup.none", "no WeChat or WeCom backup found ({locations} location(s) checked)",
    locations="int",
)  # fmt: skip
_declare(
    "backup.none_live",
    "no WeChat or WeCom backup found ({locations} location(s) checked); WeChat/WeCom data of"
    " {accounts} account(s) found, not a backup",
    locations="int", accounts="int",
)  # fmt: skip

_declare("apps.none", "no WeChat or WeCom client installed")
_declare("apps.none_unread", "no WeChat or WeCom client found, but {errors}", errors="items")
_APP: dict[str, Kind | Param] = {"app": "term", "location": Param("text", "at")}
_declare(
    "apps.version_unknown", "{app}{location}: version unknown ({why})",
    why=Param("phrase", default="not_reported"), **_APP,
)  # fmt: skip
_declare(
    "apps.incomparable", "{app} {version}{location}: cannot compare with {minimum}",
    version="text", minimum="text", **_APP,
)  # fmt: skip
_declare(
    "apps.old", "{app} {version}{location} is older than the minimum {minimum}",
    version="text", minimum="text", **_APP,
)  # fmt: skip
_declare("apps.unread", "unread: {source}: {error}", source="text", error="phrase")
_declare("apps.source_unread", "unread: {source}: {cause}{detail}", source="text",
         cause="term", detail=Param("phrase", wrap="paren"))  # fmt: skip
_declare("apps.ok", "{clients}: at or above the minimum version", clients="items")
_declare("apps.client", "{app} {version}", app="term", version="text")

# A device's standing (collector/compliance.py), wrapping the verdict's own reason.
_declare("standing.not_judged", "not judged yet: no report received")
_declare(
    "standing.grace", "failing, within grace until {until}: {reason}",
    until="time", reason="reason",
)  # fmt: skip
_declare(
    "standing.stale", "silent for more than {hours} h (last report {last})",
    hours="int", last="time",
)  # fmt: skip
_declare(
    "standing.stale_never", "silent for more than {hours} h (no report since enrollment)",
    hours="int",
)  # fmt: skip
_declare(
    "standing.exempt",
    "waiver {waiver} until {until} ({owner}: {why}); without it: {state}",
    waiver="text", until="time", owner="text", why="text", state="state",
)  # fmt: skip


def every_message() -> list[tuple[str, str]]:
    """(context, English msgid) of every word a catalog must hold: the codes, the optional
    parts, the terms, the states and the separators."""
    out = [(m.code, m.english) for m in CODES.values()]
    out += [("wrap", w) for w in WRAPS.values()] + [("term", t) for t in TERMS.values()]
    out += [("state", s) for s in STATES.values()]
    out += [("signal", s) for s in (*SIGNALS, SIGNAL_MATCHED)]
    return [*out, ("join", ", "), ("join", "; ")]


# A code is dotted lowercase words: no reason stored as English text by an older version
# starts with one, so the two never mix.
CODE = re.compile(r"[a-z]+(?:\.[a-z_]+)+")
assert all(CODE.fullmatch(code) for code in CODES)
