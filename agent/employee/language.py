"""Which language the person at this computer reads: Chinese or English.

On Linux and macOS it is the locale's, read as gettext reads it: LANGUAGE (a list by
preference, ignored when the locale is C), then LC_ALL, LC_MESSAGES, LANG, the first one set.
On Windows it is the user's display language (GetUserDefaultUILanguage, behind
`agent/windows/ui_language.py`): a Chinese Windows has no LANG. Chinese when nothing says
otherwise: the company's people read Chinese first (DESIGN.md), and a service started without a
locale must not fall back to English for them. Any other language reads English, the second
one every message has.

This is the language of whoever runs the agent (`status` in the person's terminal). The
service's own environment is not the person's: desktop notifications read each person's
language from their session's settings (`agent/notify/session_language.py`, `macos.py`,
`windows.py`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from devposture.policy.catalogs import Lang
from devposture.policy.locale_env import language_of_environ as shared_language_of_environ

__all__ = ["DEFAULT", "Lang", "language_of_environ", "language_of_langid", "os_language"]

DEFAULT: Lang = "zh"
_PRIMARY_CHINESE = 0x04  # LANG_CHINESE, the low 10 bits of a Windows LANGID


def language_of_environ(environ: Mapping[str, str]) -> Lang:
    """The language gettext would pick from these variables (Chinese when none is set)."""
    return shared_language_of_environ(environ, DEFAULT)


def language_of_langid(langid: int) -> Lang:
    """A Windows LANGID (2052 zh-CN, 1028 zh-TW, 1033 en-US ...): Chinese by its primary
    language, else English."""
    return "zh" if langid & 0x3FF == _PRIMARY_CHINESE else "en"


def os_language(
    platform: str = sys.platform,
    environ: Mapping[str, str] | None = None,
    windows_langid: Callable[[], int] | None = None,
) -> Lang:
    """This computer's language for the person using it."""
    if platform == "win32":
        if windows_langid is None:
            from devposture.agent.windows.ui_language import user_ui_langid  # noqa: PLC0415

            windows_langid = user_ui_langid
        return language_of_langid(windows_langid())
    return language_of_environ(os.environ if environ is None else environ)
