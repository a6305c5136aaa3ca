"""A notice reaches each person in the language of their own desktop, not the service's.

Linux: real files (recorded on this machine by accountsservice and update-locale, or
published by people with their dotfiles; tests/fixtures/linux/locale/README.md) put where
each desktop keeps them, in a home and system folders under tmp_path, read by the real code;
a FIFO and a device stand where a setting should be. macOS: `defaults` answers recorded on
real Macs, replayed (tests/fixtures/macos/README.md). Windows: the toast the scheduled task
shows carries both languages and picks by the user's display language in their session (no
Windows here: the script is read, not run). The service's own locale is set to the other
language each time, so a test passes only if the person's setting decides."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from devposture.agent.employee.company_time import company_zone
from devposture.agent.employee.language import Lang
from devposture.agent.employee.remediation import OsName
from devposture.agent.notify import commands
from devposture.agent.notify.decide import Notice
from devposture.agent.notify.linux import desktop_sessions
from devposture.agent.notify.macos import MacSender, apple_languages
from devposture.agent.notify.message import Message, worded
from devposture.agent.notify.run import Run
from devposture.agent.notify.session_language import read_setting, user_language
from devposture.agent.notify.windows import WindowsSender
from devposture.agent.status import View
from tests.agent.test_notify_desktop import NOW
from tests.agent.verdicts import policy_verdict

LOCALE = Path(__file__).parent.parent / "fixtures" / "linux" / "locale"
MAC = Path(__file__).parent.parent / "fixtures" / "macos" / "defaults"
LOGINCTL = Path(__file__).parent.parent / "fixtures" / "linux" / "loginctl"
Completed = subprocess.CompletedProcess[str]


@pytest.fixture(autouse=True)
def _service_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's own locale says Chinese: only the person's setting may say English."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")


def _place(root: Path, *files: tuple[str, str]) -> None:
    """Recorded files copied to where the desktops keep them (paths under `root`)."""
    for where, fixture in files:
        target = root / where
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((LOCALE / fixture).read_bytes())


def _language(root: Path) -> str | None:
    return user_language(
        "li", root / "home", accounts=root / "accounts",
        system=(root / "etc" / "locale.conf", root / "etc" / "default" / "locale"),
    )  # fmt: skip


PLASMA = "home/.config/plasma-localerc"
USER_CONF = "home/.config/locale.conf"
ACCOUNT = "accounts/li"
SYSTEM = "etc/default/locale"


@pytest.mark.parametrize(
    ("files", "lang"),
    [
        # KDE: the translations (display language) decide, not the formats' LANG.
        ([(PLASMA, "plasma-localerc-translations-zh-ethan-enhe")], "zh"),
        ([(PLASMA, "plasma-localerc-formats-en-airamek")], "en"),
        ([(PLASMA, "plasma-localerc-zh-empty-language-cossonleo")], "zh"),
        # Deepin/UOS and systemd's user locale: LANGUAGE over LANG, quotes and comments read.
        ([(USER_CONF, "user-locale-conf-language-zh-amberaaa")], "zh"),
        ([(USER_CONF, "user-locale-conf-en-in-zy1x")], "en"),
        ([(USER_CONF, "user-locale-conf-quoted-zh-abcdlsj")], "zh"),
        # GNOME, LightDM: AccountsService, as accounts-daemon wrote it.
        ([(ACCOUNT, "accountsservice-user-en-debian12")], "en"),
        ([(ACCOUNT, "accountsservice-user-zh-debian12")], "zh"),
        # The user chose nothing: the system's locale.
        ([(ACCOUNT, "accountsservice-user-unset-debian12"),
          (SYSTEM, "default-locale-en-debian12")], "en"),
        ([(SYSTEM, "default-locale-zh-debian12")], "zh"),
        # The user's own choice before the system's; KDE's before AccountsService's.
        ([(ACCOUNT, "accountsservice-user-en-debian12"),
          (SYSTEM, "default-locale-zh-debian12")], "en"),
        ([(PLASMA, "plasma-localerc-translations-zh-ethan-enhe"),
          (ACCOUNT, "accountsservice-user-en-debian12")], "zh"),
        # Nothing chosen anywhere: nothing says (the notice is then in Chinese).
        ([(ACCOUNT, "accountsservice-user-unset-debian12"),
          (SYSTEM, "default-locale-unset-debian12")], None),
        ([], None),
    ],
)  # fmt: skip
def test_a_linux_users_language_is_read_from_their_desktops_settings(
    tmp_path: Path, files: list[tuple[str, str]], lang: str | None
) -> None:
    _place(tmp_path, *files)
    assert _language(tmp_path) == lang


def _read_within_a_minute(path: Path) -> list[str | None]:
    """read_setting(path) in a thread, waited for: a read that blocks fails the test
    instead of holding it forever."""
    got: list[str | None] = []
    reader = threading.Thread(target=lambda: got.append(read_setting(path)), daemon=True)
    reader.start()
    reader.join(timeout=60)
    return got


def test_a_fifo_or_a_device_in_a_home_is_not_read(tmp_path: Path) -> None:
    """A user can put a FIFO where a setting is (opening it waits for a writer: the service
    would hang until its watchdog killed it, at every notice) or a link to a device that
    never ends. Neither is read; the next source speaks."""
    config = tmp_path / "home" / ".config"
    config.mkdir(parents=True)
    os.mkfifo(config / "plasma-localerc")
    (config / "locale.conf").symlink_to("/dev/zero")
    _place(tmp_path, (ACCOUNT, "accountsservice-user-en-debian12"))
    assert _read_within_a_minute(config / "plasma-localerc") == [None]
    assert _read_within_a_minute(config / "locale.conf") == [None]
    assert _language(tmp_path) == "en"


def _replay(answers: Mapping[tuple[str, ...], Completed]) -> tuple[list[list[str]], Run]:
    ran: list[list[str]] = []

    def run(argv: list[str], env: Mapping[str, str] | None) -> Completed:
        ran.append(argv)
        return answers[tuple(argv)]

    return ran, run


def _done(argv: tuple[str, ...], code: int, stdout: str = "") -> Completed:
    return subprocess.CompletedProcess(list(argv), code, stdout, "")


def test_desktop_sessions_carry_each_users_language() -> None:
    """logind's recorded listing; the session's properties are stated (the recorded
    show-session names nobody); the language is asked per user."""
    listing = (LOGINCTL / "list-sessions-c2.txt").read_text()
    props = "Name=li\nUser=1000\nType=x11\nClass=user\nActive=yes\nRemote=no\n"
    answers = {
        tuple(commands.list_sessions()): _done(tuple(commands.list_sessions()), 0, listing),
        tuple(commands.show_session("c2")): _done(tuple(commands.show_session("c2")), 0, props),
    }
    _, run = _replay(answers)

    def language(uid: int) -> Lang:
        return "en" if uid == 1000 else "zh"

    (session,) = desktop_sessions(run, language=language)
    assert (session.uid, session.lang) == (1000, "en")


def _worded(os_name: OsName) -> dict[Lang, Message]:
    """A failing firewall's notice in both languages, for a computer with `os_name`."""
    view = View("zh", os_name, company_zone(), NOW)
    return worded(Notice("failing", policy_verdict("firewall", "FAIL")), view)


