"""Which language the person at this computer reads: Chinese or English.

On Linux and macOS it is the locale's, read as gettext reads it: LANGUAGE (a list by
preference, ignored when the locale is C), then LC_ALL, LC_MESSAGES, LANG, the first one set.
On Windows it is the user's display language (GetUserDefaultUILanguage, behind
`agent/windows/ui_language.py`): a Chinese Windows has no LANG. Chinese when nothing says
otherwise: the company's people read Chinese first (DESIGN.md), and a service started without a
locale must not fall back to English for them. Any other language reads English, the second
one every message has.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Literal

Lang = Literal["zh", "en"]
DEFAULT: Lang = "zh"
_PRIMARY_CHINESE = 0x04  # LANG_CHINESE, the low 10 bits of a Windows LANGID


def language_of_tag(tag: str) -> Lang | None:
    """`zh_CN.UTF-8`, `zh-Hans`, `en_GB` ...: zh or en; C and POSIX read English (a locale
    that asks for no translation); anything else, None."""
    name = tag.strip().split(".")[0].split("@")[0].replace("-", "_").lower()
    if not name:
        return None
    if name == "zh" or name.startswith("zh_"):
        return "zh"
    if name in ("c", "posix", "en") or name.startswith("en_"):
        return "en"
    return None


def language_of_environ(environ: Mapping[str, str]) -> Lang:
    """The language gettext would pick from these variables, narrowed to zh or en."""
    locale = next((environ[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if environ.get(k)), "")
    untranslated = locale.split(".")[0] in ("C", "POSIX")
    if environ.get("LANGUAGE") and not untranslated:
        for tag in environ["LANGUAGE"].split(":"):
            found = language_of_tag(tag)
            if found is not None:
                return found
    if locale:
        return language_of_tag(locale) or "en"
    return DEFAULT


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
