"""An installed program's Uninstall key (`reg query HKLM\\...\\Uninstall\\<name>`), parsed by
`reg_query.parse_reg_query`: where the program lives and the version its installer wrote.

Installers fill the key unevenly: InstallLocation may be present but empty ("InstallLocation
REG_SZ" with no data, as MSI packages often leave it), so the folder is taken from the first
of InstallLocation, DisplayIcon ("C:\\...\\WeChat.exe,0", quoted or not) and UninstallString
(the uninstaller, with its arguments) that names one. DisplayVersion is the version the
installer wrote; the app's own updater may not rewrite it, so the probe prefers the version
folder it finds on disk and keeps this one for when there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.windows.reg_query import RegistryValues

_ICON_INDEX = re.compile(r",\s*-?\d+$")
_EXE = re.compile(r"^(?P<path>.+?\.exe)\b", re.IGNORECASE)


@dataclass(frozen=True)
class UninstallEntry:
    folder: str  # with "/" separators and no trailing one; "" when the key names none
    display_version: str  # as written, "" when absent


def _text(values: RegistryValues, name: str) -> str:
    kind, data = values.get(name, ("", ""))
    return data.strip() if kind in ("REG_SZ", "REG_EXPAND_SZ") else ""


def _folder_of_program(command: str) -> str:
    text = _ICON_INDEX.sub("", command.strip())
    if text.startswith('"'):
        end = text.find('"', 1)
        path = text[1:end] if end > 0 else text[1:]
    else:
        match = _EXE.match(text)
        path = match.group("path") if match else ""
    slash = path.replace("\\", "/").rfind("/")
    return path.replace("\\", "/")[:slash] if slash > 0 else ""


def uninstall_entry(values: RegistryValues) -> UninstallEntry:
    location = _text(values, "InstallLocation").replace("\\", "/").rstrip("/")
    if not location:
        for name in ("DisplayIcon", "UninstallString"):
            location = _folder_of_program(_text(values, name))
            if location:
                break
    return UninstallEntry(location, _text(values, "DisplayVersion"))
