"""Which of the dashboard's languages a browser's Accept-Language asks for, read as RFC 9110
(section 12.5.4) says: each language range has a weight (`q`, 0 to 1, three decimals at most;
1 when absent), `q=0` means "not acceptable", and `*` stands for every language the header
does not name. The order of the list decides nothing but ties.

A range is matched to our two languages by its primary subtag, as RFC 4647's lookup would
after truncating it: `zh-CN`, `zh-Hans`, `zh-TW` and `zh-HK` all ask for Chinese, and the
Chinese we have (Simplified) is the nearest a reader of Traditional Chinese gets, nearer than
English. When nothing in the header decides (no header, only languages we lack, every one
refused), the caller's default, the site's language, is used, unless the header refused it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# RFC 9110's weight: "0" or "1" with up to three decimals (RFC 9110, section 12.4.2).
_WEIGHT = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
# A language range (RFC 4647, section 2.1): `*` or letters, with dash-separated subtags.
_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def _ranges(header: str) -> list[tuple[str, float]]:
    """(primary subtag in lower case, or "*"; weight) of each well-formed range, in order.
    A malformed range or weight is left out: it cannot say what its sender meant."""
    found = []
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if not _RANGE.fullmatch(name):
            continue
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _WEIGHT.fullmatch(value) else -1.0
        if weight >= 0:
            found.append((name.split("-")[0].lower(), weight))
    return found


def preferred(header: str | None, languages: Sequence[str], default: str) -> str:
    """The language of `languages` the header weighs most (the first named, among equals);
    `default` when it weighs none above 0, unless it refused `default` and accepts another
    of `languages` no less than it does."""
    ranges = _ranges(header or "")
    star = next((weight for name, weight in ranges if name == "*"), None)
    weights: dict[str, float] = {}
    order: dict[str, int] = {}
    for language in languages:
        named = [(n, w) for n, (name, w) in enumerate(ranges) if name == language]
        if named:
            weights[language] = max(w for _, w in named)
            order[language] = min(n for n, _ in named)
        elif star is not None:
            weights[language] = star
            order[language] = len(ranges)  # behind every named language of the same weight
    accepted = [lang for lang in languages if weights.get(lang, 0) > 0]
    if accepted:
        best = max(weights[lang] for lang in accepted)
        tied = [lang for lang in accepted if weights[lang] == best]
        by_name = [lang for lang in tied if order[lang] < len(ranges)]
        if by_name:
            return min(by_name, key=lambda lang: order[lang])
        return default if default in tied else tied[0]  # through `*` alone: the site's own
    if weights.get(default) == 0:  # refused by name or by `*;q=0`
        return next((lang for lang in languages if weights.get(lang) != 0), default)
    return default