USER_LANGUAGES = tuple(commands.macos_user_languages(501, "li.wei"))
SYSTEM_LANGUAGES = commands.MACOS_SYSTEM_LANGUAGES


@pytest.mark.parametrize(
    ("user", "system", "lang"),
    [
        (_done(USER_LANGUAGES, 0, (MAC / "read-g-AppleLanguages-en-fr-ja-go-locale-11.out")
               .read_text()), None, "en"),
        (_done(USER_LANGUAGES, 0, (MAC / "read-g-AppleLanguages-zh-Hans-HK-os-locale-53.out")
               .read_text()), None, "zh"),
        # The user never chose (defaults exits 1): the Mac's languages.
        (_done(USER_LANGUAGES, 1), _done(SYSTEM_LANGUAGES, 0, (
            MAC / "read-g-AppleLanguages-en-fr-ja-go-locale-11.out").read_text()), "en"),
        # Neither says: Chinese.
        (_done(USER_LANGUAGES, 1), _done(SYSTEM_LANGUAGES, 1), "zh"),
    ],
)  # fmt: skip
def test_a_macs_console_user_is_told_in_their_applelanguages(
    user: Completed, system: Completed | None, lang: Lang
) -> None:
    answers = {USER_LANGUAGES: user}
    if system is not None:
        answers[SYSTEM_LANGUAGES] = system
    # No public recording of `stat -f "%u %Su" /dev/console` was found: its answer is stated.
    console = tuple(commands.console_owner())
    answers[console] = _done(console, 0, "501 li.wei\n")
    messages = _worded("macos")
    message = messages[lang]
    notify = commands.macos_notify(501, "li.wei", message.app, message.summary, message.body)
    answers[tuple(notify)] = _done(tuple(notify), 0)
    ran, run = _replay(answers)
    assert MacSender(run).send(messages) == 1
    assert ran[-1] == notify
    assert ran[1] == list(USER_LANGUAGES)  # asked as the user, in their namespace


