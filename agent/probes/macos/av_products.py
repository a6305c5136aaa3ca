"""Endpoint-protection agents for macOS, by the daemon name their vendor documents.

Matched exactly against the process name and the executable's basename. Names come from each
vendor's macOS installation or troubleshooting guide (noted per entry); like the Linux table,
none has yet been checked against a process list recorded on a Mac running the product, so
the table is a starting point to be confirmed with diagnostic bundles.
"""

from __future__ import annotations

MACOS_AV_PROCESSES: dict[str, str] = {
    # Microsoft Defender for Endpoint on Mac: wdavdaemon (learn.microsoft.com, "Troubleshoot
    # performance issues for Microsoft Defender for Endpoint on macOS").
    "wdavdaemon": "Microsoft Defender for Endpoint",
    # CrowdStrike Falcon sensor for macOS: falcond (Falcon sensor for Mac deployment guide).
    "falcond": "CrowdStrike Falcon",
    # SentinelOne macOS agent: sentineld (SentinelOne macOS agent installation guide).
    "sentineld": "SentinelOne",
    # Sophos Endpoint for macOS: on-access scanner SophosScanD (Sophos Central Mac help).
    "SophosScanD": "Sophos Endpoint",
    # ESET Endpoint Security / Antivirus for macOS: esets_daemon (ESET macOS online help).
    "esets_daemon": "ESET Endpoint Security",
    # Bitdefender Endpoint Security Tools for Mac: BDLDaemon (Bitdefender GravityZone help).
    "BDLDaemon": "Bitdefender Endpoint Security Tools",
    # Malwarebytes for Mac real-time protection: RTProtectionDaemon (Malwarebytes support).
    "RTProtectionDaemon": "Malwarebytes",
    # Kaspersky Endpoint Security for Mac: kav (Kaspersky online help, application processes).
    "kav": "Kaspersky Endpoint Security for Mac",
    # Trend Micro Apex One (Mac): iCoreService (Trend Micro Apex One for Mac admin guide).
    "iCoreService": "Trend Micro Apex One",
}
