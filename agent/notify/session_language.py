"""Linux: the language a desktop user reads, from that user's own settings, not the service's.

The agent runs as a system service: its locale is the system's (systemd gives it
/etc/locale.conf) or none, while each person picks a language for their desktop. The session's
own environment is out of reach: /proc/PID/environ of another user's process needs
CAP_SYS_PTRACE, which the service's unit does not grant. So the person's choice is read where
the desktops keep it, first found wins:

1. `~/.config/plasma-localerc`: KDE Plasma ([Translations] LANGUAGE, [Formats] LANG), which
   startplasma exports into the session;
2. `~/.config/locale.conf`: Deepin and UOS's Control Center writes LANG and LANGUAGE there,
   and systemd's convention puts a user's locale there too;
3. AccountsService (`/var/lib/AccountsService/users/NAME`, `Language=`): what GNOME's and
   LightDM's settings write and what the display manager starts the session with;
4. the system's locale (`/etc/locale.conf`, Debian's `/etc/default/locale`).

Each is read as gettext would read those variables (`devposture.policy.locale_env`): LANGUAGE
first, then LC_ALL, LC_MESSAGES, LANG. Nothing found: None, and the notice is in Chinese (the
company's language). The files are the user's own: only a small regular file is read, never a
FIFO that would hold the service, a device or a large file (`read_setting`).
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from devposture.agent.employee.language import Lang
from devposture.policy.locale_env import language_of_environ

__all__ = [
    "ACCOUNTS", "SYSTEM_FILES", "env_file", "keyfile_section", "read_setting", "user_language",
]  # fmt: skip

ACCOUNTS = Path("/var/lib/AccountsService/users")
SYSTEM_FILES = (Path("/etc/locale.conf"), Path("/etc/default/locale"))
MAX_BYTES = 64 * 1024
_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def read_setting(path: Path) -> str | None:
    """The text of a small regular file; None when it is absent, unreadable, not a regular
    file (opened without waiting: a FIFO in a home would otherwise hold the service) or
    larger than MAX_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        return os.read(fd, MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as a shell reads them (locale.conf, /etc/default/locale): quotes
    removed, a comment after the value dropped; lines that are not assignments ignored."""
    found = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words and "=" in words[0]:
            key, _, value = words[0].partition("=")
            found[key.strip()] = value
    return found


def keyfile_section(text: str, section: str) -> dict[str, str]:
    """The keys of one [section] of an INI-style key file (KDE's rc files, AccountsService's
    GKeyFile), values as written."""
    found: dict[str, str] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def _plasma(text: str) -> dict[str, str]:
    translations = keyfile_section(text, "Translations")
    formats = keyfile_section(text, "Formats")
    return {"LANGUAGE": translations.get("LANGUAGE", ""), "LANG": formats.get("LANG", "")}


def _accounts(text: str) -> dict[str, str]:
    return {"LANG": keyfile_section(text, "User").get("Language", "")}


def _sources(
    name: str, home: Path | None, accounts: Path, system: tuple[Path, ...]
) -> Iterator[tuple[Path, Callable[[str], dict[str, str]]]]:
    if home is not None:
        yield home / ".config" / "plasma-localerc", _plasma
        yield home / ".config" / "locale.conf", env_file
    if name and "/" not in name and name not in (".", ".."):
        yield accounts / name, _accounts
    for path in system:
        yield path, env_file


def user_language(
    name: str, home: Path | None, *, accounts: Path = ACCOUNTS,
    system: tuple[Path, ...] = SYSTEM_FILES,
) -> Lang | None:  # fmt: skip
    """The language user `name` (home folder `home`) reads, from the first of their settings
    that names one; None when none does."""
    for path, variables in _sources(name, home, accounts, system):
        text = read_setting(path)
        if text is None:
            continue
        environ = variables(text)
        if any(environ.get(name) for name in _VARIABLES):
            return language_of_environ(environ, "zh")
    return None
