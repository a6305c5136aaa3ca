"""Each check's parameters as a policy file names them, with their defaults: what reading a
policy needs of the checks (`devposture.policy`), kept apart from the checks themselves
(`checks.py`), which judge reports and so load protobuf and the reports' messages: every
collector command reads the policy, and loading protobuf for it was about a tenth of a
command's start (`report fleet`)."""

from __future__ import annotations

import re

# Each check's parameters, with their defaults, by check id (every check has an entry, so
# its keys are the checks a policy may name: `checks.CHECK_FUNCTIONS` has the same). The policy
# validator checks names and types against this table: a default that is a whole number asks
# for a whole number, one that is text asks for a dotted version number ("4.0.0").
ParameterValue = int | str
PARAMETERS: dict[str, dict[str, ParameterValue]] = {
    "antivirus": {"signature_max_age_days": 7},
    "firewall": {},
    "os-updates": {"check_max_age_days": 14},
    "public-wifi": {"vpn_grace_seconds": 120},
    "chat-backup": {"backup_max_age_days": 30},
    # Policy choices, not advisories: no public advisory found names a minimum for the
    # desktop clients. WeChat 4.0.0 starts the 4.x line Tencent now ships for Windows (winget
    # Tencent.WeChat.Universal, product code Weixin), macOS and Linux under one numbering;
    # 3.x for Windows (winget Tencent.WeChat) has 3.9.12.x as its newest. WeCom 4.1.30 is a
    # recent 4.x release (winget Tencent.WeCom 4.1.30.6004, .6008; 5.0 builds exist). Raise
    # both as releases come; see docs/chat-clients.md.
    "chat-app-updates": {"min_version_wechat": "4.0.0", "min_version_wecom": "4.1.30"},
}
_DOTTED = re.compile(r"\d+(?:\.\d+)*")


def version_numbers(text: str) -> tuple[int, ...] | None:
    """The numbers of a dotted version ("3.9.12.17" -> (3, 9, 12, 17)), None for other text."""
    value = text.strip()
    if not _DOTTED.fullmatch(value):
        return None
    return tuple(int(part) for part in value.split("."))
