"""Reasons as codes with parameters: what a check found, stored once, worded per reader.

A verdict's reason is kept in the existing `reason` text (no schema or evidence-format change)
in one canonical, compact, machine-readable form::

    av.none                                                   (no parameters)
    av.signatures_old {"date":1763596800,"days":7,"product":"ClamAV"}

a declared code, then (when it has parameters) one space and a JSON object with sorted keys,
no spaces, UTF-8 as is. Times are epoch seconds (UTC), never pre-formatted: the words, the
language and the time zone are chosen when the reason is shown. A text stored by an older
version (plain English, which never starts with a dotted code) is a *legacy* reason: `parse`
returns None for it and `render` shows it unchanged.

API (the CLI, the exports, the agent's `status` and the dashboard all use these):

* `render(stored, lang, zone) -> str`: the reason in "zh" or "en", times in `zone` (the
  company's time zone: `devposture.policy.time_zone.company_zone(policy.time_zone)`);
* `parse(stored) -> Reason | None`: the code and parameters (None: a legacy text);
* `encode(code, **params)` and `item(code, **params)` for the checks; `state_word(state,
  lang)` for a state's name.

Every code, its English words and its parameters are declared below, in `CODES`; the words
per language come from the gettext catalogs (`devposture.policy.catalogs`), keyed by the code
as message context. Adding a reason: CONTRIBUTING.md, "Checklist: adding a reason".
"""

from __future__ import annotations

import datetime as dt
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote
from typing import Any, Literal

from devposture.policy.catalogs import Lang, translate

# How a parameter is stored and shown.
Kind = Literal[
    "text",  # as given: a product, a path, the agent's own error message
    "int",
    "date",  # epoch seconds: the day in the company's time zone
    "time",  # epoch seconds: day, minute and offset in the company's time zone
    "texts",  # a list of texts, joined
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


# One reason inside another's `items`: [code] or [code, {params}] (`item`).
Item = list[Any]


@dataclass(frozen=True)
class Reason:
    code: str
    params: dict[str, Any]


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
}
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
_declare("fact.unreadable", "{fact} could not be read: {error}", fact="term", error="text")
_declare("fact.source_error", "{source}: {error}", source="text", error="text")

_declare("av.none", "no known antivirus product installed or running")
_declare("av.none_unread", "no antivirus found, but {errors}", errors="items")
_declare("av.ok", "{product}: on, real-time protection, signatures fresh", product="text")
_declare("av.disabled", "{product}: disabled", product="text")
_declare("av.enabled_unknown", "{product}: cannot tell whether it is enabled", product="text")
_declare("av.rtp_off", "{product}: real-time protection off", product="text")
_declare(
    "av.rtp_unknown", "{product}: cannot tell whether real-time protection is on", product="text"
)
_declare("av.health", "{product}: health issues: {issues}", product="text", issues="texts")
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

_declare("fw.off_profiles", "firewall off on active profile(s): {profiles}", profiles="texts")
_declare("fw.on", "filtering inbound traffic: {profiles}", profiles="texts")
_declare("fw.on_plain", "filtering inbound traffic: on")
_declare("fw.none", "no firewall filters inbound traffic ({profiles})", profiles="texts")
_declare("fw.none_configured", "no firewall filters inbound traffic (no firewall configured)")

