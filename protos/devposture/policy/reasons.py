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

Every code, its English words and its parameters are declared in one place,
`devposture.policy.reason_codes.CODES`; the words per language come from the gettext
catalogs (`devposture.policy.catalogs`), keyed by the code as message context. Adding a
reason: CONTRIBUTING.md, "Checklist: adding a reason".
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote
from typing import Any

from devposture.policy.catalogs import Lang, closed_up, translate
from devposture.policy.moments import words as moment_words
from devposture.policy.phrases import worded
from devposture.policy.plurals import settled
from devposture.policy.reason_codes import (
    CODES,
    SIGNAL_MATCHED,
    SIGNALS,
    STATES,
    TERMS,
    WRAPS,
    Kind,
    Message,
    Param,
    every_message,
    placeholders,
)

__all__ = [
    "CODES", "DIRECTION_CONTROLS", "STATES", "TERMS", "WRAPS", "Item", "Kind", "Message",
    "Param", "Reason",
    "encode", "every_message", "item", "parse", "placeholders", "render", "state_word",
    "visible_controls",
]  # fmt: skip

# One reason inside another's `items`: [code] or [code, {params}] (`item`).
Item = list[Any]


@dataclass(frozen=True)
class Reason:
    code: str
    params: dict[str, Any]


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
    template = translate(lang, code, message.english)
    if lang == "en":
        return settled(template, params).format_map(values)
    return closed_up(template, values).format_map(values)


# Unicode's explicit direction controls (embeddings, overrides, isolates). In a name a device
# or a hotspot's owner chose ("星巴克免费WiFi" + U+202E) they turned the reason's own words
# after it around ("…NPV tuohtiw"): shown as what they are, they change nothing around them.
_DIRECTION_CONTROLS = {
    code: f"[U+{code:04X}]" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
# The same characters, for what shows them another way (a terminal's table: collector.table_fit).
DIRECTION_CONTROLS = frozenset(map(chr, _DIRECTION_CONTROLS))


def visible_controls(text: str) -> str:
    """`text` with every explicit direction control written out as "[U+202E]"."""
    return text.translate(_DIRECTION_CONTROLS)


_MATCHED_PREFIX = SIGNAL_MATCHED.partition("{")[0]


def _signal(text: str, lang: Lang) -> str:
    """One of the agent's words for why a network is public, in `lang` where it is known
    ("open network" -> 开放网络（无密码）, "name matches CMCC*" -> 名称符合 CMCC*)."""
    if text in SIGNALS:
        return translate(lang, "signal", text)
    if text.startswith(_MATCHED_PREFIX) and len(text) > len(_MATCHED_PREFIX):
        pattern = visible_controls(text[len(_MATCHED_PREFIX) :])
        return translate(lang, "signal", SIGNAL_MATCHED).format(pattern=pattern)
    return visible_controls(text)


def _value(param: Param, value: Any, lang: Lang, zone: dt.tzinfo) -> str:  # noqa: ANN401
    if param.default is not None and value in (None, ""):
        return translate(lang, "term", TERMS[param.default])
    if param.wrap is not None:
        if value in (None, "", 0, []):
            return ""
        wrap = translate(lang, "wrap", WRAPS[param.wrap])
        return (settled(wrap, {"": value}) if lang == "en" else wrap).format(
            _value(Param(param.kind), value, lang, zone)
        )
    kind = param.kind
    if kind in ("text", "int"):
        return "" if value is None else visible_controls(str(value))
    if kind == "date":
        day = dt.datetime.fromtimestamp(value, zone)
        return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    if kind == "time":
        return moment_words(dt.datetime.fromtimestamp(value, zone), zone, lang)
    if kind == "texts":
        return translate(lang, "join", ", ").join(visible_controls(str(v)) for v in value or ())
    if kind == "signals":
        return translate(lang, "join", ", ").join(_signal(str(v), lang) for v in value or ())
    if kind == "phrase":
        return "" if value is None else visible_controls(worded(str(value), lang))
    if kind == "phrases":
        return translate(lang, "join", ", ").join(
            visible_controls(worded(str(v), lang)) for v in value or ()
        )
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