def test_applelanguages_are_read_in_order() -> None:
    english = (MAC / "read-g-AppleLanguages-en-fr-ja-go-locale-11.out").read_text()
    chinese = (MAC / "read-g-AppleLanguages-zh-Hans-HK-os-locale-53.out").read_text()
    assert apple_languages(english) == ["en", "fr", "ja"]
    assert apple_languages(chinese) == ["zh-Hans-HK", "zh-Hant-HK"]
    assert apple_languages("") == [] and apple_languages("Dark\n") == []


def _decoded(argv: list[str]) -> str:
    return base64.b64decode(argv[argv.index("-EncodedCommand") + 1]).decode("utf-16-le")


def toast_variants(argv: list[str]) -> dict[str, str]:
    """The toast XML of each language in the script the Windows command's task runs
    ($chinese, $english: PowerShell single-quoted strings, which may span lines)."""
    outer = _decoded(argv)
    inner = outer.split("-Argument '", 1)[1].split("'\n", 1)[0]
    script = _decoded(inner.split())
    found = re.findall(r"^\$(chinese|english) = '((?:[^']|'')*)'$", script, re.M)
    return {name: text.replace("''", "'") for name, text in found}


def test_a_windows_toast_has_both_languages_and_picks_the_users_display_language() -> None:
    """The service runs as LocalSystem: its GetUserDefaultUILanguage is SYSTEM's. The task
    runs as each logged-on user, where CurrentUICulture is that user's display language."""
    ran: list[list[str]] = []

    def run(argv: list[str], env: Mapping[str, str] | None) -> Completed:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    messages = _worded("windows")
    assert WindowsSender(run).send(messages) == 1
    toasts = toast_variants(ran[0])
    assert "<text>设备合规检查</text><text>防火墙已开启：不合规</text>" in toasts["chinese"]
    assert "Windows 安全中心" in toasts["chinese"] and "Firewall" not in toasts["chinese"]
    assert "<text>Device compliance</text><text>Firewall on: failing</text>" in toasts["english"]
    outer = _decoded(ran[0])
    inner = outer.split("-Argument '", 1)[1].split("'\n", 1)[0]
    lines = _decoded(inner.split()).splitlines()
    assert (
        "$zh = [Globalization.CultureInfo]::CurrentUICulture.TwoLetterISOLanguageName -eq 'zh'"
        in lines
    )
    assert "$xml.LoadXml($(if ($zh) { $chinese } else { $english }))" in lines
