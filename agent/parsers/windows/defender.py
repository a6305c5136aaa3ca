"""Microsoft Defender Antivirus: `Get-MpComputerStatus` in PowerShell's list format, printed
after the machine's date patterns and time zone.

AMServiceEnabled says the antimalware service runs; AntivirusEnabled that its antivirus engine
is on; RealTimeProtectionEnabled that files are scanned on access. DefenderSignaturesOutOfDate
(newer platforms) is Defender's own verdict on its signatures. A service that is not running
reports signature version 0.0.0.0 and an empty update date: that is "no signatures", not a
version.

AntivirusSignatureLastUpdated is printed in the machine's culture and local time. The probe
prints `(Get-Culture).DateTimeFormat` and `Get-TimeZone` in the same PowerShell run, so the
output holds up to three objects; they are told apart by their properties, and the date is read
with the machine's own pattern and offset (agent.parsers.windows.local_dates). Every published
recording of this cmdlet is in list format; no recording of its JSON form was found, which is
why the list is kept and the patterns are printed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.listformat import Record, parse_bool, parse_list
from devposture.agent.parsers.windows.local_dates import (
    date_format,
    is_date_format,
    is_zone,
    local_zone,
    to_utc,
)

_NO_VERSION = "0.0.0.0"  # noqa: S104 (a version number, not an address)


@dataclass(frozen=True)
class DefenderStatus:
    service_enabled: bool
    antivirus_enabled: bool
    real_time_protection: bool | None
    signature_version: str
    signatures_out_of_date: bool | None
    # As printed ("6/4/2024 8:06:27 AM"); "" when Defender has no signatures.
    signatures_updated: str
    running_mode: str
    # Every object of the output, among them the culture's DateTimeFormat and Get-TimeZone, read
    # only for the date, so that a zone Windows prints oddly costs the date, not the product.
    context: tuple[Record, ...] = ()


def _is_context(record: Record) -> bool:
    return "AMServiceEnabled" not in record and (is_date_format(record) or is_zone(record))


def _status_record(records: list[Record]) -> Record:
    status = [r for r in records if not _is_context(r)]
    if len(status) != 1:
        raise ParseError("Get-MpComputerStatus: expected exactly one object")
    return status[0]


def parse_mp_computer_status(text: str) -> DefenderStatus:
    records = parse_list(text)
    record = _status_record(records)
    service = parse_bool(record, "AMServiceEnabled")
    antivirus = parse_bool(record, "AntivirusEnabled")
    if service is None or antivirus is None:
        raise ParseError("Get-MpComputerStatus: AMServiceEnabled or AntivirusEnabled missing")
    version = record.get("AntivirusSignatureVersion", "")
    return DefenderStatus(
        service_enabled=service,
        antivirus_enabled=antivirus,
        real_time_protection=parse_bool(record, "RealTimeProtectionEnabled"),
        signature_version="" if version == _NO_VERSION else version,
        signatures_out_of_date=parse_bool(record, "DefenderSignaturesOutOfDate"),
        signatures_updated=record.get("AntivirusSignatureLastUpdated", ""),
        running_mode=record.get("AMRunningMode", ""),
        context=tuple(records),
    )


def signatures_updated_at(status: DefenderStatus) -> datetime | None:
    """When signatures were last updated, as an aware UTC datetime; None when Defender has no
    signatures. Raises ParseError when the date cannot be read with the machine's pattern, or
    when the output did not carry the pattern: a Windows date is never read by guesswork."""
    if not status.signatures_updated:
        return None
    pattern = date_format(status.context)
    if pattern is None:
        raise ParseError("Get-MpComputerStatus: the machine's date pattern was not printed")
    return to_utc(pattern.read(status.signatures_updated), local_zone(status.context))
