"""What `ConvertTo-Json` prints in Windows PowerShell 5.1, read without the machine's locale.

ConvertTo-Json writes a DateTime as "\\/Date(<milliseconds since 1970-01-01 UTC>)\\/": the
serializer converts the local time to UTC first, so the number is the true instant whatever the
machine's culture and time zone (mondoohq/cnquery parses Get-HotFix output this way). A
DateTime that carries PowerShell's own note properties (Get-HotFix's InstalledOn) comes as an
object {"value": "\\/Date(...)\\/", "DateTime": "<long date in the culture>"}; only "value" is
read. PowerShell 7 writes ISO 8601 instead; that form is read only with its UTC offset, since a
local time without one says nothing about the instant. One object prints as an object, several
as an array, none as nothing at all.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from devposture.agent.parsers.errors import ParseError

_MS_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?:[+-]\d{4})?\)/$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JsonObject = dict[str, object]


def json_objects(text: str, what: str) -> list[JsonObject]:
    """The objects ConvertTo-Json printed: [] for no output, one object, or an array of them."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(f"{what}: not JSON") from exc
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise ParseError(f"{what}: JSON that is not a list of objects")
    return items


def field(obj: JsonObject, name: str) -> object:
    """A property by name, ignoring case (Select-Object keeps the case it was asked with:
    "HotFixId" there, "HotFixID" on the full object). None when absent."""
    wanted = name.lower()
    return next((value for key, value in obj.items() if key.lower() == wanted), None)


def json_datetime(value: object) -> datetime | None:
    """A ConvertTo-Json DateTime as an aware UTC datetime; None for null or an empty string.
    Raises ParseError on anything else, including an ISO time without an offset."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return json_datetime(value.get("value"))
    if not isinstance(value, str):
        raise ParseError("JSON date: neither a string nor a PowerShell date object")
    match = _MS_DATE.match(value)
    if match:
        return _EPOCH + timedelta(milliseconds=int(match["ms"]))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ParseError("JSON date: not /Date(ms)/ nor ISO 8601") from exc
    if parsed.tzinfo is None:
        raise ParseError("JSON date: a local time without its UTC offset")
    return parsed.astimezone(UTC)
