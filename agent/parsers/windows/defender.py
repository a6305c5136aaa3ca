"""Microsoft Defender Antivirus: `Get-MpComputerStatus` in PowerShell's list format.

AMServiceEnabled says the antimalware service runs; AntivirusEnabled that its antivirus engine
is on; RealTimeProtectionEnabled that files are scanned on access. DefenderSignaturesOutOfDate
(newer platforms) is Defender's own verdict on its signatures. A service that is not running
reports signature version 0.0.0.0 and an empty update date: that is "no signatures", not a
version. AntivirusSignatureLastUpdated is printed in the machine's culture and local time (see
local_dates); every date of the output is used to tell day-first from month-first.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.parsers.errors import ParseError
from agent.parsers.windows.listformat import parse_bool, parse_list
from agent.parsers.windows.local_dates import slash_order

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
    # "dmy", "mdy" or None, from all the dates in the output.
    date_order: str | None
    running_mode: str


def parse_mp_computer_status(text: str) -> DefenderStatus:
    records = parse_list(text)
    if len(records) != 1:
        raise ParseError("Get-MpComputerStatus: expected exactly one object")
    record = records[0]
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
        date_order=slash_order(record.values()),
        running_mode=record.get("AMRunningMode", ""),
    )
