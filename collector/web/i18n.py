"""The dashboard's own words in Chinese and English. Clause and check titles come from the
policy, which has both. The English is declared here (the msgids); every language's words
come from the message catalogs (`devposture.policy.catalogs`, msgctxt "web.<key>"), which
`make catalogs` keeps up to date and `tests/policy/test_catalogs.py` holds to this list.

Templates read them as `t.key` and `t[key]`. They get a `Words`, never a dict: Jinja looks an
attribute up before an item, so on a dict `t.clear` was the dict's `clear` method and the page
showed `<built-in method clear of dict object at 0x…>` (issue 19). A `Words` has no attribute
but its words; a missing one fails the page (StrictUndefined), it never prints a repr.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from devposture.collector.web.accept_language import preferred
from devposture.policy.catalogs import Lang, translate

LANGS = ("zh", "en")
# The site's language when neither the reader nor the browser decides (`[web] language`).
DEFAULT_LANG = "zh"

ENGLISH: dict[str, str] = {
    # key: English (the msgid; the Chinese is the catalog's, msgctxt "web.<key>")
    "app": "Device compliance dashboard",
    "overview": "Overview",
    "devices": "Devices",
    "failing": "Failing longest",
    "logout": "Log out",
    "login": "Log in",
    "login_title": "Log in to the compliance dashboard",
    "credential": "Admin credential",
    "credential_help": (
        "Paste the credential printed by `devposture-collector admin add` (dpa_…). The viewer "
        "role suffices (the audit log needs the auditor role)."
    ),
    "login_failed": (
        "That credential is not valid or was revoked. Ask the collector's administrator for a "
        "new one."
    ),
    "login_busy": (
        "Too many login attempts from your address at once. Try again in {seconds} s, one at a "
        "time."
    ),
    "signed_in_as": "Signed in as",
    # Punctuation between a label and its value, and around a figure: Chinese takes its own
    # full-width marks ("设备数：4", "（查看者）"), not ASCII ones after Chinese words.
    "colon": ": ",
    "paren_open": " (",
    "paren_close": ")",
    "clause": "Clause",
    "check": "Check",
    "devices_n": "Devices",
    "pass_rate": "Pass rate",
    "trend": "Pass rate over the last 8 weeks",
    "trend_note": (
        "Each point is the fleet as it stood at the end of that week (this week: now, within "
        "seconds of the latest report). A missing point is a week whose end was not recorded "
        "yet: the collector counts it from the history when it starts."
    ),
    "whole_fleet": "whole fleet",
    "trend_whole_fleet": "The trend is the whole fleet's.",
    "as_of": "As of",
    "no_devices": (
        "No devices enrolled yet. Create a token with `devposture-collector token create`."
    ),
    "search": "Search",
    "search_hint": "device id prefix or hostname",
    "filter": "Filter",
    "any": "any",
    "state": "State",
    "os": "OS",
    "stale_only": "Stale devices only",
    "group": "Group",
    "apply": "Apply",
    "clear": "Clear",
    "device": "Device",
    "hostname": "Hostname",
    "last_report": "Last report",
    "enrolled": "Enrolled",
    "status": "Device status",
    "matching": "matching devices",
    "matching_one": "matching device",  # a count of one (English has a singular)
    "failures": "failures past their grace period",
    "failures_one": "failure past its grace period",  # a count of one (English has a singular)
    "page": "Page",
    "prev": "Previous",
    "next": "Next",
    "none_found": "No device matches.",
    "since": "Since",
    "reason": "Reason",
    "evidence": "Evidence",
    "verdict": "Latest report's verdict",
    "remediation": "Remediation",
    "waivers": "Waivers",
    "no_waivers": "No waivers.",
    "owner": "Owner",
    "expires": "Expires",
    "revoked": "revoked",
    "active": "active",
    "ended": "ended",
    "timeline": "State timeline",
    "from": "From",
    "until": "Until",
    "hours": "Hours",
    "now": "now",
    "reports": "Reports received",
    "reports_shown": "latest {shown} of {total}",
    "received": "Received",
    "collected": "Collected",
    "report_id": "Report id",
    "agent_version": "Agent version",
    "wifi_sessions": "Wi-Fi sessions in that report",
    "network": "Network",
    "classification": "Class",
    "started": "Started",
    "vpn": "VPN",
    "vpn_none": "none",
    "failing_since": "Failing since",
    "days": "Days",
    "no_failing": "No device is failing past its grace period.",
    "not_found": "Not found",
    "device_not_found": "There is no such device.",
    "policy_error": (
        "The policy file has mistakes, so devices cannot be judged. Fix the policy first."
    ),
    "database_error": (
        "The collector's database cannot be reached right now. Nothing was changed: try"
        " again in a moment."
    ),
    "forbidden": "The request was refused.",
    "details": "details",
    "compliant_devices": "Devices fully compliant",
    "compliant_hint": "every check passing or waived",
    "needing_action": "Devices needing action",
    "needing_action_hint": "failing a check past its grace period",
    "stale_devices": "Stale devices",
    "stale_hint": "no report for over {hours} h",
    "waivers_in_force": "Waivers in force",
    "waivers_hint": "counted per device and check",
    "of_devices": "of {total} devices",
    "of_devices_one": "of {total} device",  # a count of one (English has a singular)
    "compliant": "fully compliant",
    "trend_values": "Show the values",
    "week_ending": "Week ending",
    "now_value": "Now",
    "sort_hint": "Click a column's title to sort by it; again to reverse.",
    "sorted_by": "Sorted by",
    "min_days": "Failing at least (days)",
    "whole_clause": "whole clause",
    "waivers_title": "Waivers",
    "waiver": "Waiver",
    "created": "Created",
    "in_force_title": "In force",
    "ended_title": "Expired or revoked",
    "ended_shown": "latest {shown} of {total} (the download has all)",
    "no_waivers_in_force": "No waiver is in force.",
    "no_waivers_ended": "No waiver has expired or been revoked.",
    "waiver_state": "State",
    "waiver_active": "in force",
    "waiver_expired": "expired",
    "waiver_revoked": "revoked",
    "waiver_pending": "not yet in force",
    "tokens": "Enrollment tokens",
    "tokens_nav": "Tokens",
    "token": "Token",
    "token_group": "Group its devices join",
    "enrolled_devices": "Devices enrolled",
    "uses_left": "Uses left",
    "tokens_note": (
        "No token's secret is shown: it is printed once, when the token is created, and the "
        "collector keeps only its hash."
    ),
    "no_tokens": "No enrollment token yet.",
    "token_usable": "usable",
    "token_used_up": "used up",
    "token_expired": "expired",
    "token_revoked": "revoked",
    "audit": "Audit log",
    "audit_note": (
        "Every admin command, local or remote, and every dashboard login: who did what, when, "
        "from where, and the outcome. The newest first."
    ),
    "audit_forbidden": "The audit log is for the auditor and admin roles only.",
    "entries": "entries",
    "entries_one": "entry",  # a count of one (English has a singular)
    "at": "When",
    "actor": "Who",
    "role": "Role",
    "command": "Command",
    "arguments": "Arguments",
    "outcome": "Outcome",
    "message": "Message",
    "peer": "From",
    "outcome_ok": "ok",
    "outcome_denied": "denied",
    "outcome_error": "error",
    "role_viewer": "viewer",
    "role_auditor": "auditor",
    "role_admin": "admin",
    "no_entries": "The audit log is empty.",
    "device_status_active": "active",
    "device_status_revoked": "revoked",
    "device_status_retired": "retired",
    # A device IT revoked or retired: its page (`left_fleet`).
    "left_fleet": "Left the fleet",
    "left_reason": "Why it left",
    "left_notice": (
        "This device was {status} on {when} and has left the fleet: it counts in no figure"
        " from then on, and nothing more is asked of it. Below are its last verdicts before"
        " it left, kept as history."
    ),
    "last_verdict": "Last verdict",
    # The device's certificate in use (its page): when it expires and which CA signed it.
    "certificate_expires": "Certificate valid until",
    "certificate_ca": "Issuing CA",
    "certificate_ca_named": "CA {generation} ({fingerprint})",
    "certificate_ca_not_recorded": (
        "not recorded (issued before this collector version recorded it): verified against"
        " the collector's CAs when the device next connects"
    ),
    "report_collected": "report collected",
    "net_PUBLIC": "PUBLIC",
    "net_TRUSTED": "TRUSTED",
    "net_OTHER": "OTHER",
    "net_UNKNOWN": "UNKNOWN",
    "net_UNSPECIFIED": "UNSPECIFIED",
}

STATE_ENGLISH: dict[str, str] = {
    # state: its English on the dashboard (msgctxt "web.state_<STATE>")
    "PASS": "PASS",
    "GRACE": "GRACE",
    "FAIL": "FAIL",
    "UNKNOWN": "UNKNOWN",
    "EXEMPT": "EXEMPT",
    "STALE": "STALE",
}


def pick_lang(
    query: str | None, cookie: str | None, accept_language: str | None, default: str = DEFAULT_LANG
) -> str:
    """The page's language: the `?lang=` switch, else the remembered choice, else the one the
    browser's Accept-Language weighs most (RFC 9110: q-values, `*`, `q=0` refuses), else
    `default`, the site's own (`[web] language`; Chinese, as the company reads)."""
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate
    return preferred(accept_language, LANGS, default if default in LANGS else DEFAULT_LANG)


class Words:
    """One language's words, by attribute or by item; nothing else is reachable from it."""

    __slots__ = ("_table",)
    _table: dict[str, str]

    def __init__(self, table: dict[str, str]) -> None:
        object.__setattr__(self, "_table", table)

    def __getattr__(self, key: str) -> str:
        try:
            return self._table[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> str:
        return self._table[key]

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)


def every_message() -> list[tuple[str, str]]:
    """(context, English msgid) of each of the dashboard's words, for the catalogs
    (`make catalogs`, and the tests that hold each catalog to the list)."""
    return [(f"web.{key}", english) for key, english in ENGLISH.items()] + [
        (f"web.state_{state}", english) for state, english in STATE_ENGLISH.items()
    ]


@functools.cache
def words(lang: str) -> Words:
    """The dashboard's words in `lang`, from the message catalogs (gettext)."""
    chosen: Lang = "zh" if lang == "zh" else "en"
    table = {key: translate(chosen, f"web.{key}", english) for key, english in ENGLISH.items()}
    table |= {f"state_{state}": translate(chosen, f"web.state_{state}", english)
              for state, english in STATE_ENGLISH.items()}  # fmt: skip
    return Words(table)
