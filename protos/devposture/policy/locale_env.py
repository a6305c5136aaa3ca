"""Which language a locale asks for, read as gettext reads it: LANGUAGE (a list by
preference, ignored when the locale is C), then LC_ALL, LC_MESSAGES, LANG, the first one set;
narrowed to the two languages every message has, Chinese and English. Shared by the agent
(the employee's words) and the collector's command line (its tables' headings)."""

from __future__ import annotations

from collections.abc import Mapping

from devposture.policy.catalogs import Lang


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


def language_of_environ(environ: Mapping[str, str], default: Lang) -> Lang:
    """The language gettext would pick from these variables, narrowed to zh or en;
    `default` when none is set."""
    locale = next((environ[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if environ.get(k)), "")
    untranslated = locale.split(".")[0] in ("C", "POSIX")
    if environ.get("LANGUAGE") and not untranslated:
        for tag in environ["LANGUAGE"].split(":"):
            found = language_of_tag(tag)
            if found is not None:
                return found
    if locale:
        return language_of_tag(locale) or "en"
    return default
