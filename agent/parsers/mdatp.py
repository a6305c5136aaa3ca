"""Microsoft Defender for Endpoint on Linux and macOS: `mdatp health` ("key : value" lines).

Values are JSON-like: true/false, quoted strings, numbers, lists, a date such as
"Aug 12, 2023 at 03:26:24 AM", or a bare `unavailable` when the daemon cannot tell; a managed
setting is followed by " [managed]". A long value may wrap onto a continuation line, which has
no " : " separator and is ignored, and so is a banner such as "ATTENTION: No license found.".
Microsoft's documentation quotes outputs with "..." for elided lines and curly quotes.

Real-time protection is protecting only when every field that speaks of it agrees
(Microsoft's "Investigate agent health issues" page, and its macOS kernel-extension page:
"It reports if real-time protection is enabled but not available"):
`real_time_protection_enabled` (switched on), `real_time_protection_available` (the
component is healthy), `real_time_protection_subsystem` (fanotify, endpoint_security_extension
…; "unavailable" when it is not operating as expected) and `passive_mode_enabled` (passive:
detects, never blocks or remediates). `health_issues` lists what the product itself says is
wrong ("missing license", "no active event provider" …), and `licensed` whether the device is
onboarded to a tenant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from devposture.agent.parsers.errors import ParseError

_LINE = re.compile(r"^(?P<key>[a-z0-9_]+)\s+:\s?(?P<value>.*)$")
_DATE_FORMAT = "%b %d, %Y at %I:%M:%S %p"
_LIST_ITEM = re.compile(r'["\u201c]([^"\u201d]*)["\u201d]')
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class MdatpHealth:
    healthy: bool | None
    real_time_protection_enabled: bool | None
    real_time_protection_available: bool | None
    real_time_protection_subsystem: str  # "" when not printed
    passive_mode: bool | None
    licensed: bool | None
    health_issues: tuple[str, ...]  # the product's own words
    definitions_version: str
    definitions_updated: datetime | None  # as printed; mdatp prints local time, taken as UTC
    definitions_up_to_date: bool | None
    product_expiration: datetime | None  # as printed, local time taken as UTC
    app_version: str

    @property
    def real_time_protection(self) -> bool | None:
        """Protecting in real time: False when any field says it is not, True when it is
        enabled, not unavailable and not passive, None when mdatp cannot tell."""
        if (
            self.real_time_protection_enabled is False
            or self.real_time_protection_available is False
            or self.real_time_protection_subsystem == UNAVAILABLE
            or self.passive_mode is True
        ):
            return False
        if self.real_time_protection_enabled is True and self.real_time_protection_available in (
            True,
            None,
        ):
            return True
        return None

    def problems(self) -> list[str]:
        """What stands in the way of protection, one short phrase each: mdatp's own
        health_issues first, then what its fields say and its issues do not."""
        found = list(self.health_issues)
        if self.real_time_protection_enabled and self.real_time_protection_available is False:
            found.append("real-time protection enabled but not available")
        if self.real_time_protection_subsystem == UNAVAILABLE:
            found.append("real-time protection subsystem unavailable")
        if self.passive_mode:
            found.append("passive mode: detects but does not block or remediate")
        if self.licensed is False and not any("license" in issue for issue in found):
            found.append("not licensed (not onboarded to a tenant)")
        if self.healthy is False and not found:
            found.append("mdatp reports the product unhealthy")
        return found


def _clean(value: str) -> str:
    value = value.strip().removesuffix("[managed]").strip()
    if len(value) >= 2 and value[0] in '"\u201c' and value[-1] in '"\u201d':
        return value[1:-1]
    return value


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return {"true": True, "false": False}.get(value)


def _date(values: dict[str, str], key: str) -> datetime | None:
    text = values.get(key)
    if not text or text == UNAVAILABLE:
        return None
    try:
        return datetime.strptime(text, _DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ParseError(f"mdatp health: {key} is not a known date") from exc


def _list(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ParseError("mdatp health: health_issues is not a list")
    return tuple(item.strip() for item in _LIST_ITEM.findall(text) if item.strip())


def parse_mdatp_health(text: str) -> MdatpHealth:
    values: dict[str, str] = {}
    raw: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            raw[match["key"]] = match["value"]
            values[match["key"]] = _clean(match["value"])
    if "healthy" not in values and "real_time_protection_enabled" not in values:
        raise ParseError("mdatp health: neither 'healthy' nor 'real_time_protection_enabled'")
    status = values.get("definitions_status")
    subsystem = values.get("real_time_protection_subsystem", "")
    return MdatpHealth(
        healthy=_bool(values.get("healthy")),
        real_time_protection_enabled=_bool(values.get("real_time_protection_enabled")),
        real_time_protection_available=_bool(values.get("real_time_protection_available")),
        real_time_protection_subsystem=subsystem,
        passive_mode=_bool(values.get("passive_mode_enabled")),
        licensed=_bool(values.get("licensed")),
        health_issues=_list(raw.get("health_issues")),
        definitions_version=values.get("definitions_version", ""),
        definitions_updated=_date(values, "definitions_updated"),
        definitions_up_to_date=None if status in (None, UNAVAILABLE) else status == "up_to_date",
        product_expiration=_date(values, "product_expiration"),
        app_version=values.get("app_version", ""),
    )
