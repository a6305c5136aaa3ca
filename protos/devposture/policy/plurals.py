"""English counts in the singular and the plural, from a template that keeps "(s)".

A catalog's English is the msgid, and one msgid serves every count: "{count} device(s) …",
"profile(s): {profiles}". The translator sees the "(s)" and writes a Chinese that has no
plural ("{count} 台设备"); the English reader should read "1 device" and "3 devices". So the
English template is settled by its count just before the values are put in, never after: the
values (a device's own words, a network called "2 guest(s)") are never touched. The reasons
(`reasons.render`), the command lines' sentences (`cli_messages.Said`) and the agent's
`status` words (`agent.employee.words`) all settle their English here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A count and its noun, "{count} Wi-Fi session(s)" (up to two words between: "{more} more
# row(s)"), and a noun before its list, "profile(s): {profiles}".
_COUNTED = re.compile(r"\{(\w*)\} ((?:[A-Za-z-]+ ){0,2})([A-Za-z-]+)\(s\)")
_LISTED = re.compile(r"([A-Za-z-]+)\(s\)(: \{(\w+)\})")
# A count as a command line puts it into a sentence: digits, maybe grouped ("25,000").
_WRITTEN_COUNT = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def _count(value: object) -> int | None:
    """`value` as a count: an int (not a bool), or the text of one (a `said` parameter is
    kept as text); None for anything else, which leaves its "(s)" as it is."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _WRITTEN_COUNT.fullmatch(value):
        return int(value.replace(",", ""))
    return None


def settled(template: str, params: Mapping[str, object]) -> str:
    """The English `template` with each "(s)" settled by its count (a list's length) among
    `params`: "1 Wi-Fi session", "2 Wi-Fi sessions", "on active profile: ufw". A "(s)" whose
    count is not among them, or is not a number, stays."""

    def counted(match: re.Match[str]) -> str:
        value = _count(params.get(match.group(1)))
        if value is None:
            return match.group(0)
        noun = match.group(3) if value == 1 else f"{match.group(3)}s"
        return f"{{{match.group(1)}}} {match.group(2)}{noun}"

    def listed(match: re.Match[str]) -> str:
        value = params.get(match.group(3))
        if not isinstance(value, list):
            return match.group(0)
        noun = match.group(1) if len(value) == 1 else f"{match.group(1)}s"
        return f"{noun}{match.group(2)}"

    return _LISTED.sub(listed, _COUNTED.sub(counted, template))


def in_english(template: str, /, **params: object) -> str:
    """`template` settled by its counts, then filled: an English text no catalog words (a
    note the audit log keeps in English)."""
    return settled(template, params).format(**params)
