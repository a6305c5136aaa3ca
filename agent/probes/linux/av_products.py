"""Endpoint-protection agents for Linux, by the process name their vendor documents.

Matched exactly against the process name and the executable's basename. Only products
whose Linux daemon name is specific to them are listed (a generic name like "pmd" would
claim products that are not there). The names come from each vendor's Linux installation or
troubleshooting guide (noted per entry); none has yet been checked against a process list
recorded on a machine running the product, so treat the table as a starting point."""

from __future__ import annotations

LINUX_AV_PROCESSES: dict[str, str] = {
    # Microsoft Defender for Endpoint on Linux: daemon wdavdaemon (learn.microsoft.com,
    # "Troubleshoot installation issues for Microsoft Defender for Endpoint on Linux").
    "wdavdaemon": "Microsoft Defender for Endpoint",
    # CrowdStrike Falcon sensor for Linux: falcon-sensor service / process.
    "falcon-sensor": "CrowdStrike Falcon",
    # SentinelOne: SentinelAgent (macOS/Windows naming), s1-agent on Linux.
    "SentinelAgent": "SentinelOne",
    "s1-agent": "SentinelOne",
    # Sophos Protection for Linux (sophos_threat_detector) and Sophos Anti-Virus for Linux (savd).
    "sophos_threat_detector": "Sophos Protection for Linux",
    "savd": "Sophos Anti-Virus for Linux",
    # ESET Server/Endpoint Security for Linux: on-access event daemon oaeventd; older esets_daemon.
    "oaeventd": "ESET Endpoint Security",
    "esets_daemon": "ESET Endpoint Security",
    # Kaspersky Endpoint Security for Linux: kesl.
    "kesl": "Kaspersky Endpoint Security for Linux",
    # Trend Micro Deep Security / Cloud One Workload Security agent: ds_agent.
    "ds_agent": "Trend Micro Deep Security Agent",
    # VMware Carbon Black Cloud Linux sensor: cbagentd.
    "cbagentd": "VMware Carbon Black Cloud",
    # Trellix (McAfee) Endpoint Security for Linux Threat Prevention: mfetpd.
    "mfetpd": "Trellix Endpoint Security",
    # Elastic Defend: elastic-endpoint.
    "elastic-endpoint": "Elastic Defend",
}