_declare(
    "upd.pending_unknown", "the update tool{tool} did not tell pending security updates",
    tool=Param("text", "paren"),
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
_WHERE: dict[str, Kind | Param] = {"network": _NETWORK, "why": Param("texts", "paren")}
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
_EVIDENCE: dict[str, Kind | Param] = {"encryption": "text", "volume": "text"}
_declare(
    "backup.exposed",
    "plain backup {location} of {date}{others} is not encrypted ({encryption}; {volume})",
    location="text", date="date", others=Param("int", "others"), **_EVIDENCE,
)  # fmt: skip
_declare(
    "backup.old", "newest backup {location} is from {date}, older than {days} days",
    location="text", date="date", days="int",
)  # fmt: skip
_declare(
    "backup.volume_unknown",
    "plain backup {location} ({encryption}): whether its disk is encrypted is unknown"
    " ({volume})",
    location="text", **_EVIDENCE,
)  # fmt: skip
_declare(
    "backup.encrypted", "encrypted backup {location} of {date} ({why})",
    location="text", date="date", why="texts",
)  # fmt: skip
_declare(
    "backup.protected", "protected backup {location} of {date} ({why})",
    location="text", date="date", why="texts",
)  # fmt: skip
_declare(
    "backup.not_safe",
    "backup {location} of {date} found, not known to be kept safe ({encryption}; {volume})",
    location="text", date="date", **_EVIDENCE,
)  # fmt: skip
_declare(
    "backup.none_unread",
    "no WeChat or WeCom backup found, but some places could not be read: {places}",
    places="texts",
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
    why=Param("text", default="not_reported"), **_APP,
)  # fmt: skip
_declare(
    "apps.incomparable", "{app} {version}{location}: cannot compare with {minimum}",
    version="text", minimum="text", **_APP,
)  # fmt: skip
_declare(
    "apps.old", "{app} {version}{location} is older than the minimum {minimum}",
    version="text", minimum="text", **_APP,
)  # fmt: skip
_declare("apps.unread", "unread: {source}: {error}", source="text", error="text")
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

_CODE = re.compile(r"[a-z]+(?:\.[a-z_]+)+")


def encode(code: str, /, **params: Any) -> str:  # noqa: ANN401 - values by the code's kinds
    """The stored form of `code` with `params` (see the module's docstring); a None value is
    left out (an optional part not there). For a code without parameters it is the code
    itself: keep such reasons as constants."""
    body = _object(params)
    return code if body == "{}" else f"{code} {body}"


def item(code: str, /, **params: Any) -> Item:  # noqa: ANN401
    """One reason inside another's `items` parameter (None values are left out when it is
    encoded, as by `encode`)."""
    return [code, params] if params else [code]


def _object(params: Mapping[str, Any]) -> str:
    """`json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, None
    values left out, at a fraction of its cost (json's encoder is made anew for each call,
    and a report's reasons are encoded as it arrives); `test_reasons.py` holds them equal.
    Plain loops and exact types first: this runs a few times per report."""
    parts = []
    for name in sorted(params):
        value = params[name]
        if value is not None:
            parts.append(f"{_quote(name)}:{_json(value)}")
    return "{" + ",".join(parts) + "}"


def _json(value: Any) -> str:  # noqa: ANN401
    kind = type(value)
    if kind is str:
        return _quote(value)
    if kind is int:
        return str(value)
    if kind is list or kind is tuple:
        return "[" + ",".join([_json(one) for one in value]) + "]"
    if kind is dict:
        return _object(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    raise TypeError(f"a reason's parameter is text, a whole number or a list, not {value!r}")


def parse(stored: str) -> Reason | None:
    """The code and parameters of a stored reason; None for a legacy text (or anything not
    in the canonical form of a declared code)."""
    code, _, rest = stored.partition(" ")
    if code not in CODES:
        return None
    if not rest:
        return Reason(code, {})
    try:
        params = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(params, dict) or not set(params) <= set(CODES[code].params):
        return None
    return Reason(code, params)


def render(stored: str, lang: Lang, zone: dt.tzinfo) -> str:
    """The reason in `lang`, with its times in `zone`; a legacy text unchanged, and so is a
    coded one whose values do not fit their kinds (a page or a listing never fails on one)."""
    parsed = parse(stored)
    if parsed is None:
        return stored
    try:
        return _render(parsed.code, parsed.params, lang, zone)
    except (TypeError, ValueError, OverflowError, OSError, IndexError, KeyError):
        return stored


def state_word(state: str, lang: Lang) -> str:
    """PASS -> 合规 / compliant; an unknown state as it is."""
    english = STATES.get(state)
    return state if english is None else translate(lang, "state", english)


def _render(code: str, params: Mapping[str, Any], lang: Lang, zone: dt.tzinfo) -> str:
    message = CODES.get(code)
    if message is None:
        return code
    values = {
        name: _value(param, params.get(name), lang, zone) for name, param in message.params.items()
    }
    return translate(lang, code, message.english).format_map(values)


def _value(param: Param, value: Any, lang: Lang, zone: dt.tzinfo) -> str:  # noqa: ANN401
    if param.default is not None and value in (None, ""):
        return translate(lang, "term", TERMS[param.default])
    if param.wrap is not None:
        if value in (None, "", 0, []):
            return ""
        return translate(lang, "wrap", WRAPS[param.wrap]).format(
            _value(Param(param.kind), value, lang, zone)
        )
    kind = param.kind
    if kind in ("text", "int"):
        return "" if value is None else str(value)
    if kind == "date":
        day = dt.datetime.fromtimestamp(value, zone)
        return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    if kind == "time":
        return _time(value, zone)
    if kind == "texts":
        return translate(lang, "join", ", ").join(str(v) for v in value or ())
    if kind == "items":
        return translate(lang, "join", "; ").join(
            _render(one[0], one[1] if len(one) > 1 else {}, lang, zone) for one in value or ()
        )
    if kind == "reason":
        return render(str(value or ""), lang, zone)
    if kind == "term":
        english = TERMS.get(str(value))
        return str(value) if english is None else translate(lang, "term", english)
    return state_word(str(value), lang)


def _time(seconds: int, zone: dt.tzinfo) -> str:
    """ "2026-12-03 16:38 (UTC+08:00)", as the collector's `company_time.shown` writes it."""
    local = dt.datetime.fromtimestamp(seconds, zone)
    offset = local.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    return f"{local:%Y-%m-%d %H:%M} (UTC{'+' if minutes >= 0 else '-'}{hours:02d}:{rest:02d})"


def every_message() -> list[tuple[str, str]]:
    """(context, English msgid) of every word a catalog must hold: the codes, the optional
    parts, the terms, the states and the separators."""
    out = [(m.code, m.english) for m in CODES.values()]
    out += [("wrap", w) for w in WRAPS.values()] + [("term", t) for t in TERMS.values()]
    out += [("state", s) for s in STATES.values()]
    return [*out, ("join", ", "), ("join", "; ")]


assert all(_CODE.fullmatch(code) for code in CODES)
