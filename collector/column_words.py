"""The headings of the command line's tables, in the reader's language.

A table heads each column with its name as JSON, CSV and scripts know it (`DEVICE`,
`LAST_REPORT`); in Chinese, with its words from the message catalogs (msgctxt "column"),
so that IT reading `report failing` in Chinese reads 设备 and 失败起始. The files (JSON, CSV,
XLSX) keep the names: programs read them. Which language: `--lang` where a command has it,
else the locale as gettext reads it (`devposture.policy.locale_env`), English when none is set
(the names then, as before).
"""

from __future__ import annotations

import os

from devposture.policy.catalogs import Lang, translate
from devposture.policy.locale_env import language_of_environ

# Every column a command's table may show (`admin/commands.py`, `reports.py`; a test holds
# them to this list). The English heading is the name in capitals.
COLUMNS: tuple[str, ...] = (
    "action", "actor", "arguments", "at", "ca_fingerprint", "certificate_ca",
    "certificate_expires", "certificate_generation", "check", "check_title_en", "check_title_zh",
    "clause", "clause_text_en", "clause_text_zh", "clause_title_en", "clause_title_zh", "clock",
    "clock_off", "clone_detail", "clone_suspected", "collectors", "command", "created",
    "credential", "days", "detail", "device", "devices", "enrolled", "events", "evidence",
    "exempt", "expires", "fail", "failing_since", "fingerprint", "from", "grace", "group",
    "hostname", "hours", "last_report", "message", "name", "os", "outbox", "outcome", "owner",
    "pass", "pass_rate_percent", "peer", "reason", "reason_text", "remediation_en",
    "remediation_zh", "reports_lost", "role", "since", "stale", "state", "status",
    "status_reason", "token", "unknown", "until", "uses", "uses_left", "verdict", "waiver",
)  # fmt: skip


def every_message() -> list[tuple[str, str]]:
    """(context, English msgid) of each heading, for the catalogs."""
    return [("column", name.upper()) for name in COLUMNS]


def heading(name: str, lang: Lang) -> str:
    """The heading of column `name` in `lang` (its name in capitals when not declared)."""
    english = name.upper()
    return english if lang == "en" or name not in COLUMNS else translate(lang, "column", english)


def table_language(chosen: str | None) -> Lang:
    """`--lang` when given, else the locale's (English when none is set)."""
    if chosen in ("zh", "en"):
        return "zh" if chosen == "zh" else "en"
    return language_of_environ(os.environ, "en")
