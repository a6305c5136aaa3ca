"""`defaults read /Library/Preferences/com.apple.SoftwareUpdate`: whether macOS checks for and
installs security updates by itself, and when Software Update last checked successfully.

defaults prints the domain as an old-style (NeXTSTEP) property list with sorted keys:
    {
        AutomaticCheckEnabled = 1;
        CriticalUpdateInstall = 0;
        LastSuccessfulDate = "2021-02-23 07:52:51 +0000";
        RecommendedUpdates =     (
                    {
                "Display Name" = Safari;
            ...
        );
    }
Only top-level "Key = value;" entries are read; nested arrays and dictionaries are skipped.

Rule for automatic updates (documented because the plist has no single switch):
  * AutomaticCheckEnabled is System Settings' "Check for updates"; CriticalUpdateInstall is
    "Install system data files and security updates" (Apple's device-management schema,
    github.com/apple/device-management mdm/profiles/com.apple.SoftwareUpdate.yaml: "If false,
    deselects the 'Check for updates' option" and "If false, disables the automatic
    installation of critical updates ..."). Without the check nothing is fetched at all, so
    security updates install by themselves only when both are on: automatic_updates is true
    exactly when AutomaticCheckEnabled and CriticalUpdateInstall are both true.
  * A key that is absent holds macOS's default, which is on for both: Apple's schema gives
    `default: true` for each, and MacAdmins tools read absence the same way (Mondoo's
    maintainer in mondoohq/cnspec-policies#64: "the default is true and it is not set on my
    machine, although it is active"; Pareto Security: "can also be missing if it never
    changed, but defaults to true"). `defaulted` lists which keys were taken as default.
  * AutomaticDownload, AutomaticallyInstallMacOSUpdates and ConfigDataInstall are not part of
    the rule: they govern downloading and installing whole macOS releases and XProtect data,
    not whether security responses install themselves.
  * Values: defaults prints booleans as 1 or 0, but the key may hold a string someone wrote by
    hand ("YES", "True"). Software Update reads it as NSUserDefaults bool(forKey:) does, which
    Apple documents to coerce 1, "true", "YES" and "1" to true; 0/false/no are read as false.
    Anything else is a ParseError, never a guess.

LastSuccessfulDate is printed as NSDate's description, always with its offset
("2021-02-23 07:52:51 +0000"), so it is an exact instant. A missing domain is not printed on
stdout: defaults exits 1 with "Domain ... does not exist" on stderr (`domain_missing`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from devposture.agent.parsers.errors import ParseError

AUTOMATIC_CHECK = "AutomaticCheckEnabled"
CRITICAL_INSTALL = "CriticalUpdateInstall"
LAST_SUCCESSFUL = "LastSuccessfulDate"
MACOS_DEFAULT = True  # for both keys when absent; see the module docstring

_ENTRY = re.compile(r'^(?P<key>"(?:[^"\\]|\\.)*"|[^\s"=]+)\s*=\s*(?P<value>.*)$')
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_MISSING_DOMAIN = re.compile(r"\bDomain .+ does not exist\b")


@dataclass(frozen=True)
class SoftwareUpdatePrefs:
    automatic_check: bool | None  # None: the key is absent
    critical_update_install: bool | None
    last_successful: datetime | None  # None: Software Update never recorded a success

    @property
    def defaulted(self) -> tuple[str, ...]:
        """The rule's keys that are absent and so taken as macOS's default (on)."""
        keys = (
            (AUTOMATIC_CHECK, self.automatic_check),
            (CRITICAL_INSTALL, self.critical_update_install),
        )
        return tuple(key for key, value in keys if value is None)

    @property
    def automatic_updates(self) -> bool:
        """The module's rule: the check and the security installs are both on."""
        check = MACOS_DEFAULT if self.automatic_check is None else self.automatic_check
        critical = (
            MACOS_DEFAULT if self.critical_update_install is None else self.critical_update_install
        )
        return check and critical


def domain_missing(stderr: str) -> bool:
    """True when defaults said the domain (the plist file) does not exist."""
    return _MISSING_DOMAIN.search(stderr) is not None


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _depth_change(text: str) -> int:
    """Opened minus closed brackets outside quoted strings."""
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = quoted
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "({":
            depth += 1
        elif not quoted and char in ")}":
            depth -= 1
    if quoted:
        raise ParseError("defaults: unterminated quoted string")
    return depth


def _top_level(text: str) -> dict[str, str | None]:
    """Top-level keys with their scalar value, None for a nested array or dictionary."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != "{" or lines[-1] != "}":
        raise ParseError("defaults: output is not a property-list dictionary")
    values: dict[str, str | None] = {}
    depth = 0
    for line in lines[1:-1]:
        if depth:
            depth += _depth_change(line)
            if depth < 0:
                raise ParseError("defaults: unbalanced brackets")
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise ParseError("defaults: top-level line is not 'key = value;'")
        key, value = _unquote(match["key"]), match["value"]
        opened = _depth_change(value)
        if opened > 0:
            values[key] = None
            depth = opened
        elif opened == 0 and value.endswith(";"):
            values[key] = _unquote(value[:-1].strip())
        else:
            raise ParseError("defaults: top-level value not terminated by ';'")
    if depth:
        raise ParseError("defaults: unbalanced brackets")
    return values


def _bool(values: dict[str, str | None], key: str) -> bool | None:
    if key not in values:
        return None
    value = values[key]
    if value is not None and value.lower() in _TRUE:
        return True
    if value is not None and value.lower() in _FALSE:
        return False
    raise ParseError(f"defaults: {key} is not a boolean value")


def parse_prefs(text: str) -> SoftwareUpdatePrefs:
    values = _top_level(text)
    last = None
    if LAST_SUCCESSFUL in values:
        raw = values[LAST_SUCCESSFUL]
        try:
            last = datetime.strptime(raw or "", _DATE_FORMAT)
        except ValueError as exc:
            raise ParseError(f"defaults: {LAST_SUCCESSFUL} is not a date") from exc
    return SoftwareUpdatePrefs(
        automatic_check=_bool(values, AUTOMATIC_CHECK),
        critical_update_install=_bool(values, CRITICAL_INSTALL),
        last_successful=last,
    )
