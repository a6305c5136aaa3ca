"""Microsoft Defender for Endpoint on Linux: `mdatp health` ("key : value" lines).

Values are JSON-like: true/false, quoted strings, numbers, lists, or a date such as
"Aug 12, 2023 at 03:26:24 AM"; a managed setting is followed by " [managed]". A long value may
wrap onto a continuation line, which has no " : " separator and is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.parsers.errors import ParseError

_LINE = re.compile(r"^(?P<key>[a-z0-9_]+)\s+:\s?(?P<value>.*)$")
_DATE_FORMAT = "%b %d, %Y at %I:%M:%S %p"


@dataclass(frozen=True)
class MdatpHealth:
    healthy: bool | None
    real_time_protection: bool | None
    definitions_version: str
    definitions_updated: datetime | None  # as printed; mdatp prints local time, taken as UTC
    definitions_up_to_date: bool | None
    app_version: str


def _clean(value: str) -> str:
    value = value.strip().removesuffix("[managed]").strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return {"true": True, "false": False}.get(value)


def parse_mdatp_health(text: str) -> MdatpHealth:
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match["key"]] = _clean(match["value"])
    if "healthy" not in values and "real_time_protection_enabled" not in values:
        raise ParseError("mdatp health: neither 'healthy' nor 'real_time_protection_enabled'")
    updated = None
    if values.get("definitions_updated"):
        try:
            updated = datetime.strptime(values["definitions_updated"], _DATE_FORMAT).replace(
                tzinfo=UTC
            )
        except ValueError as exc:
            raise ParseError("mdatp health: definitions_updated is not a known date") from exc
    status = values.get("definitions_status")
    return MdatpHealth(
        healthy=_bool(values.get("healthy")),
        real_time_protection=_bool(values.get("real_time_protection_enabled")),
        definitions_version=values.get("definitions_version", ""),
        definitions_updated=updated,
        definitions_up_to_date=None if status is None else status == "up_to_date",
        app_version=values.get("app_version", ""),
    )
